//! Forwarding: each request from the front (HTTP/1.1 or HTTP/2, plain or TLS; see `front.rs`)
//! goes to a ready app process over pooled HTTP/1.1 keep-alive connections, bodies streamed
//! both ways and each frame passed on as it comes (server-sent events are not held back). An
//! upgrade (WebSocket) the app accepts becomes a byte tunnel (`tunnel.rs`). When there is no
//! app to forward to, ancm answers with its own pages.
//!
//! A client that goes away drops its request's future here, and with it the app connection it
//! was using (`exchange.rs`), which closes: the app sees its request aborted.

pub mod access_log;
mod app_path;
mod contract;
mod front;
mod h1;
mod headers;
mod lean;
mod pages;
mod response_body;
mod send_timeout;
pub mod stats;
mod tls;
mod trim;
mod tunnel;
mod upstream;
mod workers;

use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AppConfig, ConfigError, ForwardedFor, RequestLimits};
use crate::supervisor::{Backend, InFlight, Supervisor, Unavailable};
use app_path::{AppBase, Route};
pub use front::{raise_open_file_limit, serve};
pub use headers::ClientInfo;
pub use lean::{
    framing as lean_request_framing, head_for_app as lean_head_for_app,
    response_for_client as lean_response_for_client,
};
use response_body::IdleTimeout;
use upstream::exchange::{self, AppBody};
use upstream::pool;
use upstream::pool::{SendError, Unanswered};
use upstream::request_body::{BadBody, ClientBodyFailed, Progress, RequestBody};

/// What the proxy answers with: the app's streamed body, or one of ancm's pages.
pub type ProxyBody = Either<IdleTimeout<AppBody>, Full<Bytes>>;

/// Why forwarding gave no response.
enum Failed {
    Send(SendError),
    Timeout(Duration),
    /// The request body passed maxAllowedContentLength on its way.
    TooLarge,
    /// The client's request body broke off or was malformed part way: the client's fault.
    ClientBody(String),
}

/// Methods whose requests carry content by their meaning (RFC 9110 §8.6): sent without a body,
/// they go to the app with `Content-Length: 0`, as WinHTTP sends them for ANCM. Kestrel
/// answers 411 Length Required to a POST or PUT that declares no length. Both paths ask here.
fn expects_content(method: &str) -> bool {
    !matches!(
        method,
        "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE" | "CONNECT"
    )
}

/// Shared state for every request; read-only but for the tunnel tracker.
pub struct Proxy {
    supervisor: Supervisor,
    /// How long a client may take to send a request's headers (and the TLS handshake): slow
    /// clients must not hold connections for ever.
    header_read_timeout: Duration,
    /// How long a client connection may stay open with no request in progress.
    idle_timeout: Duration,
    /// How long a write to a client may make no progress (--send-timeout); `None` for ever.
    send_timeout: Option<Duration>,
    /// The largest HTTP/1.1 request head taken (--max-request-head).
    max_request_head: usize,
    /// X-Forwarded-For's form, worked out once per connection.
    forwarded_for: ForwardedFor,
    /// `--app-path` other than `/`: requests outside it get 404 here.
    base: Option<AppBase>,
    /// HTTPS on the front, from --tls-cert/--tls-key.
    tls: Option<TlsAcceptor>,
    /// Upgraded connections being spliced. They outlive the HTTP connection they came on, so
    /// [`serve`] waits for them on its own, for a bounded time.
    tunnels: TaskTracker,
    /// Closes every tunnel; cancelled by [`serve`] when its grace is over or it is dropped.
    close_tunnels: CancellationToken,
    /// Plain HTTP/1.1 clients are served by the lean path (`lean/`) until a request needs
    /// hyper. Not with `--app-path` (its rewrite is on hyper's path only), nor with
    /// `ANCM_LEAN=off`.
    lean: bool,
}

/// The operator's switch for the lean path: `off` sends every request through hyper's path,
/// should the lean path ever misbehave, and lets the tests hold one contract to both paths.
const LEAN_VARIABLE: &str = "ANCM_LEAN";

