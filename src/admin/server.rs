//! The admin listener: its own socket (TCP, or a Unix socket path), its own small HTTP/1.1
//! server, and the four endpoints. It shares nothing with the front: a flood of clients there
//! does not stop a probe here, and the front's request limits do not apply.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{metrics, Address, Observed};

/// A probe that cannot send its request head within this is not waited for.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in progress may take to finish once the listener stops.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The admin listener, serving until [`Admin::stop`].
pub(crate) struct Admin {
    /// Where it listens, as a URL (`http://127.0.0.1:9180`) or a socket path.
    pub(crate) shown: String,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    #[cfg(unix)]
    socket_path: Option<std::path::PathBuf>,
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// The admin listener, bound and not serving yet: binding comes before the app starts, so that
/// an address that cannot be used is reported first.
pub(crate) struct Bound {
    listener: Listener,
    shown: String,
    /// The socket file to remove at the stop.
    #[cfg(unix)]
    socket_path: Option<std::path::PathBuf>,
}

impl Bound {
    /// Serves the admin endpoints from `observed`.
    pub(crate) fn serve(self, observed: Arc<Observed>) -> Admin {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(self.listener, observed, shutdown.clone()));
        Admin {
            shown: self.shown,
            shutdown,
            task,
            #[cfg(unix)]
            socket_path: self.socket_path,
        }
    }
}

/// Binds `address` for the admin listener.
pub(crate) async fn bind(address: &Address) -> anyhow::Result<Bound> {
    let (listener, shown) = listen(address).await?;
    Ok(Bound {
        listener,
        shown,
        #[cfg(unix)]
        socket_path: match address {
            Address::Unix(path) => Some(path.clone()),
            Address::Tcp(_) => None,
        },
    })
}

async fn listen(address: &Address) -> anyhow::Result<(Listener, String)> {
    match address {
        Address::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--admin {addr}: cannot listen there"))?;
            let local = listener.local_addr()?;
            Ok((Listener::Tcp(listener), format!("http://{local}")))
        }
        #[cfg(unix)]
        Address::Unix(path) => {
            remove_stale_socket(path).await?;
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("--admin {}: cannot listen there", path.display()))?;
            Ok((Listener::Unix(listener), path.display().to_string()))
        }
        #[cfg(not(unix))]
        Address::Unix(path) => anyhow::bail!(
            "--admin {}: a socket path works on Unix only; give an IP:PORT",
            path.display()
        ),
    }
}

/// A socket file left by an ancm that was killed is in the way of binding; one that another
/// process still listens on is not taken over.
#[cfg(unix)]
async fn remove_stale_socket(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(meta) = tokio::fs::symlink_metadata(path).await else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        anyhow::bail!(
            "--admin {}: the path exists and is not a socket; give a new path",
            path.display()
        );
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        anyhow::bail!(
            "--admin {}: another process listens on this socket",
            path.display()
        );
    }
    tokio::fs::remove_file(path)
        .await
        .with_context(|| format!("--admin {}: cannot remove the stale socket", path.display()))
}

async fn serve(listener: Listener, observed: Arc<Observed>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok(Accepted::Tcp(stream)) => {
                connections.spawn(connection(stream, observed.clone(), shutdown.clone()));
            }
            #[cfg(unix)]
            Ok(Accepted::Unix(stream)) => {
                connections.spawn(connection(stream, observed.clone(), shutdown.clone()));
            }
            Err(err) => {
                tracing::debug!(%err, "accepting an admin connection failed");
                // Out of descriptors, most likely: let some close.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    connections.close();
    if tokio::time::timeout(STOP_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!("admin requests still in progress at the stop; dropping them");
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => listener.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        #[cfg(unix)]
        Listener::Unix(listener) => listener.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

async fn connection<I>(io: I, observed: Arc<Observed>, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let observed = observed.clone();
        async move { Ok::<_, Infallible>(respond(&request, observed).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "admin connection ended with an error");
    }
}

async fn respond(request: &Request<Incoming>, observed: Arc<Observed>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the admin endpoints take GET and HEAD\n".to_owned(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => match observed.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/status" => {
            let status = tokio::task::spawn_blocking(move || observed.status()).await;
            match status.map(|status| serde_json::to_vec_pretty(&status)) {
                Ok(Ok(mut json)) => {
                    json.push(b'\n');
                    with_type(
                        Response::new(Full::new(Bytes::from(json))),
                        "application/json",
                    )
                }
                Ok(Err(err)) => failed(&err),
                Err(err) => failed(&err),
            }
        }
        "/metrics" => match tokio::task::spawn_blocking(move || observed.metrics()).await {
            Ok(Ok(body)) => with_type(
                Response::new(Full::new(Bytes::from(body))),
                metrics::CONTENT_TYPE,
            ),
            Ok(Err(err)) => failed(&err),
            Err(err) => failed(&err),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; the admin endpoints are /healthz, /readyz, /status and /metrics\n"
                .to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = with_type(
        Response::new(Full::new(Bytes::from(body))),
        "text/plain; charset=utf-8",
    );
    *response.status_mut() = status;
    response
}

fn with_type(
    mut response: Response<Full<Bytes>>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn failed(err: &dyn std::fmt::Display) -> Response<Full<Bytes>> {
    tracing::warn!(%err, "an admin endpoint failed");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("ancm could not answer: {err}\n"),
    )
}

impl Admin {
    /// Stops listening, lets requests in progress finish (briefly), and removes its socket.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        #[cfg(unix)]
        if let Some(path) = self.socket_path {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}
