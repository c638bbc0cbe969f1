//! A ready app process as the proxy sees it: plain data (where it listens, its token, its pid,
//! an identity and the configuration it started with), plus the two things the supervisor
//! tracks for it: the requests in flight it drains before a stop, and the mark that has the
//! proxy pass it over. The proxy keeps its own connections to it, keyed by [`Backend::id`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;

/// How long a backend the proxy could not reach is passed over.
const UNREACHABLE_FOR: Duration = Duration::from_secs(1);

/// The unreachable mark of a process that is gone for good: it never runs out.
const GONE: u64 = u64::MAX;

/// The next [`Backend::id`]: ids are never reused while ancm runs.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many backends have gone for good so far; see [`gone_count`].
static GONE_COUNT: AtomicU64 = AtomicU64::new(0);

/// How many backends have gone for good (their process exited or was stopped) since ancm
/// started. Whoever keeps something per backend looks for gone ones when this changes, which
/// is rarely: one atomic read tells it nothing changed.
pub fn gone_count() -> u64 {
    GONE_COUNT.load(Ordering::Acquire)
}

/// A ready app process, as the proxy needs it.
#[derive(Debug)]
pub struct Backend {
    /// Which process this is, unique over ancm's life: a restarted or recycled process on the
    /// same port is another backend.
    pub id: u64,
    pub addr: SocketAddr,
    /// The pairing token, sent as MS-ASPNETCORE-TOKEN.
    pub token: HeaderValue,
    pub pid: u32,
    /// The configuration this process started with: requests to it follow its requestTimeout,
    /// forwardResponseConnectionHeader and request limits, also while a reload's new process
    /// takes over and this one drains.
    pub config: Arc<AppConfig>,
    /// Requests forwarded to this process and not yet answered in full; a recycle waits for
    /// them to finish before stopping the process. Counted by the proxy's [`InFlight`].
    pub(crate) in_flight: AtomicUsize,
    /// Until when (see [`clock`]) the proxy could not connect to this process; it is then
    /// passed over. A process that died is replaced within milliseconds; the mark only bridges
    /// the moment before its slot notices, and runs out by itself if the failure was passing.
    /// [`GONE`] once the process has exited or been stopped.
    unreachable_until: AtomicU64,
}

/// Milliseconds since ancm started: a cheap clock for atomics.
fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
}

impl Backend {
    pub(crate) fn new(
        addr: SocketAddr,
        token: HeaderValue,
        pid: u32,
        config: Arc<AppConfig>,
    ) -> Backend {
        Backend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            addr,
            config,
            token,
            pid,
            in_flight: AtomicUsize::new(0),
            unreachable_until: AtomicU64::new(0),
        }
    }

    /// The proxy could not reach this process: pass it over for a moment.
    pub fn mark_unreachable(&self) {
        let until = clock()
            .saturating_add(u64::try_from(UNREACHABLE_FOR.as_millis()).unwrap_or(0))
            .min(GONE - 1);
        // A gone process stays gone.
        let _ = self
            .unreachable_until
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                (now != GONE).then_some(until)
            });
    }

    /// The process has exited or been stopped: nothing is to be sent to it any more.
    pub(crate) fn mark_gone(&self) {
        if self.unreachable_until.swap(GONE, Ordering::Release) != GONE {
            GONE_COUNT.fetch_add(1, Ordering::Release);
        }
    }

    /// Whether the process has exited or been stopped.
    pub fn is_gone(&self) -> bool {
        self.unreachable_until.load(Ordering::Acquire) == GONE
    }

    pub(super) fn usable(&self) -> bool {
        self.unreachable_for().is_none()
    }

    /// How much longer this process is passed over, if it is.
    pub(super) fn unreachable_for(&self) -> Option<Duration> {
        let until = self.unreachable_until.load(Ordering::Relaxed);
        let now = clock();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Waits until no request is in flight to this process, for at most `limit` (or until
    /// `kill_now` fires): a stop lets the requests it has finish first.
    pub(super) async fn drained(&self, limit: Duration, kill_now: &CancellationToken) {
        let deadline = Instant::now() + limit;
        while self.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
                () = kill_now.cancelled() => return,
            }
        }
    }
}

/// One request in flight to a backend, for as long as this lives.
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    pub fn new(backend: Arc<Backend>) -> InFlight {
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(backend)
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
