//! The admin listener: its own socket (bound in `socket.rs`), its own small HTTP/1.1 server,
//! and the four endpoints. It shares nothing with the front: a flood of clients there does not stop
//! a probe here, and the front's request limits do not apply. `/status` and `/metrics` read
//! the process table; on the admin listener they are rendered at most once per
//! [`RENDER_EVERY`] and a flood gets the copy, so it cannot keep a core busy.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

use super::socket::{accept, listen, Accepted, Listener};
use super::{metrics, Address, Observed, Settings};

/// A probe that cannot send its request head within this is not waited for.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in progress may take to finish once the listener stops.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long a rendered `/status` or `/metrics` is served again on the admin listener: well
/// under any scrape or probe interval, and a flood renders each at most once per interval.
const RENDER_EVERY: Duration = Duration::from_secs(1);

/// The admin listener, serving until [`Admin::stop`].
pub(crate) struct Admin {
    /// Where it listens, as a URL (`http://127.0.0.1:9180`) or a socket path.
    pub(crate) shown: String,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    #[cfg(unix)]
    socket_path: Option<std::path::PathBuf>,
}

/// The admin listener, bound and not serving yet: binding comes before the app starts, so that
/// an address that cannot be used is reported first.
pub(crate) struct Bound {
    listener: Listener,
    pub(crate) shown: String,
    /// The control socket, which also serves `/logs`, answers fresh and asks for no token.
    control: bool,
    token: Option<Token>,
    /// The socket file to remove at the stop.
    #[cfg(unix)]
    socket_path: Option<std::path::PathBuf>,
}

impl Bound {
    /// Serves the admin endpoints from `observed`.
    pub(crate) fn serve(self, observed: Arc<Observed>) -> Admin {
        let shutdown = CancellationToken::new();
        let endpoints = Arc::new(Endpoints {
            observed,
            control: self.control,
            token: self.token,
            status: Rendered::default(),
            metrics: Rendered::default(),
        });
        let task = tokio::spawn(serve(self.listener, endpoints, shutdown.clone()));
        Admin {
            shown: self.shown,
            shutdown,
            task,
            #[cfg(unix)]
            socket_path: self.socket_path,
        }
    }
}

/// Binds the admin listener as `settings` ask. An address others can reach with no token
/// is warned about: `/status` shows the app's folder, pids and ports to anyone there.
pub(crate) async fn bind(settings: Settings) -> anyhow::Result<Bound> {
    let token = match settings.token {
        Some(token) if token.is_empty() => anyhow::bail!(
            "--admin-token (or ANCM_ADMIN_TOKEN) is empty; give a secret, or leave it unset"
        ),
        token => token.map(|token| Token(token.into_bytes())),
    };
    let address = &settings.address;
    if let (Address::Tcp(addr), None) = (address, &token) {
        if !addr.ip().to_canonical().is_loopback() {
            tracing::warn!(
                "--admin {addr} is not a loopback address and no --admin-token is set: anyone \
                 who can reach it reads /status and /metrics; set --admin-token \
                 (ANCM_ADMIN_TOKEN), or listen on 127.0.0.1 or a socket path"
            );
        }
    }
    let (listener, shown) = listen(address, settings.group.as_deref()).await?;
    Ok(Bound {
        listener,
        shown,
        control: false,
        token,
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
    use anyhow::Context as _;
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
        token: None,
        socket_path: Some(path),
    })
}

/// What one listener serves, and how.
struct Endpoints {
    observed: Arc<Observed>,
    /// The control socket: `/logs` too, fresh answers, no token.
    control: bool,
    token: Option<Token>,
    status: Rendered,
    metrics: Rendered,
}

/// `--admin-token`, compared in constant time so that a timing does not tell how much of a
/// guess was right.
struct Token(Vec<u8>);

