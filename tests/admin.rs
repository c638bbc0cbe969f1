use std::collections::HashMap;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{
    alive, client, eventually, eventually_ok, eventually_some, Ancm, AppDir, DEADLINE,
};

/// `ancm run --admin 127.0.0.1:0 APP`, and the admin listener's base URL.
fn with_admin(app: &AppDir, extra: &[&str]) -> (Ancm, String) {
    let mut args = vec!["--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let ancm = Ancm::run_app(app, &args);
    let line = ancm.wait_stderr("the admin line", |l| l.contains("admin endpoints on "));
    let start = line.find("http://").expect("a URL in the admin line");
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ';' && *c != '(')
        .collect();
    (ancm, url)
}

fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().expect("admin request");
    let status = response.status().as_u16();
    (status, response.text().expect("admin body"))
}

/// Each sample's value by its name and labels (`name{a="1",b="2"}`, labels sorted).
fn scrape(admin: &str) -> HashMap<String, f64> {
    let response = client()
        .get(format!("{admin}/metrics"))
        .send()
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().expect("metrics");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    parsed
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let key = if labels.is_empty() {
                sample.metric
            } else {
                format!("{}{{{}}}", sample.metric, labels.join(","))
            };
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            (key, value)
        })
        .collect()
}

fn status(admin: &str) -> serde_json::Value {
    let (code, body) = get(&format!("{admin}/status"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// Waits until `done` holds for the admin's status.
fn wait_status(
    admin: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually_ok(what, || {
        let now = status(admin);
        if done(&now) {
            Ok(now)
        } else {
            Err(format!("{now:#}"))
        }
    })
}

#[test]
fn metrics_count_requests_and_the_apps_life_in_prometheus_text() {
    let app = AppDir::new("", &[]);
    let (ancm, admin) = with_admin(&app, &[]);
    let (pid, port) = ancm.wait_ready();

    assert_eq!(get(&format!("{admin}/healthz")).0, 200);
    for _ in 0..5 {
        assert_eq!(ancm.get("/").status(), 200);
    }
    let upload = client()
        .post(format!("{}/upload", ancm.url))
        .body(vec![b'x'; 10_000])
        .send()
        .expect("upload");
    assert_eq!(upload.status(), 200);
    assert_eq!(ancm.get("/no-such-page").status(), 404);

    let metrics = scrape(&admin);
    let value = |key: &str| {
        *metrics
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from {metrics:#?}"))
    };
    assert_eq!(
        value(r#"ancm_requests_total{class="2xx",protocol="HTTP/1.1"}"#),
        6.0
    );
    assert_eq!(
        value(r#"ancm_requests_total{class="4xx",protocol="HTTP/1.1"}"#),
        1.0
    );
    assert_eq!(
        value(r#"ancm_requests_total{class="2xx",protocol="HTTP/2"}"#),
        0.0
    );
    assert_eq!(value("ancm_request_duration_seconds_count"), 7.0);
    assert_eq!(
        value("ancm_request_duration_seconds"),
        7.0,
        "the +Inf bucket"
    );
    assert_eq!(value("ancm_requests_in_flight"), 0.0);
    assert!(value("ancm_request_body_bytes_total") >= 10_000.0);
    assert!(value("ancm_response_body_bytes_total") > 0.0);
    assert_eq!(value("ancm_app_starts_total"), 1.0);
    assert_eq!(value("ancm_app_restarts_total"), 0.0);
    assert_eq!(value("ancm_app_up"), 1.0);
    assert_eq!(value(r#"ancm_app_exits_total{cause="signal"}"#), 0.0);
    assert_eq!(value("ancm_upstream_connect_failures_total"), 0.0);
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("process_start_time_seconds") > 1_600_000_000.0);
    assert!(
        value(&format!(
            r#"ancm_app_resident_memory_bytes{{pid="{pid}",slot="0"}}"#
        )) > 0.0
    );
    assert!(metrics.contains_key(&format!(
        r#"ancm_app_cpu_seconds_total{{pid="{pid}",slot="0"}}"#
    )));

    // The admin listener is not the front: the front's /metrics is the app's to answer.
    assert_eq!(ancm.get("/metrics").status(), 404);
    let _ = port;
}

#[test]
fn status_and_metrics_follow_a_crash_and_the_restart() {
    let app = AppDir::new("", &[]);
    let (ancm, admin) = with_admin(&app, &[]);
    let (first, port) = ancm.wait_ready();

    // The status takes the process's state from the supervisor and its start time from the
    // journal, which records the same event on a task of its own, a moment later.
    let now = wait_status(&admin, "the start recorded", |s| {
        !s["processes"][0]["started_at"].is_null()
    });
    assert_eq!(now["pid"], ancm.pid());
    assert_eq!(now["app_dir"], app.path().to_str().expect("utf-8"));
    assert_eq!(now["urls"][0], format!("{}/", ancm.url));
    assert!(now["config_source"]
        .as_str()
        .expect("source")
        .ends_with("web.config"));
    let process = &now["processes"][0];
    assert_eq!(process["state"], "ready");
    assert_eq!(process["pid"], first);
    assert_eq!(process["port"], port);
    assert_eq!(process["restarts"], 0);
    assert!(process["started_at"]
        .as_str()
        .expect("started_at")
        .ends_with('Z'));
    assert!(process["rss_bytes"].as_u64().expect("rss") > 0);
    assert!(process["last_exit"].is_null());

    kill(
        Pid::from_raw(i32::try_from(first).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill -9");
    let (second, _) = ancm.wait_ready_after(first);
    let now = wait_status(&admin, "the restarted process", |s| {
        s["processes"][0]["pid"] == second && s["processes"][0]["state"] == "ready"
    });
    let process = &now["processes"][0];
    assert_eq!(process["restarts"], 1);
    assert_eq!(process["last_exit"]["pid"], first);
    assert_eq!(process["last_exit"]["signal"], 9);
    assert_eq!(process["last_exit"]["cause"], "signal");
    assert!(process["last_exit"]["code"].is_null());
    assert_eq!(now["restarts"], 1);

    let metrics = scrape(&admin);
    assert_eq!(metrics[r#"ancm_app_exits_total{cause="signal"}"#], 1.0);
    assert_eq!(metrics["ancm_app_starts_total"], 2.0);
    assert_eq!(metrics["ancm_app_restarts_total"], 1.0);
    assert!(!alive(first));
}

#[test]
fn readyz_says_503_until_a_process_is_ready_and_again_while_draining() {
    let app = AppDir::new("", &[]);
    // Lazy: no process until the first request.
    let (ancm, admin) = with_admin(&app, &["--lazy"]);
    assert_eq!(get(&format!("{admin}/healthz")), (200, "ok\n".to_owned()));
    let (code, body) = get(&format!("{admin}/readyz"));
    assert_eq!(code, 503);
    assert!(body.contains("no app process is ready"), "{body}");

    assert_eq!(ancm.get("/").status(), 200);
    assert_eq!(get(&format!("{admin}/readyz")).0, 200);

    // A stop with a request in flight: ancm drains it, and says it is not ready meanwhile.
    let url = format!("{}/sleep?ms=5000", ancm.url);
    let in_flight = std::thread::spawn(move || client().get(url).send().map(|r| r.status()));
    ancm.wait_stdout("the request to be in flight", |l| {
        l.contains("sampleapp sleeping")
    });
    ancm.signal(Signal::SIGTERM);
    let body = eventually_ok("readyz to turn 503", || {
        let (code, body) = get(&format!("{admin}/readyz"));
        if code == 503 {
            Ok(body)
        } else {
            Err(format!("readyz stayed {code}"))
        }
    });
    assert!(body.contains("draining"), "{body}");
    assert_eq!(status(&admin)["draining"], true);
    assert_eq!(in_flight.join().expect("thread").expect("answer"), 200);
}

#[test]
fn admin_listens_on_a_unix_socket_and_removes_it_at_the_stop() {
    use std::io::{Read, Write};
    let app = AppDir::new("", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("admin.sock");
    let mut ancm = Ancm::run(&[
        "--admin",
        socket.to_str().expect("utf-8"),
        app.path().to_str().expect("utf-8"),
    ]);
    ancm.wait_ready();
    ancm.wait_stderr("the admin line", |l| l.contains("admin endpoints on "));
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: ancm\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ready\n"), "{answer}");

    ancm.signal(Signal::SIGTERM);
    assert!(ancm.wait_exit().success());
    assert!(!socket.exists(), "the socket is removed at the stop");
}

/// `ancm run ARGS` started with umask 000, so that a mode it does not set is wide open.
fn with_umask_000(args: &[&str]) -> Ancm {
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(crate::support::ancm_bin())
        .env("ANCM_LOG", "info");
    Ancm::run_with(command, args)
}

/// The socket's permission bits and group once the admin listener is up.
fn socket_mode(ancm: &Ancm, socket: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    ancm.wait_stderr("the admin line", |l| l.contains("admin endpoints on "));
    let meta = std::fs::metadata(socket).expect("the socket");
    (meta.mode() & 0o777, meta.gid())
}

#[test]
fn the_admin_socket_is_owner_only_or_group_only_whatever_the_umask() {
    let app = AppDir::new("", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("admin.sock");
    let socket_arg = socket.to_str().expect("utf-8");
    let app_arg = app.path().to_str().expect("utf-8");
    let mut ancm = with_umask_000(&["--admin", socket_arg, app_arg]);
    assert_eq!(socket_mode(&ancm, &socket).0, 0o600);
    ancm.signal(Signal::SIGTERM);
    assert!(ancm.wait_exit().success());

    // A group of this user's own (its primary one) can always be given.
    let gid = nix::unistd::getegid().as_raw();
    let group = gid.to_string();
    let mut ancm = with_umask_000(&["--admin", socket_arg, "--admin-group", &group, app_arg]);
    assert_eq!(socket_mode(&ancm, &socket), (0o660, gid));
    ancm.signal(Signal::SIGTERM);
    assert!(ancm.wait_exit().success());

    let (code, stderr) = crate::support::run_expecting_failure(&[
        "--admin",
        socket_arg,
        "--admin-group",
        "no-such-group-here",
        app_arg,
    ]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("--admin-group no-such-group-here: no such group"),
        "{stderr}"
    );
}

#[test]
fn an_admin_token_guards_all_but_the_probes() {
    let app = AppDir::new("", &[]);
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("ANCM_ADMIN_TOKEN", "s3cret-token");
    let ancm = Ancm::run_with(
        command,
        &["--admin", "0.0.0.0:0", app.path().to_str().expect("utf-8")],
    );
    let line = ancm.wait_stderr("the admin line", |l| l.contains("admin endpoints on "));
    let port = line
        .split("http://0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("a port in {line}"));
    let admin = format!("http://127.0.0.1:{port}");
    ancm.wait_ready();
    // A token is set: no warning about the open address.
    assert_eq!(ancm.count_stderr(|l| l.contains("no --admin-token")), 0);

    assert_eq!(get(&format!("{admin}/healthz")).0, 200);
    assert_eq!(get(&format!("{admin}/readyz")).0, 200);
    for path in ["/status", "/metrics", "/nowhere"] {
        let response = client()
            .get(format!("{admin}{path}"))
            .send()
            .expect("admin request");
        assert_eq!(response.status(), 401, "{path}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .expect("text")
                .starts_with("Bearer"),
            "{path}"
        );
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-tokenX",
            "Basic s3cret-token",
        ] {
            let response = client()
                .get(format!("{admin}{path}"))
                .header("authorization", wrong)
                .send()
                .expect("admin request");
            assert_eq!(response.status(), 401, "{path} with {wrong}");
        }
    }
    let response = client()
        .get(format!("{admin}/status"))
        .header("authorization", "Bearer s3cret-token")
        .send()
        .expect("admin request");
    assert_eq!(response.status(), 200);
    let status: serde_json::Value = response.json().expect("status JSON");
    assert_eq!(status["pid"], ancm.pid());
}

#[test]
fn admin_on_an_address_others_reach_without_a_token_is_warned_about() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&["--admin", "0.0.0.0:0", app.path().to_str().expect("utf-8")]);
    let warning = ancm.wait_stderr("the warning", |l| l.contains("no --admin-token"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("--admin 0.0.0.0:0"), "{warning}");
    ancm.wait_ready();

    // Loopback is the operator's own: no warning.
    let (ancm, _) = with_admin(&app, &[]);
    ancm.wait_ready();
    assert_eq!(ancm.count_stderr(|l| l.contains("no --admin-token")), 0);
}

#[test]
fn status_and_metrics_are_rendered_at_most_once_a_second_for_a_flood() {
    let app = AppDir::new("", &[]);
    let (ancm, admin) = with_admin(&app, &[]);
    ancm.wait_ready();
    let requests = |metrics: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(r#"ancm_requests_total{protocol="HTTP/1.1",class="2xx"}"#))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no request count in {metrics}"))
    };
    // Back to back, a scrape is served the copy of the one before, although a request was
    // served between them. The copy is a second old at most: a round that took longer (a
    // very loaded machine) shows nothing and is tried again.
    let mut shown = None;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let (_, first) = get(&format!("{admin}/metrics"));
        let (_, first_status) = get(&format!("{admin}/status"));
        assert_eq!(ancm.get("/").status(), 200);
        let (_, second) = get(&format!("{admin}/metrics"));
        let (_, second_status) = get(&format!("{admin}/status"));
        if started.elapsed() < std::time::Duration::from_millis(900) {
            assert_eq!(requests(&first), requests(&second));
            assert_eq!(first, second);
            assert_eq!(first_status, second_status);
            shown = Some(requests(&first));
            break;
        }
    }
    let before = shown.expect("no round was quick enough to show the copy");
    // And it is only a copy for a while: the request since shows up.
    eventually("the metrics to move on", || {
        requests(&get(&format!("{admin}/metrics")).1) != before
    });
}

#[test]
fn admin_is_off_unless_asked_and_a_bad_address_is_refused() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    assert_eq!(ancm.count_stderr(|l| l.contains("admin endpoints on ")), 0);

    let (code, stderr) = crate::support::run_expecting_failure(&[
        "--admin",
        "example.com:80",
        app.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--admin") && stderr.contains("example.com:80"),
        "{stderr}"
    );
}

/// `ancm run APP` registered in `runtime` (as $XDG_RUNTIME_DIR).
fn registered(runtime: &std::path::Path, app: &AppDir, extra: &[&str]) -> Ancm {
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("XDG_RUNTIME_DIR", runtime);
    Ancm::run_app_with(command, app, extra)
}

/// `ancm ARGS` with `runtime` as $XDG_RUNTIME_DIR: its exit code and stdout.
fn ancm_cli(runtime: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(crate::support::ancm_bin())
        .env("XDG_RUNTIME_DIR", runtime)
        .args(args)
        .output()
        .expect("run ancm");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn ls_lists_the_running_instances_and_forgets_stopped_and_killed_ones() {
    use std::os::unix::fs::PermissionsExt as _;
    let runtime = tempfile::tempdir().expect("runtime folder");
    let (app_a, app_b) = (AppDir::new("", &[]), AppDir::new("", &[]));
    let mut a = registered(runtime.path(), &app_a, &["--admin", "127.0.0.1:0"]);
    let b = registered(runtime.path(), &app_b, &[]);
    let (app_pid_a, _) = a.wait_ready();
    let (app_pid_b, _) = b.wait_ready();

    let sockets = runtime.path().join("ancm");
    let socket_b = sockets.join(format!("{}.sock", b.pid()));
    let mode = std::fs::metadata(&socket_b)
        .expect("b's socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only control socket");
    let folder_mode = std::fs::metadata(&sockets)
        .expect("folder")
        .permissions()
        .mode();
    assert_eq!(folder_mode & 0o777, 0o700);

    let (code, table, stderr) = ancm_cli(runtime.path(), &["ls"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("PID") && lines[0].contains("ADMIN"),
        "{table}"
    );
    for (ancm, app, app_pid) in [(&a, &app_a, app_pid_a), (&b, &app_b, app_pid_b)] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{} ", ancm.pid())))
            .unwrap_or_else(|| panic!("no line for {}: {table}", ancm.pid()));
        assert!(line.contains(app.path().to_str().expect("utf-8")), "{line}");
        assert!(line.contains(&format!("{}/", ancm.url)), "{line}");
        assert!(line.contains(&format!("  {app_pid}  ")), "{line}");
        assert!(line.contains("  ready  "), "{line}");
    }
    let line_a = lines
        .iter()
        .find(|l| l.starts_with(&format!("{} ", a.pid())))
        .expect("a");
    assert!(
        line_a.trim_end().ends_with(char::is_numeric),
        "a's admin address: {line_a}"
    );
    let line_b = lines
        .iter()
        .find(|l| l.starts_with(&format!("{} ", b.pid())))
        .expect("b");
    assert!(
        line_b.trim_end().ends_with('-'),
        "b has no admin listener: {line_b}"
    );

    // A stopped instance removes its entry; a killed one's is pruned by the next look.
    a.signal(Signal::SIGTERM);
    assert!(a.wait_exit().success());
    assert!(!sockets.join(format!("{}.sock", a.pid())).exists());
    b.signal(Signal::SIGKILL);
    eventually("ancm b to die", || !alive(b.pid()));
    assert!(socket_b.exists(), "a killed ancm leaves its socket");
    let (code, table, _) = ancm_cli(runtime.path(), &["ls"]);
    assert_eq!(code, Some(0));
    assert_eq!(table, "no ancm is running\n");
    assert!(!socket_b.exists(), "the stale entry is pruned");
}

#[test]
fn status_shows_one_instance_by_pid_app_pid_or_folder() {
    let runtime = tempfile::tempdir().expect("runtime folder");
    let app = AppDir::new("", &[]);
    let ancm = registered(runtime.path(), &app, &[]);
    let (app_pid, port) = ancm.wait_ready();
    let folder = app.path().to_str().expect("utf-8");

    let (code, json, stderr) = ancm_cli(runtime.path(), &["status", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["pid"], ancm.pid());
    assert_eq!(json["processes"][0]["pid"], app_pid);
    assert_eq!(json["processes"][0]["port"], port);

    for target in [
        ancm.pid().to_string(),
        app_pid.to_string(),
        folder.to_owned(),
    ] {
        let (code, text, stderr) = ancm_cli(runtime.path(), &["status", &target]);
        assert_eq!(code, Some(0), "{target}: {stderr}");
        assert!(text.starts_with(&format!("ancm {} ", ancm.pid())), "{text}");
        assert!(text.contains(&format!("app folder    {folder}")), "{text}");
        assert!(
            text.contains(&format!("process 0: ready, pid {app_pid}, port {port}")),
            "{text}"
        );
    }
    let (code, _, stderr) = ancm_cli(runtime.path(), &["status", "999999999"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no running ancm serves 999999999"),
        "{stderr}"
    );
}

#[test]
fn logs_prints_the_last_lines_and_follows_across_a_kill_9() {
    use std::io::BufRead as _;
    let runtime = tempfile::tempdir().expect("runtime folder");
    let app = AppDir::new("", &[]);
    let ancm = registered(runtime.path(), &app, &[]);
    let (first, _) = ancm.wait_ready();
    ancm.wait_stdout("the app's listening line", |l| {
        l.contains("sampleapp listening on")
    });

    let (code, last, stderr) = ancm_cli(runtime.path(), &["logs", "-n", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        last.starts_with(&format!("[app {first}] sampleapp listening on")),
        "{last}"
    );
    assert_eq!(last.lines().count(), 1, "{last}");

    let mut follower = std::process::Command::new(crate::support::ancm_bin())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["logs", "-f", "-n", "2", &ancm.pid().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ancm logs -f");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(DEADLINE).expect("a line from ancm logs -f");
    assert!(next().starts_with(&format!("[app {first}] sampleapp starting")));
    assert!(next().starts_with(&format!("[app {first}] sampleapp listening on")));

    assert_eq!(ancm.get("/print?n=1").status(), 200);
    assert_eq!(next(), format!("[app {first}] print 1 of 1"));
    kill(
        Pid::from_raw(i32::try_from(first).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill -9");
    let (second, _) = ancm.wait_ready_after(first);
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with(&format!("[app {second}] sampleapp listening on")))
    {
        assert!(std::time::Instant::now() < deadline, "followed: {seen:#?}");
        seen.push(next());
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("[app {second}] sampleapp starting"))),
        "{seen:#?}"
    );

    // It ends with the instance.
    drop(ancm);
    let status = eventually_some("ancm logs -f to end with ancm", || {
        follower.try_wait().expect("wait")
    });
    assert!(status.success());
}

/// A stop with a shutdown delay: /readyz turns 503 at once while ancm goes on serving, new
/// connections included, for the delay; then it drains and stops.
#[test]
fn a_shutdown_delay_keeps_serving_while_readyz_says_503() {
    let app = AppDir::new("", &[]);
    let (mut ancm, admin) = with_admin(&app, &["--shutdown-delay", "8s"]);
    ancm.wait_ready();
    ancm.signal(Signal::SIGTERM);
    eventually("readyz to turn 503", || {
        get(&format!("{admin}/readyz")).0 == 503
    });
    ancm.wait_stderr("the delay", |l| l.contains("(the shutdown delay)"));
    // A client that has not heard yet still gets its answer, on a new connection.
    assert_eq!(
        client()
            .get(format!("{}/pid", ancm.url))
            .send()
            .expect("answer")
            .status(),
        200
    );
    assert_eq!(
        ancm.count_stderr(|l| l.contains("stopped")),
        0,
        "{:?}",
        ancm.stderr()
    );
    assert!(ancm.wait_exit().success());
    ancm.wait_stderr("the stop", |l| l.ends_with("stopped"));
}

/// `ancm logs` keeps the last lines within `--logs-keep` bytes of text (1 MiB by default);
/// a size outside 1 KiB..1 GiB is a configuration error naming the flag.
#[test]
fn logs_keeps_the_last_lines_within_logs_keep_bytes() {
    let runtime = tempfile::tempdir().expect("runtime folder");
    let app = AppDir::new("", &[("SAMPLEAPP_PRINT_AT_START", "1000")]);
    let ancm = registered(runtime.path(), &app, &["--logs-keep", "4K"]);
    ancm.wait_ready();
    ancm.wait_stdout("the app's listening line", |l| {
        l.contains("sampleapp listening on")
    });
    let (code, shown, stderr) = ancm_cli(runtime.path(), &["logs", "-n", "1000"]);
    assert_eq!(code, Some(0), "{stderr}");
    let texts: Vec<&str> = shown
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, text)| text))
        .collect();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    assert!(
        bytes <= 4096 && bytes > 3500,
        "{bytes} bytes in {} lines",
        texts.len()
    );
    assert!(texts.len() < 1000, "{}", texts.len());
    assert!(texts.contains(&"line 1000 of 1000"), "{shown}");

    let (code, stderr) = crate::support::run_expecting_failure(&[
        "--logs-keep",
        "2G",
        app.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--logs-keep") && stderr.contains("2G"),
        "{stderr}"
    );
}
