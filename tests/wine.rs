//! The Windows build (ancm.exe, sampleapp.exe and the C client for x86_64-pc-windows-gnu) run
//! under Wine: Windows paths with drive letters and backslashes, `%VAR%` from the Windows
//! environment, the job object that holds the app's tree and kills it when ancm dies, a stop
//! when CTRL_BREAK cannot be sent (it never can under Wine), CRLF output, and the native-module
//! client's Win32 process and pipe code.
//!
//! `scripts/windows-ci` builds everything, makes a Wine prefix and runs these tests with
//! `ANCM_WINE_EXE` (ancm.exe; sampleapp.exe sits beside it), `ANCM_WINE_CLIENT` (client.exe)
//! and `ANCM_WINE` (the wine loader) set. Without `ANCM_WINE_EXE` they say NOT RUN, except
//! under CI, where that is a failure. Processes are found through Linux's /proc: each Wine
//! process shows its Windows path as its command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::sys::signal::Signal;

use crate::support::native_client::{check_exchange, run_client};
use crate::support::{eventually_ok, Ancm, DEADLINE};

/// Where the Windows build and Wine are.
struct Wine {
    loader: PathBuf,
    ancm: PathBuf,
    sampleapp: PathBuf,
    client: PathBuf,
}

/// The Windows build, or `None` (and a note) when these tests are not to run here.
fn wine() -> Option<Wine> {
    let Some(ancm) = std::env::var_os("ANCM_WINE_EXE").map(PathBuf::from) else {
        if std::env::var_os("CI").is_some() {
            panic!("ANCM_WINE_EXE is not set: CI runs these tests through scripts/windows-ci");
        }
        // Straight to stderr, past the test harness's capture, so the note is seen.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: the Wine tests need the Windows build (scripts/windows-ci runs them)"
        );
        return None;
    };
    let sampleapp = ancm.with_file_name("sampleapp.exe");
    let client = PathBuf::from(std::env::var_os("ANCM_WINE_CLIENT").expect(
        "ANCM_WINE_CLIENT: the native-module client built for Windows (scripts/windows-ci)",
    ));
    let loader = std::env::var_os("ANCM_WINE")
        .map_or_else(|| PathBuf::from("/usr/lib/wine/wine64"), PathBuf::from);
    for file in [&ancm, &sampleapp, &client, &loader] {
        assert!(file.is_file(), "{} is missing", file.display());
    }
    Some(Wine {
        loader,
        ancm,
        sampleapp,
        client,
    })
}

impl Wine {
    /// `wine ancm.exe`, logging at info.
    fn ancm(&self) -> Command {
        let mut command = Command::new(&self.loader);
        command.arg(&self.ancm).env("ANCM_LOG", "info");
        command
    }

    /// `wine ancm.exe ARGS`, run to its end.
    fn ancm_output(&self, args: &[&str]) -> Output {
        let mut command = self.ancm();
        command.args(args);
        output_within(command, "ancm.exe")
    }

    /// An app folder holding a copy of sampleapp.exe (so that its processes are told apart
    /// by their path) and a web.config that runs it as `.\sampleapp.exe`.
    fn app(&self, attributes: &str, env: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(&self.sampleapp, dir.path().join("sampleapp.exe")).expect("copy the app");
        let vars: String = env
            .iter()
            .map(|(n, v)| format!("<environmentVariable name=\"{n}\" value=\"{v}\" />"))
            .collect();
        let config = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<configuration>\r\n  \
             <system.webServer>\r\n    <aspNetCore processPath=\".\\sampleapp.exe\" {attributes}>\r\n      \
             <environmentVariables>{vars}</environmentVariables>\r\n    </aspNetCore>\r\n  \
             </system.webServer>\r\n</configuration>\r\n"
        );
        std::fs::write(dir.path().join("web.config"), config).expect("write web.config");
        dir
    }
}

