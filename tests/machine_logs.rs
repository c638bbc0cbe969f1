use crate::support::{client, eventually_ok, Ancm, AppDir};

#[test]
fn json_log_format_makes_every_console_line_one_object() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&["--log-format", "json", app.path().to_str().expect("utf-8")]);
    let (pid, _) = ancm.wait_ready();
    assert_eq!(ancm.get("/print?n=2").status(), 200);
    ancm.wait_stdout("the app's printed line", |l| l.contains("print 2 of 2"));

    for line in ancm.stderr() {
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(
            object["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
        assert!(object["fields"].is_object(), "{line}");
    }
    let started = ancm
        .stderr()
        .into_iter()
        .find(|l| l.contains("started the app"))
        .expect("the start line");
    let started: serde_json::Value = serde_json::from_str(&started).expect("JSON");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["message"], "started the app");
    assert_eq!(started["fields"]["pid"], pid);

    let printed = ancm
        .stdout()
        .into_iter()
        .find(|l| l.contains("print 2 of 2"))
        .expect("the app's line");
    let printed: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(printed["message"], "print 2 of 2");
    assert_eq!(printed["fields"]["pid"], pid);
    assert_eq!(printed["fields"]["slot"], 0);
    assert_eq!(printed["fields"]["stream"], "stdout+stderr");
}

/// The access log's request lines (not its `#` directives) once `count` are there.
fn wait_lines(path: &std::path::Path, count: usize) -> (Vec<String>, Vec<String>) {
    eventually_ok("the access log's lines", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let (directives, lines): (Vec<String>, Vec<String>) = text
            .lines()
            .map(str::to_owned)
            .partition(|l| l.starts_with('#'));
        if lines.len() >= count {
            return Ok((directives, lines));
        }
        Err(format!("access log so far:\n{text}"))
    })
}

#[test]
fn access_log_writes_w3c_lines_with_the_apps_pid() {
    let app = AppDir::new("", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("logs/access.log");
    let ancm = Ancm::run(&[
        "--access-log",
        log.to_str().expect("utf-8"),
        app.path().to_str().expect("utf-8"),
    ]);
    let (pid, _) = ancm.wait_ready();
    let answer = client()
        .get(format!("{}/echo?x=1&y=two", ancm.url))
        .header("User-Agent", "test agent/1.0")
        .send()
        .expect("request");
    assert_eq!(answer.status(), 200);
    assert_eq!(ancm.get("/no-such-page").status(), 404);

    let (directives, lines) = wait_lines(&log, 2);
    assert!(
        directives.iter().any(|d| d == "#Version: 1.0"),
        "{directives:?}"
    );
    assert!(
        directives.iter().any(|d| d
            == "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port c-ip cs(User-Agent) sc-status time-taken x-app-pid"),
        "{directives:?}"
    );
    let port = ancm.addr().rsplit(':').next().expect("port");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields.len(), 12, "{}", lines[0]);
    assert!(
        fields[0].len() == 10 && fields[1].len() == 8,
        "{}",
        lines[0]
    );
    assert_eq!(
        &fields[2..10],
        [
            "127.0.0.1",
            "GET",
            "/echo",
            "x=1&y=two",
            port,
            "127.0.0.1",
            "test+agent/1.0",
            "200"
        ]
    );
    assert!(
        fields[10].parse::<u64>().is_ok(),
        "time-taken in ms: {}",
        lines[0]
    );
    assert_eq!(fields[11], pid.to_string());
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(
        (fields[4], fields[5], fields[9]),
        ("/no-such-page", "-", "404")
    );
}

/// The writer lets lines gather between writes; ancm ending does not lose those still queued.
#[cfg(unix)]
#[test]
fn access_log_lines_queued_at_exit_are_written() {
    let app = AppDir::new("", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let mut ancm = Ancm::run(&[
        "--access-log",
        log.to_str().expect("utf-8"),
        app.path().to_str().expect("utf-8"),
    ]);
    ancm.wait_ready();
    // The first line wakes the writer, which then lets the next ones gather.
    for n in 0..20 {
        assert_eq!(ancm.get(&format!("/echo?n={n}")).status(), 200);
    }
    ancm.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(ancm.wait_exit().success());
    let text = std::fs::read_to_string(&log).expect("access log");
    let lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(lines, 20, "{text}");
}

#[test]
fn access_log_to_stdout_with_a_dash() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&["--access-log", "-", app.path().to_str().expect("utf-8")]);
    let (pid, _) = ancm.wait_ready();
    assert_eq!(ancm.get("/pid").status(), 200);
    let line = ancm.wait_stdout("the access log line", |l| l.contains(" GET /pid - "));
    assert!(
        line.ends_with(&format!(
            " 200 {} {pid}",
            line.split(' ').nth(10).expect("time-taken")
        )),
        "{line}"
    );
    assert!(ancm.stdout().iter().any(|l| l.starts_with("#Fields: ")));
}