/// Whether the lean path may serve, from `ANCM_LEAN` (unset, `on` or `off`). Any other value
/// keeps it on, with a warning naming the value, rather than stopping a start.
fn lean_switch(value: Option<std::ffi::OsString>) -> bool {
    let Some(value) = value else { return true };
    match value.to_str().map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("off") => false,
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("on") => true,
        _ => {
            tracing::warn!(
                variable = LEAN_VARIABLE,
                value = %value.to_string_lossy(),
                "ignored: the allowed values are on and off; the lean path stays on"
            );
            true
        }
    }
}

impl Proxy {
    /// `tls` comes from [`tls_acceptor`], loaded before anything starts. What applies to a
    /// request once it has an app process (requestTimeout, forwardResponseConnectionHeader)
    /// comes from that process's configuration, so a reload applies in full.
    pub fn new(supervisor: Supervisor, tls: Option<TlsAcceptor>) -> Proxy {
        let config = supervisor.config();
        Proxy {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            send_timeout: config.send_timeout,
            max_request_head: config.max_request_head,
            forwarded_for: config.forwarded_for,
            base: AppBase::new(&config.appl_path, config.strip_app_path),
            tls,
            lean: config.appl_path == "/" && lean_switch(std::env::var_os(LEAN_VARIABLE)),
            tunnels: TaskTracker::new(),
            close_tunnels: CancellationToken::new(),
            supervisor,
        }
    }

