//! The clients the tests speak to ancm with: reqwest over HTTP/1.1 and h2c, hyper's HTTP/2
//! client, raw bytes, and a self-signed certificate to trust. Imports nothing from a test
//! module.

use std::path::PathBuf;

use super::DEADLINE;

/// A runtime for tests that drive a client by hand.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An HTTP/2 connection with prior knowledge (h2c) to `addr`, driven by a task on the current
/// runtime.
pub async fn h2c_sender(
    addr: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    sender
}

/// A self-signed certificate for `localhost`, written as PEM files into a temp folder (kept
/// alive by the first value): the folder, the certificate's and key's paths, and the
/// certificate for a client to trust.
pub fn self_signed() -> (
    tempfile::TempDir,
    PathBuf,
    PathBuf,
    rustls::pki_types::CertificateDer<'static>,
) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("generate a certificate");
    let files = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (files, cert, key, certified.cert.der().clone())
}

/// A client speaking HTTP/2 without TLS (h2c, with prior knowledge).
pub fn h2c_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(DEADLINE)
        .build()
        .expect("http client")
}

/// Sends `request` as raw bytes on a new connection to `addr` (`ip:port`) and returns all that
/// comes back until the connection closes.
pub fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The values of header `name` the app saw, from the sample app's /echo answer.
pub fn echoed<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| pair[0] == name)
        .filter_map(|pair| pair[1].as_str())
        .collect()
}

/// A client that does not pool connections, so each test sees fresh connections.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .expect("http client")
}
