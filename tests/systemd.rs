use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{
    ancm_bin, client, eventually, eventually_ok, wait_all_gone, Ancm, AppDir, DEADLINE,
};

/// The notifications ancm sent so far, one datagram each.
struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn new() -> (NotifySocket, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let notify = NotifySocket {
            socket,
            seen: Vec::new(),
            _dir: dir,
        };
        (notify, path)
    }

    /// Waits for a datagram with a line for which `pred` holds, after those already taken.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        loop {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; notifications so far: {:?}",
                self.seen
            );
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(message.clone());
            if message.lines().any(&pred) {
                return message;
            }
        }
    }
}

#[test]
fn tells_systemd_ready_status_reloading_watchdog_and_stopping() {
    let (mut notify, path) = NotifySocket::new();
    let app = AppDir::new("", &[]);
    let mut command = Command::new(ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "300000");
    let mut ancm = Ancm::run_app_with(command, &app, &[]);
    let ready = notify.wait_for("READY=1", |l| l == "READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=1 process of 1 ready, 0 restarts"),
        "{ready}"
    );
    assert!(
        notify.seen[0].starts_with("STATUS=0 processes of 1 ready, 0 restarts; starting"),
        "{:?}",
        notify.seen
    );
    let (pid, _) = ancm.wait_ready();
    // At half of WATCHDOG_USEC, again and again.
    notify.wait_for("a watchdog ping", |l| l == "WATCHDOG=1");
    notify.wait_for("another watchdog ping", |l| l == "WATCHDOG=1");

    // The protocol is ancm's: the app does not see it.
    let echo: serde_json::Value = ancm.get("/echo").json().expect("echo");
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS"] {
        assert!(echo["env"][name].is_null(), "{name}: {}", echo["env"]);
    }

    // A recycle is a reload: RELOADING=1 (with the time, as Type=notify-reload wants), then
    // READY=1 once the new process is ready.
    ancm.signal(Signal::SIGHUP);
    let reloading = notify.wait_for("RELOADING=1", |l| l == "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notify.wait_for("READY=1 after the recycle", |l| l == "READY=1");
    ancm.wait_ready_after(pid);

    ancm.signal(Signal::SIGTERM);
    notify.wait_for("STOPPING=1", |l| l == "STOPPING=1");
    assert!(ancm.wait_exit().success());
}

/// A process the tools start (ancm, once systemd-socket-activate has exec'd it), stopped
/// when the test ends, however it ends: SIGTERM (ancm stops its app), SIGKILL if that hangs.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free now, for a tool that binds it itself.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The first answer from `url`, where a socket-activated ancm may still be starting.
fn first_answer(http: &reqwest::blocking::Client, url: &str) -> reqwest::blocking::Response {
    eventually_ok(&format!("an answer from {url}"), || http.get(url).send())
}

