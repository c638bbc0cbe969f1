//! Why the app gave no answer to a request, and what the client gets instead: one table for both
//! proxy paths. Each [`NoAnswer`] has its status and page (`pages.rs`), its log line (level,
//! message, fields) and its counter (`stats.rs`); [`NoAnswer::answer`] applies all three and
//! returns the page, which hyper's path sends as a `Response` and the lean path writes as bytes.
//! The errors of the transports (`exchange.rs`, `pool.rs`, `body.rs`) are mapped in here, not
//! matched on by each path.
//!
//! Must not import either path (`hyper_path/`, `front.rs`, `lean/`): they import this.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use super::h1::ExchangeError;
use super::stats::STATS;
use super::upstream::pool::Unanswered;
use super::upstream::request_body::{ClientBodyFailed, Progress, RequestBody};
use super::{error_chain, pages};
use crate::config::AppConfig;
use crate::supervisor::Unavailable;

/// Why a request got no response from the app (or never went to one).
pub(super) enum NoAnswer {
    /// No connection to the app could be made: the app never saw the request.
    CannotConnect { pid: u32, err: String },
    /// The app closed the connection or sent an invalid response before its head was whole.
    ClosedOrInvalid { pid: u32, err: String },
    /// The app did not answer within requestTimeout.
    Timeout { pid: u32, limit: Duration },
    /// The app answered 101 to a request that asked for no upgrade (RFC 9110 §15.2.2: a server
    /// must not switch unasked, and HTTP/2 cannot).
    SwitchedUnasked { pid: u32 },
    /// A chunked request body passed maxAllowedContentLength on its way.
    TooLarge { pid: u32 },
    /// The client's request body broke off or was malformed part way: the client's fault.
    ClientBody { pid: u32, err: String },
    /// No app process can take the request (502.5, app_offline.htm's 503, or ancm stopping).
    Unavailable {
        unavailable: Unavailable,
        config: Arc<AppConfig>,
    },
}

/// What the 502 pages say, on either path.
const CANNOT_CONNECT: &str =
    "ancm could not connect to the app; it may have just exited and is being restarted.";
const CLOSED_OR_INVALID: &str = "The app closed the connection or sent an invalid response.";
const SWITCHED_UNASKED: &str = "The app switched protocols on a request that did not ask for it.";

impl NoAnswer {
    pub(super) fn cannot_connect(pid: u32, err: &dyn std::error::Error) -> NoAnswer {
        NoAnswer::CannotConnect {
            pid,
            err: error_chain(err),
        }
    }

    pub(super) fn closed_or_invalid(pid: u32, err: &dyn std::error::Error) -> NoAnswer {
        NoAnswer::ClosedOrInvalid {
            pid,
            err: error_chain(err),
        }
    }

    /// The table: says why (the log line), counts it, and returns the page the client gets.
    pub(super) fn answer(self) -> Response<Full<Bytes>> {
        match self {
            NoAnswer::CannotConnect { pid, err } => {
                STATS.connect_failed();
                tracing::warn!(pid, err = %err, "forwarding to the app failed; answering 502");
                pages::bad_gateway(CANNOT_CONNECT)
            }
            NoAnswer::ClosedOrInvalid { pid, err } => {
                tracing::warn!(pid, err = %err, "forwarding to the app failed; answering 502");
                pages::bad_gateway(CLOSED_OR_INVALID)
            }
            NoAnswer::Timeout { pid, limit } => {
                STATS.timed_out();
                tracing::warn!(
                    pid,
                    "the app did not answer within requestTimeout ({limit:?}); answering 502"
                );
                pages::bad_gateway(&timeout_reason(limit))
            }
            NoAnswer::SwitchedUnasked { pid } => {
                tracing::warn!(
                    pid,
                    "the app answered 101 to a request that asked for no upgrade; answering 502"
                );
                pages::bad_gateway(SWITCHED_UNASKED)
            }
            NoAnswer::TooLarge { pid } => {
                tracing::info!(pid, "a chunked request body passed maxAllowedContentLength; its request to the app was aborted");
                too_large()
            }
            NoAnswer::ClientBody { pid, err } => {
                tracing::info!(pid, err, "the client's request body broke off or was malformed part way; its request to the app was aborted; answering 400");
                pages::client_error(
                    StatusCode::BAD_REQUEST,
                    "The request body is not valid or ended early.",
                )
            }
            NoAnswer::Unavailable {
                unavailable,
                config,
            } => pages::startup_failure(&unavailable, &config),
        }
    }

    /// Said (and counted) when a request the app never saw goes to another try.
    pub(super) fn retrying(&self) {
        if let NoAnswer::CannotConnect { pid, err } = self {
            STATS.connect_failed();
            tracing::warn!(pid, err = %err, "could not reach the app; trying once more");
        }
    }
}

/// The app's response head had both Transfer-Encoding and Content-Length: it was answered, but
/// the operator should know.
pub(super) fn conflicting_framing(pid: u32) {
    tracing::warn!(
        pid,
        "the app answered with both Transfer-Encoding and Content-Length; its body was read as chunked and its Content-Length dropped"
    );
}

fn timeout_reason(limit: Duration) -> String {
    format!(
        "The app did not answer within requestTimeout ({} s).",
        limit.as_secs_f64()
    )
}

/// 413, for a body over maxAllowedContentLength (declared, or counted on its way).
pub(super) fn too_large() -> Response<Full<Bytes>> {
    pages::client_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The request body is larger than this app accepts.",
    )
}

/// Why hyper's path got no response from `pid`, from the pool's error: the body's own account
/// first (over the limit, or broken off by the client), else the app's. The request comes back
/// when the app never saw it.
pub(super) fn classify(
    unanswered: Unanswered,
    progress: Option<&Progress>,
    pid: u32,
) -> (NoAnswer, Option<Request<RequestBody>>) {
    let Unanswered { error, unsent } = unanswered;
    if progress.is_some_and(Progress::too_large) {
        return (NoAnswer::TooLarge { pid }, None);
    }
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(client) = cause.downcast_ref::<ClientBodyFailed>() {
            let err = error_chain(client);
            return (NoAnswer::ClientBody { pid, err }, None);
        }
        source = cause.source();
    }
    match unsent {
        Some(unsent) => (NoAnswer::cannot_connect(pid, &error), Some(unsent)),
        None => (NoAnswer::closed_or_invalid(pid, &error), None),
    }
}

/// Why an exchange on the lean path stopped part way, by whose doing.
pub(super) enum Broke {
    /// The app's side: closed, reset, or not HTTP.
    App(ExchangeError),
    /// The app was silent for requestTimeout.
    TimedOut,
    /// The client went away or stopped taking the response.
    Client,
}

impl Broke {
    /// What a break before the response head means for the client: `None` when the client
    /// itself is gone and nobody is left to answer.
    pub(super) fn before_head(self, pid: u32, limit: Option<Duration>) -> Option<NoAnswer> {
        match self {
            Broke::App(err) => Some(NoAnswer::closed_or_invalid(pid, &err)),
            Broke::TimedOut => Some(NoAnswer::Timeout {
                pid,
                limit: limit.unwrap_or(Duration::MAX),
            }),
            Broke::Client => None,
        }
    }
}