    /// Forwards one request; never fails, since every failure becomes a response.
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        client: &ClientInfo,
    ) -> Response<ProxyBody> {
        let version = request.version();
        if version == Version::HTTP_2 {
            let authority = request.uri().authority().cloned();
            headers::from_http2(request.headers_mut(), authority.as_ref());
        }
        if version < Version::HTTP_2
            && headers::head_size(request.method(), request.uri(), request.headers())
                > self.max_request_head
        {
            tracing::debug!(method = %request.method(), "refused a request head over --max-request-head");
            return page(pages::client_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The request's head is larger than this server takes (--max-request-head).",
            ));
        }
        if let Some((status, reason)) =
            headers::refusal(request.method(), request.uri(), version, request.headers())
        {
            tracing::debug!(method = %request.method(), status = status.as_u16(), reason, "refused a request before the app");
            return page(pages::client_error(status, reason));
        }
        let stripped = match self
            .base
            .as_ref()
            .map(|base| (base, base.route(request.uri())))
        {
            Some((base, Route::Outside)) => return outside(base),
            Some((_, Route::Stripped(path))) => Some(path),
            _ => None,
        };
        // Taken before the request moves on: hyper hands the client's connection over here once
        // our 101 has been written.
        let upgrade = headers::requested_upgrade(version, request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));

        let client_closes = headers::closes(version, request.headers());
        let (mut parts, body) = request.into_parts();
        // hyper already refuses what could be read two ways (RFC 9112 §6.3): a Transfer-Encoding
        // not ending in chunked gets 400; with both Content-Length and chunked, chunked wins,
        // Content-Length is dropped and the connection closes after the answer, so nothing can
        // be smuggled behind the body. A chunked body broken from its first chunk is refused
        // here, before anything reaches the app.
        let body = if parts.headers.contains_key(header::TRANSFER_ENCODING) && !body.is_end_stream()
        {
            match RequestBody::checked(body, self.header_read_timeout).await {
                Ok(body) => body,
                Err(err @ BadBody::Invalid(_)) => {
                    return page(pages::client_error(
                        StatusCode::BAD_REQUEST,
                        &err.to_string(),
                    ))
                }
                Err(err @ BadBody::Slow(_)) => {
                    return page(pages::client_error(
                        StatusCode::REQUEST_TIMEOUT,
                        &err.to_string(),
                    ))
                }
            }
        } else {
            RequestBody::streamed(body)
        };
        let mut backend = match self.supervisor.backend().await {
            Ok(backend) => backend,
            Err(unavailable) => return self.unavailable(&unavailable),
        };
        let request_timeout = backend.config.request_timeout;
        let limits = backend.config.request_limits;
        if let Some(refused) = over_limits(&limits, &parts) {
            return refused;
        }
        let bodiless = body.is_end_stream();
        let declared_length = parts.headers.contains_key(header::CONTENT_LENGTH);
        // A declared length was checked above, and hyper holds the body to it; a chunked (or
        // HTTP/2) body is counted as it goes.
        let count_to = limits.max_body.filter(|_| !declared_length);
        let progress =
            (!bodiless && (request_timeout.is_some() || count_to.is_some())).then(Progress::new);
        let body = match &progress {
            Some(progress) => body.watched(count_to, progress.clone()),
            None => body,
        };
        let path = stripped.unwrap_or_else(|| {
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        });
        let mut headers = std::mem::take(&mut parts.headers);
        headers::for_app(
            &mut headers,
            &parts,
            bodiless,
            upgrade.as_ref(),
            &backend.token,
            client,
        );
        // Replaces whatever the client sent: only ancm knows what it took off.
        if let Some(prefix) = self.base.as_ref().and_then(AppBase::prefix) {
            headers.insert(app_path::X_FORWARDED_PREFIX, prefix.clone());
        }
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = Uri::from(path);
        *outgoing.version_mut() = Version::HTTP_11;
        *outgoing.headers_mut() = headers;

        let mut in_flight = InFlight::new(backend.clone());
        let mut result = self.send(&backend, outgoing, progress.as_deref()).await;
        // Only a request the app never saw goes to another try (a process that cannot be
        // reached has just died, or is about to be noticed dead): one that reached the app is
        // never replayed, since it may be what made the app fail.
        if let Err((Failed::Send(err), Some(mut unsent))) = result {
            stats::STATS.connect_failed();
            tracing::warn!(pid = backend.pid, err = %error_chain(&err), "could not reach the app; trying once more");
            backend.mark_unreachable();
            match self.supervisor.backend().await {
                Ok(next) => {
                    backend = next;
                    in_flight = InFlight::new(backend.clone());
                    unsent
                        .headers_mut()
                        .insert(headers::MS_ASPNETCORE_TOKEN, backend.token.clone());
                    result = self.send(&backend, unsent, progress.as_deref()).await;
                }
                Err(unavailable) => return self.unavailable(&unavailable),
            }
        }

        match result {
            // Upgraded, the app's connection becomes the tunnel's: not one to pool.
            Ok(response) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                match client_upgrade {
                    Some(client_side) => self.tunnel(response, client_side, in_flight),
                    None => {
                        // RFC 9110 §15.2.2: a server must not switch unasked, and HTTP/2 cannot.
                        tracing::warn!(
                            pid = backend.pid,
                            "the app answered 101 to a request that asked for no upgrade; answering 502"
                        );
                        page(pages::bad_gateway(SWITCHED_UNASKED))
                    }
                }
            }
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                if access_log::enabled() {
                    parts.extensions.insert(access_log::AppPid(backend.pid));
                }
                // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2).
                let keep_connection = contract::forwards_app_connection(
                    backend.config.forward_response_connection_header,
                    version >= Version::HTTP_2,
                    client_closes,
                );
                if headers::rewrite_response(&mut parts.headers, keep_connection) {
                    tracing::warn!(
                        pid = backend.pid,
                        "the app answered with both Transfer-Encoding and Content-Length; its body was read as chunked and its Content-Length dropped"
                    );
                }
                Response::from_parts(
                    parts,
                    Either::Left(IdleTimeout::new(body, request_timeout, Some(in_flight))),
                )
            }
            Err((Failed::TooLarge, _)) => {
                tracing::info!(pid = backend.pid, "a chunked request body passed maxAllowedContentLength; its request to the app was aborted");
                too_large()
            }
            Err((Failed::ClientBody(err), _)) => {
                tracing::info!(pid = backend.pid, err, "the client's request body broke off or was malformed part way; its request to the app was aborted; answering 400");
                page(pages::client_error(
                    StatusCode::BAD_REQUEST,
                    "The request body is not valid or ended early.",
                ))
            }
            Err((Failed::Timeout(limit), _)) => {
                stats::STATS.timed_out();
                tracing::warn!(
                    pid = backend.pid,
                    "the app did not answer within requestTimeout ({limit:?}); answering 502"
                );
                page(pages::bad_gateway(&timeout_reason(limit)))
            }
            Err((Failed::Send(err), unsent)) => {
                if unsent.is_some() {
                    stats::STATS.connect_failed();
                }
                let reason = if unsent.is_some() {
                    CANNOT_CONNECT
                } else {
                    CLOSED_OR_INVALID
                };
                tracing::warn!(pid = backend.pid, err = %error_chain(&err), "forwarding to the app failed; answering 502");
                page(pages::bad_gateway(reason))
            }
        }
    }

    /// Sends one request to `backend`. requestTimeout bounds each wait on the app until the
    /// response head: the connect, each gap while the app takes the request body (`progress`),
    /// and the head itself once the body is sent; never the client's own pace. Returns the
    /// response head (its body holds the connection), or why there is none and, if the app
    /// never saw it, the request.
    async fn send(
        &self,
        backend: &Backend,
        request: Request<RequestBody>,
        progress: Option<&Progress>,
    ) -> Result<Response<AppBody>, (Failed, Option<Request<RequestBody>>)> {
        let forwarded = pool::send(backend, request);
        let Some(limit) = backend.config.request_timeout else {
            return forwarded.await.map_err(|u| failed(u, progress));
        };
        tokio::pin!(forwarded);
        let idle = tokio::time::sleep(limit);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                result = &mut forwarded => return result.map_err(|u| failed(u, progress)),
                () = &mut idle => {
                    let now = tokio::time::Instant::now();
                    let due = match progress {
                        None => now,
                        // The client is still sending: its pace is not the app's silence.
                        Some(progress) => progress.idle_deadline(limit).unwrap_or(now + limit),
                    };
                    if due <= now {
                        return Err((Failed::Timeout(limit), None));
                    }
                    idle.as_mut().reset(due);
                }
            }
        }
    }

    fn unavailable(&self, unavailable: &Unavailable) -> Response<ProxyBody> {
        page(self.unavailable_page(unavailable))
    }

    /// The page for a request no app process can take (502.5, or app_offline.htm's 503).
    fn unavailable_page(&self, unavailable: &Unavailable) -> Response<Full<Bytes>> {
        pages::startup_failure(unavailable, &self.supervisor.config())
    }
}

