use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{client, descendants, wait_all_gone, Ancm, AppDir, DEADLINE};

fn kill(pid: u32, signal: Signal) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        signal,
    )
    .expect("signal");
}

/// What a load loop saw: answers by status, and requests that got no answer at all.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    bad_gateway: usize,
    other_status: Vec<u16>,
    no_answer: Vec<String>,
}

fn load(
    stop: Arc<AtomicBool>,
    send: impl Fn() -> reqwest::Result<reqwest::blocking::Response> + Send + 'static,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen::default();
        while !stop.load(Ordering::SeqCst) {
            match send() {
                Ok(r) if r.status() == 200 => seen.ok += 1,
                Ok(r) if r.status() == 502 => seen.bad_gateway += 1,
                Ok(r) => seen.other_status.push(r.status().as_u16()),
                Err(err) => seen.no_answer.push(err.to_string()),
            }
        }
        seen
    })
}

#[test]
fn kill_9_of_the_app_under_load_answers_every_request() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    let (first, _) = ancm.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let client = client();
    let url = ancm.url.clone();
    let gets = load(stop.clone(), {
        let client = client.clone();
        let url = url.clone();
        move || client.get(format!("{url}/pid")).send()
    });
    let uploads = load(stop.clone(), move || {
        client
            .post(format!("{url}/upload"))
            .body(vec![7u8; 256 * 1024])
            .send()
    });
    // Wait until both loops are under way.
    let deadline = Instant::now() + DEADLINE;
    while crate::support::client()
        .get(format!("{}/requests", ancm.url))
        .send()
        .and_then(|r| r.text())
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        < 50
    {
        assert!(Instant::now() < deadline, "load did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(first, Signal::SIGKILL);
    let (second, _) = ancm.wait_ready_after(first);
    // Service is back: the new process answers.
    let deadline = Instant::now() + DEADLINE;
    while ancm.get("/pid").text().unwrap_or_default() != second.to_string() {
        assert!(Instant::now() < deadline, "service did not come back");
    }
    stop.store(true, Ordering::SeqCst);
    for seen in [gets.join().expect("gets"), uploads.join().expect("uploads")] {
        assert!(
            seen.no_answer.is_empty(),
            "no request may hang or go unanswered: {seen:?}"
        );
        assert!(seen.other_status.is_empty(), "failures are 502s: {seen:?}");
        assert!(seen.ok > 0, "{seen:?}");
    }
}

#[test]
fn sigkill_of_ancm_under_load_leaves_no_process_and_frees_the_ports() {
    let app = AppDir::new("", &[]);
    let mut ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    let (_, app_port) = ancm.wait_ready();
    let front: SocketAddr = ancm
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("front address");
    let tree = descendants(ancm.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let url = ancm.url.clone();
    let loader = load(stop.clone(), move || {
        client().get(format!("{url}/sleep?ms=20")).send()
    });
    ancm.wait_stdout("load", |l| l.contains("sampleapp sleeping"));

    ancm.signal(Signal::SIGKILL);
    ancm.wait_exit();
    stop.store(true, Ordering::SeqCst);
    let _ = loader.join();
    wait_all_gone(&tree);
    let deadline = Instant::now() + DEADLINE;
    for addr in [front, SocketAddr::from(([127, 0, 0, 1], app_port))] {
        while TcpListener::bind(addr).is_err() {
            assert!(Instant::now() < deadline, "{addr} was not freed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn slow_clients_do_not_stop_others_and_are_closed() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[
        app.path().to_str().expect("utf-8"),
        "--header-read-timeout",
        "2s",
    ]);
    ancm.wait_ready();
    let front: SocketAddr = ancm
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("front address");

    // 500 clients, each trickling its request head a byte at a time.
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(front).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
            s.set_read_timeout(Some(Duration::from_millis(5)))
                .expect("timeout");
            s
        })
        .collect();
    let started = Instant::now();
    // Others are served meanwhile, promptly.
    for _ in 0..20 {
        let asked = Instant::now();
        assert_eq!(ancm.get("/").status(), 200);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "served promptly despite slow clients"
        );
    }
    // A byte a second until ancm closes them all; bounded.
    let mut open = slow.len();
    while open > 0 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_secs(1));
        open = 0;
        for stream in &mut slow {
            let closed = stream.write_all(b"s").is_err() || is_closed(stream);
            if !closed {
                open += 1;
            }
        }
    }
    assert_eq!(
        open, 0,
        "slow clients are closed by the header read timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the timeout"
    );
}

/// Whether the peer has closed `stream` (a read returns end of file or an error other than a
/// timeout).
fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Sends raw bytes and returns the status line of the answer ("" when closed without one).
fn raw(front: SocketAddr, request: &[u8]) -> String {
    let answer = crate::support::raw_exchange(&front.to_string(), request);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn hostile_requests_get_a_clear_4xx_and_never_reach_the_app() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    let front: SocketAddr = ancm
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("front address");
    let requests_seen = || -> u64 {
        ancm.get("/requests")
            .text()
            .expect("count")
            .parse()
            .expect("number")
    };

    let before = requests_seen();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    for (request, status) in [
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n".to_vec(), "400"),
        (big.into_bytes(), "431"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n".to_vec(), "400"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc".to_vec(), "400"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(), "400"),
    ] {
        let line = raw(front, &request);
        assert!(line.starts_with(&format!("HTTP/1.1 {status}")), "{} -> {line}", String::from_utf8_lossy(&request[..request.len().min(60)]));
    }
    // The count request itself is the only one the app saw.
    assert_eq!(requests_seen(), before + 1, "none of those reached the app");

    // Content-Length and chunked together: chunked wins (RFC 9112 §6.3) and the connection
    // closes after the answer, so a request hidden behind the body is never run.
    let before = requests_seen();
    let smuggle = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /crash HTTP/1.1\r\nHost: x\r\n\r\n";
    let line = raw(front, smuggle);
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    assert_eq!(
        requests_seen(),
        before + 2,
        "the upload and the count, nothing smuggled"
    );
    assert_eq!(ancm.get("/").status(), 200, "ancm and the app are still up");
}

#[test]
fn an_unwritable_log_folder_leaves_the_app_running() {
    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\blocked\stdout""#,
        &[],
    );
    std::fs::write(
        app.path().join("blocked"),
        b"a file where the folder should be",
    )
    .expect("write");
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    assert_eq!(ancm.get("/").status(), 200);
    ancm.wait_stderr("why there is no log", |l| {
        l.contains("could not create the stdout log")
    });
}

/// A tmpfs too small for the log, mounted for the test and unmounted after it.
struct TinyDisk(std::path::PathBuf);

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_log_disk_leaves_the_app_running_and_says_why() {
    let app = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[("SAMPLEAPP_PRINT_AT_START", "20000")],
    );
    let logs = app.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&logs)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "this test mounts a 64 KiB tmpfs (needs root, as CI has)"
    );
    let _disk = TinyDisk(logs);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    ancm.wait_stderr("why logging stopped", |l| {
        l.contains("stdout log stopped: writing to it failed")
    });
    assert_eq!(ancm.get("/").status(), 200, "the app still runs");
    // The console still gets every line.
    ancm.wait_stdout("the last line", |l| l.ends_with("line 20000 of 20000"));
}
