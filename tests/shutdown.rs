use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{alive, client, descendants, eventually_ok, wait_all_gone, Ancm, AppDir};

/// ancm running an app that has a child of its own; returns every process below ancm.
fn app_with_grandchild() -> (AppDir, Ancm, Vec<u32>) {
    let app = AppDir::new("", &[("SAMPLEAPP_SPAWN_CHILD", "1")]);
    let ancm = Ancm::run_app(&app, &[]);
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
    let mut ancm = Ancm::run_app(&app, &[]);
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
    let mut ancm = Ancm::run_app(&app, &[]);
    let (app_pid, _) = ancm.wait_ready();
    ancm.signal(Signal::SIGINT);
    ancm.wait_stderr("the graceful stop", |l| l.contains("the shutdown message"));
    // Sooner, it would count as the same request.
    std::thread::sleep(ancm::signals::SAME_REQUEST + Duration::from_millis(100));
    ancm.signal(Signal::SIGINT);
    let started = std::time::Instant::now();
    assert_eq!(ancm.wait_exit().code(), Some(0));
    // A generous regression guard, not a measurement (timings are measured in bench/): the
    // second signal cuts shutdownTimeLimit (60 s) short.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!alive(app_pid));
    assert_eq!(
        ancm.count_stderr(|l| l.contains("SIGINT received again: killing the app now")),
        1,
        "{:?}",
        ancm.stderr()
    );
}

#[test]
fn sigkill_of_ancm_leaves_no_process() {
    let (_app, mut ancm, tree) = app_with_grandchild();

    ancm.signal(Signal::SIGKILL);
    ancm.wait_exit();
    wait_all_gone(&tree);
}

/// Signals a stray `kill` or logrotate may send to every ancm process reach the guard too; it
/// lives through them, and still takes the app down when ancm is killed.
#[test]
fn the_guard_lives_through_stray_signals_and_still_kills_the_app() {
    let (_app, mut ancm, tree) = app_with_grandchild();
    let guard = tree
        .iter()
        .copied()
        .find(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == b"ANCM_PROCESS_GUARD=1"))
        })
        .expect("the guard among ancm's processes");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(guard).expect("pid"));
    for signal in [
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
    ] {
        nix::sys::signal::kill(pid, signal).expect("signal the guard");
    }
    ancm.signal(Signal::SIGKILL);
    ancm.wait_exit();
    wait_all_gone(&tree);
}

