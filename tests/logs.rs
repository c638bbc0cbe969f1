use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::support::apps::{noisy_app, noisy_lines};
use crate::support::{
    ancm_bin, client, eventually, eventually_ok, eventually_some, is_ready_line, wait_file, Ancm,
    AppDir, DEADLINE,
};

/// The lines after the first one that `starts` matches, as many as `expected` has.
fn lines_after(
    lines: &[String],
    starts: impl Fn(&str) -> bool,
    expected: &[String],
) -> Vec<String> {
    let at = lines
        .iter()
        .position(|l| starts(l))
        .unwrap_or_else(|| panic!("no heading in:\n{}", lines.join("\n")));
    lines[at + 1..]
        .iter()
        .take(expected.len())
        .cloned()
        .collect()
}

/// The stdout log files in `dir` whose names start with `prefix_`.
fn log_files(dir: &std::path::Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{prefix}_")))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn stdout_log_name_and_content() {
    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[("SAMPLEAPP_PRINT_AT_START", "20000")],
    );
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    assert_eq!(ancm.get("/print?n=3&stream=stderr").status(), 200);
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    let after = time::OffsetDateTime::now_utc().unix_timestamp();

    // <prefix>_<yyyyMMddHHmmss>_<pid>.log, UTC, the pid being ancm's (spec §3.8); the logs
    // folder did not exist and was created.
    let files = log_files(&app.path().join("logs"), "stdout");
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let middle = name
        .strip_prefix("stdout_")
        .and_then(|n| n.strip_suffix(&format!("_{}.log", ancm.pid())))
        .unwrap_or_else(|| panic!("unexpected name {name}"));
    assert_eq!(middle.len(), 14, "{name}");
    let stamp = time::PrimitiveDateTime::parse(
        middle,
        time::macros::format_description!("[year][month][day][hour][minute][second]"),
    )
    .expect("timestamp")
    .assume_utc()
    .unix_timestamp();
    assert!(
        (before - 1..=after).contains(&stamp),
        "{name} is not UTC now"
    );

    let text = std::fs::read_to_string(&files[0]).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    for i in 1..=20000 {
        assert!(
            lines.contains(&format!("line {i} of 20000").as_str()),
            "line {i} missing"
        );
    }
    assert!(
        lines.contains(&"print 3 of 3"),
        "stderr goes to the same file"
    );
    assert!(lines.contains(&"sampleapp shutdown message received"));

    // The console has the same lines, marked as the app's.
    let app_lines = ancm
        .stdout()
        .iter()
        .filter(|l| l.starts_with("[app ") && l.contains("] line "))
        .count();
    assert_eq!(app_lines, 20000);
    // The app's stderr shares its stdout's pipe, so the console shows it in the same place.
    assert!(ancm
        .stdout()
        .iter()
        .any(|l| l.starts_with("[app ") && l.ends_with("] print 3 of 3")));
}

#[test]
fn no_line_is_lost_when_the_app_writes_fast_and_exits_at_once() {
    let app = AppDir::new(
        r#"rapidFailsPerMinute="0""#,
        &[
            ("SAMPLEAPP_PRINT_AT_START", "200000"),
            ("SAMPLEAPP_EXIT_AT_START", "1"),
        ],
    );
    let ancm = Ancm::run_app(&app, &["--stdout-log", "out/app"]);
    // The failure is reported once the app's output is fully written out.
    ancm.wait_stderr("the rapid-fail pause", |l| {
        l.contains("not starting it again")
    });
    let files = log_files(&app.path().join("out"), "app");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).expect("log");
    let count = text.lines().filter(|l| l.starts_with("line ")).count();
    assert_eq!(count, 200_000);
    assert!(text.contains("line 200000 of 200000\n"));

    // The 502 page is in Production here, so it shows no output, but ancm's log has the tail.
    assert!(ancm
        .stderr()
        .iter()
        .any(|l| l.contains("line 200000 of 200000")));
}

