use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{ancm_bin, descendants, eventually, wait_all_gone, AppDir};

fn smoke(dir: &AppDir, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(ancm_bin())
        .arg("smoke")
        .arg(dir.path())
        .args(args)
        .output()
        .expect("run ancm smoke");
    (output, started.elapsed())
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn passing_checks_exit_0() {
    let dir = AppDir::new("", &[]);
    let (output, _) = smoke(&dir, &["--path", "/", "--path", "pid"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("ok     GET / -> 200"), "{out}");
    assert!(out.contains("ok     GET /pid -> 200"), "{out}");
    assert!(out.contains("smoke: 2 passed, 0 failed"), "{out}");
}

#[test]
fn a_failing_check_exits_1() {
    let dir = AppDir::new("", &[]);
    let (output, _) = smoke(&dir, &["--path", "/", "--path", "/missing"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL   GET /missing -> 404"), "{out}");
    assert!(out.contains("smoke: 1 passed, 1 failed"), "{out}");

    let (output, _) = smoke(&dir, &["--path", "/missing", "--expect", "404"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn an_app_that_fails_to_start_exits_1_with_its_output() {
    let dir = AppDir::new(
        "",
        &[
            ("SAMPLEAPP_EXIT_AT_START", "3"),
            ("SAMPLEAPP_STDERR_AT_START", "fatal: no database"),
        ],
    );
    let (output, elapsed) = smoke(&dir, &["--timeout", "20"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the app did not start: the app exited with code 3"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("the app's last output:") && err.contains("fatal: no database"),
        "{err}"
    );
    assert!(
        elapsed < Duration::from_secs(15),
        "a crashing app fails at once: {elapsed:?}"
    );
}

#[test]
fn a_hung_app_fails_within_the_timeout_and_leaves_nothing() {
    let dir = AppDir::new(
        r#"shutdownTimeLimit="30""#,
        &[
            ("SAMPLEAPP_NEVER_LISTEN", "1"),
            ("SAMPLEAPP_IGNORE_SHUTDOWN", "1"),
            ("SAMPLEAPP_SPAWN_CHILD", "1"),
            ("SAMPLEAPP_PRINT_AT_START", "1"),
        ],
    );
    let child = Command::new(ancm_bin())
        .arg("smoke")
        .arg(dir.path())
        .args(["--timeout", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ancm smoke");
    // The app and its child, while smoke waits for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tree = Vec::new();
    while Instant::now() < deadline && tree.len() < 3 {
        tree = descendants(child.id());
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let output = child.wait_with_output().expect("wait");
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("did not start within --timeout (2 s)"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1 of 1"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no waiting out shutdownTimeLimit"
    );
    wait_all_gone(&tree);
}

#[test]
fn usage_and_config_errors_exit_2() {
    let dir = AppDir::with_web_config(
        "<configuration><system.webServer><aspNetCore /></system.webServer></configuration>",
    );
    let (output, _) = smoke(&dir, &[]);
    assert_eq!(output.status.code(), Some(2));
    let dir = AppDir::new("", &[]);
    let (output, _) = smoke(&dir, &["--expect", "99"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_failed_start_shows_the_apps_output_in_order_once_and_plain() {
    let dir = crate::support::apps::noisy_app("", &[]);
    let (output, _) = smoke(&dir, &["--timeout", "20"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let err = String::from_utf8(output.stderr).expect("plain UTF-8");
    let (_, block) = err
        .split_once("the app's last output:\n")
        .unwrap_or_else(|| panic!("{err}"));
    let expected = crate::support::apps::noisy_lines();
    let shown: Vec<&str> = block.lines().take(expected.len()).collect();
    assert_eq!(shown, expected, "{err}");
}

#[test]
fn a_reader_that_goes_away_does_not_cut_the_run_short() {
    let dir = AppDir::new("", &[]);
    let mut child = Command::new(ancm_bin())
        .arg("smoke")
        .arg(dir.path())
        .args(["--path", "/", "--path", "/pid"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ancm smoke");
    // `ancm smoke ... | head -0`: the reader is gone before the first line.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(output.status.code(), Some(0), "the checks passed: {err}");
    assert!(
        err.contains("the app stopped: it exited with code 0"),
        "the app was stopped gracefully: {err}"
    );
}

/// SIGUSR1 and SIGUSR2 while smoke waits for the app neither end the run nor fail it: they used
/// to end ancm at once, and its guard killed the app.
#[test]
fn sigusr1_and_sigusr2_do_not_cut_the_run_short() {
    let dir = AppDir::new("", &[("SAMPLEAPP_START_DELAY_MS", "1500")]);
    let child = Command::new(ancm_bin())
        .arg("smoke")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ancm smoke");
    // The guard and the app, while smoke waits for the app.
    eventually("an app to start", || descendants(child.id()).len() >= 2);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    for signal in [
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGUSR2,
    ] {
        nix::sys::signal::kill(pid, signal).expect("signal ancm smoke");
    }
    let output = child.wait_with_output().expect("wait");
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("smoke: 1 passed, 0 failed"), "{out}");
}
