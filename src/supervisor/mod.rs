//! The app's processes: each slot starts its process eagerly, waits until it listens, restarts
//! it when it exits (within the rapidFailsPerMinute budget), and stops it gracefully. The proxy
//! asks for a ready [`Backend`] and never spawns anything itself.
//!
//! There are processesPerApplication slots, each with its own process, port and token; the
//! proxy asks for the least busy ready one.
//!
//! This file is the [`Supervisor`] handle (start, backend, recycle, reload, offline, stop,
//! kill_now). Beside it: `context.rs` (what its slots share), `status.rs` (what it reports),
//! `backend.rs` (a ready process as the proxy sees it), `slot.rs` (one slot's state machine),
//! `restart.rs` (the gates on a restart), `launch.rs` (the traits the slot drives a process
//! through), `process.rs` (one real process: spawn, wait, stop), `readiness.rs` (whether it
//! listens), `probe.rs` (warm-up and health), `ports.rs` and `listeners.rs` (loopback ports and
//! Linux's socket tables), `platform/` (containment of the process tree, per OS).
//!
//! Must not import the proxy, the admin server or the commands: they read it.

mod backend;
mod context;
mod launch;
#[cfg(target_os = "linux")]
mod listeners;
mod platform;
mod ports;
mod probe;
mod process;
mod readiness;
mod restart;
mod slot;
mod status;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AppConfig;
use crate::logs::Tail;

pub use backend::{gone_count, Backend, InFlight};
pub use context::Context;
#[cfg(target_os = "linux")]
pub use platform::guard::watch_orphans;
#[cfg(unix)]
pub use platform::guard::{is_guard_process, run as run_guard, Guard};
#[cfg(target_os = "linux")]
pub use platform::orphans::adopt_orphans;
pub use platform::tree::{descendants, tree_memory};
pub use status::{
    Event, EventKind, Exit, Failure, FailureKind, ListeningElsewhere, Phase, RecycleError, Status,
    Unavailable,
};

/// A cloneable handle on the app's slots.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// One slot as the supervisor sees it.
struct SlotHandle {
    status: watch::Sender<Status>,
    commands: mpsc::Sender<slot::Command>,
}

struct Inner {
    ctx: Arc<Context>,
    slots: Vec<SlotHandle>,
    /// Bumped whenever any slot's status changes, for requests waiting on any of them.
    changed: watch::Sender<u64>,
    /// Cancelled to stop gracefully; each slot then stops its process.
    cancel: CancellationToken,
    /// Cancelled to skip the grace period (a second Ctrl+C).
    kill_now: CancellationToken,
    tasks: TaskTracker,
    events: broadcast::Sender<Event>,
    /// Subscribed before the slots started, so that the first [`Supervisor::events`] call
    /// sees every event from the very first start.
    first_events: std::sync::Mutex<Option<broadcast::Receiver<Event>>>,
    /// Set by the first request when the start is lazy.
    demand: watch::Sender<bool>,
    /// app_offline.htm's content while it is there.
    offline: watch::Sender<Option<Bytes>>,
    /// Where the search for the least busy slot starts, so that idle slots share the load.
    next: AtomicUsize,
}

impl Supervisor {
    /// Starts the app's processes (now, or on the first request when the start is lazy) and
    /// keeps them running.
    ///
    /// `offline` is app_offline.htm's content when the file is already there: then nothing
    /// starts until it goes.
    pub fn start(ctx: Context, offline: Option<Bytes>) -> Supervisor {
        Supervisor::start_with(ctx, offline, launch::Spawner)
    }