/// `path` as Wine's Windows processes see it: Wine maps `Z:` to `/`.
fn win_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// Runs `command` to its end, failing the test if it takes longer than a few deadlines.
fn output_within(mut command: Command, what: &str) -> Output {
    use std::process::Stdio;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wine");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE * 3) {
        Ok(output) => output.expect("wait for wine"),
        Err(_) => {
            kill(pid);
            panic!("{what} did not finish")
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Linux pids of the Wine processes started from a program in `dir`: Wine shows a Windows
/// process's command line (its program's Windows path first) in /proc.
fn programs_in(dir: &Path) -> Vec<u32> {
    let folder = win_path(dir);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
                String::from_utf8_lossy(program)
                    .to_ascii_lowercase()
                    .starts_with(&format!("{}\\", folder.to_ascii_lowercase()))
            })
        })
        .filter(|&pid| crate::support::alive(pid))
        .collect()
}

/// Waits until `count` processes (at least) run from `dir`, and returns them.
fn wait_programs_in(dir: &Path, count: usize) -> Vec<u32> {
    eventually_ok(&format!("{count} processes from {}", dir.display()), || {
        let found = programs_in(dir);
        if found.len() >= count {
            Ok(found)
        } else {
            Err(format!("found {found:?}"))
        }
    })
}

/// Waits until no process runs from `dir`.
fn wait_none_in(dir: &Path) {
    eventually_ok(
        &format!("the processes from {} to go", dir.display()),
        || {
            let left = programs_in(dir);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("outlived ancm: {left:?}"))
            }
        },
    );
}

fn kill(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
}