#[test]
fn stopping_during_startup_leaves_no_process() {
    let app = AppDir::new("", &[("SAMPLEAPP_NEVER_LISTEN", "1")]);
    let mut ancm = Ancm::run_app(&app, &[]);
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

#[test]
fn a_stop_request_that_comes_twice_at_once_is_one_graceful_stop() {
    let app = AppDir::new("", &[]);
    let mut ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let url = format!("{}/sleep?ms=1000", ancm.url);
    let in_flight = std::thread::spawn(move || client().get(url).send().and_then(|r| r.text()));
    ancm.wait_stdout("the request to be in flight", |l| {
        l.contains("sampleapp sleeping")
    });

    // As GNU timeout does: to ancm, then to its process group, ancm included.
    ancm.signal(Signal::SIGTERM);
    ancm.wait_stderr("the stop to begin", |l| {
        l.contains("finishing requests in flight")
    });
    ancm.signal(Signal::SIGTERM);
    assert_eq!(
        in_flight.join().expect("request thread").expect("answer"),
        "slept 1000"
    );
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert!(
        ancm.stdout()
            .iter()
            .any(|l| l.contains("shutdown message received")),
        "the app got the graceful stop: {:?}",
        ancm.stdout()
    );
    assert!(
        ancm.stderr()
            .iter()
            .any(|l| l.contains("SIGTERM received: stopping gracefully")),
        "{:?}",
        ancm.stderr()
    );
    assert_eq!(ancm.count_stderr(|l| l.contains("killing the app now")), 0);
}

#[test]
fn gnu_timeout_stops_the_app_gracefully() {
    let app = AppDir::new("", &[]);
    let mut command = std::process::Command::new("timeout");
    command
        .args(["--preserve-status", "--signal=TERM", "4"])
        .arg(crate::support::ancm_bin())
        .env("ANCM_LOG", "info");
    let mut ancm = Ancm::run_app_with(command, &app, &[]);
    let (app_pid, _) = ancm.wait_ready();
    assert_eq!(ancm.wait_exit().code(), Some(0), "{:?}", ancm.stderr());
    assert!(
        ancm.stdout()
            .iter()
            .any(|l| l.contains("shutdown message received")),
        "the app got the graceful stop: {:?}",
        ancm.stdout()
    );
    assert_eq!(ancm.count_stderr(|l| l.contains("killing the app now")), 0);
    wait_all_gone(&[app_pid]);
}

#[test]
fn sighup_recycles_with_the_configuration_read_again_and_ancm_keeps_running() {
    // Changes alone do not recycle here, so the recycle is the signal's.
    let app = AppDir::new("", &[("SAMPLE_VAR", "before")]);
    let web_config = app.path().join("web.config");
    let config = app.add_handler_setting("disallowRotationOnConfigChange", "true");
    let ancm = Ancm::run_app(&app, &[]);
    let (first, _) = ancm.wait_ready();
    std::fs::write(&web_config, config.replace("before", "after")).expect("write");
    ancm.wait_stderr("the change to be declined", |l| {
        l.contains("not recycling: disallowRotationOnConfigChange is true")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let load = crate::support::process::load(format!("{}/pid", ancm.url), stop.clone());
    ancm.signal(Signal::SIGHUP);
    ancm.wait_stderr("the signal named", |l| l.contains("SIGHUP received"));
    let (second, _) = ancm.wait_ready_after(first);
    ancm.wait_stderr("the recycle", |l| {
        l.contains("recycled: the new process serves")
    });
    wait_all_gone(&[first]);
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, _) = load.join().expect("load");
    assert_eq!(
        failed, 0,
        "no request fails during the recycle ({ok} did not)"
    );

    assert!(alive(ancm.pid()), "ancm keeps running");
    assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
    let echo: serde_json::Value = ancm.get("/echo").json().expect("json");
    assert_eq!(
        echo["env"]["SAMPLE_VAR"], "after",
        "web.config was read again"
    );
}

/// Whether the app's tree is held in a cgroup (where ancm may make one) or followed through
/// ancm's orphans (elsewhere, and with `ANCM_NO_CGROUP`).
#[derive(Clone, Copy, Debug)]
enum Containment {
    Cgroup,
    Orphans,
}

/// ancm running an app that started a daemon (forked twice, in a session of its own, deaf to
/// SIGTERM), once ancm has seen it; returns the app's and the daemon's pids.
fn app_with_daemon(containment: Containment) -> (AppDir, Ancm, u32, u32) {
    let app = AppDir::new("", &[("SAMPLEAPP_SPAWN_DAEMON", "1")]);
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command.env("ANCM_LOG", "info");
    if let Containment::Orphans = containment {
        command.env("ANCM_NO_CGROUP", "1");
    }
    let ancm = Ancm::run_app_with(command, &app, &[]);
    let (app_pid, _) = ancm.wait_ready();
    if let Containment::Orphans = containment {
        let cgroup = std::fs::read_to_string(format!("/proc/{app_pid}/cgroup")).unwrap_or_default();
        assert!(
            !cgroup.contains("/ancm-"),
            "no cgroup was asked for: {cgroup}"
        );
    }
    let daemon = daemon_pid(&ancm, None);
    (app, ancm, app_pid, daemon)
}

/// The pid of a daemon the app started (other than `except`), once ancm has adopted it.
fn daemon_pid(ancm: &Ancm, except: Option<u32>) -> u32 {
    let pid_in = |line: &str| -> Option<u32> {
        line.split_once("sampleapp daemon pid=")?
            .1
            .trim()
            .parse()
            .ok()
    };
    let line = ancm.wait_stdout("the daemon", |l| {
        pid_in(l).is_some_and(|pid| Some(pid) != except)
    });
    let daemon = pid_in(&line).expect("daemon pid");
    ancm.wait_stderr("ancm to adopt the daemon", |l| {
        l.contains("left the app's tree") && l.contains(&format!("pid={daemon}"))
    });
    daemon
}

/// The parent and state of `pid`, from /proc.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

fn zombie_children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_and_state(pid) == Some((parent, 'Z')))
        .collect()
}

fn a_daemon_the_app_started_is_stopped_with_it(containment: Containment) {
    let (_app, mut ancm, app_pid, daemon) = app_with_daemon(containment);
    assert!(alive(daemon), "{containment:?}: the daemon runs");
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0), "{:?}", ancm.stderr());
    wait_all_gone(&[app_pid, daemon]);
}

#[test]
fn a_daemon_the_app_started_is_stopped_with_it_in_a_cgroup() {
    a_daemon_the_app_started_is_stopped_with_it(Containment::Cgroup);
}

#[test]
fn a_daemon_the_app_started_is_stopped_with_it_as_an_orphan() {
    a_daemon_the_app_started_is_stopped_with_it(Containment::Orphans);
}

fn sigkill_of_ancm_kills_a_daemon_the_app_started(containment: Containment) {
    let (_app, mut ancm, app_pid, daemon) = app_with_daemon(containment);
    ancm.signal(Signal::SIGKILL);
    ancm.wait_exit();
    wait_all_gone(&[app_pid, daemon]);
}

#[test]
fn sigkill_of_ancm_kills_a_daemon_the_app_started_in_a_cgroup() {
    sigkill_of_ancm_kills_a_daemon_the_app_started(Containment::Cgroup);
}

#[test]
fn sigkill_of_ancm_kills_a_daemon_the_app_started_as_an_orphan() {
    sigkill_of_ancm_kills_a_daemon_the_app_started(Containment::Orphans);
}