    /// [`Supervisor::start`], with the processes started by `launcher`.
    fn start_with<L: launch::Launcher>(
        ctx: Context,
        offline: Option<Bytes>,
        launcher: L,
    ) -> Supervisor {
        let launcher = Arc::new(launcher);
        let ctx = Arc::new(ctx);
        let config = ctx.config();
        let count = usize::try_from(config.processes_per_application.max(1)).unwrap_or(1);
        let (events, first_events) = broadcast::channel(256);
        let (changed, _) = watch::channel(0u64);
        let (demand, _) = watch::channel(!config.lazy);
        let (offline, _) = watch::channel(offline);
        let cancel = CancellationToken::new();
        let kill_now = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut slots = Vec::with_capacity(count);
        for index in 0..count {
            let (status, _) = watch::channel(Status {
                phase: if config.lazy {
                    Phase::Idle
                } else {
                    Phase::Starting
                },
                attempt: 0,
                last_failure: None,
                restarts: 0,
                ready_since: None,
                output: Tail::default(),
            });
            let (commands, commands_rx) = mpsc::channel(8);
            tasks.spawn(slot::run(
                ctx.clone(),
                slot::Wiring {
                    index,
                    status: status.clone(),
                    changed: changed.clone(),
                    events: events.clone(),
                    commands: commands_rx,
                    demand: demand.subscribe(),
                    offline: offline.subscribe(),
                    cancel: cancel.clone(),
                    kill_now: kill_now.clone(),
                },
                launcher.clone(),
            ));
            slots.push(SlotHandle { status, commands });
        }
        tasks.close();
        Supervisor {
            inner: Arc::new(Inner {
                ctx,
                slots,
                changed,
                cancel,
                kill_now,
                tasks,
                events,
                first_events: std::sync::Mutex::new(Some(first_events)),
                demand,
                offline,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<AppConfig> {
        self.inner.ctx.config()
    }

    pub fn slot_count(&self) -> usize {
        self.inner.slots.len()
    }

    /// Follows the first slot's state.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.watch_slot(0)
    }

    /// Follows one slot's state.
    pub fn watch_slot(&self, index: usize) -> watch::Receiver<Status> {
        self.inner.slots[index.min(self.inner.slots.len() - 1)]
            .status
            .subscribe()
    }

    /// The last 30 KB the first slot's current (or last) process printed.
    pub fn recent_output(&self) -> String {
        self.inner.slots[0].status.borrow().output.text()
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

    /// The least busy ready process, if any. The hot path: a few uncontended reads.
    fn pick(&self) -> Option<Arc<Backend>> {
        let slots = &self.inner.slots;
        if let [only] = slots.as_slice() {
            return match &only.status.borrow().phase {
                Phase::Ready(backend) if backend.usable() => Some(backend.clone()),
                _ => None,
            };
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<Arc<Backend>> = None;
        for i in 0..slots.len() {
            if let Phase::Ready(backend) = &slots[(start + i) % slots.len()].status.borrow().phase {
                if !backend.usable() {
                    continue;
                }
                let busy = backend.in_flight.load(Ordering::Relaxed);
                if best
                    .as_ref()
                    .is_none_or(|b| busy < b.in_flight.load(Ordering::Relaxed))
                {
                    best = Some(backend.clone());
                }
            }
        }
        best
    }

    /// A ready backend: at once when there is one, else once a start under way succeeds. A
    /// request never waits past startupTimeLimit, nor through more than one failed start of
    /// each process.
    pub async fn backend(&self) -> Result<Arc<Backend>, Unavailable> {
        if let Some(backend) = self.pick() {
            return Ok(backend);
        }
        if let Some(content) = self.inner.offline.borrow().clone() {
            return Err(Unavailable::Offline(content));
        }
        // Lazy start: the first request starts the app.
        self.inner
            .demand
            .send_if_modified(|wanted| !std::mem::replace(wanted, true));

        let mut changed = self.inner.changed.subscribe();
        // The start each slot's answer depends on: the current one, or, where a process still
        // looks ready (it just became unreachable), the restart after it; its crash is not a
        // failed start of the one this request waits for.
        let waiting_for: Vec<u64> = self
            .inner
            .slots
            .iter()
            .map(|slot| {
                let status = slot.status.borrow();
                match status.phase {
                    Phase::Ready(_) => status.attempt + 1,
                    _ => status.attempt.max(1),
                }
            })
            .collect();
        let limit = self.config().startup_time_limit + Duration::from_secs(1);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(backend) = self.pick() {
                return Ok(backend);
            }
            if let Some(content) = self.inner.offline.borrow().clone() {
                return Err(Unavailable::Offline(content));
            }
            if let Some(unavailable) = self.settled_unavailable(&waiting_for) {
                return Err(unavailable);
            }
            // A process passed over because it could not be reached, and still running, is
            // tried again when its mark runs out: no restart may be coming for it.
            let wake = self
                .next_reachable()
                .map_or(deadline, |after| deadline.min(Instant::now() + after));
            match tokio::time::timeout_at(wake, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Unavailable::Stopping),
                Err(_) if Instant::now() < deadline => {}
                Err(_) => return Err(Unavailable::TimedOut(self.config().startup_time_limit)),
            }
        }
    }

    /// How long until the first ready process now passed over as unreachable is tried again.
    fn next_reachable(&self) -> Option<Duration> {
        self.inner
            .slots
            .iter()
            .filter_map(|slot| match &slot.status.borrow().phase {
                Phase::Ready(backend) => backend.unreachable_for(),
                _ => None,
            })
            .min()
    }

    /// Why no slot can serve, once every slot has settled: stopped, paused, backing off, or
    /// failed the start the request waited for. `None` while some slot may still become ready.
    fn settled_unavailable(&self, waiting_for: &[u64]) -> Option<Unavailable> {
        let mut first = None;
        for (slot, &attempt) in self.inner.slots.iter().zip(waiting_for) {
            let status = slot.status.borrow();
            let failure = status.last_failure.clone();
            let verdict = match &status.phase {
                Phase::Stopping | Phase::Stopped => Unavailable::Stopping,
                Phase::Paused { until } => Unavailable::Paused {
                    until: *until,
                    limit: self.config().rapid_fails_per_minute,
                    failure,
                },
                Phase::Backoff { .. } => match failure {
                    Some(failure) => Unavailable::Failed(failure),
                    None => return None,
                },
                Phase::Starting | Phase::Idle | Phase::Offline => match failure {
                    Some(failure) if failure.attempt >= attempt => Unavailable::Failed(failure),
                    _ => return None,
                },
                Phase::Ready(_) => return None,
            };
            first.get_or_insert(verdict);
        }
        first
    }

    /// Replaces the app's processes with new ones without a gap, one slot at a time: each new
    /// process is ready before the old one stops, which first finishes its requests. On the
    /// first failure the old process keeps serving and the failure is returned.
    pub async fn recycle(&self) -> Result<(), RecycleError> {
        for slot in &self.inner.slots {
            if !matches!(slot.status.borrow().phase, Phase::Ready(_)) {
                return Err(RecycleError::NotRunning);
            }
        }
        for slot in &self.inner.slots {
            let (reply, answer) = oneshot::channel();
            slot.commands
                .send(slot::Command::Recycle(reply))
                .await
                .map_err(|_| RecycleError::NotRunning)?;
            match answer.await {
                Ok(Ok(_)) => {}
                Ok(Err(failure)) => return Err(RecycleError::Failed(failure)),
                Err(_) => return Err(RecycleError::NotRunning),
            }
        }
        Ok(())
    }

    /// Starts the processes over with a new configuration (a changed web.config), without a
    /// gap. If the new processes fail to start, the old ones keep serving, with the old
    /// configuration.
    pub async fn reload(&self, config: AppConfig) -> Result<(), RecycleError> {
        let previous = self.inner.ctx.replace_config(Arc::new(config));
        let result = self.recycle().await;
        if result.is_err() {
            self.inner.ctx.replace_config(previous);
        }
        result
    }

    /// Makes `config` the one the next start uses, without recycling.
    pub fn replace_config(&self, config: AppConfig) {
        self.inner.ctx.replace_config(Arc::new(config));
    }

    /// app_offline.htm's content while the app is offline because of it.
    pub fn offline(&self) -> Option<Bytes> {
        self.inner.offline.borrow().clone()
    }

    /// Takes the app offline (app_offline.htm appeared, or its content changed: `Some`) or
    /// back online (`None`). Offline, every process stops gracefully and requests get the
    /// content with a 503.
    pub fn set_offline(&self, content: Option<Bytes>) {
        self.inner.offline.send_replace(content);
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
