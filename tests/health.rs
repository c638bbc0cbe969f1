use crate::support::{ancm_bin, sampleapp, wait_all_gone, Ancm, AppDir};

/// A web.config for the sample app with IIS's warm-up module asking `page`.
fn warm_up_app(page: &str, env: &[(&str, &str)]) -> AppDir {
    let vars: String = env
        .iter()
        .map(|(n, v)| format!("<environmentVariable name=\"{n}\" value=\"{v}\" />"))
        .collect();
    AppDir::with_web_config(&format!(
        r#"<configuration>
  <system.webServer>
    <aspNetCore processPath="{}">
      <environmentVariables>{vars}</environmentVariables>
    </aspNetCore>
    <applicationInitialization>
      <add initializationPage="{page}" />
    </applicationInitialization>
  </system.webServer>
</configuration>
"#,
        sampleapp().display()
    ))
}

fn arg(app: &AppDir) -> &str {
    app.path().to_str().expect("utf-8")
}

#[test]
fn a_request_during_warm_up_waits_until_the_warm_up_path_answers() {
    // The sample app answers /warmup 503 five times, then 200.
    let app = warm_up_app("/warmup", &[("SAMPLEAPP_WARM_AFTER", "5")]);
    let ancm = Ancm::run(&[arg(&app)]);
    // Sent at once: it reaches the app only after the sixth warm-up request.
    let response = ancm.get("/requests");
    assert_eq!(response.status(), 200);
    let seen: u64 = response.text().expect("body").parse().expect("a number");
    assert!(
        seen >= 7,
        "the app saw {seen} requests: forwarded before it was warm"
    );
    let stderr = ancm.stderr();
    let warm = stderr
        .iter()
        .position(|l| l.contains("GET /warmup answered 200: the app is warm"))
        .expect("the warm line");
    let ready = stderr
        .iter()
        .position(|l| crate::support::is_ready_line(l))
        .expect("the ready line");
    assert!(warm < ready, "{stderr:#?}");
    ancm.wait_stdout("the sixth warm-up request", |l| {
        l.contains("sampleapp warmup request 6")
    });
}

#[test]
fn the_ready_path_flag_wins_over_web_config() {
    // web.config's page never answers below 500 (the sample app has no such route, but 404
    // would do): the flag's path is the one asked.
    let app = warm_up_app("/warmup", &[("SAMPLEAPP_WARM_AFTER", "1000000")]);
    let ancm = Ancm::run(&[arg(&app), "--ready-path", "/pid"]);
    let (pid, _) = ancm.wait_ready();
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());
    assert!(ancm
        .stderr()
        .iter()
        .any(|l| l.contains("GET /pid answered 200")));
}

#[test]
fn a_process_that_never_warms_up_fails_its_start_and_is_killed() {
    let app = warm_up_app("/warmup", &[("SAMPLEAPP_WARM_AFTER", "1000000")]);
    let ancm = Ancm::run(&[arg(&app), "--startup-time-limit", "3"]);
    let line = ancm.wait_stderr("the failed warm-up", |l| {
        l.contains("GET /warmup (the warm-up path) did not answer below 500")
    });
    assert!(line.contains("status 503"), "{line}");
    assert!(ancm.ready_pids().is_empty());
}

#[test]
fn a_process_that_stops_answering_its_health_path_is_replaced_without_downtime() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[
        arg(&app),
        "--health-path",
        "/health",
        "--health-interval",
        "1s",
        "--health-failures",
        "2",
    ]);
    let (first, _) = ancm.wait_ready();
    assert_eq!(ancm.get("/hang").status(), 200);
    ancm.wait_stderr("the verdict", |l| {
        l.contains("the app failed 2 health probes in a row (GET /health: no answer within")
            && l.contains("replacing it without downtime")
    });
    let (second, _) = ancm.wait_ready_after(first);
    wait_all_gone(&[first]);
    assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
}

#[test]
fn a_process_over_max_memory_is_replaced() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[arg(&app), "--max-memory", "64MiB"]);
    let (first, _) = ancm.wait_ready();
    assert_eq!(ancm.get("/pid").text().expect("pid"), first.to_string());
    assert_eq!(ancm.get("/alloc?mb=100").status(), 200);
    ancm.wait_stderr("the verdict", |l| {
        l.contains("of resident memory, over --max-memory (64 MiB)")
    });
    let (second, _) = ancm.wait_ready_after(first);
    wait_all_gone(&[first]);
    assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
}

#[test]
fn recycle_every_replaces_the_process_periodically() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[arg(&app), "--recycle-every", "2s"]);
    let (first, _) = ancm.wait_ready();
    ancm.wait_stderr("the verdict", |l| {
        l.contains("the app has served for 2s, as --recycle-every says")
    });
    let (second, _) = ancm.wait_ready_after(first);
    wait_all_gone(&[first]);
    assert_ne!(first, second);
}

#[test]
fn check_reports_the_warm_up_page() {
    let app = warm_up_app("/warmup", &[]);
    let output = std::process::Command::new(ancm_bin())
        .args(["check", "--json", arg(&app)])
        .output()
        .expect("run ancm check");
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["initializationPage"], "/warmup");
}

/// As an app pool's identity: ancm runs as root, the app as `nobody`, in a folder and from an
/// executable that user may read.
#[test]
fn user_runs_the_app_as_that_user() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: --user needs ancm to run as root");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("the user database")
        .expect("a user named nobody");
    let dir = tempfile::tempdir().expect("temp dir");
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open.clone()).expect("chmod");
    let program = dir.path().join("sampleapp");
    std::fs::copy(sampleapp(), &program).expect("copy the sample app");
    std::fs::set_permissions(&program, open).expect("chmod");
    std::fs::write(
        dir.path().join("web.config"),
        format!(
            r#"<configuration><system.webServer><aspNetCore processPath="{}"/></system.webServer></configuration>"#,
            program.display()
        ),
    )
    .expect("write web.config");
    let ancm = Ancm::run_app(&dir, &["--user", "nobody"]);
    let (pid, _) = ancm.wait_ready();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("a Uid line");
    let real = uid.split_whitespace().next().expect("the real uid");
    assert_eq!(real, nobody.uid.to_string(), "{status}");
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());
}
