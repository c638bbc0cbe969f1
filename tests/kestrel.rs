//! A real, unmodified ASP.NET Core 3.1 app (with the IIS integration middleware) behind the
//! real ancm, from its own published web.config: the contract's final judge.
//!
//! The runtime and app come from `../shared/kestrel/install.sh DEST`; these tests run when
//! `ANCM_KESTREL_DIR=DEST` is set (`.ci/run` installs it and sets it). Without it they say so
//! and do nothing, except under CI, where a missing app is a failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::support::{alive, client, h2c_client, raw_exchange, Ancm};

/// The install folder, or `None` (and a note) when these tests are not to run here.
fn installed() -> Option<PathBuf> {
    match std::env::var_os("ANCM_KESTREL_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => {
            panic!("ANCM_KESTREL_DIR is not set: CI must install the Kestrel app (../shared/kestrel/install.sh) and set it")
        }
        None => {
            // Straight to stderr, past the test harness's capture, so the note is seen.
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: the real Kestrel app tests need ANCM_KESTREL_DIR (see ../shared/kestrel/install.sh)"
            );
            None
        }
    }
}

/// ancm running the published app from its own folder and web.config.
fn run_app(dir: &std::path::Path) -> Ancm {
    let root = dir.join("dotnet-root");
    let mut command = Command::new(crate::support::ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("DOTNET_ROOT", &root)
        .env("LD_LIBRARY_PATH", dir.join("ssl11"))
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .env("Logging__Console__DisableColors", "true");
    let app = dir.join("apps/foftapi");
    Ancm::run_with(command, &[app.to_str().expect("utf-8")])
}

/// One raw HTTP/1.1 exchange with `addr` on a new connection.
fn raw(addr: &str, request: &str) -> String {
    raw_exchange(addr, request.as_bytes())
}

fn status_of(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or_default()
}

#[test]
fn kestrel_serves_through_ancm_and_stops_on_the_shutdown_message() {
    let Some(dir) = installed() else { return };
    let started = Instant::now();
    let mut ancm = run_app(&dir);
    let (pid, port) = ancm.wait_ready();
    eprintln!("kestrel: ready {:?} after start", started.elapsed());
    // Through ancm the token is right; straight to Kestrel it is missing, and the app refuses.
    let response = ancm.get("/WeatherForecast");
    assert_eq!(response.status(), 200);
    let forecast: serde_json::Value = response.json().expect("JSON");
    assert!(
        forecast.as_array().is_some_and(|a| !a.is_empty()),
        "{forecast}"
    );
    let direct = raw(
        &format!("127.0.0.1:{port}"),
        "GET /WeatherForecast HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&direct), "400", "{direct}");

    let stopping = Instant::now();
    ancm.signal(Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    eprintln!("kestrel: stopped in {:?}", stopping.elapsed());
    let log = ancm.stderr().join("\n");
    assert!(
        log.contains("accepted the shutdown message") && log.contains("status=202 Accepted"),
        "Kestrel takes the shutdown message: {log}"
    );
    assert!(
        log.contains("exited with code 0"),
        "and exits by itself, not by a signal: {log}"
    );
    assert!(!alive(pid));
}

#[test]
fn bodiless_posts_reach_kestrel_framed_over_http1_and_h2c() {
    let Some(dir) = installed() else { return };
    let ancm = run_app(&dir);
    ancm.wait_ready();
    let front = ancm.addr().to_owned();
    for method in ["POST", "PUT", "PATCH"] {
        let answer = raw(
            &front,
            &format!(
                "{method} /WeatherForecast HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
            ),
        );
        // The app has only a GET there: routing answers, not Kestrel's framing check.
        assert_eq!(status_of(&answer), "405", "{method}: {answer}");
    }
    let h2c = h2c_client();
    let response = h2c
        .post(format!("{}/WeatherForecast", ancm.url))
        .send()
        .expect("h2c POST");
    assert_eq!(response.status(), 405);
    assert_eq!(
        h2c.get(format!("{}/WeatherForecast", ancm.url))
            .send()
            .expect("h2c GET")
            .status(),
        200
    );
}

#[test]
fn kestrel_is_restarted_after_kill_9() {
    let Some(dir) = installed() else { return };
    let ancm = run_app(&dir);
    let (first, _) = ancm.wait_ready();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(first).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill");
    let killed = Instant::now();
    let (second, _) = ancm.wait_ready_after(first);
    eprintln!("kestrel: ready again {:?} after kill -9", killed.elapsed());
    assert_ne!(first, second);
    let response = client()
        .get(format!("{}/WeatherForecast", ancm.url))
        .send()
        .expect("answer");
    assert_eq!(response.status(), 200);
}