#[test]
fn interleaved_coloured_output_shows_in_order_once_and_plain() {
    let app = noisy_app(
        r#"rapidFailsPerMinute="0""#,
        &[("ASPNETCORE_DETAILEDERRORS", "true")],
    );
    let ancm = Ancm::run_app(&app, &["--stdout-log", "out/app"]);
    ancm.wait_stderr("the rapid-fail pause", |l| {
        l.contains("not starting it again")
    });
    let expected = noisy_lines();

    // The stdout log: every line once, in the order written, plain.
    let files = log_files(&app.path().join("out"), "app");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).expect("a UTF-8 log");
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text:?}");

    // The console: the same lines, each marked as the app's (not a terminal: plain too).
    let console: Vec<String> = ancm
        .stdout()
        .iter()
        .filter_map(|l| l.split_once("] ").map(|(_, text)| text.to_owned()))
        .collect();
    assert_eq!(console, expected);

    // ancm's summary of the crash: the same lines, and the last one is the app's alone.
    let stderr = ancm.stderr();
    let summary = lines_after(&stderr, |l| l.contains("its last output:"), &expected);
    assert_eq!(summary, expected, "{}", stderr.join("\n"));
    assert!(!stderr
        .iter()
        .any(|l| l.contains('\u{1b}') || l.contains("\\x1b")));

    // The 502.5 page, detailed: the same lines.
    let page = ancm.get("/");
    assert_eq!(page.status(), 502);
    let body = page.text().expect("page");
    let pre = body
        .split_once("<pre>")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(pre, _)| pre)
        .unwrap_or_else(|| panic!("no output on the page: {body}"));
    assert_eq!(pre.lines().collect::<Vec<_>>(), expected, "{body}");
}

/// ancm's own stdout and stderr are pipes nobody reads (a stalled `| tee`, a blocking log
/// driver): the app still prints, clients still get answers (and log lines), SIGTERM still
/// stops ancm, and the stdout log file still has every line.
#[test]
fn a_console_nobody_reads_holds_up_neither_the_app_nor_the_proxy() {
    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let mut ancm = KillOnDrop(
        Command::new(ancm_bin())
            .args(["run", "--listen", "127.0.0.1:0", "--max-request-body", "10"])
            .arg(app.path())
            .env("ANCM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ancm"),
    );
    let ancm = &mut ancm.0;
    // Read stderr up to the ready line, for the address; then nobody reads either pipe.
    let _stdout = ancm.stdout.take().expect("stdout");
    let stderr = ancm.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stderr = std::io::BufReader::new(stderr);
        let mut url = None;
        let mut line = String::new();
        while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
            if let Some(at) = line.find("ancm listening on http") {
                let rest = &line[at + "ancm listening on ".len()..];
                url = rest
                    .split([' ', ';', '\n'])
                    .next()
                    .map(|u| u.trim_end_matches('/').to_owned());
            }
            if is_ready_line(&line) {
                let _ = tx.send(url.take());
                break;
            }
            line.clear();
        }
        stderr
    });
    let url = rx
        .recv_timeout(DEADLINE)
        .expect("the app to be ready")
        .expect("the listening line");
    let _stderr = reader.join().expect("reader");

    let client = client();
    // Far more than the pipe (64 KiB) and ancm's queue for the console hold.
    let printed = client
        .get(format!("{url}/print?n=20000"))
        .send()
        .expect("the app prints without waiting for the console");
    assert_eq!(printed.status(), 200);
    // Each refused body is an info line on ancm's stderr.
    for _ in 0..1500 {
        let refused = client
            .post(format!("{url}/upload"))
            .body(vec![b'x'; 100])
            .send()
            .expect("the proxy answers without waiting for the console");
        assert_eq!(refused.status(), 413);
    }
    assert_eq!(
        client
            .get(format!("{url}/print?n=3"))
            .send()
            .expect("answered")
            .status(),
        200
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(ancm.id()).expect("pid"));
    nix::sys::signal::kill(pid, Signal::SIGTERM).expect("signal ancm");
    let status = eventually_some("ancm to stop on SIGTERM", || {
        ancm.try_wait().expect("wait for ancm")
    });
    assert_eq!(status.code(), Some(0));

    let files = log_files(&app.path().join("logs"), "stdout");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).expect("log");
    let printed: Vec<&str> = text.lines().filter(|l| l.starts_with("print ")).collect();
    let expected: Vec<String> = (1..=20000)
        .map(|i| format!("print {i} of 20000"))
        .chain((1..=3).map(|i| format!("print {i} of 3")))
        .collect();
    assert_eq!(printed, expected);
}

/// A child that a failing test does not leave running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints batches of numbered lines through the app until the stdout log has `files` files.
fn print_until_files(ancm: &Ancm, dir: &std::path::Path, files: usize) -> u64 {
    let mut batches = 0;
    eventually_ok("the stdout log's files", || {
        let now = log_files(dir, "stdout");
        if now.len() >= files {
            return Ok(());
        }
        assert_eq!(ancm.get("/print?n=40").status(), 200);
        batches += 1;
        Err(format!("only {now:?}"))
    });
    batches
}

