//! HTTPS on the front (`--tls-cert`, `--tls-key`): rustls with the ring provider, offering h2
//! then http/1.1 by ALPN. Loaded once at start, so a bad file stops ancm with a message naming
//! the flag and the file instead of failing every handshake.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// What ALPN offers, most preferred first: HTTP/2, else HTTP/1.1 (RFC 7301).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor for `files`, or an error that names the flag and file at fault.
pub(super) fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let chain = certificates(&files.cert)
        .with_context(|| format!("--tls-cert {}", files.cert.display()))?;
    let key =
        private_key(&files.key).with_context(|| format!("--tls-key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no protocol version")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| {
            anyhow!(
                "--tls-cert {} with --tls-key {}: {err}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
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
}
