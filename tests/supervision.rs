use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::process::cpu_time;
use crate::support::{ancm_bin, both_paths, Ancm, AppDir};

fn pid(p: u32) -> Pid {
    Pid::from_raw(i32::try_from(p).expect("pid"))
}

both_paths! {
    fn restarts_the_app_after_kill_9(path) {
        let app = AppDir::new("", &[]);
        let ancm = Ancm::run_app_on(path, &app, &[]);
        let (first, _) = ancm.wait_ready();
        assert_eq!(ancm.get("/pid").text().expect("pid"), first.to_string());

        kill(pid(first), Signal::SIGKILL).expect("kill -9 the app");
        // A request right after the crash is not lost: it finds the process gone and waits for
        // the restart. (One written to the process while it was still dying may get 502: ancm
        // cannot tell it from a request that crashed the app, and never replays those. Its
        // main thread shows as a zombie while the other threads, which hold its sockets, are
        // still exiting; once ancm has reaped it, every thread is gone and its sockets closed.)
        crate::support::eventually("the app to be gone and reaped", || {
            !std::path::Path::new(&format!("/proc/{first}")).exists()
        });
        let answer = ancm.get("/pid");
        assert_eq!(answer.status(), 200, "{:#?}", ancm.stderr());
        assert_ne!(answer.text().expect("pid"), first.to_string());
        let second = ancm.wait_ready_process_after(first);
        assert_ne!(first, second);
        assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
        ancm.wait_stderr("the crash to be reported", |l| {
            l.contains("was killed by signal 9")
        });
        ancm.assert_lean_served("requests around a crash");
    }
}

