//! The harness: runs the real `ancm` binary against the real sample app (examples/sampleapp) on
//! loopback port 0, reads its output as it comes, and waits on conditions with deadlines.
//! Beside it: `paths` (ancm on the lean path or hyper's, `both_paths!`), `wait` (`eventually`),
//! `clients`, `process` (/proc and load), `apps` (the test apps) and `native_client`. Test
//! modules share helpers through here, never with each other.

#![allow(dead_code, unreachable_pub)]

pub mod apps;
mod clients;
pub mod native_client;
mod paths;
pub mod process;
mod wait;

pub use clients::{client, echoed, h2c_client, h2c_sender, raw_exchange, runtime, self_signed};
pub(crate) use paths::both_paths;
pub use paths::ProxyPath;
pub use wait::{eventually, eventually_ok, eventually_some, wait_file};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn ancm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ancm"))
}

/// The sample app (its own package, examples/sampleapp), built beside the ancm binary once per
/// test run, so it is never stale.
pub fn sampleapp() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bin = ancm_bin();
        let dir = bin.parent().expect("ancm sits in a target folder");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--bin", "sampleapp"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // What cargo sets for a test run would make this build's fingerprints differ from the
        // outer one's, and so rebuild the dependencies here and again on the next run.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("CARGO_") && !matches!(&*name, "CARGO_HOME" | "CARGO_TARGET_DIR"))
                || matches!(&*name, "OUT_DIR" | "LD_LIBRARY_PATH" | "RUSTC_BOOTSTRAP")
            {
                build.env_remove(&*name);
            }
        }
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the sample app failed");
        dir.join(format!("sampleapp{}", std::env::consts::EXE_SUFFIX))
    })
    .clone()
}

/// A folder of empty executables named `names`, standing for programs a web.config names
/// (`dotnet`, `node`) that need not be installed where `ancm check` runs.
pub fn fake_programs(names: &[&str]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").expect("write a fake program");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
    }
    dir
}

/// PATH with `first` before the folders it has now.
pub fn path_with(first: &Path) -> std::ffi::OsString {
    let mut folders = vec![first.to_owned()];
    folders.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(folders).expect("a PATH")
}

/// A temporary app folder with a web.config.
pub struct AppDir {
    pub dir: tempfile::TempDir,
}

impl AppDir {
    /// A web.config whose `<aspNetCore>` has `attributes` (processPath defaults to the sample
    /// app) and `<environmentVariables>` from `env`.
    pub fn new(attributes: &str, env: &[(&str, &str)]) -> AppDir {
        let process_path = if attributes.contains("processPath=") {
            String::new()
        } else {
            format!(" processPath=\"{}\"", sampleapp().display())
        };
        let vars: String = env
            .iter()
            .map(|(n, v)| format!("          <environmentVariable name=\"{n}\" value=\"{v}\" />\n"))
            .collect();
        AppDir::with_web_config(&format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <aspNetCore{process_path} {attributes}>
        <environmentVariables>
{vars}        </environmentVariables>
      </aspNetCore>
    </system.webServer>
  </location>
</configuration>
"#
        ))
    }

    pub fn with_web_config(text: &str) -> AppDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("web.config"), text).expect("write web.config");
        AppDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl AsRef<Path> for AppDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl AppDir {
    /// Adds `<handlerSetting name value>` to the web.config [`AppDir::new`] wrote, and returns
    /// the web.config's new text.
    pub fn add_handler_setting(&self, name: &str, value: &str) -> String {
        let path = self.path().join("web.config");
        let text = std::fs::read_to_string(&path).expect("read web.config").replace(
            "</environmentVariables>",
            &format!("</environmentVariables>\n        <handlerSettings><handlerSetting name=\"{name}\" value=\"{value}\" /></handlerSettings>"),
        );
        std::fs::write(&path, &text).expect("write web.config");
        text
    }
}

/// Lines a stream has produced so far, and a way to wait for more.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    more: Condvar,
    closed: std::sync::atomic::AtomicBool,
}