/// What the 502 pages say, on either path.
const CANNOT_CONNECT: &str =
    "ancm could not connect to the app; it may have just exited and is being restarted.";
const CLOSED_OR_INVALID: &str = "The app closed the connection or sent an invalid response.";
const SWITCHED_UNASKED: &str = "The app switched protocols on a request that did not ask for it.";

fn timeout_reason(limit: Duration) -> String {
    format!(
        "The app did not answer within requestTimeout ({} s).",
        limit.as_secs_f64()
    )
}

/// IIS's request limits (requestFiltering/requestLimits), enforced before the app as IIS does:
/// the IIS integration switches Kestrel's own body limit off. IIS answers 404.13, 404.14 and
/// 404.15; outside IIS the standard 413 and 414 say the same to any client.
fn over_limits(
    limits: &RequestLimits,
    parts: &http::request::Parts,
) -> Option<Response<ProxyBody>> {
    let path = parts.uri.path().len();
    let query = parts.uri.query().map_or(0, str::len);
    if path > limits.max_url || query > limits.max_query_string {
        let (what, length, limit) = if path > limits.max_url {
            ("URL", path, limits.max_url)
        } else {
            ("query string", query, limits.max_query_string)
        };
        tracing::info!("refused a request whose {what} is {length} bytes, over the limit of {limit} (requestLimits)");
        return Some(page(pages::client_error(
            StatusCode::URI_TOO_LONG,
            &format!("The request's {what} is longer than this app accepts ({limit} bytes)."),
        )));
    }
    let max_body = limits.max_body?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())?;
    (declared > max_body).then(|| {
        tracing::info!(
            "refused a request body of {declared} bytes, over maxAllowedContentLength ({max_body})"
        );
        too_large()
    })
}