#[test]
fn stdout_log_rotates_past_its_size_and_loses_no_line() {
    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let mut ancm = Ancm::run(&[
        "--stdout-log-max-size",
        "1K",
        app.path().to_str().expect("utf-8"),
    ]);
    ancm.wait_ready();
    let dir = app.path().join("logs");
    let batches = print_until_files(&ancm, &dir, 3);
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));

    let files = log_files(&dir, "stdout");
    let mut all = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("log");
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.ends_with(&format!("_{}.log", ancm.pid())), "{name}");
        all.extend(text.lines().map(str::to_owned));
    }
    // Each file but the last passed 1 KiB before the next began (in a later second, as the
    // names count seconds); between them, every line.
    for file in &files[..files.len() - 1] {
        let size = std::fs::metadata(file).expect("size").len();
        assert!(size >= 1024, "{} is {size} bytes", file.display());
    }
    let printed: Vec<&String> = all.iter().filter(|l| l.starts_with("print ")).collect();
    assert_eq!(printed.len() as u64, batches * 40, "{all:#?}");
    for (i, line) in printed.iter().enumerate() {
        assert_eq!(**line, format!("print {} of 40", i % 40 + 1));
    }
}

#[test]
fn stdout_log_keeps_the_newest_files() {
    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let dir = app.path().join("logs");
    std::fs::create_dir_all(&dir).expect("logs folder");
    // Older runs' files, and a file of another name that is not the stdout log's.
    let old = dir.join("stdout_20200101000000_1.log");
    std::fs::write(&old, "old\n").expect("old log");
    std::fs::write(dir.join("stdout_20210101000000_1.log"), "newer\n").expect("newer log");
    std::fs::write(dir.join("stdout_notes.txt"), "keep me").expect("other file");
    let ancm = Ancm::run(&[
        "--stdout-log-max-size",
        "1K",
        "--stdout-log-keep",
        "2",
        app.path().to_str().expect("utf-8"),
    ]);
    ancm.wait_ready();
    // With the new file there are three: the oldest goes.
    eventually("the oldest file, beyond the two kept, to go", || {
        !old.exists()
    });
    // Rotations go on; there are never more than two files, the newest ones.
    let mut seen = std::collections::BTreeSet::new();
    eventually_ok("four rotations", || {
        if seen.len() >= 4 {
            return Ok(());
        }
        assert_eq!(ancm.get("/print?n=40").status(), 200);
        let files = log_files(&dir, "stdout");
        let logs: Vec<&PathBuf> = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "log"))
            .collect();
        assert!(logs.len() <= 2, "{logs:?}");
        seen.extend(logs.into_iter().cloned());
        Err(format!("rotated into {seen:?}"))
    });
    let left: Vec<PathBuf> = log_files(&dir, "stdout")
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "log"))
        .collect();
    let newest: Vec<PathBuf> = seen.iter().rev().take(left.len()).rev().cloned().collect();
    assert_eq!(left, newest);
    assert!(dir.join("stdout_notes.txt").exists());
}

