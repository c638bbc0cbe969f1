use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::process::load;
use crate::support::{alive, client, eventually, wait_all_gone, Ancm, AppDir};

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn app_offline_stops_the_app_serves_503_and_its_removal_starts_it_again() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    let (first, _) = ancm.wait_ready();

    let offline = app.path().join("App_Offline.htm");
    write(&offline, "<h1>Back soon</h1>");
    ancm.wait_stdout("the graceful stop", |l| {
        l.contains("shutdown message received")
    });
    wait_all_gone(&[first]);
    let response = ancm.get("/anything");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().expect("body"), "<h1>Back soon</h1>");

    // A new content is served as soon as it is written.
    write(&offline, "<h1>Still down</h1>");
    eventually("the new app_offline.htm content to be served", || {
        ancm.get("/").text().expect("body") == "<h1>Still down</h1>"
    });

    std::fs::remove_file(&offline).expect("remove");
    let (second, _) = ancm.wait_ready_after(first);
    assert_ne!(first, second);
    assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
}

#[test]
fn app_offline_at_start_keeps_the_app_down_until_it_goes() {
    let app = AppDir::new("", &[]);
    write(&app.path().join("app_offline.htm"), "maintenance");
    let ancm = Ancm::run_app(&app, &[]);
    let response = ancm.get("/");
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().expect("body"), "maintenance");
    assert_eq!(ancm.count_stderr(|l| l.contains("started the app")), 0);
    std::fs::remove_file(app.path().join("app_offline.htm")).expect("remove");
    ancm.wait_ready();
    assert_eq!(ancm.get("/").status(), 200);
}

#[test]
fn web_config_change_recycles_under_load_with_no_failed_request() {
    let app = AppDir::new("", &[("SAMPLE_VAR", "before")]);
    let ancm = Ancm::run_app(&app, &[]);
    let (first, _) = ancm.wait_ready();

    let stop = Arc::new(AtomicBool::new(false));
    let fast = load(format!("{}/pid", ancm.url), stop.clone());
    let slow = load(format!("{}/sleep?ms=300", ancm.url), stop.clone());
    // Both load loops are under way once the slow one is in the app.
    ancm.wait_stdout("load", |l| l.contains("sampleapp sleeping"));

    let config = std::fs::read_to_string(app.path().join("web.config")).expect("read");
    write(
        &app.path().join("web.config"),
        &config.replace("before", "after"),
    );
    ancm.wait_stderr("the recycle", |l| {
        l.contains("recycled: the new process serves")
    });
    let (second, _) = ancm.wait_ready_after(first);
    wait_all_gone(&[first]);
    // Keep the load on the new process for a moment too.
    ancm.wait_stdout("a request to the new process", |l| {
        l.starts_with(&format!("[app {second}] sampleapp sleeping"))
    });
    stop.store(true, Ordering::SeqCst);
    let (fast_ok, fast_failed, pids) = fast.join().expect("fast load");
    let (slow_ok, slow_failed, _) = slow.join().expect("slow load");
    assert_eq!(
        (fast_failed, slow_failed),
        (0, 0),
        "no request fails during a recycle"
    );
    assert!(fast_ok > 10 && slow_ok > 1, "{fast_ok} {slow_ok}");
    assert!(
        pids.contains(&first.to_string()) && pids.contains(&second.to_string()),
        "{pids:?}"
    );

    let echo: serde_json::Value = ancm.get("/echo").json().expect("json");
    assert_eq!(
        echo["env"]["SAMPLE_VAR"], "after",
        "the new process has the new configuration"
    );
}