#[test]
fn rapid_fail_limit_pauses_restarts_without_spinning() {
    let app = AppDir::new(
        r#"rapidFailsPerMinute="2""#,
        &[("SAMPLEAPP_EXIT_AT_START", "3")],
    );
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_stderr("the rapid-fail pause", |l| {
        l.contains("not starting it again")
    });
    let starts = |a: &Ancm| a.count_stderr(|l| l.contains("started the app"));
    assert_eq!(
        starts(&ancm),
        3,
        "the limit of 2 allows the first start and two restarts"
    );

    let page = ancm.get("/");
    assert_eq!(page.status(), 502);
    let body = page.text().expect("page");
    assert!(
        body.contains("rapidFailsPerMinute (2)") && body.contains("exited before it listened"),
        "{body}"
    );

    // While paused, ancm neither restarts the app nor burns CPU. The CPU budget is a generous
    // regression guard, not a measurement: a busy loop would use most of the 1.5 s; an idle
    // ancm uses next to nothing, however loaded the machine.
    let cpu_before = cpu_time(ancm.pid());
    let watch_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        assert_eq!(starts(&ancm), 3, "no start while paused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let used = cpu_time(ancm.pid()) - cpu_before;
    assert!(
        used < Duration::from_millis(300),
        "ancm used {used:?} of CPU while paused"
    );
}

#[test]
fn failed_start_gives_a_502_page_that_says_why_and_tells_no_secrets() {
    let secret = "Secr3t-Hunter2";
    let app = AppDir::new(
        &format!(r#"rapidFailsPerMinute="100" arguments="--db-password={secret}""#),
        &[
            ("SAMPLEAPP_EXIT_AT_START", "3"),
            (
                "SAMPLEAPP_STDERR_AT_START",
                "boom: the connection string is missing",
            ),
            ("ASPNETCORE_ENVIRONMENT", "Production"),
        ],
    );
    let folder = app.path().to_str().expect("utf-8").to_owned();
    let real_folder = std::fs::canonicalize(app.path()).expect("folder");
    let real_folder = real_folder.to_str().expect("utf-8");
    let link = "https://help.example/startup?app=shop&why=<502>";

    let mut command = Command::new(ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("ANCM_ADDITIONAL_ERROR_PAGE_LINK", link);
    let ancm = Ancm::run_with(command, &[&folder]);
    let page = ancm.get("/");
    assert_eq!(page.status(), 502);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let body = page.text().expect("page");
    assert!(
        body.contains("502.5") && body.contains("the app exited before it listened on its port"),
        "{body}"
    );
    assert!(
        body.contains("ancm's console")
            && body.contains("ASPNETCORE_ENVIRONMENT=Development")
            && body.contains("ASPNETCORE_DETAILEDERRORS=true"),
        "where to look: {body}"
    );
    for private in [
        secret,
        folder.as_str(),
        real_folder,
        "connection string",
        "sampleapp",
        "code 3",
    ] {
        assert!(!body.contains(private), "{private:?} on the page: {body}");
    }
    assert!(
        body.contains(r#"<a href="https://help.example/startup?app=shop&amp;why=&lt;502&gt;">"#),
        "ANCM_ADDITIONAL_ERROR_PAGE_LINK, escaped: {body}"
    );
    drop(ancm);

    let ancm = Ancm::run(&[&folder, "--env", "ASPNETCORE_DETAILEDERRORS=true"]);
    let body = ancm.get("/").text().expect("page");
    for detail in [
        secret,
        real_folder,
        "boom: the connection string is missing",
        "exited with code 3 before it listened",
    ] {
        assert!(
            body.contains(detail),
            "{detail:?} with detailed errors: {body}"
        );
    }
    assert!(
        !body.contains("help.example"),
        "no link unless asked: {body}"
    );
    drop(ancm);

    let ancm = Ancm::run(&[
        &folder,
        "--env",
        "ASPNETCORE_ENVIRONMENT=Development",
        "--env",
        "ANCM_ADDITIONAL_ERROR_PAGE_LINK=https://help.example/dev",
    ]);
    let body = ancm.get("/").text().expect("page");
    assert!(
        body.contains("boom: the connection string is missing") && body.contains(secret),
        "Development shows the details: {body}"
    );
    assert!(
        body.contains(r#"<a href="https://help.example/dev">"#),
        "the link from the app's environment: {body}"
    );
}

#[test]
fn start_timeout_and_missing_executable_give_502_pages() {
    let app = AppDir::new(
        r#"startupTimeLimit="1""#,
        &[("SAMPLEAPP_NEVER_LISTEN", "1")],
    );
    let ancm = Ancm::run_app(&app, &[]);
    let started = Instant::now();
    let page = ancm.get("/");
    assert_eq!(page.status(), 502);
    let body = page.text().expect("page");
    assert!(body.contains("within startupTimeLimit (1 s)"), "{body}");
    // A generous regression guard, not a measurement (timings are measured in bench/): the
    // page comes after startupTimeLimit (1 s), not after some longer wait.
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(ancm);

    // A program that is missing at start stops ancm at once (tests/config.rs); one that goes
    // after the start, before a lazy first start, gives the page.
    let app = AppDir::new(r#"processPath=".\NoSuchApp.exe""#, &[]);
    let program = app.path().join("NoSuchApp.exe");
    std::fs::write(&program, b"").expect("the program, for now");
    let ancm = Ancm::run_app(&app, &["--lazy"]);
    std::fs::remove_file(&program).expect("remove the program");
    let body = ancm.get("/").text().expect("page");
    assert!(
        body.contains("the app's executable could not be started") && !body.contains("NoSuchApp"),
        "the kind of failure, not the program: {body}"
    );
    drop(ancm);

    std::fs::write(&program, b"").expect("the program, for now");
    let ancm = Ancm::run_app(&app, &["--lazy", "--env", "ASPNETCORE_DETAILEDERRORS=1"]);
    std::fs::remove_file(&program).expect("remove the program");
    let body = ancm.get("/").text().expect("page");
    assert!(
        body.contains("NoSuchApp") && body.contains("could not be started: not found"),
        "{body}"
    );
}

#[test]
fn app_listening_only_on_ipv6_loopback_is_ready() {
    let app = AppDir::new("", &[("SAMPLEAPP_IPV6", "1")]);
    let ancm = Ancm::run_app(&app, &[]);
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return; // no IPv6 loopback on this machine
    }
    ancm.wait_ready();
    assert_eq!(ancm.get("/").status(), 200);
}

/// A fixed ASPNETCORE_PORT that another process listens on: ancm must not take that process for
/// the app, so no request (nor the pairing token) reaches it, and the start fails saying who
/// holds the port.
#[test]
fn a_fixed_port_held_by_another_process_is_never_forwarded_to() {
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the foreign listener");
    let port = foreign.local_addr().expect("its address").port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let reached = reached.clone();
        // Answers as a working app would, so that forwarding to it would look like success.
        std::thread::spawn(move || {
            for stream in foreign.incoming() {
                let Ok(mut stream) = stream else { continue };
                reached.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = std::io::Write::write_all(
                    &mut stream,
                    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nforeign",
                );
            }
        });
    }
    let port_text = port.to_string();
    let app = AppDir::new(
        r#"rapidFailsPerMinute="100""#,
        &[
            ("ASPNETCORE_PORT", &port_text),
            ("ASPNETCORE_DETAILEDERRORS", "true"),
        ],
    );
    let taken = format!("port {port} is taken by PID {}", std::process::id());

    let ancm = Ancm::run_app(&app, &[]);
    let page = ancm.get("/");
    let status = page.status();
    let body = page.text().expect("page");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("502.5") && body.contains(&taken), "{body}");
    ancm.wait_stderr("the log to name the port's holder", |l| l.contains(&taken));
    drop(ancm);

    let output = std::process::Command::new(crate::support::ancm_bin())
        .arg("smoke")
        .arg(app.path())
        .args(["--timeout", "20"])
        .output()
        .expect("run ancm smoke");
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the app did not start: ") && out.contains(&taken),
        "{out}"
    );
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "ancm connected to the process that holds the port"
    );
}

/// An app folder running tests/apps/elsewhere.py in `mode` with `attributes`.
fn elsewhere_app(mode: &str, attributes: &str) -> AppDir {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/elsewhere.py");
    AppDir::new(
        &format!(r#"processPath="python3" arguments="-u {script} {mode}" {attributes}"#),
        &[("ASPNETCORE_DETAILEDERRORS", "true")],
    )
}

#[test]
fn an_app_listening_on_a_port_of_its_own_is_named_with_the_fix() {
    let app = elsewhere_app("own", r#"startupTimeLimit="3" rapidFailsPerMinute="0""#);
    let ancm = Ancm::run_app(&app, &["--port-env", "PORT"]);
    let line = ancm.wait_stdout("the app to listen", |l| {
        l.contains("elsewhere: listening on ")
    });
    let addr = line
        .rsplit(' ')
        .next()
        .expect("the app's address")
        .to_owned();
    let started = ancm.wait_stderr("the start", |l| l.contains("started the app"));
    let port = started
        .split("port=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the app's port")
        .to_owned();

    let hint = format!(
        "the app listens on {addr}, not on port {port} that ancm gave it in ASPNETCORE_PORT and \
         PORT; pass the port with --port-env NAME or %ASPNETCORE_PORT% in arguments"
    );
    ancm.wait_stderr("the hint", |l| l.contains(&hint));
    // Before the start times out, whatever the machine's load: the order of the lines says it.
    assert!(
        !ancm
            .stderr()
            .iter()
            .any(|l| l.contains("within startupTimeLimit")),
        "the hint comes before startupTimeLimit"
    );

    // At startupTimeLimit, the failure and its page say the same.
    ancm.wait_stderr("the start to time out", |l| {
        l.contains("within startupTimeLimit (3 s) and was killed") && l.contains(&hint)
    });
    let page = ancm.get("/");
    assert_eq!(page.status(), 502);
    let body = page.text().expect("page");
    // Nothing in the hint needs escaping in HTML.
    assert!(body.contains(&hint), "{body}");
    assert_eq!(
        ancm.count_stderr(|l| l.contains(&hint) && !l.contains("startupTimeLimit")),
        1,
        "said once"
    );
}

#[test]
fn an_app_listening_on_all_interfaces_gets_a_warning() {
    let app = elsewhere_app("everywhere", "");
    let ancm = Ancm::run_app(&app, &[]);
    let (_, port) = ancm.wait_ready();
    ancm.wait_stderr("the exposure warning", |l| {
        l.contains(&format!(
            "the app listens on all interfaces (0.0.0.0:{port})"
        )) && l.contains("reachable from other machines")
    });
    assert_eq!(ancm.get("/").text().expect("answer"), "ok");
}