/// `curl` from Linux to ancm.exe's proxy on 127.0.0.1; the body.
fn curl(url: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", url])
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn check_shows_windows_paths_and_the_windows_environment() {
    let Some(wine) = wine() else { return };
    let app = wine.app(
        r#"arguments="--site %Ancm_Wine_Site% --root %SystemRoot%" stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let app_dir = win_path(app.path());
    let mut command = wine.ancm();
    // Set in Linux's environment; Windows looks names up ignoring case.
    command
        .env("ANCM_WINE_SITE", "shop")
        .args(["check", "--json", &app_dir]);
    let output = output_within(command, "ancm.exe check");
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    // Plain drive paths: a \\?\ path breaks cmd.exe and many apps.
    assert_eq!(json["workingDirectory"], app_dir.as_str(), "{json}");
    assert_eq!(
        json["command"],
        serde_json::json!([
            format!("{app_dir}\\sampleapp.exe"),
            "--site",
            "shop",
            "--root",
            r"C:\windows"
        ]),
        "{json}"
    );
    let log = json["stdoutLogFile"].as_str().expect("stdoutLogFile");
    assert!(
        log.eq_ignore_ascii_case(&format!("{app_dir}\\logs\\stdout")),
        "{json}"
    );
    assert!(!stdout.contains(r"\\?\"), "{stdout}");
}

#[test]
fn run_serves_restarts_a_killed_app_and_stops_leaving_nothing() {
    let Some(wine) = wine() else { return };
    let app = wine.app(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let mut ancm = Ancm::run_with(wine.ancm(), &[&win_path(app.path())]);
    let (pid, _) = ancm.wait_ready();
    let body = curl(&format!("{}/", ancm.url));
    assert!(
        body.contains(&format!("hello from sampleapp pid={pid}")),
        "{body}"
    );

    // Killed from outside, as a crash: ancm starts it again.
    for process in wait_programs_in(app.path(), 1) {
        kill(process);
    }
    let (again, _) = ancm.wait_ready_after(pid);
    let body = curl(&format!("{}/", ancm.url));
    assert!(
        body.contains(&format!("hello from sampleapp pid={again}")),
        "{body}"
    );

    // Ctrl+C: the app gets the shutdown message and stops by itself.
    ancm.signal(Signal::SIGINT);
    let status = ancm.wait_exit();
    let log = ancm.stderr().join("\n");
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("the app accepted the shutdown message"),
        "{log}"
    );
    wait_none_in(app.path());

    // The stdout log went to the folder written with backslashes.
    let logs: Vec<PathBuf> = std::fs::read_dir(app.path().join("logs"))
        .expect("the logs folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    let written: String = logs
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    assert!(
        written.contains("sampleapp listening on"),
        "{logs:?}: {written}"
    );
}

#[test]
fn without_ctrl_break_a_stop_kills_at_once() {
    let Some(wine) = wine() else { return };
    let app = wine.app("", &[]);
    let program = format!("{}\\sampleapp.exe", win_path(app.path()));
    // A plain command gets CTRL_BREAK first; Wine cannot send it, so without a fallback the
    // stop would wait the whole shutdownTimeLimit (far past the deadline of wait_exit).
    let mut ancm = Ancm::run_with(
        wine.ancm(),
        &["--shutdown-time-limit", "600", "--", &program],
    );
    ancm.wait_ready();
    ancm.signal(Signal::SIGINT);
    ancm.wait_exit();
    let log = ancm.stderr().join("\n");
    assert!(log.contains("cannot send CTRL_BREAK"), "{log}");
    assert!(
        !log.contains("did not stop within shutdownTimeLimit"),
        "{log}"
    );
    wait_none_in(app.path());
}

#[test]
fn the_job_object_takes_the_apps_tree_down_when_ancm_is_killed() {
    let Some(wine) = wine() else { return };
    let app = wine.app("", &[("SAMPLEAPP_SPAWN_CHILD", "1")]);
    let ancm = Ancm::run_with(wine.ancm(), &[&win_path(app.path())]);
    ancm.wait_ready();
    ancm.wait_stdout("the app's child", |l| {
        l.contains("sampleapp spawned child pid=")
    });
    // The app and its own child.
    wait_programs_in(app.path(), 2);
    kill(ancm.pid());
    // The last handle to the kill-on-close job went with ancm.
    wait_none_in(app.path());
}

#[test]
fn smoke_exits_0_1_and_2_and_shows_crlf_output_as_lines() {
    let Some(wine) = wine() else { return };
    let app = wine.app("", &[]);
    let app_dir = win_path(app.path());

    let passed = wine.ancm_output(&["smoke", &app_dir, "--timeout", "60"]);
    assert_eq!(
        passed.status.code(),
        Some(0),
        "{}{}",
        text(&passed.stdout),
        text(&passed.stderr)
    );

    let failed = wine.ancm_output(&[
        "smoke",
        &app_dir,
        "--path",
        "/no-such-page",
        "--timeout",
        "60",
    ]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "{}{}",
        text(&failed.stdout),
        text(&failed.stderr)
    );

    let unusable = wine.ancm_output(&["smoke", r"Z:\no\such\folder"]);
    assert_eq!(
        unusable.status.code(),
        Some(2),
        "{}",
        text(&unusable.stderr)
    );
    wait_none_in(app.path());

    // A batch file, run through cmd.exe with the app folder as its working directory (on
    // Windows, cmd refuses a \\?\ one; Wine's accepts it): cmd writes CRLF.
    let batch = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        batch.path().join("app.cmd"),
        "@echo off\r\necho first line from cmd\r\necho second line from cmd\r\nexit /b 3\r\n",
    )
    .expect("write app.cmd");
    std::fs::write(
        batch.path().join("web.config"),
        "<configuration><system.webServer><aspNetCore processPath=\".\\app.cmd\" />\
         </system.webServer></configuration>",
    )
    .expect("write web.config");
    let crashed = wine.ancm_output(&["smoke", &win_path(batch.path()), "--timeout", "60"]);
    let out = format!("{}{}", text(&crashed.stdout), text(&crashed.stderr));
    assert_eq!(crashed.status.code(), Some(1), "{out}");
    assert!(
        out.contains("first line from cmd") && out.contains("second line from cmd"),
        "the app's output: {out}"
    );
    assert!(!out.contains('\r'), "lines end without CR: {out:?}");
}

#[test]
fn the_c_client_drives_the_helper_through_win32_pipes() {
    let Some(wine) = wine() else { return };
    let app = wine.app("", &[]);
    let mut command = Command::new(&wine.loader);
    command
        .arg(&wine.client)
        .arg(win_path(&wine.ancm))
        .arg(win_path(app.path()))
        .env("ANCM_LOG", "info");
    let (status, out, err) = run_client(command);
    check_exchange(status, &out, &err);
    wait_none_in(app.path());
}