#[test]
fn disallow_rotation_on_config_change_keeps_the_app_through_web_config_changes() {
    let app = AppDir::new("", &[("SAMPLE_VAR", "before")]);
    let web_config = app.path().join("web.config");
    let config = app.add_handler_setting("disallowRotationOnConfigChange", "True");
    let ancm = Ancm::run_app(&app, &[]);
    let (pid, _) = ancm.wait_ready();

    write(&web_config, &config.replace("before", "after"));
    ancm.wait_stderr("the change to be declined", |l| {
        l.contains("web.config changed; not recycling: disallowRotationOnConfigChange is true")
    });
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());
    let echo: serde_json::Value = ancm.get("/echo").json().expect("json");
    assert_eq!(
        echo["env"]["SAMPLE_VAR"], "before",
        "the app runs as it was"
    );
    assert_eq!(ancm.ready_pids(), [pid], "no new process");
    assert!(alive(pid));
    assert_eq!(
        ancm.count_stderr(|l| l.contains("unknown handlerSetting")),
        0,
        "a known setting: {:?}",
        ancm.stderr()
    );
}

#[test]
fn a_bad_new_web_config_or_a_failing_new_process_keeps_the_old_one() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    let (pid, _) = ancm.wait_ready();
    let config = std::fs::read_to_string(app.path().join("web.config")).expect("read");

    write(
        &app.path().join("web.config"),
        &config.replace("</aspNetCore>", "</aspNetCor>"),
    );
    let error = ancm.wait_stderr("the config error", |l| {
        l.contains("is not valid, so the app keeps running")
    });
    assert!(
        error.contains("web.config:") && error.contains("not well-formed XML"),
        "{error}"
    );
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());

    let failing = config.replace(
        "</environmentVariables>",
        "  <environmentVariable name=\"SAMPLEAPP_EXIT_AT_START\" value=\"3\" />\n        </environmentVariables>",
    );
    write(&app.path().join("web.config"), &failing);
    ancm.wait_stderr("the failed recycle", |l| {
        l.contains("recycle failed, so the old process keeps serving")
    });
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());
    assert!(alive(pid));
}

#[test]
fn watched_files_recycle_the_app() {
    let app = AppDir::new("", &[]);
    std::fs::create_dir(app.path().join("bin")).expect("mkdir");
    let ancm = Ancm::run_app(&app, &["--watch", "bin/*.dll"]);
    let (first, _) = ancm.wait_ready();
    write(&app.path().join("bin/notes.txt"), "not watched");
    write(&app.path().join("bin/App.dll"), "new build");
    let (second, _) = ancm.wait_ready_after(first);
    assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
    assert_eq!(
        ancm.count_stderr(|l| l.contains("recycling: starting a new process")),
        1
    );
}

#[test]
fn several_processes_share_the_load_and_survive_a_crash() {
    let app = AppDir::new(r#"processesPerApplication="3""#, &[]);
    let ancm = Ancm::run_app(&app, &[]);
    let ready = crate::support::is_ready_line;
    ancm.wait_stderr_count("three processes", 3, ready);
    let pids: BTreeSet<u32> = ancm.ready_pids().into_iter().collect();
    assert_eq!(pids.len(), 3, "three processes, each its own: {pids:?}");
    let answered: BTreeSet<String> = (0..30)
        .map(|_| ancm.get("/pid").text().expect("pid"))
        .collect();
    assert!(
        answered.len() >= 2,
        "requests spread over the processes: {answered:?}"
    );

    let victim = *pids.iter().next().expect("a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(victim).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    // A request already written to the dying process, or sent on one of its kept-alive
    // connections before ancm has read that it closed, may get 502: it is never replayed,
    // since the app cannot be told from one that crashed on it. Once ancm knows the process
    // is gone, the others serve every request while it restarts.
    ancm.wait_stderr("the crash noticed", |l| {
        l.contains("was killed by signal 9")
    });
    for _ in 0..30 {
        assert_eq!(
            ancm.get("/pid").status(),
            200,
            "the others serve while one restarts"
        );
    }
    ancm.wait_stderr_count("the restarted process", 4, ready);
    let restarted = *ancm.ready_pids().last().expect("a pid");
    assert!(
        !pids.contains(&restarted),
        "a new process replaced the killed one"
    );
}

#[test]
fn requests_go_to_the_least_busy_process() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &["--processes", "2"]);
    ancm.wait_stderr_count("two processes", 2, crate::support::is_ready_line);
    let url = format!("{}/sleep?ms=1500", ancm.url);
    let busy = std::thread::spawn(move || client().get(url).send().and_then(|r| r.text()));
    let line = ancm.wait_stdout("the slow request", |l| {
        l.contains("sampleapp sleeping 1500")
    });
    let busy_pid = line
        .trim_start_matches("[app ")
        .split(']')
        .next()
        .expect("pid")
        .to_owned();
    for _ in 0..10 {
        assert_ne!(
            ancm.get("/pid").text().expect("pid"),
            busy_pid,
            "the idle process takes it"
        );
    }
    busy.join().expect("thread").expect("slow request");
}

