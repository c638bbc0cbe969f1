//! The app's processes: each slot starts its process eagerly, waits until it listens, restarts
//! it when it exits (within the rapidFailsPerMinute budget), and stops it gracefully. The proxy
//! asks for a ready [`Backend`] and never spawns anything itself.
//!
//! Today there is one slot; the proxy already asks "give me a ready backend", so more slots
//! (processesPerApplication) fit without changing it.

mod platform;
mod process;
mod rapid_fail;
mod slot;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::HeaderValue;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AppConfig;
use crate::logs::{Console, Tail};

#[cfg(unix)]
pub use platform::guard::{is_guard_process, run as run_guard, Guard};

/// Every process descended from `pid` now, read from the process table (blocking: it reads
/// the whole table).
pub fn descendants(pid: u32) -> Vec<u32> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let Ok(mut system) = System::new() else {
        return Vec::new();
    };
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            system
                .processes()
                .iter()
                .filter(|(_, p)| p.parent().map(sysinfo::Pid::as_u32) == Some(parent))
                .map(|(child, _)| child.as_u32()),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// What every slot shares: the configuration and the means to report and stop.
pub struct Context {
    pub config: Arc<AppConfig>,
    pub console: Console,
    /// For the shutdown message; reqwest because this is not the hot path.
    pub http: reqwest::Client,
    /// Kills the app's process groups if ancm dies without doing so.
    #[cfg(unix)]
    pub guard: Option<Arc<Guard>>,
}

/// A ready app process, as the proxy needs it.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// `127.0.0.1:port`, ready for request URIs.
    pub authority: Authority,
    /// The pairing token, sent as MS-ASPNETCORE-TOKEN.
    pub token: HeaderValue,
    pub pid: u32,
    /// Requests forwarded to this process and not yet answered in full; a recycle waits for
    /// them to finish before stopping the process. Counted by the proxy's [`InFlight`].
    pub(crate) in_flight: AtomicUsize,
}

