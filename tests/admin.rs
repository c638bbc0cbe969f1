use std::collections::HashMap;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{alive, client, Ancm, AppDir, DEADLINE};

/// `ancm run --admin 127.0.0.1:0 APP`, and the admin listener's base URL.
fn with_admin(app: &AppDir, extra: &[&str]) -> (Ancm, String) {
    let mut args = vec!["--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.push(app.path().to_str().expect("utf-8"));
    let ancm = Ancm::run(&args);
    let line = ancm.wait_stderr("the admin line", |l| l.contains("admin endpoints on "));
    let start = line.find("http://").expect("a URL in the admin line");
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ';' && *c != '(')
        .collect();
    (ancm, url)
}

fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().expect("admin request");
    let status = response.status().as_u16();
    (status, response.text().expect("admin body"))
}

/// Each sample's value by its name and labels (`name{a="1",b="2"}`, labels sorted).
fn scrape(admin: &str) -> HashMap<String, f64> {
    let response = client()
        .get(format!("{admin}/metrics"))
        .send()
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().expect("metrics");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    parsed
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let key = if labels.is_empty() {
                sample.metric
            } else {
                format!("{}{{{}}}", sample.metric, labels.join(","))
            };
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            (key, value)
        })
        .collect()
}

fn status(admin: &str) -> serde_json::Value {
    let (code, body) = get(&format!("{admin}/status"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// Waits until `done` holds for the admin's status.
fn wait_status(
    admin: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let now = status(admin);
        if done(&now) {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {now:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn metrics_count_requests_and_the_apps_life_in_prometheus_text() {
    let app = AppDir::new("", &[]);
    let (ancm, admin) = with_admin(&app, &[]);
    let (pid, port) = ancm.wait_ready();

    assert_eq!(get(&format!("{admin}/healthz")).0, 200);
    for _ in 0..5 {
        assert_eq!(ancm.get("/").status(), 200);
    }
    let upload = client()
        .post(format!("{}/upload", ancm.url))
        .body(vec![b'x'; 10_000])
        .send()
        .expect("upload");
    assert_eq!(upload.status(), 200);
    assert_eq!(ancm.get("/no-such-page").status(), 404);

    let metrics = scrape(&admin);
    let value = |key: &str| {
        *metrics
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from {metrics:#?}"))
    };
    assert_eq!(
        value(r#"ancm_requests_total{class="2xx",protocol="HTTP/1.1"}"#),
        6.0
    );
    assert_eq!(
        value(r#"ancm_requests_total{class="4xx",protocol="HTTP/1.1"}"#),
        1.0
    );
    assert_eq!(
        value(r#"ancm_requests_total{class="2xx",protocol="HTTP/2"}"#),
        0.0
    );
    assert_eq!(value("ancm_request_duration_seconds_count"), 7.0);
    assert_eq!(
        value("ancm_request_duration_seconds"),
        7.0,
        "the +Inf bucket"
    );
    assert_eq!(value("ancm_requests_in_flight"), 0.0);
    assert!(value("ancm_request_body_bytes_total") >= 10_000.0);
    assert!(value("ancm_response_body_bytes_total") > 0.0);
    assert_eq!(value("ancm_app_starts_total"), 1.0);
    assert_eq!(value("ancm_app_restarts_total"), 0.0);
    assert_eq!(value("ancm_app_up"), 1.0);
    assert_eq!(value(r#"ancm_app_exits_total{cause="signal"}"#), 0.0);
    assert_eq!(value("ancm_upstream_connect_failures_total"), 0.0);
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("process_start_time_seconds") > 1_600_000_000.0);
    assert!(
        value(&format!(
            r#"ancm_app_resident_memory_bytes{{pid="{pid}",slot="0"}}"#
        )) > 0.0
    );
    assert!(metrics.contains_key(&format!(
        r#"ancm_app_cpu_seconds_total{{pid="{pid}",slot="0"}}"#
    )));

    // The admin listener is not the front: the front's /metrics is the app's to answer.
    assert_eq!(ancm.get("/metrics").status(), 404);
    let _ = port;
}

#[test]
fn status_and_metrics_follow_a_crash_and_the_restart() {
    let app = AppDir::new("", &[]);
    let (ancm, admin) = with_admin(&app, &[]);
    let (first, port) = ancm.wait_ready();

    let now = status(&admin);
    assert_eq!(now["pid"], ancm.pid());
    assert_eq!(now["app_dir"], app.path().to_str().expect("utf-8"));
    assert_eq!(now["urls"][0], format!("{}/", ancm.url));
    assert!(now["config_source"]
        .as_str()
        .expect("source")
        .ends_with("web.config"));
    let process = &now["processes"][0];
    assert_eq!(process["state"], "ready");
    assert_eq!(process["pid"], first);
    assert_eq!(process["port"], port);
    assert_eq!(process["restarts"], 0);
    assert!(process["started_at"]
        .as_str()
        .expect("started_at")
        .ends_with('Z'));
    assert!(process["rss_bytes"].as_u64().expect("rss") > 0);
    assert!(process["last_exit"].is_null());

    kill(
        Pid::from_raw(i32::try_from(first).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill -9");
    let (second, _) = ancm.wait_ready_after(first);
    let now = wait_status(&admin, "the restarted process", |s| {
        s["processes"][0]["pid"] == second && s["processes"][0]["state"] == "ready"
    });
    let process = &now["processes"][0];
    assert_eq!(process["restarts"], 1);
    assert_eq!(process["last_exit"]["pid"], first);
    assert_eq!(process["last_exit"]["signal"], 9);
    assert_eq!(process["last_exit"]["cause"], "signal");
    assert!(process["last_exit"]["code"].is_null());
    assert_eq!(now["restarts"], 1);

    let metrics = scrape(&admin);
    assert_eq!(metrics[r#"ancm_app_exits_total{cause="signal"}"#], 1.0);
    assert_eq!(metrics["ancm_app_starts_total"], 2.0);
    assert_eq!(metrics["ancm_app_restarts_total"], 1.0);
    assert!(!alive(first));
}

#[test]
fn readyz_says_503_until_a_process_is_ready_and_again_while_draining() {
    let app = AppDir::new("", &[]);
    // Lazy: no process until the first request.
    let (ancm, admin) = with_admin(&app, &["--lazy"]);
    assert_eq!(get(&format!("{admin}/healthz")), (200, "ok\n".to_owned()));
    let (code, body) = get(&format!("{admin}/readyz"));
    assert_eq!(code, 503);
    assert!(body.contains("no app process is ready"), "{body}");

    assert_eq!(ancm.get("/").status(), 200);
    assert_eq!(get(&format!("{admin}/readyz")).0, 200);

    // A stop with a request in flight: ancm drains it, and says it is not ready meanwhile.
    let url = format!("{}/sleep?ms=3000", ancm.url);
    let in_flight = std::thread::spawn(move || client().get(url).send().map(|r| r.status()));
    ancm.wait_stdout("the request to be in flight", |l| {
        l.contains("sampleapp sleeping")
    });
    ancm.signal(Signal::SIGTERM);
    let deadline = std::time::Instant::now() + DEADLINE;
    let body = loop {
        let (code, body) = get(&format!("{admin}/readyz"));
        if code == 503 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "readyz stayed {code}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(body.contains("draining"), "{body}");
    assert_eq!(status(&admin)["draining"], true);
    assert_eq!(in_flight.join().expect("thread").expect("answer"), 200);
}

#[test]
fn admin_listens_on_a_unix_socket_and_removes_it_at_the_stop() {
    use std::io::{Read, Write};
    let app = AppDir::new("", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("admin.sock");
    let mut ancm = Ancm::run(&[
        "--admin",
        socket.to_str().expect("utf-8"),
        app.path().to_str().expect("utf-8"),
    ]);
    ancm.wait_ready();
    ancm.wait_stderr("the admin line", |l| l.contains("admin endpoints on "));
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: ancm\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ready\n"), "{answer}");

    ancm.signal(Signal::SIGTERM);
    assert!(ancm.wait_exit().success());
    assert!(!socket.exists(), "the socket is removed at the stop");
}

#[test]
fn admin_is_off_unless_asked_and_a_bad_address_is_refused() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    assert_eq!(ancm.count_stderr(|l| l.contains("admin endpoints on ")), 0);

    let output = std::process::Command::new(crate::support::ancm_bin())
        .args([
            "run",
            "--admin",
            "example.com:80",
            app.path().to_str().expect("utf-8"),
        ])
        .output()
        .expect("run ancm");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--admin") && stderr.contains("example.com:80"),
        "{stderr}"
    );
}
