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
mod body;
mod exchange;
mod forward;
mod front;
mod headers;
mod lean;
mod outcome;
mod pages;
mod pool;
mod send_timeout;
pub mod stats;
mod tls;
mod trim;
mod tunnel;
mod workers;

use std::sync::Arc;
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
use crate::supervisor::{Backend, Supervisor};
use app_path::{AppBase, Route};
use body::{BadBody, IdleTimeout, Progress, RequestBody};
use exchange::AppBody;
use forward::{OverLimit, Transport};
pub use front::{raise_open_file_limit, serve};
pub use headers::ClientInfo;
pub use lean::framing as lean_request_framing;
use outcome::NoAnswer;
// For the modules below that write errors in log lines.
use outcome::error_chain;

/// What the proxy answers with: the app's streamed body, or one of ancm's pages.
pub type ProxyBody = Either<IdleTimeout<AppBody>, Full<Bytes>>;

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
    /// hyper; not with `ANCM_LEAN=off`.
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
            lean: lean_switch(std::env::var_os(LEAN_VARIABLE)),
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
        let backend = match forward::pick_backend(&self.supervisor).await {
            Ok(backend) => backend,
            Err(why) => return page(why.answer()),
        };
        let request_timeout = backend.config.request_timeout;
        let limits = backend.config.request_limits;
        if let Some(over) = over_limits(&limits, &parts) {
            return page(refuse(over));
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
        if bodiless
            && upgrade.is_none()
            && expects_content(parts.method.as_str())
            && !declared_length
        {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        // hyper sends no body with a GET or HEAD whose length it does not know; the
        // client sent one, so the app gets it, chunked as it came.
        let forward_chunked = !bodiless && !declared_length;
        let path = stripped.unwrap_or_else(|| {
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        });
        let mut headers = parts.headers;
        headers::settle_host(&mut headers, &parts.uri, &client.front);
        headers::rewrite_request(&mut headers, &backend.token, client, upgrade.as_ref());
        if forward_chunked {
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        // Replaces whatever the client sent: only ancm knows what it took off.
        if let Some(prefix) = self.base.as_ref().and_then(AppBase::prefix) {
            headers.insert(app_path::X_FORWARDED_PREFIX, prefix.clone());
        }
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = Uri::from(path);
        *outgoing.version_mut() = Version::HTTP_11;
        *outgoing.headers_mut() = headers;

        let mut transport = HyperTransport {
            proxy: self,
            progress: progress.as_deref(),
        };
        let sent =
            forward::send_with_one_retry(&self.supervisor, backend, &mut transport, outgoing).await;
        let (response, in_flight) = match sent {
            Ok(sent) => sent,
            Err(why) => return page(why.answer()),
        };
        let backend = in_flight.backend();
        // Upgraded, the app's connection becomes the tunnel's: not one to pool.
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return match client_upgrade {
                Some(client_side) => self.tunnel(response, client_side, in_flight),
                None => page(NoAnswer::SwitchedUnasked { pid: backend.pid }.answer()),
            };
        }
        let (mut parts, body) = response.into_parts();
        if access_log::enabled() {
            parts.extensions.insert(access_log::AppPid(backend.pid));
        }
        // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2).
        let keep_connection =
            backend.config.forward_response_connection_header && version < Version::HTTP_2;
        if headers::rewrite_response(&mut parts.headers, keep_connection) {
            outcome::conflicting_framing(backend.pid);
        }
        Response::from_parts(
            parts,
            Either::Left(IdleTimeout::new(body, request_timeout, Some(in_flight))),
        )
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
    ) -> Result<Response<AppBody>, (NoAnswer, Option<Request<RequestBody>>)> {
        let pid = backend.pid;
        let forwarded = pool::send(backend, request);
        let Some(limit) = backend.config.request_timeout else {
            return forwarded
                .await
                .map_err(|u| outcome::classify(u, progress, pid));
        };
        tokio::pin!(forwarded);
        let idle = tokio::time::sleep(limit);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                result = &mut forwarded => return result.map_err(|u| outcome::classify(u, progress, pid)),
                () = &mut idle => {
                    let now = tokio::time::Instant::now();
                    let due = match progress {
                        None => now,
                        // The client is still sending: its pace is not the app's silence.
                        Some(progress) => progress.idle_deadline(limit).unwrap_or(now + limit),
                    };
                    if due <= now {
                        return Err((NoAnswer::Timeout { pid, limit }, None));
                    }
                    idle.as_mut().reset(due);
                }
            }
        }
    }
}

/// hyper's path's transport: hyper's client over the pool, under requestTimeout.
struct HyperTransport<'a> {
    proxy: &'a Proxy,
    progress: Option<&'a Progress>,
}

impl Transport for HyperTransport<'_> {
    type Request = Request<RequestBody>;
    type Response = Response<AppBody>;

    async fn send(
        &mut self,
        backend: &Arc<Backend>,
        request: Request<RequestBody>,
    ) -> Result<Response<AppBody>, (NoAnswer, Option<Request<RequestBody>>)> {
        self.proxy.send(backend, request, self.progress).await
    }

    fn readdress(&mut self, request: &mut Request<RequestBody>, backend: &Backend) {
        request
            .headers_mut()
            .insert(headers::MS_ASPNETCORE_TOKEN, backend.token.clone());
    }
}

/// IIS's request limits (requestFiltering/requestLimits), enforced before the app as IIS does:
/// the IIS integration switches Kestrel's own body limit off. IIS answers 404.13, 404.14 and
/// 404.15; outside IIS the standard 413 and 414 say the same to any client.
fn over_limits(limits: &RequestLimits, parts: &http::request::Parts) -> Option<OverLimit> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let query = parts.uri.query().map_or(0, str::len);
    forward::over_limits(limits, parts.uri.path().len(), query, declared)
}

/// The answer to a request over a limit, on hyper's path (the lean path hands such requests
/// here).
fn refuse(over: OverLimit) -> Response<Full<Bytes>> {
    let (what, length, limit) = match over {
        OverLimit::Body { length, limit } => {
            tracing::info!(
                "refused a request body of {length} bytes, over maxAllowedContentLength ({limit})"
            );
            return outcome::too_large();
        }
        OverLimit::Url { length, limit } => ("URL", length, limit),
        OverLimit::Query { length, limit } => ("query string", length, limit),
    };
    tracing::info!("refused a request whose {what} is {length} bytes, over the limit of {limit} (requestLimits)");
    pages::client_error(
        StatusCode::URI_TOO_LONG,
        &format!("The request's {what} is longer than this app accepts ({limit} bytes)."),
    )
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

fn page(response: Response<Full<Bytes>>) -> Response<ProxyBody> {
    response.map(Either::Right)
}
