//! The steps of forwarding that both proxy paths take, written once: pick a backend, check the
//! request limits, send with one retry for a request the app never saw (keeping the request
//! counted in flight on the process it went to), and count the request in the metrics and the
//! access log. Each path supplies only its transport ([`Transport`]) and its rendering of the
//! answers; nothing here allocates or dispatches dynamically per request.
//!
//! Must not import either path (`hyper_path/`, `front.rs`, `lean/`): they import this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{StatusCode, Version};

use super::access_log::{self, Entry};
use super::outcome::NoAnswer;
use super::stats::STATS;
use crate::config::RequestLimits;
use crate::supervisor::{Backend, InFlight, Supervisor};

/// A ready app process for a request, or why there is none.
pub(super) async fn pick_backend(supervisor: &Supervisor) -> Result<Arc<Backend>, NoAnswer> {
    supervisor
        .backend()
        .await
        .map_err(|unavailable| NoAnswer::Unavailable {
            unavailable,
            config: supervisor.config(),
        })
}

/// Which of IIS's request limits (requestFiltering/requestLimits) a request passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OverLimit {
    /// The URL's path, `length` bytes against `limit` (maxUrl).
    Url { length: usize, limit: usize },
    /// The query string, `length` bytes against `limit` (maxQueryString).
    Query { length: usize, limit: usize },
    /// The declared body, `length` bytes against `limit` (maxAllowedContentLength).
    Body { length: u64, limit: u64 },
}

/// The limits predicate, on the lengths of a request's path and query string and its declared
/// Content-Length. The answer (413, 414) is hyper's path's: the lean path hands such requests
/// over.
pub(super) fn over_limits(
    limits: &RequestLimits,
    path: usize,
    query: usize,
    declared: Option<u64>,
) -> Option<OverLimit> {
    if path > limits.max_url {
        return Some(OverLimit::Url {
            length: path,
            limit: limits.max_url,
        });
    }
    if query > limits.max_query_string {
        return Some(OverLimit::Query {
            length: query,
            limit: limits.max_query_string,
        });
    }
    match (limits.max_body, declared) {
        (Some(limit), Some(length)) if length > limit => Some(OverLimit::Body { length, limit }),
        _ => None,
    }
}

/// How one path sends a request to an app process.
pub(super) trait Transport {
    /// What is sent again when the first try never reached the app.
    type Request;
    type Response;

    /// One try at `backend`. An error comes with the request when the app never saw it.
    async fn send(
        &mut self,
        backend: &Arc<Backend>,
        request: Self::Request,
    ) -> Result<Self::Response, (NoAnswer, Option<Self::Request>)>;

    /// Readies an unsent request for another process (its token, for one).
    fn readdress(&mut self, _request: &mut Self::Request, _backend: &Backend) {}
}

/// Sends `request` to `backend`, counted in flight there from before the connect (so that a
/// recycle waits for it from the start). Only a request the app never saw goes to another try,
/// once, on the process the supervisor gives next (a process that cannot be reached has just
/// died, or is about to be noticed dead): one that reached the app is never replayed, since it
/// may be what made the app fail. The response comes with the request's in-flight count, which
/// names the process that answered.
pub(super) async fn send_with_one_retry<T: Transport>(
    supervisor: &Supervisor,
    backend: Arc<Backend>,
    transport: &mut T,
    request: T::Request,
) -> Result<(T::Response, InFlight), NoAnswer> {
    let in_flight = InFlight::new(backend);
    let (why, unsent) = match transport.send(in_flight.backend(), request).await {
        Ok(response) => return Ok((response, in_flight)),
        Err(failed) => failed,
    };
    let Some(mut unsent) = unsent else {
        return Err(why);
    };
    why.retrying();
    in_flight.backend().mark_unreachable();
    let next = pick_backend(supervisor).await?;
    let in_flight = InFlight::new(next);
    transport.readdress(&mut unsent, in_flight.backend());
    match transport.send(in_flight.backend(), unsent).await {
        Ok(response) => Ok((response, in_flight)),
        Err((why, _)) => Err(why),
    }
}

/// One request for the metrics (in flight from its head until it is over, then its duration,
/// answers by protocol and status class) and, when there is an access log, its line.
pub(super) struct Tally {
    started: Instant,
    entry: Option<Box<Entry>>,
}

impl Tally {
    /// Counts a request begun now; `entry` is its access log line, when there is a log.
    #[inline]
    pub(super) fn start(entry: Option<Box<Entry>>) -> Tally {
        STATS.began();
        Tally {
            started: Instant::now(),
            entry,
        }
    }

    /// When the request began: its deadlines count from there.
    #[inline]
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// The answer's head, from the app process `pid` or (`None`) from ancm.
    #[inline]
    pub(super) fn answered(&mut self, version: Version, status: StatusCode, pid: Option<u32>) {
        STATS.answered(version, status);
        if let Some(entry) = &mut self.entry {
            entry.answered(status, pid);
        }
    }

    /// The request is over (answered, or abandoned by its client); returns when.
    #[inline]
    pub(super) fn end(&self) -> Instant {
        let ended = Instant::now();
        let took = ended.saturating_duration_since(self.started);
        STATS.ended(took);
        if let Some(entry) = &self.entry {
            entry.finish(took);
        }
        ended
    }
}

/// The access log line for a request whose head is read, if requests are logged.
#[inline]
pub(super) fn log_entry(make: impl FnOnce() -> Entry) -> Option<Box<Entry>> {
    access_log::enabled().then(|| Box::new(make()))
}

/// The client's address and the one it connected to, for the access log.
pub(super) type Addrs = (SocketAddr, SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_url_then_query_then_declared_body() {
        let limits = RequestLimits {
            max_url: 10,
            max_query_string: 5,
            max_body: Some(100),
        };
        assert_eq!(over_limits(&limits, 10, 5, Some(100)), None);
        assert_eq!(over_limits(&limits, 10, 5, None), None);
        assert_eq!(
            over_limits(&limits, 11, 6, Some(101)),
            Some(OverLimit::Url {
                length: 11,
                limit: 10
            })
        );
        assert_eq!(
            over_limits(&limits, 1, 6, Some(101)),
            Some(OverLimit::Query {
                length: 6,
                limit: 5
            })
        );
        assert_eq!(
            over_limits(&limits, 1, 1, Some(101)),
            Some(OverLimit::Body {
                length: 101,
                limit: 100
            })
        );
        let unbounded = RequestLimits {
            max_body: None,
            ..limits
        };
        assert_eq!(over_limits(&unbounded, 1, 1, Some(u64::MAX)), None);
    }
}