/// IIS gives the app only the requests under its virtual path; the rest are not the app's.
fn outside(base: &AppBase) -> Response<ProxyBody> {
    tracing::debug!(
        base = base.base(),
        "answered 404 to a request outside the app's path"
    );
    page(pages::client_error(
        StatusCode::NOT_FOUND,
        &format!("This server serves only paths under {}.", base.base()),
    ))
}

fn too_large() -> Response<ProxyBody> {
    page(pages::client_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The request body is larger than this app accepts.",
    ))
}

/// What a request that got no response failed of.
fn failed(
    unanswered: Unanswered,
    progress: Option<&Progress>,
) -> (Failed, Option<Request<RequestBody>>) {
    let Unanswered { error, unsent } = unanswered;
    if progress.is_some_and(Progress::too_large) {
        return (Failed::TooLarge, None);
    }
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(client) = cause.downcast_ref::<ClientBodyFailed>() {
            return (Failed::ClientBody(error_chain(client)), None);
        }
        source = cause.source();
    }
    (Failed::Send(error), unsent)
}

/// The front's TLS setup from --tls-cert/--tls-key, if given. A file that cannot be used is a
/// configuration error, reported before the app starts.
pub fn tls_acceptor(config: &AppConfig) -> Result<Option<TlsAcceptor>, ConfigError> {
    config
        .tls
        .as_ref()
        .map(tls::acceptor)
        .transpose()
        .map_err(|err| ConfigError::Tls(format!("{err:#}")))
}

/// The header half of forwarding, on its own for the fuzz target: rewrites a client's request
/// headers (and, with `upgrade`, its Upgrade) as they go to an app whose token is `token`.
pub fn rewrite_request_headers(
    headers: &mut HeaderMap,
    token: &HeaderValue,
    client: &ClientInfo,
    upgrade: Option<&HeaderValue>,
) {
    headers::rewrite_request(headers, token, client, upgrade);
}

/// The head hyper's path writes for the app from a client's request as hyper read it
/// (`bodiless`: the client sent no body), for tests/framing_check, which holds it equal to
/// [`lean_head_for_app`]'s from the same bytes.
#[doc(hidden)]
pub fn hyper_head_for_app(
    parts: &http::request::Parts,
    bodiless: bool,
    token: &HeaderValue,
    client: &ClientInfo,
) -> Vec<u8> {
    let upgrade = headers::requested_upgrade(parts.version, &parts.headers);
    let mut headers = parts.headers.clone();
    headers::for_app(
        &mut headers,
        parts,
        bodiless,
        upgrade.as_ref(),
        token,
        client,
    );
    let mut out = Vec::new();
    h1::encode_head(&mut out, &parts.method, &parts.uri, &headers);
    out
}

/// The response hyper's path gives the front for the app's response head at the start of
/// `app` (a final one), rewritten for the client, with its body's size as the front learns it:
/// for tests/framing_check, which has hyper's server write it and holds that equal to
/// [`lean_response_for_client`]'s bytes.
#[doc(hidden)]
pub fn hyper_response_for_client(
    app: &[u8],
    head_request: bool,
    forward_connection_header: bool,
    client_closes: bool,
) -> Option<(Response<()>, http_body::SizeHint)> {
    let (mut response, hint) = exchange::response_for_front(app, head_request)?;
    let keep_connection =
        contract::forwards_app_connection(forward_connection_header, false, client_closes);
    headers::rewrite_response(response.headers_mut(), keep_connection);
    Some((response, hint))
}

fn page(response: Response<Full<Bytes>>) -> Response<ProxyBody> {
    response.map(Either::Right)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
