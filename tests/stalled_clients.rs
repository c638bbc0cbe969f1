use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{runtime, Ancm, AppDir, DEADLINE};

/// A download far larger than any buffer between the app and a client that does not read.
const ENDLESS: &str = "/stream?bytes=100000000000&report=1";

fn run(app: &AppDir, extra: &[&str]) -> Ancm {
    run_with_lean(app, extra, true)
}

/// [`run`], with the lean path on or (`ANCM_LEAN=off`) off.
fn run_with_lean(app: &AppDir, extra: &[&str], lean: bool) -> Ancm {
    let mut args = vec![app.path().to_str().expect("utf-8"), "--send-timeout", "1s"];
    args.extend_from_slice(extra);
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command.env("ANCM_LOG", "info");
    if !lean {
        command.env("ANCM_LEAN", "off");
    }
    let ancm = Ancm::run_with(command, &args);
    ancm.wait_ready();
    ancm
}

fn wait_aborted(ancm: &Ancm) {
    ancm.wait_stdout("the app to see its download aborted", |l| {
        l.contains("sampleapp stream aborted")
    });
}

/// Reads what is left until the connection ends; panics if it is still open after DEADLINE.
fn read_to_close(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(err) => panic!("the connection is still open: {err}"),
        }
    }
}

/// An HTTP/1.1 client that asks for a download and reads nothing is cut off after the send
/// timeout, and its request to the app is aborted; on the lean path and on hyper's
/// (`ANCM_LEAN=off`).
#[test]
fn a_client_that_stops_reading_is_cut_off_and_its_request_aborted() {
    for (path, lean) in [("lean", true), ("hyper", false)] {
        let app = AppDir::new("", &[]);
        let ancm = run_with_lean(&app, &[], lean);
        let mut stream = TcpStream::connect(ancm.addr()).expect("connect");
        write!(stream, "GET {ENDLESS} HTTP/1.1\r\nHost: site\r\n\r\n").expect("send");
        wait_aborted(&ancm);
        read_to_close(&mut stream);
        assert_eq!(ancm.get("/").status(), 200, "{path}: others are served");
        assert!(
            ancm.stderr()
                .iter()
                .any(|l| l.contains("took nothing of its response")),
            "{path}: {:?}",
            ancm.stderr()
        );
    }
}

#[test]
fn a_tls_client_that_stops_reading_is_cut_off_and_its_request_aborted() {
    let (_files, cert, key, trusted) = crate::support::self_signed();
    let app = AppDir::new("", &[]);
    let ancm = run(
        &app,
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let rt = runtime();
    let mut tls = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(ancm.addr())
            .await
            .expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        tls.write_all(format!("GET {ENDLESS} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .expect("send");
        tls.flush().await.expect("flush");
        tls
    });
    wait_aborted(&ancm);
    rt.block_on(async {
        let mut buf = vec![0; 64 * 1024];
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        closed.await.expect("the connection closed");
    });
}

/// An HTTP/2 stream whose window the client never opens again is reset after the send
/// timeout and its request to the app aborted, while the connection's other streams go on.
#[test]
fn an_http2_stream_the_client_does_not_read_is_reset() {
    let app = AppDir::new("", &[]);
    let ancm = run(&app, &[]);
    let addr = ancm.addr().to_owned();
    let rt = runtime();
    let (mut sender, stalled) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(65_535)
            .handshake(TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
        tokio::spawn(conn);
        let request = Request::get(format!("http://{addr}{ENDLESS}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("response head");
        assert_eq!(response.status(), 200);
        // Not read: the stream's window stays shut once the first 64 KiB have come.
        (sender, response.into_body())
    });
    wait_aborted(&ancm);
    rt.block_on(async {
        let request = Request::get(format!("http://{addr}/pid"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
            .await
            .expect("in time")
            .expect("the connection still serves");
        assert_eq!(response.status(), 200);
        let read = tokio::time::timeout(DEADLINE, stalled.collect())
            .await
            .expect("the stalled stream ended");
        let err = read.expect_err("the stalled stream was reset");
        assert!(format!("{err:?}").contains("CANCEL"), "{err:?}");
    });
}

/// A WebSocket with no traffic either way for the idle timeout is closed.
#[test]
fn an_idle_websocket_is_closed_after_the_idle_timeout() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8"), "--idle-timeout", "1s"]);
    ancm.wait_ready();
    runtime().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", ancm.addr()))
            .await
            .expect("handshake through ancm");
        ws.send(Message::text("hi")).await.expect("send");
        let echo = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("an echo in time");
        assert_eq!(echo.expect("a message").expect("ok"), Message::text("hi"));
        let closed = tokio::time::timeout(DEADLINE, async {
            while let Some(Ok(_)) = ws.next().await {}
        });
        closed.await.expect("the idle WebSocket was closed by ancm");
    });
}

/// One HTTP/2 connection holds at most 32 requests to the app at once: a 33rd stream reaches
/// the app only when one of the first ends.
#[test]
fn an_http2_connection_holds_at_most_32_requests_to_the_app() {
    let app = AppDir::new("", &[]);
    let ancm = run(&app, &[]);
    let addr = ancm.addr().to_owned();
    let rt = runtime();
    let waiting = |i: u32| format!("sampleapp abort-watch waiting {} ms", 60_000 + i);
    let streams: Vec<_> = rt.block_on(async {
        let sender = crate::support::h2c_sender(&addr).await;
        (0..33u32)
            .map(|i| {
                let mut sender = sender.clone();
                let request = Request::get(format!("http://{addr}/abort-watch?ms={}", 60_000 + i))
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                tokio::spawn(async move { sender.send_request(request).await })
            })
            .collect()
    });
    let arrived = |lines: &[String], i: u32| lines.iter().any(|l| l.contains(&waiting(i)));
    let deadline = std::time::Instant::now() + DEADLINE;
    let in_app = loop {
        let lines = ancm.stdout();
        let in_app: Vec<u32> = (0..33).filter(|&i| arrived(&lines, i)).collect();
        if in_app.len() >= 32 {
            break in_app;
        }
        assert!(std::time::Instant::now() < deadline, "{lines:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(in_app.len(), 32, "one stream waits for the app: {in_app:?}");
    let queued = (0..33).find(|i| !in_app.contains(i)).expect("one queued");
    // One of the 32 ends (reset by the client): the queued stream goes to the app then, and
    // not before.
    let before = ancm.stdout().len();
    streams[in_app[0] as usize].abort();
    ancm.wait_stdout("the queued stream to reach the app", |l| {
        l.contains(&waiting(queued))
    });
    let lines = ancm.stdout();
    let reached = lines.iter().position(|l| l.contains(&waiting(queued)));
    assert!(reached >= Some(before), "{lines:?}");
    for stream in streams {
        stream.abort();
    }
}