#[test]
fn lazy_start_waits_for_the_first_request() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &["--lazy"]);
    assert_eq!(ancm.count_stderr(|l| l.contains("started the app")), 0);
    assert_eq!(ancm.get("/").status(), 200);
    // ancm's log is read on a thread of its own: the line may come in just after the answer.
    ancm.wait_stderr("the start", |l| l.contains("started the app"));
    assert_eq!(ancm.count_stderr(|l| l.contains("started the app")), 1);
}

#[test]
fn repeated_crashes_back_off() {
    let app = AppDir::new(
        r#"rapidFailsPerMinute="100""#,
        &[("SAMPLEAPP_EXIT_AT_START", "1")],
    );
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_stderr("the fifth start", |l| {
        l.contains("restarting the app in 800ms")
    });
    let stamps: Vec<time::OffsetDateTime> = ancm
        .stderr()
        .iter()
        .filter(|l| l.contains("started the app"))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .collect();
    assert!(stamps.len() >= 5, "{stamps:?}");
    let gaps: Vec<i128> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).whole_milliseconds())
        .collect();
    // Immediate, then 100, 200, 400 ms (plus the time the app takes to fail): the first
    // restart has no wait announced before it, whatever the machine's load.
    let lines = ancm.stderr();
    let second_start = lines
        .iter()
        .filter(|l| l.contains("started the app"))
        .nth(1)
        .expect("a second start");
    let before_it = lines
        .iter()
        .take_while(|l| *l != second_start)
        .filter(|l| l.contains("restarting the app in"))
        .count();
    assert_eq!(before_it, 0, "the first restart is immediate: {lines:?}");
    assert!(
        gaps[1] >= 100 && gaps[2] >= 200 && gaps[3] >= 400,
        "{gaps:?}"
    );
    assert!(gaps[3] > gaps[1], "{gaps:?}");
}

