//! Forwarding: each request from the front (HTTP/1.1 or HTTP/2, plain or TLS; see `front.rs`)
//! goes to a ready app process over pooled HTTP/1.1 keep-alive connections, bodies streamed
//! both ways and each frame passed on as it comes (server-sent events are not held back). An
//! upgrade (WebSocket) the app accepts becomes a byte tunnel (`tunnel.rs`). When there is no
//! app to forward to, ancm answers with its own pages.
//!
//! Two paths serve requests: the lean HTTP/1.1 path (`lean/`) and hyper's (`hyper_path/`),
//! chosen per connection and request by `front.rs` and `lean/`. What they share is written once:
//! the steps of forwarding (`forward.rs`), the answers when the app gives none (`outcome.rs`),
//! the app's path (`app_path.rs`), the access log and the counters. This module holds the state
//! every request reads ([`Proxy`]) and the little both paths ask of it.

pub mod access_log;
mod app_path;
mod contract;
mod forward;
mod front;
mod h1;
mod headers;
mod hyper_path;
mod lean;
mod outcome;
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
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{Either, Full};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AppConfig, ConfigError, ForwardedFor};
use crate::supervisor::Supervisor;
use app_path::AppBase;
pub use front::{raise_open_file_limit, serve};
pub use headers::ClientInfo;
pub use lean::{
    framing as lean_request_framing, head_for_app as lean_head_for_app,
    response_for_client as lean_response_for_client,
};
use response_body::IdleTimeout;
use upstream::exchange::AppBody;

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
    let (mut response, hint) = upstream::exchange::response_for_front(app, head_request)?;
    let keep_connection =
        contract::forwards_app_connection(forward_connection_header, false, client_closes);
    headers::rewrite_response(response.headers_mut(), keep_connection);
    Some((response, hint))
}

fn page(response: Response<Full<Bytes>>) -> Response<ProxyBody> {
    response.map(Either::Right)
}

/// An error and its causes, `: `-joined, for log lines.
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
