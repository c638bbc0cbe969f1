use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::{client, raw_exchange, Ancm, AppDir, DEADLINE};

/// The two ways ancm serves a plain HTTP/1.1 client. `ANCM_LEAN=off` turns the lean path off.
#[derive(Debug, Clone, Copy)]
enum Path {
    Lean,
    Hyper,
}

/// ancm with `args`, on `path`, not yet ready.
fn run_on(path: Path, args: &[&str]) -> Ancm {
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command.env("ANCM_LOG", "info");
    if let Path::Hyper = path {
        command.env("ANCM_LEAN", "off");
    }
    Ancm::run_with(command, args)
}

/// ancm, on `path`, in front of one process of tests/apps/leftover.py, ready.
fn leftover_app(path: Path) -> (AppDir, Ancm) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/leftover.py");
    let app = AppDir::new(
        &format!(r#"processPath="python3" arguments="-u {script}""#),
        &[],
    );
    let ancm = run_on(path, &[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    (app, ancm)
}

/// The answer to GET /victim, sent on the same client connection right behind `first`, so that
/// ancm takes an app connection for it microseconds after `first`'s response ended: the one
/// `first` used, if ancm kept it.
fn victim_behind(ancm: &Ancm, first: &str) -> String {
    let request = format!(
        "{first} HTTP/1.1\r\nHost: site.test\r\n\r\n\
         GET /victim HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_exchange(ancm.addr(), request.as_bytes());
    let (_, last) = answer.rsplit_once("HTTP/1.1 ").expect("two answers");
    last.to_owned()
}

/// An app that sent more than its response (past its Content-Length, or a body after the
/// head of a HEAD response) left those bytes in its connection, already there when the next
/// request takes it: the connection is closed instead, and the next client gets its own answer.
#[test]
fn an_app_connection_with_bytes_past_the_response_is_not_reused() {
    for path in [Path::Lean, Path::Hyper] {
        let (_app, ancm) = leftover_app(path);
        for first in ["GET /overlong", "HEAD /head-body"] {
            let answer = victim_behind(&ancm, first);
            assert!(
                answer.starts_with("200") && answer.ends_with("\r\n\r\nok /victim"),
                "{path:?}, behind {first}: {answer}"
            );
        }
    }
}

/// A response framed two ways (Transfer-Encoding and Content-Length) ends where ancm read it,
/// which may not be where the app meant: the connection is not reused, so what the app sends
/// after (here, late) reaches no other client.
#[test]
fn an_app_connection_after_an_ambiguous_response_is_not_reused() {
    for path in [Path::Lean, Path::Hyper] {
        let (_app, ancm) = leftover_app(path);
        let answer = victim_behind(&ancm, "GET /ambiguous");
        assert!(
            answer.starts_with("200") && answer.ends_with("\r\n\r\nok /victim"),
            "{path:?}: {answer}"
        );
    }
}

/// Reads from `stream` into `seen` until it holds `what`.
fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, what: &str) {
    let mut piece = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(what) {
        let n = stream.read(&mut piece).expect("read");
        assert!(
            n > 0,
            "closed before {what:?}: {}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&piece[..n]);
    }
}

/// An app that answered before taking the request body may never read it, and would take it
/// for the start of the next request on that connection (here a body that begins a request
/// for /stolen). The body went to the app only after the answer had begun: the connection is
/// not reused, and the next request gets its own answer.
#[test]
fn an_app_connection_whose_app_answered_before_the_body_went_is_not_reused() {
    let body = "GET /stolen HTTP/1.1\r\nX-Pad: ";
    for path in [Path::Lean, Path::Hyper] {
        let (_app, ancm) = leftover_app(path);
        let mut stream = TcpStream::connect(ancm.addr()).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let head = format!(
            "POST /unread HTTP/1.1\r\nHost: site.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        let mut seen = Vec::new();
        read_until(&mut stream, &mut seen, "unrea");
        stream.write_all(body.as_bytes()).expect("write body");
        read_until(&mut stream, &mut seen, "unread");
        stream
            .write_all(b"GET /victim HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
            .expect("write the next request");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        let rest = String::from_utf8_lossy(&rest);
        assert!(
            rest.starts_with("HTTP/1.1 200") && rest.ends_with("\r\n\r\nok /victim"),
            "{path:?}: {rest}"
        );
    }
}

/// The rule holds back only connections an app left in doubt: after a request body the app
/// read in full before answering (small, as the lean path takes it, and large, streamed on
/// hyper's path), the next request reuses the connection.
#[test]
fn an_app_connection_is_reused_after_a_body_the_app_read() {
    let app = AppDir::new("", &[]);
    for path in [Path::Lean, Path::Hyper] {
        let ancm = run_on(path, &[app.path().to_str().expect("utf-8")]);
        ancm.wait_ready();
        // One client connection: ancm's pools are per proxy thread, and a client connection
        // stays on one thread.
        let http = client();
        let mut peers = Vec::new();
        for size in [100, 1 << 20, 0] {
            let response = http
                .post(format!("{}/upload", ancm.url))
                .body(vec![b'x'; size])
                .send()
                .expect("request through ancm");
            assert_eq!(response.status(), 200, "{path:?}");
            let peer = response
                .headers()
                .get("x-sampleapp-peer")
                .and_then(|v| v.to_str().ok())
                .expect("the app names the connection")
                .to_owned();
            peers.push(peer);
        }
        assert!(
            peers.iter().all(|peer| *peer == peers[0]),
            "{path:?}: one connection for all: {peers:?}"
        );
    }
}
