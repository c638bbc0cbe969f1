use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::support::{Ancm, AppDir};

/// What tests/apps/noisy.py writes, as plain text, in the order it writes it to its stdout and
/// stderr.
pub(crate) fn noisy_lines() -> Vec<String> {
    let mut lines: Vec<String> = (1..=5)
        .flat_map(|i| [format!("out {i}"), format!("err {i}")])
        .collect();
    lines.push("info: Microsoft.Hosting.Lifetime[0]".into());
    lines.push("not utf-8: \u{fffd}\u{fffd} end".into());
    lines.push("fatal: the last line".into());
    lines
}

/// An app folder running tests/apps/noisy.py with `attributes` and `env`.
pub(crate) fn noisy_app(attributes: &str, env: &[(&str, &str)]) -> AppDir {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/noisy.py");
    AppDir::new(
        &format!(r#"processPath="python3" arguments="{script}" {attributes}"#),
        env,
    )
}

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
    let mut ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
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
    let ancm = Ancm::run(&[
        app.path().to_str().expect("utf-8"),
        "--stdout-log",
        "out/app",
    ]);
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
    let ancm = Ancm::run(&[
        app.path().to_str().expect("utf-8"),
        "--stdout-log",
        "out/app",
    ]);
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
