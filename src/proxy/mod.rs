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
mod body;
mod exchange;
mod forward;
mod front;
mod headers;
mod hyper_path;
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
use body::IdleTimeout;
use exchange::AppBody;
pub use front::{raise_open_file_limit, serve};
pub use headers::ClientInfo;
pub use lean::framing as lean_request_framing;

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