impl Token {
    fn admits(&self, request: &Request<Incoming>) -> bool {
        use subtle::ConstantTimeEq as _;
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some((scheme, credentials)) = value
            .iter()
            .position(|&b| b == b' ')
            .map(|space| (&value[..space], value[space + 1..].trim_ascii()))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer") && bool::from(credentials.ct_eq(&self.0))
    }
}

/// A body rendered at most once per [`RENDER_EVERY`]: the first request after that renders
/// it while the others wait for it (one render, not one per request).
#[derive(Default)]
struct Rendered(tokio::sync::Mutex<Option<(Instant, Bytes)>>);

impl Rendered {
    async fn get<E>(
        &self,
        render: impl FnOnce() -> Result<Bytes, E> + Send + 'static,
    ) -> Result<Bytes, String>
    where
        E: std::fmt::Display + Send + 'static,
    {
        let mut kept = self.0.lock().await;
        if let Some((at, body)) = kept.as_ref() {
            if at.elapsed() < RENDER_EVERY {
                return Ok(body.clone());
            }
        }
        let body = tokio::task::spawn_blocking(render)
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())?;
        *kept = Some((Instant::now(), body.clone()));
        Ok(body)
    }
}

async fn serve(listener: Listener, endpoints: Arc<Endpoints>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok(Accepted::Tcp(stream)) => {
                connections.spawn(connection(stream, endpoints.clone(), shutdown.clone()));
            }
            #[cfg(unix)]
            Ok(Accepted::Unix(stream)) => {
                connections.spawn(connection(stream, endpoints.clone(), shutdown.clone()));
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

async fn connection<I>(io: I, endpoints: Arc<Endpoints>, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = shutdown.clone();
    let service = service_fn(move |request| {
        let endpoints = endpoints.clone();
        let stop = stop.clone();
        async move {
            if endpoints.control && request.uri().path() == "/logs" {
                return Ok::<_, Infallible>(logs(&request, &endpoints.observed, stop));
            }
            Ok(respond(&request, &endpoints).await.map(|body| body.boxed()))
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

/// The probes answer anyone who reaches the listener, as a kubelet or load balancer asks them
/// with no secret and they tell only up or not; the rest need the token when one is set.
fn is_probe(path: &str) -> bool {
    path == "/healthz" || path == "/readyz"
}

async fn respond(request: &Request<Incoming>, endpoints: &Endpoints) -> Response<Full<Bytes>> {
    if let Some(token) = &endpoints.token {
        if !is_probe(request.uri().path()) && !token.admits(request) {
            let mut response = text(
                StatusCode::UNAUTHORIZED,
                "this admin endpoint needs Authorization: Bearer with the --admin-token\n"
                    .to_owned(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"ancm admin\""),
            );
            return response;
        }
    }
    let observed = endpoints.observed.clone();
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
            let render = move || {
                serde_json::to_vec_pretty(&observed.status()).map(|mut json| {
                    json.push(b'\n');
                    Bytes::from(json)
                })
            };
            match rendered(&endpoints.status, endpoints.control, render).await {
                Ok(json) => with_type(Response::new(Full::new(json)), "application/json"),
                Err(err) => failed(&err),
            }
        }
        "/metrics" => {
            let render = move || observed.metrics().map(Bytes::from);
            match rendered(&endpoints.metrics, endpoints.control, render).await {
                Ok(body) => with_type(Response::new(Full::new(body)), metrics::CONTENT_TYPE),
                Err(err) => failed(&err),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; the admin endpoints are /healthz, /readyz, /status and /metrics\n"
                .to_owned(),
        ),
    }
}

/// `render`'s body: fresh on the control socket (its owner alone asks it, and `ancm status`
/// should show what just happened), else from `kept`.
async fn rendered<E>(
    kept: &Rendered,
    control: bool,
    render: impl FnOnce() -> Result<Bytes, E> + Send + 'static,
) -> Result<Bytes, String>
where
    E: std::fmt::Display + Send + 'static,
{
    if control {
        return tokio::task::spawn_blocking(render)
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string());
    }
    kept.get(render).await
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