/// Socket activation with systemd's own tool: it holds the listening socket and starts ancm
/// with it (LISTEN_FDS); ancm serves on it without binding anything.
#[test]
fn serves_on_the_socket_systemd_socket_activate_passes() {
    let app = AppDir::new("", &[]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut activator = Command::new("systemd-socket-activate")
        .args(["--listen", &addr, "--setenv=ANCM_LOG=info"])
        .arg(ancm_bin())
        .args(["run", app.path().to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Stopped)
        .expect("systemd-socket-activate (Debian's systemd package)");
    let response = first_answer(&client(), &format!("http://{addr}/echo"));
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().expect("echo");
    assert!(echo["env"]["LISTEN_FDS"].is_null(), "{}", echo["env"]);
    let app_pid = u32::try_from(echo["pid"].as_u64().expect("pid")).expect("pid");

    // The tool became ancm (exec): a stop signal to it stops ancm and the app.
    let ancm_pid = nix::unistd::Pid::from_raw(i32::try_from(activator.0.id()).expect("pid"));
    nix::sys::signal::kill(ancm_pid, Signal::SIGTERM).expect("SIGTERM");
    let status = activator.0.wait().expect("wait");
    let mut stderr = String::new();
    if let Some(mut err) = activator.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("socket(s) systemd passed (socket activation)"),
        "{stderr}"
    );
    wait_all_gone(&[app_pid]);
}

/// A passed descriptor that is not a TCP listener is refused with a clear error.
#[test]
fn a_passed_socket_that_is_not_tcp_is_refused_clearly() {
    let app = AppDir::new("", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.sock");
    let mut activator = Command::new("systemd-socket-activate")
        .arg("--listen")
        .arg(&path)
        .arg(ancm_bin())
        .args(["run", app.path().to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Stopped)
        .expect("systemd-socket-activate");
    // The tool starts its program on the first connection.
    eventually("the socket to appear", || {
        std::os::unix::net::UnixStream::connect(&path).is_ok()
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = activator.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = activator.0.kill();
            panic!("ancm did not exit on a socket it cannot serve");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut err) = activator.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("socket activation passed descriptor 3, which is not a listening TCP socket"),
        "{stderr}"
    );
}

/// The units shipped in examples/systemd: systemd-analyze verifies them, and their ExecStart,
/// with their Environment=, runs under socket activation as systemd would run it (on a free
/// port in place of the .socket's 80): ready, reloaded by ExecReload's SIGHUP, stopped.
#[test]
fn the_shipped_units_verify_and_run_under_socket_activation() {
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/systemd");
    let app = AppDir::new("", &[]);
    let app_dir = app.path().to_str().expect("utf-8");
    let ancm = ancm_bin();
    let service = std::fs::read_to_string(format!("{units}/ancm-app.service"))
        .expect("the service unit")
        .replace("/usr/local/bin/ancm", ancm.to_str().expect("utf-8"))
        .replace("/srv/app", app_dir);
    let socket =
        std::fs::read_to_string(format!("{units}/ancm-app.socket")).expect("the socket unit");
    assert!(socket.contains("ListenStream=80"), "{socket}");
    let dir = tempfile::tempdir().expect("temp dir");
    let (service_path, socket_path) = (
        dir.path().join("ancm-app.service"),
        dir.path().join("ancm-app.socket"),
    );
    std::fs::write(&service_path, &service).expect("write");
    std::fs::write(&socket_path, &socket).expect("write");
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .args([&service_path, &socket_path])
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let value = |key: &str| -> Vec<String> {
        service
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(str::to_owned)
            .collect()
    };
    let exec = value("ExecStart=").pop().expect("ExecStart");
    let mut exec = exec.split_whitespace();
    let (mut notify, notify_path) = NotifySocket::new();
    let port = free_port();
    let mut activate = Command::new("systemd-socket-activate");
    activate
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()));
    for variable in value("Environment=") {
        activate.arg(format!("--setenv={variable}"));
    }
    let mut activator = activate
        .arg(exec.next().expect("program"))
        .args(exec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Stopped)
        .expect("systemd-socket-activate");
    let http = client();
    let url = format!("http://127.0.0.1:{port}/pid");
    let first_pid = first_answer(&http, &url).text().expect("pid");
    notify.wait_for("READY=1", |l| l == "READY=1");

    let main_pid = nix::unistd::Pid::from_raw(i32::try_from(activator.0.id()).expect("pid"));
    // ExecReload=/bin/kill -HUP $MAINPID
    nix::sys::signal::kill(main_pid, Signal::SIGHUP).expect("SIGHUP");
    notify.wait_for("RELOADING=1", |l| l == "RELOADING=1");
    notify.wait_for("READY=1 after the reload", |l| l == "READY=1");
    assert_ne!(
        http.get(&url).send().expect("answer").text().expect("pid"),
        first_pid
    );

    nix::sys::signal::kill(main_pid, Signal::SIGTERM).expect("SIGTERM");
    notify.wait_for("STOPPING=1", |l| l == "STOPPING=1");
    // The unit's shutdown delay: still serving a moment after the stop began.
    assert_eq!(http.get(&url).send().expect("answer").status(), 200);
    assert!(activator.0.wait().expect("wait").success());
}
