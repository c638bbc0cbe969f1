//! HTTPS on the front (`--tls-cert`, `--tls-key`): rustls with the ring provider, offering h2
//! then http/1.1 by ALPN. Loaded once at start, so a bad file stops ancm with a message naming
//! the flag and the file instead of failing every handshake.
//!
//! With `--tls-client-cert`, clients are asked for a certificate, checked against
//! `--tls-client-ca` when given, and the one a client sends goes to the app as IIS sends it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use base64::Engine as _;
use http::HeaderValue;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientCert, TlsFiles};

/// What ALPN offers, most preferred first: HTTP/2, else HTTP/1.1 (RFC 7301).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor for `files`, or an error that names the flag and file at fault.
pub(super) fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let chain = certificates(&files.cert)
        .with_context(|| format!("--tls-cert {}", files.cert.display()))?;
    let key =
        private_key(&files.key).with_context(|| format!("--tls-key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no protocol version")?;
    let builder = match &files.client_cert {
        None => builder.with_no_client_auth(),
        Some(client_cert) => builder.with_client_cert_verifier(verifier(client_cert, &provider)?),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|err| {
        anyhow!(
            "--tls-cert {} with --tls-key {}: {err}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Encrypted response data rustls queues for a client that is not reading: one TLS record
/// (rustls allows 64 KiB by default).
const SEND_BUFFER: usize = 16 * 1024;

/// Bounds what one connection's TLS layer holds for a client that does not read, so that
/// back-pressure reaches the app instead.
pub(super) fn limit_buffers(connection: &mut rustls::ServerConnection) {
    connection.set_buffer_limit(Some(SEND_BUFFER));
}

/// The `MS-ASPNETCORE-CLIENTCERT` value for a finished handshake: the client's end-entity
/// certificate, DER in standard base64, as ANCM sends it; `None` when the client sent none.
pub(super) fn client_cert_header(connection: &rustls::ServerConnection) -> Option<HeaderValue> {
    let end_entity = connection.peer_certificates()?.first()?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(end_entity.as_ref());
    HeaderValue::from_str(&encoded).ok()
}

/// The check on client certificates for `--tls-client-cert`, or an error naming
/// `--tls-client-ca` and its file.
fn verifier(
    client_cert: &ClientCert,
    provider: &Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let Some(ca) = &client_cert.ca else {
        return Ok(Arc::new(AnyClientCert {
            required: client_cert.required,
            algorithms: provider.signature_verification_algorithms,
        }));
    };
    let named = |err: anyhow::Error| err.context(format!("--tls-client-ca {}", ca.display()));
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca).map_err(named)? {
        roots
            .add(cert)
            .map_err(|err| named(anyhow!("a certificate in it cannot be a CA: {err}")))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if client_cert.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|err| named(anyhow!("{err}")))
}

/// Takes any client certificate, as IIS does when the site trusts no particular CA: the chain
/// is not checked, but the handshake still proves the client holds the certificate's key, so
/// the app can trust that whoever sent it owns it (pinning, or mapping it to a user).
#[derive(Debug)]
struct AnyClientCert {
    required: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hint: the client may offer whichever certificate it has.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Still a certificate at all: the app gets something it can parse.
        ParsedCertificate::try_from(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| anyhow!("not valid PEM: {err}"))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in it (a PEM \"BEGIN CERTIFICATE\" section)");
    }
    Ok(chain)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        pem::Error::NoItemsFound => anyhow!(
            "no private key in it (a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" section)"
        ),
        err => anyhow!("not valid PEM: {err}"),
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| anyhow!("cannot read it: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair {
        dir: tempfile::TempDir,
        cert: String,
        key: String,
    }

    fn pair() -> Pair {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generate a certificate");
        Pair {
            dir: tempfile::tempdir().expect("temp dir"),
            cert: generated.cert.pem(),
            key: generated.signing_key.serialize_pem(),
        }
    }

    fn files(pair: &Pair, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: pair.dir.path().join("cert.pem"),
            key: pair.dir.path().join("key.pem"),
            client_cert: None,
        };
        std::fs::write(&files.cert, cert).expect("write cert");
        std::fs::write(&files.key, key).expect("write key");
        files
    }

    fn error(files: &TlsFiles) -> String {
        match acceptor(files) {
            Ok(_) => panic!("{files:?} should be refused"),
            Err(err) => format!("{err:#}"),
        }
    }

    #[test]
    fn loads_a_certificate_and_its_key() {
        let pair = pair();
        let files = files(&pair, &pair.cert, &pair.key);
        assert!(acceptor(&files).is_ok());
    }

    #[test]
    fn errors_name_the_flag_and_the_file() {
        let pair = pair();
        let good = files(&pair, &pair.cert, &pair.key);

        let missing = TlsFiles {
            cert: pair.dir.path().join("nowhere.pem"),
            key: good.key.clone(),
            client_cert: None,
        };
        let err = error(&missing);
        assert!(
            err.starts_with(&format!(
                "--tls-cert {}: cannot read it",
                missing.cert.display()
            )),
            "{err}"
        );

        let swapped = files(&pair, &pair.key, &pair.cert);
        let err = error(&swapped);
        assert!(
            err.starts_with(&format!(
                "--tls-cert {}: no certificate",
                swapped.cert.display()
            )),
            "{err}"
        );

        let no_key = files(&pair, &pair.cert, &pair.cert);
        let err = error(&no_key);
        assert!(
            err.starts_with(&format!(
                "--tls-key {}: no private key",
                no_key.key.display()
            )),
            "{err}"
        );

        let other = rcgen::KeyPair::generate().expect("another key");
        let mismatched = files(&pair, &pair.cert, &other.serialize_pem());
        let err = error(&mismatched);
        assert!(err.starts_with("--tls-cert "), "{err}");
        assert!(err.contains("--tls-key "), "{err}");
    }

    #[test]
    fn client_ca_errors_name_the_flag_and_the_file() {
        let pair = pair();
        let good = files(&pair, &pair.cert, &pair.key);
        let with_ca = |ca: &str| {
            let path = pair.dir.path().join("ca.pem");
            std::fs::write(&path, ca).expect("write ca");
            TlsFiles {
                client_cert: Some(ClientCert {
                    required: true,
                    ca: Some(path),
                }),
                ..good.clone()
            }
        };

        assert!(acceptor(&with_ca(&pair.cert)).is_ok());

        let err = error(&with_ca(&pair.key));
        let ca = pair.dir.path().join("ca.pem");
        assert!(
            err.starts_with(&format!("--tls-client-ca {}: no certificate", ca.display())),
            "{err}"
        );

        let missing = TlsFiles {
            client_cert: Some(ClientCert {
                required: false,
                ca: Some(pair.dir.path().join("nowhere.pem")),
            }),
            ..good.clone()
        };
        let err = error(&missing);
        assert!(
            err.starts_with(&format!(
                "--tls-client-ca {}: cannot read it",
                pair.dir.path().join("nowhere.pem").display()
            )),
            "{err}"
        );

        let any = TlsFiles {
            client_cert: Some(ClientCert {
                required: false,
                ca: None,
            }),
            ..good
        };
        assert!(acceptor(&any).is_ok());
    }
}