impl Lines {
    fn follow(self: &Arc<Self>, reader: impl std::io::Read + Send + 'static) {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                lines
                    .lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
                lines.more.notify_all();
            }
            lines
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            lines.more.notify_all();
        });
    }

    /// Waits until the stream reached end of file, so every line is in.
    fn wait_closed(&self) {
        self.wait_until("ancm's output to close", |_| {
            self.closed.load(std::sync::atomic::Ordering::SeqCst)
        });
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        self.wait_until(what, |lines| {
            found = lines.iter().find(|l| pred(l)).cloned();
            found.is_some()
        });
        found.unwrap_or_default()
    }

    /// Waits until `done` holds for the lines so far, failing the test after [`DEADLINE`].
    fn wait_until(&self, what: &str, mut done: impl FnMut(&[String]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !done(&lines) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; output so far:\n{}",
                lines.join("\n")
            );
            lines = self
                .more
                .wait_timeout(lines, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn all(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The app folder, then `extra`, as `ancm run` takes them.
fn app_args<'a>(app: &'a impl AsRef<Path>, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![app.as_ref().to_str().expect("an app folder named in UTF-8")];
    args.extend_from_slice(extra);
    args
}

/// `ancm run --listen 127.0.0.1:0 ARGS...` for a start that must fail: its exit code and
/// stderr. The port is a free one, so a start that wrongly succeeds fails the test's
/// expectations instead of taking a fixed port.
pub fn run_expecting_failure(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(ancm_bin())
        .arg("run")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ancm");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `ancm` process.
pub struct Ancm {
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    /// The proxy's base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The path [`Ancm::on`] chose, if any.
    path: Option<ProxyPath>,
    /// How many [`MARKER`] requests have been sent.
    markers: std::sync::atomic::AtomicUsize,
}

impl Ancm {
    /// `ancm run --listen 127.0.0.1:0 ARGS...`, returning once it listens.
    pub fn run(args: &[&str]) -> Ancm {
        let mut command = Command::new(ancm_bin());
        command.env("ANCM_LOG", "info");
        Ancm::run_with(command, args)
    }

    /// `ancm run APP EXTRA...`: ancm on the app folder `app`, returning once it listens.
    pub fn run_app(app: &impl AsRef<Path>, extra: &[&str]) -> Ancm {
        Ancm::run(&app_args(app, extra))
    }

    /// Like [`Ancm::run_app`], from a prepared command (for its environment).
    pub fn run_app_with(command: Command, app: &impl AsRef<Path>, extra: &[&str]) -> Ancm {
        Ancm::run_with(command, &app_args(app, extra))
    }

    /// Like [`Ancm::run`], from a prepared command (for its environment).
    pub fn run_with(mut command: Command, args: &[&str]) -> Ancm {
        command
            .arg("run")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start ancm");
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        stdout.follow(child.stdout.take().expect("stdout"));
        stderr.follow(child.stderr.take().expect("stderr"));
        let mut ancm = Ancm {
            child,
            stdout,
            stderr,
            url: String::new(),
            path: None,
            markers: std::sync::atomic::AtomicUsize::new(0),
        };
        let line = ancm.wait_stderr("the listening line", |l| {
            l.contains("ancm listening on http")
        });
        ancm.url = url_in(&line);
        ancm
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the proxy, whatever scheme its listening line shows.
    pub fn addr(&self) -> &str {
        self.url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, rest)| rest)
    }

    /// Waits for the ready line and returns the app's pid and port from it.
    pub fn wait_ready(&self) -> (u32, u16) {
        self.wait_ready_after(0)
    }

    /// Waits for a ready line for an app process other than `previous_pid`.
    pub fn wait_ready_after(&self, previous_pid: u32) -> (u32, u16) {
        let line = self.wait_stderr("the app to be ready", |l| {
            is_ready_line(l) && parse_ready(l).0 != previous_pid
        });
        parse_ready(&line)
    }

    /// ancm's own account of itself, from `ancm status --json PID`, or why there is none yet:
    /// `restarts` in all, and `processes`, each with `pid`, `port`, `state` and `restarts`.
    fn try_status(&self) -> Result<serde_json::Value, String> {
        let output = Command::new(ancm_bin())
            .args(["status", "--json", &self.pid().to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run ancm status");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|err| format!("not JSON: {err}"))
    }

    /// [`Ancm::try_status`], for a test whose claim is the state and not the log's wording.
    pub fn status(&self) -> serde_json::Value {
        self.try_status()
            .unwrap_or_else(|err| panic!("ancm status: {err}"))
    }

    /// Waits until ancm's status satisfies `done`, and returns it.
    pub fn wait_status(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually_ok(what, || {
            let status = self.try_status()?;
            if done(&status) {
                Ok(status)
            } else {
                Err(format!("{status:#}"))
            }
        })
    }

    /// Waits, by ancm's status, until an app process other than `previous_pid` is ready, and
    /// returns its pid.
    pub fn wait_ready_process_after(&self, previous_pid: u32) -> u32 {
        let ready = |process: &serde_json::Value| {
            process["state"] == "ready" && process["pid"] != previous_pid
        };
        let status = self.wait_status("a new app process to be ready", |status| {
            status["processes"]
                .as_array()
                .is_some_and(|processes| processes.iter().any(ready))
        });
        let pid = status["processes"]
            .as_array()
            .and_then(|processes| processes.iter().find(|p| ready(p)))
            .and_then(|process| process["pid"].as_u64())
            .expect("a ready process's pid");
        u32::try_from(pid).expect("a pid")
    }

    pub fn wait_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.stderr.wait_for(what, pred)
    }

    pub fn wait_stdout(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.stdout.wait_for(what, pred)
    }

    /// Waits until `count` lines of stderr match.
    pub fn wait_stderr_count(&self, what: &str, count: usize, pred: impl Fn(&str) -> bool) {
        self.stderr.wait_until(what, |lines| {
            lines.iter().filter(|l| pred(l)).count() >= count
        });
    }

    /// The app pids of every ready line so far, in order.
    pub fn ready_pids(&self) -> Vec<u32> {
        self.stderr()
            .iter()
            .filter(|l| is_ready_line(l))
            .map(|l| parse_ready(l).0)
            .collect()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.all()
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.all()
    }

    pub fn count_stderr(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.stderr.all().iter().filter(|l| pred(l)).count()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal ancm");
    }

    /// Waits for ancm to exit, failing the test after [`DEADLINE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = eventually_ok("ancm to exit", || {
            self.child
                .try_wait()
                .expect("wait for ancm")
                .ok_or_else(|| format!("its log:\n{}", self.stderr.all().join("\n")))
        });
        self.stdout.wait_closed();
        self.stderr.wait_closed();
        status
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        client()
            .get(format!("{}{path}", self.url))
            .send()
            .expect("request through ancm")
    }
}