/// For claims that nothing happens: checks `holds` for a short while, failing the first time it
/// does not.
fn holds_for(window: Duration, what: &str, holds: impl Fn() -> bool) {
    let until = std::time::Instant::now() + window;
    while std::time::Instant::now() < until {
        assert!(holds(), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines about recycles so far, from the watch or from the supervisor.
fn recycles(ancm: &Ancm) -> Vec<String> {
    ancm.stderr()
        .into_iter()
        .filter(|l| l.contains("recycling"))
        .collect()
}

const QUIET: Duration = Duration::from_millis(1500);

#[test]
fn reading_web_config_or_checking_the_folder_does_not_recycle() {
    let app = AppDir::new("", &[]);
    let dir = app.path().to_str().expect("utf-8");
    let ancm = Ancm::run(&[dir]);
    let (pid, _) = ancm.wait_ready();

    for _ in 0..10 {
        std::fs::read_to_string(app.path().join("web.config")).expect("read");
    }
    let check = std::process::Command::new(crate::support::ancm_bin())
        .args(["check", dir])
        .output()
        .expect("ancm check");
    assert!(check.status.success(), "{check:?}");
    holds_for(QUIET, "reads do not recycle", || recycles(&ancm).is_empty());
    assert!(recycles(&ancm).is_empty(), "{:?}", recycles(&ancm));
    assert_eq!(ancm.ready_pids(), [pid], "no new process");
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());
}

#[test]
fn one_edit_of_web_config_recycles_once() {
    let app = AppDir::new("", &[("SAMPLE_VAR", "before")]);
    let ancm = Ancm::run_app(&app, &[]);
    let (first, _) = ancm.wait_ready();

    let web_config = app.path().join("web.config");
    let config = std::fs::read_to_string(&web_config).expect("read");
    write(&web_config, &config.replace("before", "after"));
    let (second, _) = ancm.wait_ready_after(first);
    ancm.wait_stderr("the recycle", |l| {
        l.contains("recycled: the new process serves")
    });
    let once = || ancm.count_stderr(|l| l.contains("recycling: starting a new process")) == 1;
    holds_for(QUIET, "one edit, one recycle", once);
    assert!(once(), "{:?}", recycles(&ancm));
    assert_eq!(ancm.ready_pids(), [first, second]);
}

#[test]
fn rewriting_web_config_with_the_same_settings_does_not_recycle() {
    let app = AppDir::new("", &[]);
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command.env("ANCM_LOG", "debug");
    let ancm = Ancm::run_app_with(command, &app, &[]);
    let (pid, _) = ancm.wait_ready();

    let web_config = app.path().join("web.config");
    let config = std::fs::read_to_string(&web_config).expect("read");
    // Same settings, other bytes: a comment is no setting.
    write(
        &web_config,
        &config.replace("<configuration>", "<configuration><!-- saved again -->"),
    );
    ancm.wait_stderr("the unchanged settings noted", |l| {
        l.contains("web.config was written but its settings are the same")
    });
    write(&web_config, &config);
    ancm.wait_stderr_count("the second write noted", 2, |l| {
        l.contains("web.config was written but its settings are the same")
    });
    assert!(recycles(&ancm).is_empty(), "{:?}", recycles(&ancm));
    assert_eq!(ancm.ready_pids(), [pid], "no new process");
}

#[test]
fn an_app_that_reads_its_watched_files_at_start_does_not_recycle() {
    let app = AppDir::new("", &[("SAMPLEAPP_READ_FILE", "bin/App.dll")]);
    std::fs::create_dir(app.path().join("bin")).expect("mkdir");
    write(&app.path().join("bin/App.dll"), "build 1");
    let ancm = Ancm::run_app(&app, &["--watch", "bin/*.dll"]);
    let (pid, _) = ancm.wait_ready();
    ancm.wait_stdout("the app's read", |l| {
        l.contains("sampleapp read 7 bytes of bin/App.dll")
    });
    holds_for(QUIET, "the app's reads do not recycle", || {
        recycles(&ancm).is_empty()
    });
    assert!(recycles(&ancm).is_empty(), "{:?}", recycles(&ancm));
    assert_eq!(ancm.ready_pids(), [pid], "no new process");
}

#[test]
fn ancm_is_idle_while_app_offline_is_there() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    let (pid, _) = ancm.wait_ready();
    let offline = app.path().join("app_offline.htm");
    write(&offline, "down for maintenance");
    wait_all_gone(&[pid]);
    assert_eq!(ancm.get("/").status(), 503);
    // A reader of the file is no change either.
    std::fs::read_to_string(&offline).expect("read");

    // The CPU budget is a generous regression guard, not a measurement: polling the folder in
    // a busy loop would use most of QUIET; an idle ancm uses next to nothing, however loaded
    // the machine.
    let before = crate::support::process::cpu_time(ancm.pid());
    std::thread::sleep(QUIET);
    let used = crate::support::process::cpu_time(ancm.pid()) - before;
    assert!(
        used < Duration::from_millis(100),
        "ancm used {used:?} of CPU while offline"
    );
    assert_eq!(ancm.get("/").text().expect("body"), "down for maintenance");
}
