use std::process::Command;

use crate::support::{ancm_bin, Ancm, AppDir};

/// The committed completion scripts are what `ancm completions` prints today.
#[test]
fn committed_completions_match_the_cli() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "ancm.bash"),
        ("zsh", "_ancm"),
        ("fish", "ancm.fish"),
        ("powershell", "_ancm.ps1"),
        ("elvish", "ancm.elv"),
    ] {
        let output = Command::new(ancm_bin())
            .args(["completions", shell])
            .output()
            .expect("run ancm completions");
        assert!(output.status.success(), "{shell}");
        assert!(!output.stdout.is_empty(), "{shell}");
        let committed = std::fs::read(dir.join(file)).expect("committed completion script");
        assert!(
            committed == output.stdout,
            "completions/{file} is out of date with the command line: run scripts/completions"
        );
    }
}

/// Every subcommand's help ends with examples.
#[test]
fn every_subcommand_help_ends_with_an_example() {
    for subcommand in ["run", "check", "smoke", "helper", "completions"] {
        let output = Command::new(ancm_bin())
            .args([subcommand, "--help"])
            .output()
            .expect("run ancm --help");
        assert!(output.status.success(), "{subcommand}");
        let help = String::from_utf8_lossy(&output.stdout);
        let examples = help
            .find("Examples:")
            .unwrap_or_else(|| panic!("{subcommand}: {help}"));
        assert!(
            help[examples..].contains(&format!("ancm {subcommand}")),
            "{subcommand}'s examples show the command: {help}"
        );
    }
}

/// On a terminal, a spinner with the elapsed time and the app's latest line shows while the app
/// starts; piped, there is none.
#[test]
fn start_spinner_only_on_a_terminal() {
    use crate::support::{sampleapp, Ancm, AppDir};
    use std::io::{BufRead, BufReader};

    let app = AppDir::new(
        "",
        &[
            ("SAMPLEAPP_START_DELAY_MS", "1200"),
            ("SAMPLEAPP_PRINT_AT_START", "1"),
        ],
    );
    let ancm_command = format!(
        "{} run --listen 127.0.0.1:0 --process-path {} {}",
        ancm_bin().display(),
        sampleapp().display(),
        app.path().display()
    );
    // `script` runs ancm on a pseudo-terminal and copies what it draws to our pipe.
    let mut script = Command::new("script")
        .args(["-qfec", &ancm_command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run ancm under script(1) (util-linux)");
    let stdout = script.stdout.take().expect("stdout");
    // Stops ancm and everything under script(1), also when an assertion fails first.
    let script = Stopped(script);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let mut screen = String::new();
    while !screen.contains(crate::support::READY_LINE) {
        let line = rx
            .recv_timeout(crate::support::DEADLINE)
            .unwrap_or_else(|_| panic!("no ready line on the terminal:\n{screen}"));
        screen.push_str(&line);
        screen.push('\n');
    }
    // Each redraw of the spinner line is separated by a carriage return.
    let spinner_shows_latest_line = screen
        .split(['\r', '\n'])
        .any(|frame| frame.contains("starting the app") && frame.contains("line 1 of 1"));
    assert!(spinner_shows_latest_line, "{screen}");
    assert!(screen.contains("starting the app… "), "{screen}");

    drop(script);

    let mut piped = Ancm::run_app(&app, &[]);
    piped.wait_ready();
    piped.signal(nix::sys::signal::Signal::SIGTERM);
    piped.wait_exit();
    assert!(
        !piped
            .stderr()
            .iter()
            .any(|l| l.contains("starting the app…")),
        "no spinner without a terminal"
    );
}

/// A `script(1)` run whose whole tree is stopped (SIGTERM, so ancm stops its app) when dropped.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        for pid in crate::support::descendants(self.0.id()) {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(raw),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let _ = self.0.wait();
    }
}

/// `ancm completions bash | head -1`: the reader goes away early; ancm exits 0, quietly.
#[test]
fn a_reader_that_goes_away_early_is_no_error() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Command::new(ancm_bin())
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ancm completions");
    let stdout = child.stdout.take().expect("stdout");
    // Smaller than the script, so that ancm is still writing when the reader goes.
    let _ = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096));
    let mut reader = BufReader::with_capacity(1, stdout);
    let mut first = String::new();
    reader.read_line(&mut first).expect("the first line");
    assert!(!first.is_empty());
    drop(reader);
    let output = child.wait_with_output().expect("wait for ancm");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// The error that stops ancm shows even with ANCM_LOG=off, as a plain message: no time stamp,
/// no log level.
#[test]
fn the_final_error_is_a_plain_message_whatever_ancm_log_says() {
    let app = AppDir::new("", &[]);
    for log in ["off", "info"] {
        let output = Command::new(ancm_bin())
            .env("ANCM_LOG", log)
            .args([
                "run",
                "--listen",
                "127.0.0.1:0",
                "--startup-time-limit",
                "soon",
            ])
            .arg(app.path())
            .output()
            .expect("run ancm");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr,
            "ancm: error: --startup-time-limit: value \"soon\" is not valid: a whole number of seconds from 0 to 3600\n",
            "ANCM_LOG={log}"
        );
    }
}

/// `ancm run app.js` points to the command that runs the file.
#[test]
fn a_file_that_is_not_a_web_config_gets_the_command_to_run_it() {
    let dir = tempfile::tempdir().expect("dir");
    for (file, hint) in [
        ("app.js", "ancm run -- node "),
        ("main.py", "ancm run -- python3 "),
        ("App.dll", "ancm run -- dotnet "),
        ("server", "ancm run -- COMMAND"),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, b"").expect("write");
        let output = Command::new(ancm_bin())
            .args(["run", "--listen", "127.0.0.1:0"])
            .arg(&path)
            .output()
            .expect("run ancm");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("not a web.config") && stderr.contains(hint),
            "{file}: {stderr}"
        );
    }
}

/// `--listen :0` (or PORT, localhost:PORT) is the IPv4 loopback.
#[test]
fn listen_takes_a_bare_port() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&["--listen", ":0", app.path().to_str().expect("utf-8")]);
    let line = ancm.wait_stderr("the listening line", |l| l.contains("ancm listening on"));
    assert_eq!(line.matches("http://127.0.0.1:").count(), 2, "{line}");
    let help = Command::new(ancm_bin())
        .args(["run", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("localhost:PORT") && help.contains("127.0.0.1:PORT"),
        "{help}"
    );
}
