use nix::sys::signal::Signal;

use crate::support::{client, echoed, sampleapp, Ancm, AppDir};

const PLAIN_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/plain.py");

/// `ancm run DIR --port-env PORT EXTRA -- python3 -u plain.py`, stopped with SIGTERM once it
/// has answered a request; returns ancm's stdout (the app's lines).
fn run_and_stop_plain_app(extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("dir");
    let mut args = vec![dir.path().to_str().expect("utf-8"), "--port-env", "PORT"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "python3", "-u", PLAIN_APP]);
    let mut ancm = Ancm::run(&args);
    ancm.wait_ready();
    let answer: serde_json::Value = ancm.get("/hello").json().expect("json");
    assert_eq!(answer["path"], "/hello");
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    ancm.stdout()
}

#[test]
fn a_command_gets_sigterm_without_the_shutdown_message() {
    let stdout = run_and_stop_plain_app(&[]);
    assert!(
        stdout.iter().any(|l| l.contains("plain: GET /hello")),
        "{stdout:?}"
    );
    assert!(
        !stdout.iter().any(|l| l.contains("/iisintegration")),
        "no shutdown message for an app that is not ASP.NET Core: {stdout:?}"
    );
    assert!(
        stdout.iter().any(|l| l.contains("plain: got SIGTERM")),
        "{stdout:?}"
    );
}

#[test]
fn shutdown_message_flag_sends_it_to_a_command_then_signals() {
    let stdout = run_and_stop_plain_app(&["--shutdown-message"]);
    let message = stdout
        .iter()
        .position(|l| l.contains("plain: POST /iisintegration "))
        .unwrap_or_else(|| panic!("the shutdown message reached the app: {stdout:?}"));
    let signalled = stdout
        .iter()
        .position(|l| l.contains("plain: got SIGTERM"))
        .unwrap_or_else(|| panic!("refused (404), then SIGTERM: {stdout:?}"));
    assert!(message < signalled, "{stdout:?}");
}

/// The X-Forwarded-For values the sample app got for one request through `ancm`.
fn forwarded_for(ancm: &Ancm) -> Vec<String> {
    let echo: serde_json::Value = client()
        .get(format!("{}/echo", ancm.url))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .expect("request")
        .json()
        .expect("json");
    echoed(&echo, "x-forwarded-for")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The port after "127.0.0.1:" at the end of `value`, if it is one.
fn port_after_loopback(value: &str) -> Option<u16> {
    value.rsplit_once("127.0.0.1:")?.1.parse().ok()
}

#[test]
fn a_command_gets_the_bare_client_ip_unless_asked_for_the_port() {
    let dir = tempfile::tempdir().expect("dir");
    let app = sampleapp();
    let dir = dir.path().to_str().expect("utf-8");
    let app = app.to_str().expect("utf-8");

    let ancm = Ancm::run(&[dir, "--", app]);
    ancm.wait_ready();
    assert_eq!(forwarded_for(&ancm), ["203.0.113.7, 127.0.0.1"]);
    drop(ancm);

    let ancm = Ancm::run(&[dir, "--forwarded-for", "ip:port", "--", app]);
    ancm.wait_ready();
    let values = forwarded_for(&ancm);
    assert_eq!(values.len(), 1, "{values:?}");
    assert!(
        values[0].starts_with("203.0.113.7, 127.0.0.1:"),
        "{values:?}"
    );
    assert!(port_after_loopback(&values[0]).is_some(), "{values:?}");
}

#[test]
fn a_web_config_app_keeps_ancms_form_unless_asked_for_the_bare_ip() {
    let app = AppDir::new("", &[]);
    let app = app.path().to_str().expect("utf-8");

    let ancm = Ancm::run(&[app]);
    ancm.wait_ready();
    let values = forwarded_for(&ancm);
    assert!(
        values.len() == 1 && port_after_loopback(&values[0]).is_some(),
        "ip:port, as ANCM: {values:?}"
    );
    drop(ancm);

    let ancm = Ancm::run(&[app, "--forwarded-for", "ip"]);
    ancm.wait_ready();
    assert_eq!(forwarded_for(&ancm), ["203.0.113.7, 127.0.0.1"]);
}
