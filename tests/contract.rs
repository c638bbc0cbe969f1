use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::{
    both_paths, client, echoed, h2c_client, raw_exchange, Ancm, AppDir, ProxyPath,
};

/// An app folder whose app is the misbehaving app (tests/apps/misbehaving.py).
fn misbehaving_app(attributes: &str) -> AppDir {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/misbehaving.py");
    AppDir::new(
        &format!(r#"processPath="python3" arguments="-u {script}" {attributes}"#),
        &[],
    )
}

/// The misbehaving app behind ancm, ready.
fn misbehaving(attributes: &str) -> (AppDir, Ancm) {
    let app = misbehaving_app(attributes);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    (app, ancm)
}

/// The misbehaving app behind ancm on `path`, ready.
fn misbehaving_on(path: ProxyPath, attributes: &str) -> (AppDir, Ancm) {
    let app = misbehaving_app(attributes);
    let ancm = Ancm::run_app_on(path, &app, &[]);
    ancm.wait_ready();
    (app, ancm)
}

/// One raw HTTP/1.1 request to ancm on a new connection; the whole answer.
fn raw(ancm: &Ancm, request: &str) -> String {
    raw_exchange(ancm.addr(), request.as_bytes())
}

both_paths! {
    fn bodiless_posts_puts_and_patches_reach_the_app_with_content_length_0(path) {
        // The sample app refuses a POST or PUT that declares no length with 411, as Kestrel does.
        let app = AppDir::new("", &[]);
        let ancm = Ancm::run_app_on(path, &app, &[]);
        ancm.wait_ready();
        for method in ["POST", "PUT", "PATCH"] {
            let answer = raw(
                &ancm,
                &format!("{method} /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"),
            );
            assert!(answer.starts_with("HTTP/1.1 200"), "{method}: {answer}");
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            let echo: serde_json::Value = serde_json::from_str(body).expect("echo JSON");
            assert_eq!(echoed(&echo, "content-length"), ["0"], "{method}");
        }
        // A GET stays as it came: no length where none is expected.
        let echo: serde_json::Value = ancm.get("/echo").json().expect("echo JSON");
        assert_eq!(echoed(&echo, "content-length"), Vec::<&str>::new());

        ancm.assert_lean_served("bodiless requests");

        // HTTP/2: a POST whose HEADERS frame ends the stream.
        let response = h2c_client()
            .post(format!("{}/echo", ancm.url))
            .send()
            .expect("h2c POST");
        assert_eq!(response.status(), 200);
        let echo: serde_json::Value = response.json().expect("echo JSON");
        assert_eq!(echoed(&echo, "content-length"), ["0"]);
    }
}

both_paths! {
    fn a_failed_exchange_fails_that_request_at_once_and_nothing_else_waits(path) {
        let (_app, ancm) = misbehaving_on(path, "");
        for path in ["/abort", "/garbage"] {
            let started = Instant::now();
            let response = ancm.get(path);
            assert_eq!(response.status(), 502, "{path}");
            // A generous regression guard, not a measurement (timings are measured in bench/):
            // a failure that waited (for a timeout, a restart) would take far longer.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{path} answered at once, not after a wait: {:?}",
                started.elapsed()
            );
            // The requests beside and after it go straight to the same, healthy process.
            for _ in 0..5 {
                assert_eq!(ancm.get("/fine").text().expect("answer"), "ok /fine");
            }
        }
        assert_eq!(ancm.status()["restarts"], 0, "the app was not restarted");
        // Each failed request reached the app once: nothing is replayed.
        for path in ["/abort", "/garbage"] {
            let seen = ancm
                .stdout()
                .iter()
                .filter(|l| l.ends_with(&format!("GET {path}")))
                .count();
            assert_eq!(seen, 1, "{path} reached the app once: {:?}", ancm.stdout());
        }
        ancm.assert_lean_served("failed exchanges");
    }
}

both_paths! {
    /// On the lean run too the request itself goes to hyper's path (the lean path hands over a
    /// request with Expect); the ones after the crash are the lean path's.
    fn a_request_that_crashes_the_app_is_not_replayed_into_the_next_process(path) {
        let (_app, ancm) = misbehaving_on(path, "");
        let (first, _) = ancm.wait_ready();
        let response = client()
            .post(format!("{}/continue-then-die", ancm.url))
            .header("Expect", "100-continue")
            .body("payload")
            .send()
            .expect("an answer");
        assert_eq!(response.status(), 502);
        let second = ancm.wait_ready_process_after(first);
        assert_ne!(first, second);
        assert_eq!(ancm.get("/after").text().expect("answer"), "ok /after");
        let seen = ancm
            .stdout()
            .iter()
            .filter(|l| l.ends_with("POST /continue-then-die"))
            .count();
        assert_eq!(seen, 1, "sent once: {:?}", ancm.stdout());
    }
}

