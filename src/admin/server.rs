//! The admin listener: its own socket (TCP, or a Unix socket path), its own small HTTP/1.1
//! server, and the four endpoints. It shares nothing with the front: a flood of clients there
//! does not stop a probe here, and the front's request limits do not apply.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
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
    pub(crate) shown: String,
    /// The control socket, which also serves `/logs`.
    control: bool,
    /// The socket file to remove at the stop.
    #[cfg(unix)]
    socket_path: Option<std::path::PathBuf>,
}

impl Bound {
    /// Serves the admin endpoints from `observed`.
    pub(crate) fn serve(self, observed: Arc<Observed>) -> Admin {
        let shutdown = CancellationToken::new();
        let control = self.control;
        let task = tokio::spawn(serve(self.listener, observed, shutdown.clone(), control));
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
        control: false,
        #[cfg(unix)]
        socket_path: match address {
            Address::Unix(path) => Some(path.clone()),
            Address::Tcp(_) => None,
        },
    })
}

/// Binds this instance's control socket in the runtime folder, owner-only.
#[cfg(unix)]
pub(crate) async fn bind_control() -> anyhow::Result<Bound> {
    use std::os::unix::fs::PermissionsExt as _;
    let folder = tokio::task::spawn_blocking(super::registry::folder)
        .await?
        .context("cannot make the runtime folder for the control socket")?;
    let path = super::registry::own_socket(&folder);
    // A pid is this instance's alone while it lives: a file of that name is a dead one's.
    let _ = tokio::fs::remove_file(&path).await;
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on the control socket {}", path.display()))?;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .await
        .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    Ok(Bound {
        listener: Listener::Unix(listener),
        shown: path.display().to_string(),
        control: true,
        socket_path: Some(path),
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

/// `control`: this is the control socket, which also serves `/logs`.
async fn serve(
    listener: Listener,
    observed: Arc<Observed>,
    shutdown: CancellationToken,
    control: bool,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok(Accepted::Tcp(stream)) => {
                connections.spawn(connection(
                    stream,
                    observed.clone(),
                    shutdown.clone(),
                    control,
                ));
            }
            #[cfg(unix)]
            Ok(Accepted::Unix(stream)) => {
                connections.spawn(connection(
                    stream,
                    observed.clone(),
                    shutdown.clone(),
                    control,
                ));
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

async fn connection<I>(io: I, observed: Arc<Observed>, shutdown: CancellationToken, control: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = shutdown.clone();
    let service = service_fn(move |request| {
        let observed = observed.clone();
        let stop = stop.clone();
        async move {
            if control && request.uri().path() == "/logs" {
                return Ok::<_, Infallible>(logs(&request, &observed, stop));
            }
            Ok(respond(&request, observed).await.map(|body| body.boxed()))
        }
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

/// The default of `lines` for `/logs`, as `tail` prints.
const DEFAULT_LINES: usize = 10;

/// `/logs?lines=N&follow=1`: the app's last N lines, as the console shows them, and with
/// `follow` each new one until ancm stops or the client goes.
fn logs(
    request: &Request<Incoming>,
    observed: &Observed,
    shutdown: CancellationToken,
) -> Response<BoxBody<Bytes, Infallible>> {
    let query = request.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let count = param("lines")
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_LINES);
    let follow = param("follow").is_some_and(|v| v == "1");
    let (lines, feed) = observed.recent.last(count, follow);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let shown = |line: &crate::logs::RecentLine| {
            Bytes::from(format!("[app {}] {}\n", line.pid, line.text))
        };
        for line in &lines {
            if tx.send(shown(line)).await.is_err() {
                return;
            }
        }
        let Some(mut feed) = feed else { return };
        loop {
            let next = tokio::select! {
                next = feed.recv() => next,
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
            };
            let bytes = match next {
                Ok(line) => shown(&line),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => Bytes::from(
                    format!("[ancm] {missed} lines missed: this reader fell behind\n"),
                ),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Feed(rx).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response body fed line by line from a channel.
struct Feed(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Feed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|bytes| bytes.map(|bytes| Ok(http_body::Frame::data(bytes))))
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
