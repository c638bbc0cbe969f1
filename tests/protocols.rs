use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{ancm_bin, client, echoed, h2c_client, runtime, Ancm, AppDir, DEADLINE};

async fn next_message<S>(ws: &mut S) -> Message
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("an answer in time")
        .expect("the WebSocket is open")
        .expect("a message")
}

#[test]
fn websocket_echo_outlives_request_timeout() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &["--request-timeout", "1"]);
    ancm.wait_ready();
    runtime().block_on(async {
        let mut request = format!("ws://{}/ws", ancm.addr())
            .into_client_request()
            .expect("ws request");
        request.headers_mut().insert(
            "sec-websocket-extensions",
            http::HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
        );
        let (mut ws, response) =
            tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
                .await
                .expect("handshake in time")
                .expect("handshake through ancm");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()["x-seen-extensions"],
            "permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Extensions reaches the app"
        );

        ws.send(Message::text("hello")).await.expect("send text");
        assert_eq!(next_message(&mut ws).await, Message::text("hello"));
        let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone()))
            .await
            .expect("send binary");
        assert_eq!(next_message(&mut ws).await, Message::binary(big));

        // On purpose longer than requestTimeout (1 s): an upgraded connection has none.
        tokio::time::sleep(Duration::from_secs(2)).await;
        ws.send(Message::text("still there"))
            .await
            .expect("send after idle");
        assert_eq!(next_message(&mut ws).await, Message::text("still there"));
        ws.close(None).await.expect("close");
    });
}

#[test]
fn upgrade_without_101_is_an_ordinary_response() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();

    let echo: serde_json::Value = client()
        .get(format!("{}/echo", ancm.url))
        .header(header::CONNECTION, "Upgrade, x-hop")
        .header(header::UPGRADE, "websocket")
        .header("x-hop", "1")
        .send()
        .expect("request")
        .error_for_status()
        .expect("200")
        .json()
        .expect("json");
    assert_eq!(echoed(&echo, "connection"), ["upgrade"]);
    assert_eq!(echoed(&echo, "upgrade"), ["websocket"]);
    assert!(
        echoed(&echo, "x-hop").is_empty(),
        "other hop-by-hop headers still go"
    );

    assert_eq!(
        ancm.get("/ws").status(),
        400,
        "no upgrade asked: the app's 400"
    );
}

#[test]
fn open_websocket_does_not_hold_up_stop() {
    let app = AppDir::new("", &[]);
    let mut ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let rt = runtime();
    let mut ws = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", ancm.addr()))
            .await
            .expect("handshake through ancm");
        ws.send(Message::text("hi")).await.expect("send");
        assert_eq!(next_message(&mut ws).await, Message::text("hi"));
        ws
    });

    let asked = Instant::now();
    ancm.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(ancm.wait_exit().success());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        asked.elapsed()
    );
    rt.block_on(async {
        let closed = tokio::time::timeout(DEADLINE, async {
            while let Some(Ok(_)) = ws.next().await {}
        });
        closed
            .await
            .expect("the WebSocket closed when ancm stopped");
    });
}

#[test]
fn h2c_with_prior_knowledge() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let client = h2c_client();

    let response = client
        .get(format!("{}/echo", ancm.url))
        .send()
        .expect("h2c request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().expect("json");
    assert_eq!(
        echo["version"], "HTTP/1.1",
        "the hop to the app stays HTTP/1.1"
    );
    assert_eq!(echoed(&echo, "host"), [ancm.addr()]);
    assert_eq!(echoed(&echo, "x-forwarded-proto"), ["http"]);

    // A request body goes through too.
    let upload: serde_json::Value = client
        .post(format!("{}/upload", ancm.url))
        .body(vec![7u8; 300_000])
        .send()
        .expect("h2c upload")
        .json()
        .expect("json");
    assert_eq!(upload["bytes"], 300_000);
}

/// A TLS connection to ancm that trusts `root` and offers only `alpn`.
async fn tls_connect(
    addr: &str,
    root: &CertificateDer<'static>,
    alpn: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// A GET over TLS with only `alpn` offered; returns the protocol the server chose and the
/// response.
async fn https_get(
    addr: &str,
    root: &CertificateDer<'static>,
    alpn: &str,
    path: &str,
) -> (Option<Vec<u8>>, Response<Incoming>) {
    let tls = tls_connect(addr, root, alpn).await;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let port = addr.rsplit(':').next().expect("port");
    let io = TokioIo::new(tls);
    let response = if alpn == "h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        let request = Request::get(format!("https://localhost:{port}{path}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        sender.send_request(request).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(header::HOST, format!("localhost:{port}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        sender.send_request(request).await
    };
    (negotiated, response.expect("response"))
}