#[test]
fn processes_that_leave_the_app_come_back_to_ancm_and_are_reaped() {
    let (_app, ancm, first, daemon) = app_with_daemon(Containment::Cgroup);
    assert_eq!(
        parent_and_state(daemon).map(|(parent, _)| parent),
        Some(ancm.pid()),
        "the daemon is re-parented to ancm, not to init"
    );
    // A recycle stops the first process's tree while ancm runs on.
    ancm.signal(Signal::SIGHUP);
    let (second, _) = ancm.wait_ready_after(first);
    daemon_pid(&ancm, Some(daemon));
    assert!(alive(second));
    wait_all_gone(&[first, daemon]);
    eventually_ok("ancm to reap its zombies", || {
        let zombies = zombie_children(ancm.pid());
        if zombies.is_empty() {
            Ok(())
        } else {
            Err(format!("ancm left zombies: {zombies:?}"))
        }
    });
}

#[test]
fn sigkill_of_ancm_right_after_a_daemon_escaped_kills_it_as_an_orphan() {
    let app = AppDir::new("", &[("SAMPLEAPP_SPAWN_DAEMON", "1")]);
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command.env("ANCM_LOG", "info").env("ANCM_NO_CGROUP", "1");
    let mut ancm = Ancm::run_app_with(command, &app, &[]);
    // The daemon says its pid as soon as it runs: ancm is killed at once, before its next look
    // for processes that left the app's tree, so only the guard can find the daemon.
    let line = ancm.wait_stdout("the daemon", |l| l.contains("sampleapp daemon pid="));
    ancm.signal(Signal::SIGKILL);
    let daemon: u32 = line
        .split_once("sampleapp daemon pid=")
        .and_then(|(_, pid)| pid.trim().parse().ok())
        .expect("daemon pid");
    ancm.wait_exit();
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    while alive(daemon) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = alive(daemon);
    if survived {
        // Not left behind for the next tests.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(daemon).expect("pid")),
            Signal::SIGKILL,
        );
    }
    assert!(
        !survived,
        "the daemon outlived ancm; ancm had adopted it: {}",
        ancm.count_stderr(|l| l.contains("left the app's tree")) > 0
    );
}

/// The cgroup v2 directory this process is in, where ancm started from here makes its own,
/// if it may write there.
fn own_cgroup_dir() -> Option<std::path::PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount_point = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut fields = before.split(' ').skip(3);
        let (root, mount_point) = (fields.next()?, fields.next()?);
        (after.starts_with("cgroup2 ") && root == "/").then(|| mount_point.to_owned())
    })?;
    let dir = std::path::Path::new(&mount_point).join(own.trim_start_matches('/'));
    let probe = dir.join(format!("ancm-test-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    std::fs::remove_dir(&probe).ok()?;
    Some(dir)
}

#[test]
fn cgroups_left_by_a_killed_ancm_neither_turn_containment_off_nor_stay_empty() {
    let Some(own) = own_cgroup_dir() else {
        eprintln!("NOT RUN: no cgroup v2 directory this test may write in");
        return;
    };
    let me = std::process::id();
    // Empty and old: left by an ancm killed long ago. The third holds a process: not ancm's to
    // remove.
    let empty = own.join(format!("ancm-test-{me}-empty"));
    let busy = own.join(format!("ancm-test-{me}-busy"));
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    for dir in [&empty, &busy] {
        std::fs::create_dir(dir).expect("mkdir");
        let status = std::process::Command::new("touch")
            .args(["-d", "2000-01-01"])
            .arg(dir)
            .status()
            .expect("touch");
        assert!(status.success());
    }
    std::fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).expect("move sleep");

    // The shell makes the cgroup a killed ancm of the same pid in another PID namespace would
    // have left (`ancm-PID-1`), then becomes ancm.
    let app = AppDir::new("", &[]);
    let mut command = std::process::Command::new("sh");
    command.env("ANCM_LOG", "info").args([
        "-c",
        r#"mkdir "$1/ancm-$$-1" && shift && exec "$@""#,
        "sh",
        own.to_str().expect("utf-8"),
        crate::support::ancm_bin().to_str().expect("utf-8"),
    ]);
    let mut ancm = Ancm::run_app_with(command, &app, &[]);
    let (app_pid, _) = ancm.wait_ready();
    let cgroup = std::fs::read_to_string(format!("/proc/{app_pid}/cgroup")).unwrap_or_default();
    let collided = own.join(format!("ancm-{}-1", ancm.pid()));
    let (empty_left, busy_left) = (empty.exists(), busy.exists());
    ancm.signal(Signal::SIGTERM);
    ancm.wait_exit();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    for dir in [&empty, &busy, &collided] {
        let _ = std::fs::remove_dir(dir);
    }

    assert!(
        cgroup.contains("/ancm-"),
        "the app has a cgroup of its own: {cgroup}"
    );
    assert!(!empty_left, "the empty old cgroup is removed");
    assert!(busy_left, "a cgroup holding a process stays");
}