#[test]
fn an_app_that_refuses_the_shutdown_message_is_signalled_with_a_warning() {
    let (_app, mut ancm) = misbehaving("");
    ancm.signal(nix::sys::signal::Signal::SIGTERM);
    ancm.wait_exit();
    assert!(
        ancm.stderr()
            .iter()
            .any(|l| l.contains("refused the shutdown message")
                && l.contains("status=404 Not Found")),
        "{:?}",
        ancm.stderr()
    );
}

#[test]
fn the_app_takes_the_shutdown_message_and_exits_by_itself() {
    // The sample app answers 411 to a POST without Content-Length, as Kestrel does.
    let app = AppDir::new("", &[]);
    let mut ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    ancm.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    let log = ancm.stderr().join("\n");
    assert!(log.contains("accepted the shutdown message"), "{log}");
    assert!(log.contains("status=202 Accepted"), "{log}");
    assert!(log.contains("exited with code 0"), "{log}");
}

#[test]
fn response_heads_take_many_header_lines_up_to_64_kib() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    // Counted off the wire: test clients, like hyper's, stop at 100 header lines.
    let cookies = |n: u32, size: u32| {
        let answer = raw(
            &ancm,
            &format!("GET /many-headers?n={n}&size={size} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
        answer
            .lines()
            .filter(|l| l.starts_with("set-cookie:"))
            .count()
    };
    assert_eq!(cookies(120, 16), 120);
    // 1,000 short lines fit in 64 KiB too.
    assert_eq!(cookies(1000, 8), 1000);
    // More lines than ancm takes: 502 at once, as for a head over 64 KiB.
    let answer = raw(
        &ancm,
        "GET /many-headers?n=1100&size=8 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer:.200}");
    // Past 64 KiB: 502 at once, and the log says why.
    let response = ancm.get("/many-headers?n=100&size=1000");
    assert_eq!(response.status(), 502);
    ancm.wait_stderr("the reason", |l| {
        l.contains("forwarding to the app failed") && l.contains("too large")
    });
}

/// A request body that arrives in `chunks` pieces, `gap` apart.
struct Trickle {
    chunks: usize,
    gap: Duration,
    pending: Vec<u8>,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            if self.chunks == 0 {
                return Ok(0);
            }
            std::thread::sleep(self.gap);
            self.chunks -= 1;
            self.pending = vec![b'x'; 1024];
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

both_paths! {
    /// The upload is chunked, which the lean path hands to hyper's; the silent app's 502 is the
    /// lean path's own on the lean run.
    fn request_timeout_bounds_each_wait_not_a_transfer_that_keeps_flowing(path) {
        let app = AppDir::new(r#"requestTimeout="00:00:02""#, &[]);
        let ancm = Ancm::run_app_on(path, &app, &[]);
        ancm.wait_ready();
        // 3 s of upload, flowing steadily, under a 2 s requestTimeout.
        let started = Instant::now();
        let body = Trickle {
            chunks: 12,
            gap: Duration::from_millis(250),
            pending: Vec::new(),
        };
        let response = client()
            .post(format!("{}/upload", ancm.url))
            .body(reqwest::blocking::Body::new(body))
            .send()
            .expect("an answer");
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(response.status(), 200, "{:?}", response.text());
        // An app silent for requestTimeout still gets its request a 502.
        assert_eq!(ancm.get("/sleep?ms=4000").status(), 502);
    }
}

/// A web.config for the sample app with IIS request limits.
fn limited_app(limits: &str) -> AppDir {
    AppDir::with_web_config(&format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.webServer>
    <security>
      <requestFiltering>
        <requestLimits {limits} />
      </requestFiltering>
    </security>
    <aspNetCore processPath="{}" />
  </system.webServer>
</configuration>
"#,
        crate::support::sampleapp().display()
    ))
}

fn requests_seen(ancm: &Ancm) -> u64 {
    ancm.get("/requests")
        .text()
        .expect("count")
        .parse()
        .expect("a number")
}

both_paths! {
    /// On the lean run, a request over a limit is handed to hyper's path, which answers it; the
    /// requests within the limits are the lean path's when their bodies arrive whole.
    fn iis_request_limits_are_enforced_before_the_app(path) {
        let app = limited_app(r#"maxAllowedContentLength="1500" maxUrl="64" maxQueryString="32""#);
        let ancm = Ancm::run_app_on(path, &app, &[]);
        ancm.wait_ready();
        let before = requests_seen(&ancm);
        let post = |body: reqwest::blocking::Body| {
            client()
                .post(format!("{}/upload", ancm.url))
                .body(body)
                .send()
                .expect("an answer")
                .status()
        };
        // A declared length over the limit: 413 at once, the app never sees it.
        assert_eq!(post(vec![b'x'; 1501].into()), 413);
        assert_eq!(
            ancm.get(&format!("/{}", "p".repeat(64))).status(),
            414,
            "a path over maxUrl"
        );
        assert_eq!(
            ancm.get(&format!("/echo?{}", "q".repeat(33))).status(),
            414,
            "a query string over maxQueryString"
        );
        assert_eq!(
            requests_seen(&ancm),
            before + 1,
            "none of them reached the app"
        );
        // Within the limits.
        assert_eq!(post(vec![b'x'; 1500].into()), 200);
        assert_eq!(ancm.get(&format!("/echo?{}", "q".repeat(32))).status(), 200);
        // A chunked body is counted as it goes: the app's request is aborted past the limit.
        let chunked = |chunks| {
            reqwest::blocking::Body::new(Trickle {
                chunks,
                gap: Duration::from_millis(1),
                pending: Vec::new(),
            })
        };
        assert_eq!(post(chunked(1)), 200);
        // The answer is 413; a client still sending when ancm closes may see the reset instead.
        let over = client()
            .post(format!("{}/upload", ancm.url))
            .body(chunked(3))
            .send();
        if let Ok(response) = over {
            assert_eq!(response.status(), 413);
        }
        ancm.wait_stderr("the abort", |l| {
            l.contains("passed maxAllowedContentLength")
        });
    }
}

#[test]
fn max_request_body_0_lifts_the_body_limit() {
    let app = limited_app(r#"maxAllowedContentLength="1000""#);
    let ancm = Ancm::run_app(&app, &["--max-request-body", "0"]);
    ancm.wait_ready();
    let response = client()
        .post(format!("{}/upload", ancm.url))
        .body(vec![b'x'; 100_000])
        .send()
        .expect("an answer");
    assert_eq!(response.status(), 200);
}

#[test]
fn a_reload_applies_in_full_to_the_new_process() {
    let app = limited_app(r#"maxAllowedContentLength="100000""#);
    let web_config = app.path().join("web.config");
    let config = std::fs::read_to_string(&web_config).expect("read");
    let with_timeout = config.replace(
        "<aspNetCore ",
        r#"<aspNetCore requestTimeout="00:00:05" processesPerApplication="1" "#,
    );
    std::fs::write(&web_config, &with_timeout).expect("write");
    let ancm = Ancm::run_app(&app, &[]);
    let (first, _) = ancm.wait_ready();
    let upload = |bytes: usize| {
        client()
            .post(format!("{}/upload", ancm.url))
            .body(vec![b'x'; bytes])
            .send()
            .expect("an answer")
            .status()
    };
    assert_eq!(upload(2000), 200);
    assert_eq!(ancm.get("/sleep?ms=1500").status(), 200);

    std::fs::write(
        &web_config,
        with_timeout
            .replace("00:00:05", "00:00:01")
            .replace("100000", "1000")
            .replace(
                r#"processesPerApplication="1""#,
                r#"processesPerApplication="2""#,
            ),
    )
    .expect("write");
    let (second, _) = ancm.wait_ready_after(first);
    ancm.wait_stderr("the recycle", |l| {
        l.contains("recycled: the new process serves")
    });
    assert_eq!(ancm.get("/pid").text().expect("pid"), second.to_string());
    assert_eq!(
        ancm.get("/sleep?ms=1500").status(),
        502,
        "the new requestTimeout"
    );
    assert_eq!(upload(2000), 413, "the new maxAllowedContentLength");
    // What ancm set up at its start is named.
    ancm.wait_stderr("the warning", |l| {
        l.contains("processesPerApplication") && l.contains("only when ancm restarts")
    });
}

#[test]
fn an_upload_answered_early_is_sent_whole_and_the_connection_stays_usable() {
    use std::io::Write;
    // The app answers before it reads a 24 MB body (as an early 401 or 413 would): the client
    // still sends all of it, gets the answer, and its next request on the connection works.
    let (_app, ancm) = misbehaving("");
    let mut stream = std::net::TcpStream::connect(ancm.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let size = 24 * 1024 * 1024;
    let head = format!("POST /early HTTP/1.1\r\nHost: app\r\nContent-Length: {size}\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("head");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..size / chunk.len() {
        stream
            .write_all(&chunk)
            .expect("the whole body goes, though the answer came first");
    }
    stream
        .write_all(b"GET /after HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .expect("the next request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("early"), "{answer}");
    assert!(answer.contains("ok /after"), "{answer}");
}
