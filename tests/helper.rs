use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{
    alive, ancm_bin, client, eventually_ok, sampleapp, wait_all_gone, AppDir, DEADLINE,
};

/// `ancm helper`, spoken to as a native module would.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Helper {
    fn start() -> Helper {
        Helper::start_with(&[])
    }

    /// The helper with `env` added to its environment.
    fn start_with(env: &[(&str, &str)]) -> Helper {
        let mut child = Command::new(ancm_bin())
            .arg("helper")
            .env_remove("LAUNCHER_PATH")
            .env_remove("LAUNCHER_ARGS")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ancm helper");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event: Value = serde_json::from_str(&line).unwrap_or_else(
                    |err| json!({"event": "NOT JSON", "line": line, "err": err.to_string()}),
                );
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut helper = Helper {
            child,
            stdin,
            events,
            seen: Vec::new(),
        };
        let hello = helper.next();
        assert_eq!(hello["event"], "hello", "{hello}");
        assert_eq!(hello["protocol"], 1);
        helper
    }

    fn send(&mut self, request: &Value) {
        self.send_raw(&request.to_string());
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the helper");
        stdin.flush().expect("flush");
    }

    fn next(&mut self) -> Value {
        let event = self
            .events
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no event from the helper; seen: {:#?}", self.seen));
        self.seen.push(event.clone());
        event
    }

    /// The next event named `name`, skipping others.
    fn wait(&mut self, name: &str) -> Value {
        loop {
            let event = self.next();
            assert_ne!(event["event"], "NOT JSON", "{event}");
            if event["event"] == name {
                return event;
            }
        }
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let seen = format!("seen {:#?}", self.seen);
        let child = &mut self.child;
        eventually_ok("the helper to exit", || {
            child.try_wait().expect("wait").ok_or(seen.as_str())
        })
        .code()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stdin.take();
        if self.wait_exit_quietly().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Helper {
    fn wait_exit_quietly(&mut self) -> Option<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn start_request(dir: &AppDir, extra: Value) -> Value {
    let mut request = json!({
        "op": "start",
        "id": 1,
        "appPath": dir.path().to_str().expect("utf-8"),
        "processPath": sampleapp().to_str().expect("utf-8"),
    });
    if let (Some(map), Value::Object(extra)) = (request.as_object_mut(), extra) {
        map.extend(extra);
    }
    request
}

fn get_with_token(port: u64, token: &str) -> String {
    client()
        .get(format!("http://127.0.0.1:{port}/pid"))
        .header("MS-ASPNETCORE-TOKEN", token)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .expect("request to the app with its token")
}

#[test]
fn start_status_recycle_stop() {
    let dir = AppDir::new("", &[]);
    let mut helper = Helper::start();
    helper.send(&start_request(&dir, json!({})));
    assert_eq!(helper.wait("starting")["attempt"], 1);
    let ready = helper.wait("ready");
    let (pid, port) = (
        ready["pid"].as_u64().expect("pid"),
        ready["port"].as_u64().expect("port"),
    );
    let token = ready["token"].as_str().expect("token").to_owned();
    assert_eq!(get_with_token(port, &token), pid.to_string());

    helper.send(&json!({"op": "status", "id": "s1"}));
    let status = helper.wait("status");
    assert_eq!(status["id"], "s1");
    assert_eq!(status["state"], "ready");
    assert_eq!(status["pid"], pid);
    assert_eq!(status["port"], port);
    assert_eq!(status["restarts"], 0);
    assert!(status["uptimeSecs"].as_f64().is_some());

    helper.send(&json!({"op": "recycle"}));
    helper.wait("recycling");
    let renewed = helper.wait("ready");
    let new_pid = renewed["pid"].as_u64().expect("pid");
    assert_ne!(new_pid, pid);
    let new_token = renewed["token"].as_str().expect("token").to_owned();
    assert_eq!(
        get_with_token(renewed["port"].as_u64().expect("port"), &new_token),
        new_pid.to_string()
    );
    wait_all_gone(&[u32::try_from(pid).expect("pid")]);

    helper.send(&json!({"op": "stop"}));
    helper.wait("stopping");
    helper.wait("stopped");
    assert_eq!(helper.wait_exit(), Some(0));
    assert!(!alive(u32::try_from(new_pid).expect("pid")));
}

/// SIGUSR1 (reopen the logs) and SIGUSR2 (nothing) leave the helper and its app running: they
/// used to end it at once, and its guard killed the app.
#[test]
fn sigusr1_and_sigusr2_do_not_stop_the_helper() {
    let dir = AppDir::new("", &[]);
    let mut helper = Helper::start();
    helper.send(&start_request(&dir, json!({})));
    let ready = helper.wait("ready");
    let pid = ready["pid"].as_u64().expect("pid");
    let helper_pid = nix::unistd::Pid::from_raw(i32::try_from(helper.child.id()).expect("pid"));
    for signal in [
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGUSR2,
    ] {
        nix::sys::signal::kill(helper_pid, signal).expect("signal the helper");
    }
    // Answered after both signals: the status comes from a helper that is still there.
    helper.send(&json!({"op": "status", "id": "after"}));
    let status = helper.wait("status");
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(status["pid"], pid);
    assert!(alive(u32::try_from(pid).expect("pid")));
    helper.send(&json!({"op": "stop"}));
    helper.wait("stopped");
    assert_eq!(helper.wait_exit(), Some(0));
}

#[test]
fn events_come_without_a_request_when_the_app_exits() {
    let dir = AppDir::new("", &[]);
    let mut helper = Helper::start();
    helper.send(&start_request(&dir, json!({})));
    let pid = helper.wait("ready")["pid"].as_u64().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the app");
    let exited = helper.wait("exited");
    assert_eq!(exited["pid"], pid);
    assert!(
        exited["reason"]
            .as_str()
            .expect("reason")
            .contains("signal 9"),
        "{exited}"
    );
    helper.wait("starting");
    assert_ne!(helper.wait("ready")["pid"], pid);
}

#[test]
fn a_failing_app_gives_failed_then_paused() {
    let dir = AppDir::new(
        "",
        &[
            ("SAMPLEAPP_EXIT_AT_START", "3"),
            ("SAMPLEAPP_STDERR_AT_START", "no config"),
        ],
    );
    let mut helper = Helper::start();
    helper.send(&start_request(&dir, json!({"rapidFailsPerMinute": 0})));
    let failed = helper.wait("failed");
    assert!(
        failed["reason"]
            .as_str()
            .expect("reason")
            .contains("exited with code 3"),
        "{failed}"
    );
    assert!(
        failed["output"]
            .as_str()
            .expect("output")
            .contains("no config"),
        "{failed}"
    );
    let paused = helper.wait("paused");
    assert!(paused["retryInSecs"].as_u64().expect("secs") > 0);
}

#[test]
fn a_failed_recycle_keeps_the_old_process_serving() {
    let marker = tempfile::tempdir().expect("dir");
    let marker_file = marker.path().join("fail-next-start");
    let dir = AppDir::new(
        "",
        &[(
            "SAMPLEAPP_EXIT_IF_FILE",
            marker_file.to_str().expect("utf-8"),
        )],
    );
    let mut helper = Helper::start();
    helper.send(&start_request(&dir, json!({"listen": ["127.0.0.1:0"]})));
    let ready = helper.wait("ready");
    let pid = ready["pid"].as_u64().expect("pid");
    let proxy = ready["listen"][0].as_str().expect("proxy URL").to_owned();
    assert_eq!(
        client()
            .get(format!("{proxy}pid"))
            .send()
            .and_then(|r| r.text())
            .expect("through the proxy"),
        pid.to_string()
    );

    std::fs::write(&marker_file, b"").expect("marker");
    helper.send(&json!({"op": "recycle", "id": 9}));
    let failed = helper.wait("recycleFailed");
    assert_eq!(failed["id"], 9);
    assert_eq!(failed["pid"], pid);
    assert!(
        failed["reason"]
            .as_str()
            .expect("reason")
            .contains("exited with code 4"),
        "{failed}"
    );
    // The old process still answers, through the proxy too.
    assert_eq!(
        client()
            .get(format!("{proxy}pid"))
            .send()
            .and_then(|r| r.text())
            .expect("still served"),
        pid.to_string()
    );
    helper.send(&json!({"op": "status"}));
    assert_eq!(helper.wait("status")["pid"], pid);
}

#[test]
fn end_of_input_stops_everything() {
    let dir = AppDir::new("", &[("SAMPLEAPP_SPAWN_CHILD", "1")]);
    let mut helper = Helper::start();
    helper.send(&start_request(&dir, json!({})));
    helper.wait("ready");
    let tree = crate::support::descendants(helper.child.id());
    assert!(tree.len() >= 3, "app, its child and the guard: {tree:?}");
    helper.close_stdin();
    helper.wait("stopped");
    assert_eq!(helper.wait_exit(), Some(0));
    wait_all_gone(&tree);
}

#[test]
fn bad_input_gives_errors_and_the_helper_stays_up() {
    let mut helper = Helper::start();
    helper.send_raw("this is not json");
    assert!(helper.wait("error")["message"]
        .as_str()
        .expect("message")
        .contains("not JSON"));
    helper.send(&json!({"op": "launch", "id": 5}));
    let error = helper.wait("error");
    assert_eq!(error["id"], 5);
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("unknown op \"launch\""),
        "{error}"
    );
    helper.send(&json!({"op": "start", "appPath": ".", "startupTimeLimt": 5}));
    assert!(helper.wait("error")["message"]
        .as_str()
        .expect("message")
        .contains("startupTimeLimt"));
    helper.send(&json!({"op": "recycle"}));
    assert!(helper.wait("error")["message"]
        .as_str()
        .expect("message")
        .contains("send start first"));
    helper.send(&json!({"op": "status", "id": 6}));
    let status = helper.wait("status");
    assert_eq!(
        (status["state"].as_str(), status["id"].as_u64()),
        (Some("idle"), Some(6))
    );

    // A configuration error is a failed start, and a second start is refused.
    let empty = tempfile::tempdir().expect("dir");
    helper.send(&json!({"op": "start", "appPath": empty.path().to_str().expect("utf-8")}));
    assert!(helper.wait("failed")["reason"]
        .as_str()
        .expect("reason")
        .contains("no web.config"));
}

/// A dev-time web.config: %LAUNCHER_PATH% and %LAUNCHER_ARGS% come from the helper's own
/// environment, as they do for `ancm check` and `ancm run`; an unset LAUNCHER_ARGS is empty.
#[test]
fn launcher_variables_come_from_the_environment() {
    let dir = AppDir::with_web_config(
        r#"<configuration><system.webServer><aspNetCore processPath="%LAUNCHER_PATH%" arguments="%LAUNCHER_ARGS%" /></system.webServer></configuration>"#,
    );
    let sampleapp = sampleapp();
    let mut helper = Helper::start_with(&[("LAUNCHER_PATH", sampleapp.to_str().expect("utf-8"))]);
    helper.send(&json!({"op": "start", "appPath": dir.path().to_str().expect("utf-8")}));
    let event = loop {
        let event = helper.next();
        if event["event"] == "ready" || event["event"] == "failed" {
            break event;
        }
    };
    assert_eq!(event["event"], "ready", "{event}");
}