/// One request in flight to a backend, for as long as this lives.
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    pub fn new(backend: Arc<Backend>) -> InFlight {
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(backend)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What happens to a slot, as it happens (for the helper protocol).
#[derive(Debug, Clone)]
pub enum Event {
    Starting {
        attempt: u64,
    },
    Ready(Arc<Backend>),
    /// A start failed, or a running app exited.
    Failed(Arc<Failure>),
    /// The rapid-fail limit was reached; no start until `until`.
    Paused {
        until: Instant,
        limit: u32,
    },
    Recycling,
    Stopping,
    Stopped,
}

/// Why a start failed or a running app went away.
#[derive(Debug)]
pub struct Failure {
    /// Which start attempt this was about.
    pub attempt: u64,
    pub kind: FailureKind,
    /// The last 30 KB the app printed.
    pub output: String,
}

#[derive(Debug)]
pub enum FailureKind {
    /// The executable could not be started at all.
    Spawn { program: String, error: String },
    /// The app exited, before listening or after.
    Exited { status: String, before_ready: bool },
    /// It did not listen within startupTimeLimit and was killed.
    StartTimeout { limit: Duration },
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Spawn { program, error } => {
                write!(
                    f,
                    "the app's executable {program} could not be started: {error}"
                )
            }
            FailureKind::Exited {
                status,
                before_ready: true,
            } => write!(f, "the app {status} before it listened on its port"),
            FailureKind::Exited {
                status,
                before_ready: false,
            } => write!(f, "the app {status}"),
            FailureKind::StartTimeout { limit } => write!(
                f,
                "the app did not listen on its port within startupTimeLimit ({} s) and was killed",
                limit.as_secs()
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Phase {
    Starting,
    Ready(Arc<Backend>),
    /// Too many failures within a minute; starts resume at `until`.
    Paused {
        until: Instant,
    },
    Stopping,
    Stopped,
}

/// A slot's state, published through a watch channel.
#[derive(Debug, Clone)]
pub struct Status {
    pub phase: Phase,
    /// The number of the current (or last) start attempt.
    pub attempt: u64,
    pub last_failure: Option<Arc<Failure>>,
    /// Starts after the first one: restarts after exits, and recycles.
    pub restarts: u64,
    /// When the current process became ready.
    pub ready_since: Option<Instant>,
    /// The current (or last) process's output.
    pub output: Tail,
}

/// Why the proxy got no backend.
#[derive(Debug)]
pub enum Unavailable {
    /// The start this request waited for failed.
    Failed(Arc<Failure>),
    /// The rapid-fail limit was reached; no start until `until`.
    Paused {
        until: Instant,
        limit: u32,
        failure: Option<Arc<Failure>>,
    },
    Stopping,
    /// The app was still starting after startupTimeLimit.
    TimedOut(Duration),
}

/// Why a recycle did not happen.
#[derive(Debug)]
pub enum RecycleError {
    /// The new process did not start; the old one still serves.
    Failed(Arc<Failure>),
    /// No app process is running to recycle (it is starting, paused or stopping).
    NotRunning,
}

/// A cloneable handle on the app's slots.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Context>,
    status: watch::Sender<Status>,
    /// Cancelled to stop gracefully; the slot then stops its process.
    cancel: CancellationToken,
    /// Cancelled to skip the grace period (a second Ctrl+C).
    kill_now: CancellationToken,
    tasks: TaskTracker,
    events: broadcast::Sender<Event>,
    /// Subscribed before the slot started, so that the first [`Supervisor::events`] call sees
    /// every event from the very first start.
    first_events: std::sync::Mutex<Option<broadcast::Receiver<Event>>>,
    commands: mpsc::Sender<slot::Command>,
}

impl Supervisor {
    /// Starts the app now (eagerly) and keeps it running.
    pub fn start(ctx: Context) -> Supervisor {
        let ctx = Arc::new(ctx);
        let (status, _) = watch::channel(Status {
            phase: Phase::Starting,
            attempt: 0,
            last_failure: None,
            restarts: 0,
            ready_since: None,
            output: Tail::default(),
        });
        let (events, first_events) = broadcast::channel(256);
        let (commands, commands_rx) = mpsc::channel(8);
        let inner = Arc::new(Inner {
            ctx: ctx.clone(),
            status,
            cancel: CancellationToken::new(),
            kill_now: CancellationToken::new(),
            tasks: TaskTracker::new(),
            events,
            first_events: std::sync::Mutex::new(Some(first_events)),
            commands,
        });
        inner.tasks.spawn(slot::run(
            ctx,
            slot::Wiring {
                status: inner.status.clone(),
                events: inner.events.clone(),
                commands: commands_rx,
                cancel: inner.cancel.clone(),
                kill_now: inner.kill_now.clone(),
            },
        ));
        inner.tasks.close();
        Supervisor { inner }
    }

    pub fn config(&self) -> &AppConfig {
        &self.inner.ctx.config
    }

    /// The last 30 KB the current (or last) app process printed.
    pub fn recent_output(&self) -> String {
        self.inner.status.borrow().output.text()
    }

    /// Follows what happens to the app. The first call sees every event since the start.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        let first = self
            .inner
            .first_events
            .lock()
            .ok()
            .and_then(|mut first| first.take());
        first.unwrap_or_else(|| self.inner.events.subscribe())
    }

    /// Replaces the app's process with a new one without a gap: the new one is ready before
    /// the old one stops, which first finishes its requests. On failure the old one keeps
    /// serving and the failure is returned.
    pub async fn recycle(&self) -> Result<Arc<Backend>, RecycleError> {
        if !matches!(self.inner.status.borrow().phase, Phase::Ready(_)) {
            return Err(RecycleError::NotRunning);
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(slot::Command::Recycle(reply))
            .await
            .map_err(|_| RecycleError::NotRunning)?;
        match answer.await {
            Ok(Ok(backend)) => Ok(backend),
            Ok(Err(failure)) => Err(RecycleError::Failed(failure)),
            Err(_) => Err(RecycleError::NotRunning),
        }
    }

    /// Follows the slot's state.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.inner.status.subscribe()
    }

    /// A ready backend: at once when there is one, else once the start under way succeeds.
    /// A request never waits past startupTimeLimit, nor through more than one failed start.
    pub async fn backend(&self) -> Result<Arc<Backend>, Unavailable> {
        if let Phase::Ready(backend) = &self.inner.status.borrow().phase {
            return Ok(backend.clone());
        }
        let mut rx = self.inner.status.subscribe();
        let waiting_for = rx.borrow().attempt;
        let settled = |s: &Status| {
            !matches!(s.phase, Phase::Starting)
                || s.last_failure
                    .as_ref()
                    .is_some_and(|f| f.attempt >= waiting_for)
        };
        let limit = self.config().startup_time_limit + Duration::from_secs(1);
        let status = match tokio::time::timeout(limit, rx.wait_for(settled)).await {
            Ok(Ok(status)) => status.clone(),
            Ok(Err(_)) => return Err(Unavailable::Stopping),
            Err(_) => return Err(Unavailable::TimedOut(self.config().startup_time_limit)),
        };
        match status.phase {
            Phase::Ready(backend) => Ok(backend),
            Phase::Paused { until } => Err(Unavailable::Paused {
                until,
                limit: self.config().rapid_fails_per_minute,
                failure: status.last_failure,
            }),
            Phase::Stopping | Phase::Stopped => Err(Unavailable::Stopping),
            Phase::Starting => match status.last_failure {
                Some(failure) => Err(Unavailable::Failed(failure)),
                None => Err(Unavailable::Stopping),
            },
        }
    }

    /// Stops every process gracefully (see the slot) and waits until they are gone.
    pub async fn stop(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.wait().await;
    }

    /// Makes a stop under way kill at once instead of waiting out shutdownTimeLimit.
    pub fn kill_now(&self) {
        self.inner.cancel.cancel();
        self.inner.kill_now.cancel();
    }
}