#[test]
fn stdout_log_size_is_checked() {
    let app = AppDir::new("", &[]);
    let (code, stderr) = crate::support::run_expecting_failure(&[
        "--stdout-log",
        "out",
        "--stdout-log-max-size",
        "10X",
        app.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--stdout-log-max-size")
            && stderr.contains("\"10X\"")
            && stderr.contains("512K"),
        "{stderr}"
    );
}

/// logrotate's way (nginx's convention): rename the logs, then SIGUSR1. The stdout log, the
/// access log and the diagnostic log (debugFile) go on in new files at their paths, with no line lost or doubled across the
/// reopen while a client keeps the app printing numbered batches; SIGHUP reopens them too.
#[test]
fn sigusr1_and_sighup_reopen_the_logs_that_logrotate_renamed_and_no_line_is_lost() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let web_config = app.path().join("web.config");
    let text = std::fs::read_to_string(&web_config)
        .expect("web.config")
        .replace(
            "</environmentVariables>",
            r#"</environmentVariables>
        <handlerSettings>
          <handlerSetting name="debugFile" value=".\logs\debug.log" />
          <handlerSetting name="debugLevel" value="FILE,INFO" />
        </handlerSettings>"#,
        );
    std::fs::write(&web_config, text).expect("web.config");
    let dir = app.path().join("logs");
    let (access, debug) = (dir.join("access.log"), dir.join("debug.log"));
    let mut ancm = Ancm::run_app(&app, &["--access-log", access.to_str().expect("utf-8")]);
    ancm.wait_ready();
    let stdout_log = log_files(&dir, "stdout").pop().expect("the stdout log");

    // Batch k prints k numbered lines, until told to stop.
    let (stop, batches) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let printer = std::thread::spawn({
        let (stop, batches, url) = (stop.clone(), batches.clone(), ancm.url.clone());
        move || {
            let client = client();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let status = client
                    .get(format!("{url}/print?n={k}"))
                    .send()
                    .map(|r| r.status().as_u16());
                assert_eq!(status.ok(), Some(200), "batch {k}");
                batches.store(k, Ordering::Relaxed);
            }
            k
        }
    });
    eventually("the printer to print", || {
        batches.load(Ordering::Relaxed) >= 10
    });
    let rotated = |path: &std::path::Path, n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    std::fs::rename(&stdout_log, rotated(&stdout_log, 1)).expect("rotate the stdout log");
    std::fs::rename(&access, rotated(&access, 1)).expect("rotate the access log");
    std::fs::rename(&debug, rotated(&debug, 1)).expect("rotate the diagnostic log");
    ancm.signal(Signal::SIGUSR1);
    wait_file(
        &debug,
        "the diagnostic log's first line after the reopen",
        |t| t.contains("SIGUSR1 received: reopening the log files"),
    );
    // Both start again at their paths, and take lines there while the printer goes on.
    wait_file(&stdout_log, "lines in the new stdout log", |t| {
        t.contains("print ")
    });
    let text = wait_file(&access, "requests in the new access log", |t| {
        t.contains(" /print ")
    });
    assert!(
        text.starts_with("#Software: ancm "),
        "a header again: {text}"
    );
    stop.store(true, Ordering::Relaxed);
    let last = printer.join().expect("printer");

    // SIGHUP (which also recycles the app) reopens them as well.
    std::fs::rename(&access, rotated(&access, 2)).expect("rotate the access log again");
    ancm.signal(Signal::SIGHUP);
    wait_file(&access, "the access log after SIGHUP", |t| {
        t.starts_with("#Software")
    });

    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert_eq!(
        ancm.count_stderr(|l| l.contains("SIGUSR1 received: reopening the log files")),
        1
    );

    // Every batch whole, once, in order, across the two stdout log files.
    let read = |path: &std::path::Path| std::fs::read_to_string(path).expect("a log");
    let stdout_text = read(&rotated(&stdout_log, 1)) + &read(&stdout_log);
    let printed: Vec<&str> = stdout_text
        .lines()
        .filter(|l| l.starts_with("print "))
        .collect();
    let expected: Vec<String> = (1..=last)
        .flat_map(|k| (1..=k).map(move |i| format!("print {i} of {k}")))
        .collect();
    assert_eq!(printed, expected);
    // Every request once, in order, across the three access log files.
    let access_text = read(&rotated(&access, 1)) + &read(&rotated(&access, 2)) + &read(&access);
    let requests: Vec<&str> = access_text
        .lines()
        .filter(|l| l.contains(" /print "))
        .map(|l| l.split(' ').nth(5).expect("the query"))
        .collect();
    let expected: Vec<String> = (1..=last).map(|k| format!("n={k}")).collect();
    assert_eq!(requests, expected);
}