#[test]
fn https_with_alpn_h2_and_http1() {
    let (_files, cert, key, root) = crate::support::self_signed();

    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(
        &app,
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    ancm.wait_ready();
    let addr = ancm.addr();
    let port = addr.rsplit(':').next().expect("port");

    runtime().block_on(async {
        for alpn in ["h2", "http/1.1"] {
            let (negotiated, response) = https_get(addr, &root, alpn, "/echo").await;
            assert_eq!(negotiated.as_deref(), Some(alpn.as_bytes()), "ALPN");
            assert_eq!(response.status(), 200, "{alpn}");
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(echo["version"], "HTTP/1.1", "{alpn}");
            assert_eq!(echoed(&echo, "x-forwarded-proto"), ["https"], "{alpn}");
            assert_eq!(
                echoed(&echo, "host"),
                [format!("localhost:{port}").as_str()],
                "{alpn}"
            );
        }

        // A WebSocket over TLS (wss), which rides on HTTP/1.1.
        let tls = tls_connect(addr, &root, "http/1.1").await;
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("wss://localhost:{port}/ws"), tls)
                .await
                .expect("wss handshake through ancm");
        ws.send(Message::text("secure")).await.expect("send");
        assert_eq!(next_message(&mut ws).await, Message::text("secure"));
        ws.close(None).await.expect("close");

        // Streamed over TLS and HTTP/2 as well: the first event does not wait for the next.
        let asked = Instant::now();
        let (_, response) = https_get(addr, &root, "h2", "/sse?events=2&gap_ms=3000").await;
        let mut body = response.into_body();
        let frame = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("a frame in time")
            .expect("a frame")
            .expect("no error");
        assert_eq!(
            frame.into_data().ok(),
            Some(Bytes::from_static(b"data: 0\n\n"))
        );
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "the first event took {:?}",
            asked.elapsed()
        );
    });
}

#[test]
fn unreadable_tls_file_is_named() {
    let app = AppDir::new("", &[]);
    let missing = app.path().join("missing-cert.pem");
    let mut child = Command::new(ancm_bin())
        .args(["run", "--listen", "127.0.0.1:0"])
        .arg(app.path())
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(app.path().join("missing-key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ancm");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait for ancm");
    assert_eq!(status.code(), Some(2), "a configuration error: {stderr}");
    assert!(
        stderr.contains(&format!("--tls-cert {}: cannot read it", missing.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("started the app"),
        "nothing starts: {stderr}"
    );
}

#[test]
fn client_gone_aborts_the_request_to_the_app() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let addr = ancm.addr();

    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET /abort-watch?ms=60000 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send the request");
    ancm.wait_stdout("the request to reach the app", |l| {
        l.contains("sampleapp abort-watch waiting")
    });
    drop(stream);
    ancm.wait_stdout("the app to see the request aborted", |l| {
        l.contains("sampleapp request aborted")
    });
    // The aborted connection to the app was not pooled half-read.
    assert_eq!(ancm.get("/").status(), 200);
}

#[test]
fn http2_stream_reset_aborts_the_request_to_the_app() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let addr = ancm.addr();
    let rt = runtime();

    let mut sender = rt.block_on(async {
        let sender = crate::support::h2c_sender(addr).await;
        sender
    });
    let request = Request::get(format!("http://{addr}/abort-watch?ms=60000"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let pending = rt.spawn(sender.send_request(request));
    ancm.wait_stdout("the request to reach the app", |l| {
        l.contains("sampleapp abort-watch waiting")
    });
    // Dropping the response future resets the stream; the connection stays open.
    pending.abort();
    ancm.wait_stdout("the app to see the request aborted", |l| {
        l.contains("sampleapp request aborted")
    });

    let request = Request::get(format!("http://{addr}/"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = rt
        .block_on(sender.send_request(request))
        .expect("the same HTTP/2 connection still serves");
    assert_eq!(response.status(), 200);
}

#[test]
fn server_sent_events_arrive_as_written() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();

    for (name, client) in [("HTTP/1.1", client()), ("h2c", h2c_client())] {
        let asked = Instant::now();
        // The app writes event 0 at once and event 1 three seconds later.
        let mut response = client
            .get(format!("{}/sse?events=2&gap_ms=3000", ancm.url))
            .send()
            .expect("request");
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream",
            "{name}"
        );
        let mut first = [0u8; 9];
        response.read_exact(&mut first).expect("the first event");
        assert_eq!(&first, b"data: 0\n\n", "{name}");
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "{name}: the first event took {:?}",
            asked.elapsed()
        );
        let mut rest = String::new();
        response.read_to_string(&mut rest).expect("the rest");
        assert_eq!(rest, "data: 1\n\n", "{name}");
    }
}
