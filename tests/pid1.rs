use std::process::Command;

use nix::sys::signal::Signal;

use crate::support::{ancm_bin, descendants, eventually_ok, sampleapp, Ancm, AppDir};

/// The state letter of a process (R, S, Z, ...) and its command name, from /proc.
fn state(pid: u32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_owned();
    let letter = stat[close + 1..].trim_start().chars().next()?;
    Some((letter, name))
}

/// The parent of a process, from /proc.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// ancm as a container's entrypoint: PID 1 of a new PID namespace. It reaps what the app
/// orphans (no zombies pile up), takes SIGTERM as a stop although PID 1 gets no default signal
/// handling from the kernel, and exits 0 after a clean stop.
#[test]
fn as_pid_1_it_reaps_orphans_and_stops_on_sigterm() {
    // Each `(sleep 1 &)` leaves an orphan that re-parents to PID 1 and exits a second later.
    let app = AppDir::new(
        &format!(
            r#"processPath="sh" arguments="-c &quot;for i in 1 2 3 4 5; do (sleep 1 &amp;); done; exec {}&quot;""#,
            sampleapp().display()
        ),
        &[],
    );
    let mut unshare = Command::new("unshare");
    unshare
        // If the test fails and unshare is killed, ancm (and so the whole namespace) goes too.
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(ancm_bin())
        .env("ANCM_LOG", "info");
    let mut ancm = Ancm::run_app_with(unshare, &app, &[]);
    ancm.wait_ready();
    assert_eq!(ancm.get("/").status(), 200);
    // unshare's child, which became ancm.
    let pid1 = descendants(ancm.pid())
        .into_iter()
        .find(|&pid| {
            parent(pid) == Some(ancm.pid()) && state(pid).is_some_and(|(_, name)| name == "ancm")
        })
        .expect("ancm under unshare");

    ancm.wait_stderr("an orphan", |l| l.contains("re-parented to ancm"));
    // The orphans lived and went, and nothing of them is left, not even a zombie.
    eventually_ok("the orphans to go", || {
        let left: Vec<_> = descendants(pid1)
            .into_iter()
            .filter_map(state)
            .filter(|(letter, name)| *letter == 'Z' || name == "sleep")
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {left:?}"))
        }
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid1).expect("pid")),
        Signal::SIGTERM,
    )
    .expect("SIGTERM to PID 1");
    let status = ancm.wait_exit();
    assert!(status.success(), "{status}: {:?}", ancm.stderr());
    ancm.wait_stderr("the stop", |l| l.ends_with("stopped"));
}