/// SIGUSR2 and the other signals ancm has no use for neither stop it nor its app (they ended
/// ancm at once, and its guard killed the app); SIGQUIT stops it gracefully, as nginx.
#[test]
fn signals_ancm_has_no_use_for_stop_nothing_and_sigquit_stops_gracefully() {
    let app = AppDir::new("", &[]);
    let mut ancm = Ancm::run_app(&app, &[]);
    let (pid, _) = ancm.wait_ready();
    for signal in [
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGUSR1,
        Signal::SIGPWR,
    ] {
        ancm.signal(signal);
    }
    ancm.wait_stderr("SIGPWR ignored", |l| l.contains("SIGPWR received: ignored"));
    // A real-time signal, by number: nix has no name for it.
    let rt = nix::libc::SIGRTMIN() + 2;
    let status = Command::new("kill")
        .args([format!("-{rt}"), ancm.pid().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success());
    ancm.wait_stderr("SIGRTMIN+2 ignored", |l| {
        l.contains("SIGRTMIN+2 received: ignored")
    });
    assert!(ancm
        .stderr()
        .iter()
        .any(|l| l.contains("SIGUSR2 received: ignored")));
    assert_eq!(
        ancm.get("/pid").text().expect("pid"),
        pid.to_string(),
        "the same app process serves"
    );
    ancm.signal(Signal::SIGQUIT);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert!(ancm
        .stderr()
        .iter()
        .any(|l| l.contains("SIGQUIT received: stopping gracefully")));
}

/// What tests/apps/forger.py prints, as every reader but a terminal must get it: no escape
/// sequence, no carriage return to overwrite a line with, and its 100,000-byte line cut at
/// 16 KiB with a note.
fn forger_lines() -> Vec<String> {
    let long = format!("long {}", "y".repeat(16 * 1024 - 5));
    vec![
        "green kept".into(),
        "clipboard write".into(),
        "title set".into(),
        "cursor moves".into(),
        "GET /login user=alice ok[ancm] forged line".into(),
        format!(
            "{long} [ancm: line cut, {} bytes dropped]",
            100_009 - 16 * 1024
        ),
        "last line".into(),
    ]
}

fn forger_app() -> AppDir {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/forger.py");
    AppDir::new(
        &format!(r#"processPath="python3" arguments="{script}" rapidFailsPerMinute="0""#),
        &[],
    )
}

/// An app's output cannot forge or hide lines, nor reach the terminal with anything but
/// colours, wherever it is read: the stdout log, ancm's console (a pipe here), and `ancm logs`.
/// A line of 100,000 bytes is cut at 16 KiB with a note, once, not split into lines.
#[test]
fn app_output_cannot_forge_lines_or_drive_a_terminal_and_long_lines_are_cut_once() {
    let app = forger_app();
    let runtime = tempfile::tempdir().expect("runtime folder");
    let mut command = Command::new(ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("XDG_RUNTIME_DIR", runtime.path());
    let ancm = Ancm::run_with(
        command,
        &[
            app.path().to_str().expect("utf-8"),
            "--stdout-log",
            "out/app",
        ],
    );
    ancm.wait_stderr("the rapid-fail pause", |l| {
        l.contains("not starting it again")
    });
    let expected = forger_lines();

    let files = log_files(&app.path().join("out"), "app");
    let text = std::fs::read_to_string(&files[0]).expect("a UTF-8 log");
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);

    let app_text = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split_once("] ").map(|(_, text)| text.to_owned()))
            .collect()
    };
    assert_eq!(app_text(&ancm.stdout()), expected);

    let output = Command::new(ancm_bin())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["logs", "-n", "100"])
        .output()
        .expect("ancm logs");
    assert_eq!(output.status.code(), Some(0));
    let shown = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(!shown.contains(['\r', '\u{1b}']), "{shown:?}");
    let shown: Vec<String> = shown.lines().map(str::to_owned).collect();
    assert_eq!(app_text(&shown), expected);
}

/// On a terminal, the app's colours show; its clipboard write, title, cursor moves and
/// carriage return do not reach the terminal.
#[test]
fn a_terminal_gets_the_app_s_colours_and_nothing_else() {
    let app = forger_app();
    let ancm_command = format!(
        "{} run --listen 127.0.0.1:0 {}",
        ancm_bin().display(),
        app.path().display()
    );
    // `script` runs ancm on a pseudo-terminal and copies what it draws to a file.
    let screen_file = app.path().join("screen");
    let mut script = match Command::new("script")
        .args(["-qfec", &ancm_command])
        .arg(&screen_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("NOT RUN: needs script(1) from util-linux: {err}");
            return;
        }
    };
    let screen = eventually_ok("the rapid-fail pause", || {
        let screen = std::fs::read(&screen_file).unwrap_or_default();
        let screen = String::from_utf8_lossy(&screen).into_owned();
        if screen.contains("not starting it again") {
            Ok(screen)
        } else {
            Err(format!("\n{screen:?}"))
        }
    });
    for pid in crate::support::descendants(script.id()) {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), Signal::SIGTERM);
        }
    }
    let _ = script.wait();
    assert!(
        screen.contains("\u{1b}[32mgreen\u{1b}[0m kept"),
        "{screen:?}"
    );
    for line in [
        "clipboard write",
        "title set",
        "cursor moves",
        "GET /login user=alice ok[ancm] forged line",
    ] {
        assert!(screen.contains(line), "{line:?} in {screen:?}");
    }
    assert!(!screen.contains("\u{1b}]"), "{screen:?}");
}