impl Drop for Ancm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so the app is stopped cleanly; SIGKILL if that hangs.
            self.signal(nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn url_in(line: &str) -> String {
    let start = line.find("http").expect("a URL");
    let scheme_end = line[start..].find("://").expect("a scheme") + start + 3;
    let rest = &line[scheme_end..];
    let end = rest.find(['/', ' ', ';']).unwrap_or(rest.len());
    format!("{}{}", &line[start..scheme_end], &rest[..end])
}

/// How ancm's ready line begins: "Now listening on: URLS (app pid N, port M)", as ANCM logs it,
/// written where ancm announces an app ready (src/run.rs today). bench/helpers.py (`READY`)
/// parses the same line: change the three together. [`is_ready_line`] and [`parse_ready`]
/// are the tests' one reading of it.
pub const READY_LINE: &str = "Now listening on:";

/// ancm's line for a ready app process; the app's own output (Kestrel prints "Now listening
/// on:" too) shows with an `[app PID]` mark and no pid and port of ancm's.
pub fn is_ready_line(line: &str) -> bool {
    line.contains(READY_LINE) && line.contains("(app pid ")
}

/// `(pid, port)` from "Now listening on: ... (app pid N, port M)".
fn parse_ready(line: &str) -> (u32, u16) {
    let number_after = |key: &str| {
        let at = line
            .find(key)
            .map(|i| i + key.len())
            .expect("key in ready line");
        line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .expect("number")
    };
    (
        u32::try_from(number_after("app pid ")).expect("pid"),
        u16::try_from(number_after("port ")).expect("port"),
    )
}

/// Whether a process is alive (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

pub use ancm::supervisor::descendants;

/// Waits until none of `pids` is alive.
pub fn wait_all_gone(pids: &[u32]) {
    eventually_ok("processes to be gone", || {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("processes outlived ancm: {left:?}"))
        }
    });
}

/// 64-bit FNV-1a, as the sample app's /upload computes it.
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
