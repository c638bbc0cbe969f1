use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::support::{ancm_bin, echoed, Ancm, AppDir};

/// A certificate and its key, as a TLS client presents them.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Identity {
        Identity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// What the app must see in MS-ASPNETCORE-CLIENTCERT.
    fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.cert.as_ref())
    }
}

/// The server's certificate and key files, a client CA (as a PEM file), a client certificate
/// it issued, and a self-signed one it did not.
struct Pki {
    dir: tempfile::TempDir,
    server_root: CertificateDer<'static>,
    issued: Identity,
    stranger: Identity,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("server certificate");
        std::fs::write(dir.path().join("cert.pem"), server.cert.pem()).expect("write cert");
        std::fs::write(
            dir.path().join("key.pem"),
            server.signing_key.serialize_pem(),
        )
        .expect("write key");

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let client_params = || {
            let mut params =
                CertificateParams::new(vec!["client.test".to_owned()]).expect("client params");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params
        };
        let issued_key = KeyPair::generate().expect("client key");
        let issued = client_params()
            .signed_by(&issued_key, &issuer)
            .expect("client certificate");
        let stranger_key = KeyPair::generate().expect("stranger key");
        let stranger = client_params()
            .self_signed(&stranger_key)
            .expect("stranger certificate");

        Pki {
            server_root: server.cert.der().clone(),
            issued: Identity::new(&issued, &issued_key),
            stranger: Identity::new(&stranger, &stranger_key),
            dir,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ancm run` with HTTPS from this PKI and `extra` flags.
    fn run(&self, app: &AppDir, extra: &[&str]) -> Ancm {
        let (cert, key) = (self.file("cert.pem"), self.file("key.pem"));
        let mut args = vec![
            app.path().to_str().expect("utf-8"),
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        let ancm = Ancm::run(&args);
        ancm.wait_ready();
        ancm
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// GET /echo over TLS (ALPN `alpn` only), presenting `identity` if given, with `headers`; the
/// app's echo as JSON, or why no answer came.
async fn https_echo(
    addr: &str,
    pki: &Pki,
    alpn: &str,
    identity: Option<&Identity>,
    headers: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki.server_root.clone())
        .expect("trust the server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let io = TokioIo::new(tls);
    let port = addr.rsplit(':').next().expect("port");
    let mut request = Request::get(format!("https://localhost:{port}/echo"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = if alpn == "h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        let request = request.body(Empty::<Bytes>::new()).expect("request");
        sender.send_request(request).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        tokio::spawn(conn);
        let request = request
            .header(header::HOST, format!("localhost:{port}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        sender.send_request(request).await
    }
    .map_err(|e| format!("request: {e}"))?;
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(serde_json::from_slice(&body).expect("json"))
}

#[test]
fn client_certificate_issued_by_the_ca_reaches_the_app() {
    let pki = Pki::new();
    let app = AppDir::new("", &[]);
    let ca = pki.file("ca.pem");
    let ancm = pki.run(
        &app,
        &[
            "--tls-client-cert",
            "require",
            "--tls-client-ca",
            ca.to_str().expect("utf-8"),
        ],
    );
    let addr = ancm.addr();
    let expected = pki.issued.base64();

    runtime().block_on(async {
        for alpn in ["h2", "http/1.1"] {
            let echo = https_echo(
                addr,
                &pki,
                alpn,
                Some(&pki.issued),
                &[("ms-aspnetcore-clientcert", "forged")],
            )
            .await
            .unwrap_or_else(|err| panic!("{alpn}: {err}"));
            assert_eq!(
                echoed(&echo, "ms-aspnetcore-clientcert"),
                [expected.as_str()],
                "{alpn}: the certificate, in place of the client's header"
            );
        }

        for (what, identity) in [
            ("no certificate", None),
            ("a certificate the CA did not issue", Some(&pki.stranger)),
        ] {
            for alpn in ["h2", "http/1.1"] {
                let refused = https_echo(addr, &pki, alpn, identity, &[]).await;
                assert!(
                    refused.is_err(),
                    "{alpn} with {what} must be refused: {refused:?}"
                );
            }
        }
    });
}

#[test]
fn optional_client_certificate_without_a_ca() {
    let pki = Pki::new();
    let app = AppDir::new("", &[]);
    let ancm = pki.run(&app, &["--tls-client-cert", "optional"]);
    let addr = ancm.addr();

    runtime().block_on(async {
        for alpn in ["h2", "http/1.1"] {
            let echo = https_echo(
                addr,
                &pki,
                alpn,
                None,
                &[("ms-aspnetcore-clientcert", "forged")],
            )
            .await
            .unwrap_or_else(|err| panic!("{alpn} without a certificate: {err}"));
            assert!(
                echoed(&echo, "ms-aspnetcore-clientcert").is_empty(),
                "{alpn}: no certificate, no header: {echo}"
            );

            // Any certificate the client holds the key of, self-signed too.
            let echo = https_echo(addr, &pki, alpn, Some(&pki.stranger), &[])
                .await
                .unwrap_or_else(|err| panic!("{alpn} with a certificate: {err}"));
            assert_eq!(
                echoed(&echo, "ms-aspnetcore-clientcert"),
                [pki.stranger.base64().as_str()],
                "{alpn}"
            );
        }
    });
}

#[test]
fn https_port_goes_to_the_app_and_survives_a_reload() {
    let pki = Pki::new();
    let app = AppDir::new("", &[("SAMPLE_VAR", "before")]);
    let ancm = pki.run(&app, &[]);
    let addr = ancm.addr();
    let port = addr.rsplit(':').next().expect("port").to_owned();
    let rt = runtime();

    let echo = rt
        .block_on(https_echo(addr, &pki, "h2", None, &[]))
        .expect("echo");
    assert_eq!(echo["env"]["ASPNETCORE_ANCM_HTTPS_PORT"], port.as_str());

    let (first, _) = ancm.wait_ready();
    let config = std::fs::read_to_string(app.path().join("web.config")).expect("read");
    std::fs::write(
        app.path().join("web.config"),
        config.replace("before", "after"),
    )
    .expect("write web.config");
    ancm.wait_ready_after(first);
    let echo = rt
        .block_on(https_echo(addr, &pki, "h2", None, &[]))
        .expect("echo");
    assert_eq!(
        echo["env"]["SAMPLE_VAR"], "after",
        "the new process answers"
    );
    assert_eq!(echo["env"]["ASPNETCORE_ANCM_HTTPS_PORT"], port.as_str());
}

#[test]
fn the_apps_own_https_port_wins() {
    let pki = Pki::new();
    let app = AppDir::new("", &[("ASPNETCORE_ANCM_HTTPS_PORT", "44388")]);
    let ancm = pki.run(&app, &[]);
    let echo = runtime()
        .block_on(https_echo(ancm.addr(), &pki, "http/1.1", None, &[]))
        .expect("echo");
    assert_eq!(echo["env"]["ASPNETCORE_ANCM_HTTPS_PORT"], "44388");
}

#[test]
fn plain_http_has_no_https_port_and_no_client_certificate() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let echo: serde_json::Value = crate::support::client()
        .get(format!("{}/echo", ancm.url))
        .header("MS-ASPNETCORE-CLIENTCERT", "forged")
        .send()
        .expect("request through ancm")
        .json()
        .expect("json");
    assert!(
        echoed(&echo, "ms-aspnetcore-clientcert").is_empty(),
        "{echo}"
    );
    assert!(
        echo["env"]["ASPNETCORE_ANCM_HTTPS_PORT"].is_null(),
        "{echo}"
    );
}

#[test]
fn unreadable_client_ca_is_named() {
    let pki = Pki::new();
    let missing = pki.file("missing-ca.pem");
    let output = Command::new(ancm_bin())
        .args(["run", "--listen", "127.0.0.1:0"])
        .arg(pki.dir.path())
        .arg("--tls-cert")
        .arg(pki.file("cert.pem"))
        .arg("--tls-key")
        .arg(pki.file("key.pem"))
        .args(["--tls-client-cert", "require", "--tls-client-ca"])
        .arg(&missing)
        .arg("--")
        .arg(crate::support::sampleapp())
        .stdin(Stdio::null())
        .output()
        .expect("run ancm");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--tls-client-ca {}: cannot read it",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("started the app"),
        "nothing starts: {stderr}"
    );
}

#[test]
fn client_ca_needs_client_cert_and_client_cert_needs_tls() {
    for args in [
        &["--tls-client-cert", "optional"][..],
        &[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ][..],
    ] {
        let output = Command::new(ancm_bin())
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ancm");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("required"), "{args:?}: {stderr}");
    }
}
