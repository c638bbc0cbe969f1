use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{alive, client, descendants, wait_all_gone, Ancm, AppDir};

/// ancm running an app that has a child of its own; returns every process below ancm.
fn app_with_grandchild() -> (AppDir, Ancm, Vec<u32>) {
    let app = AppDir::new("", &[("SAMPLEAPP_SPAWN_CHILD", "1")]);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    let (app_pid, _) = ancm.wait_ready();
    ancm.wait_stdout("the grandchild", |l| l.contains("spawned child"));
    let tree = descendants(ancm.pid());
    assert!(
        tree.contains(&app_pid) && tree.len() >= 3,
        "app, grandchild and guard: {tree:?}"
    );
    (app, ancm, tree)
}

fn graceful_stop_finishes_requests_in_flight(signal: Signal) {
    let (_app, mut ancm, tree) = app_with_grandchild();

    let url = format!("{}/sleep?ms=1500", ancm.url);
    let in_flight = std::thread::spawn(move || client().get(url).send().and_then(|r| r.text()));
    ancm.wait_stdout("the request to be in flight", |l| {
        l.contains("sampleapp sleeping")
    });

    ancm.signal(signal);
    let answer = in_flight
        .join()
        .expect("request thread")
        .expect("in-flight request finished");
    assert_eq!(answer, "slept 1500");
    let status = ancm.wait_exit();
    assert_eq!(status.code(), Some(0), "clean stop exits 0");
    assert!(
        ancm.stdout()
            .iter()
            .any(|l| l.contains("shutdown message received")),
        "the app got the ANCM shutdown message: {:?}",
        ancm.stdout()
    );
    wait_all_gone(&tree);
}

#[test]
fn sigterm_stops_gracefully() {
    graceful_stop_finishes_requests_in_flight(Signal::SIGTERM);
}

#[test]
fn sigint_stops_gracefully() {
    graceful_stop_finishes_requests_in_flight(Signal::SIGINT);
}

#[test]
fn an_app_that_ignores_shutdown_is_killed_after_the_limit() {
    let app = AppDir::new(
        r#"shutdownTimeLimit="1""#,
        &[("SAMPLEAPP_IGNORE_SHUTDOWN", "1")],
    );
    let mut ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    let (app_pid, _) = ancm.wait_ready();
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert!(ancm
        .stderr()
        .iter()
        .any(|l| l.contains("did not stop within shutdownTimeLimit")));
    assert!(!alive(app_pid));
}

#[test]
fn a_second_signal_kills_at_once() {
    let app = AppDir::new(
        r#"shutdownTimeLimit="60""#,
        &[("SAMPLEAPP_IGNORE_SHUTDOWN", "1")],
    );
    let mut ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    let (app_pid, _) = ancm.wait_ready();
    ancm.signal(Signal::SIGINT);
    ancm.wait_stderr("the graceful stop", |l| l.contains("the shutdown message"));
    ancm.signal(Signal::SIGINT);
    let started = std::time::Instant::now();
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!alive(app_pid));
}

#[test]
fn sigkill_of_ancm_leaves_no_process() {
    let (_app, mut ancm, tree) = app_with_grandchild();

    ancm.signal(Signal::SIGKILL);
    ancm.wait_exit();
    wait_all_gone(&tree);
}

#[test]
fn stopping_during_startup_leaves_no_process() {
    let app = AppDir::new("", &[("SAMPLEAPP_NEVER_LISTEN", "1")]);
    let mut ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    let line = ancm.wait_stdout("the app to start", |l| {
        l.contains("sampleapp starting pid=")
    });
    let app_pid: u32 = line
        .rsplit('=')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("pid");
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    wait_all_gone(&[app_pid]);
}
