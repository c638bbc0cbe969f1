//! One slot's life: start, wait until listening, serve, and on exit start again, pausing when
//! the rapid-fail limit is reached; on request, recycle with no gap (the new process is ready
//! before the old one stops). Runs as one task until the supervisor is stopped.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use super::context::Context;
use super::launch::{Launcher, Process};
use super::probe;
use super::process::{fixed_port, new_token, pick_port};
use super::readiness::{port_holder, Readiness};
use super::restart::{Backoff, RapidFailWindow};
use super::status::{describe_exit, log_stopped, report, spawn_error_text};
use super::status::{Event, EventKind, Exit, Failure, FailureKind, Phase, Status};
use crate::logs::Tail;

/// How many times in a row a start may find its picked port taken by another process before
/// that counts as a failure.
const MAX_PORT_COLLISIONS: u32 = 3;

/// Requests to a running slot.
#[derive(Debug)]
pub(super) enum Command {
    /// Start a replacement, switch to it once ready, then drain and stop the old process.
    Recycle(oneshot::Sender<Result<Arc<Backend>, Arc<Failure>>>),
}

/// The slot's channels and flags, made by the supervisor.
pub(super) struct Wiring {
    pub(super) index: usize,
    pub(super) status: watch::Sender<Status>,
    /// Bumped after every status change, for requests waiting on any slot.
    pub(super) changed: watch::Sender<u64>,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) commands: mpsc::Receiver<Command>,
    /// True once the app is wanted (at once, or on the first request when lazy).
    pub(super) demand: watch::Receiver<bool>,
    /// app_offline.htm's content while it is there.
    pub(super) offline: watch::Receiver<Option<Bytes>>,
    /// Cancelled to stop gracefully.
    pub(super) cancel: CancellationToken,
    /// Cancelled to kill at once.
    pub(super) kill_now: CancellationToken,
}

struct Slot<L: Launcher> {
    ctx: Arc<Context>,
    launcher: Arc<L>,
    wiring: Wiring,
    window: RapidFailWindow,
    attempt: u64,
    backoff: Backoff,
    fixed_port: Option<u16>,
    /// Old processes draining after a recycle; awaited before the slot ends.
    retiring: JoinSet<()>,
}

/// A process that listens, and what the proxy sees of it.
struct Running<P> {
    process: P,
    backend: Arc<Backend>,
}

/// How one start went. Short-lived and moved once: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Started<P> {
    Running(Running<P>),
    Failed(Arc<Failure>),
    /// app_offline.htm appeared meanwhile; the process was stopped.
    Offline,
    Cancelled,
}

/// How a warm-up went.
enum WarmUp {
    /// The warm-up path answered below 500.
    Warm,
    /// It did not within startupTimeLimit: its last answer, in words.
    Cold(String),
    Exited(std::io::Result<ExitStatus>),
    Offline,
    Cancelled,
}

/// Why serving ended.
enum Served {
    Exited,
    Offline,
    Stopped,
}

/// Runs one slot until the supervisor stops; `launcher` starts its processes (the real
/// [`super::launch::Spawner`], or a scripted fake in tests).
pub(super) async fn run<L: Launcher>(ctx: Arc<Context>, wiring: Wiring, launcher: Arc<L>) {
    let config = ctx.config();
    let mut slot = Slot {
        launcher,
        window: RapidFailWindow::new(config.rapid_fails_per_minute),
        fixed_port: fixed_port(&config),
        ctx,
        wiring,
        attempt: 0,
        backoff: Backoff::default(),
        retiring: JoinSet::new(),
    };
    slot.run().await;
}

impl<L: Launcher> Slot<L> {
    async fn run(&mut self) {
        if self.wait_for_demand().await {
            self.serve_until_stopped().await;
        }
        while self.retiring.join_next().await.is_some() {}
        self.publish(|s| s.phase = Phase::Stopped);
        self.emit(EventKind::Stopped);
    }

    async fn serve_until_stopped(&mut self) {
        while !self.wiring.cancel.is_cancelled() {
            if self.wiring.offline.borrow().is_some() {
                if !self.wait_while_offline().await {
                    return;
                }
                continue;
            }
            if !self.wait_out_rapid_fails().await || !self.wait_out_backoff().await {
                return;
            }
            self.attempt += 1;
            let attempt = self.attempt;
            self.publish(|s| {
                s.phase = Phase::Starting;
                s.attempt = attempt;
                if attempt > 1 {
                    s.restarts += 1;
                }
            });
            self.emit(EventKind::Starting { attempt });
            match self.start(attempt).await {
                Started::Running(running) => match self.serve(running).await {
                    Served::Exited | Served::Offline => {}
                    Served::Stopped => return,
                },
                Started::Failed(_) | Started::Offline => {}
                Started::Cancelled => return,
            }
        }
    }

    /// Publishes a status change, and tells requests waiting on any slot.
    fn publish(&self, change: impl FnOnce(&mut Status)) {
        self.wiring.status.send_modify(change);
        self.wiring.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn emit(&self, kind: EventKind) {
        // Nobody listening is fine: events are for the helper protocol.
        let _ = self.wiring.events.send(Event {
            slot: self.wiring.index,
            kind,
        });
    }

    /// Lazy start: waits for the first request. False if stopped first.
    async fn wait_for_demand(&mut self) -> bool {
        let cancel = self.wiring.cancel.clone();
        tokio::select! {
            wanted = self.wiring.demand.wait_for(|wanted| *wanted) => wanted.is_ok(),
            () = cancel.cancelled() => false,
        }
    }

    /// While app_offline.htm is there: no process. False if stopped meanwhile.
    async fn wait_while_offline(&mut self) -> bool {
        tracing::info!(
            "app_offline.htm is there: the app stays stopped and requests get its content"
        );
        self.publish(|s| {
            s.phase = Phase::Offline;
            s.ready_since = None;
        });
        let cancel = self.wiring.cancel.clone();
        let online = tokio::select! {
            online = self.wiring.offline.wait_for(Option::is_none) => online.is_ok(),
            () = cancel.cancelled() => false,
        };
        if online {
            tracing::info!("app_offline.htm is gone: starting the app");
            // A fresh start after a deliberate stop.
            self.backoff.reset();
        }
        online
    }

    /// Past the rapid-fail limit, waits for the minute to pass; false if stopped meanwhile.
    async fn wait_out_rapid_fails(&mut self) -> bool {
        let Some(until) = self.window.paused_until(Instant::now()) else {
            return true;
        };
        let limit = self.ctx.config().rapid_fails_per_minute;
        let wait = until.saturating_duration_since(Instant::now());
        tracing::warn!(
            failures = self.window.failures(),
            "the app failed more than rapidFailsPerMinute ({limit}) times within a minute; \
             not starting it again for {} s",
            wait.as_secs() + 1
        );
        self.publish(|s| s.phase = Phase::Paused { until });
        self.emit(EventKind::Paused { until, limit });
        self.sleep_until(until).await
    }

    /// After repeated failures, waits before the next start: 0, then 100 ms doubling up to
    /// 5 s. False if stopped meanwhile.
    async fn wait_out_backoff(&mut self) -> bool {
        let delay = self.backoff.delay();
        if delay.is_zero() {
            return true;
        }
        let until = Instant::now() + delay;
        tracing::info!(
            failures = self.backoff.streak(),
            "restarting the app in {delay:?}"
        );
        self.publish(|s| s.phase = Phase::Backoff { until });
        self.sleep_until(until).await
    }

    /// Sleeps until `until`, or until stopped (false) or taken offline (true, at once).
    async fn sleep_until(&mut self, until: Instant) -> bool {
        let cancel = self.wiring.cancel.clone();
        tokio::select! {
            () = tokio::time::sleep_until(until) => true,
            () = went_offline(&mut self.wiring.offline) => true,
            () = cancel.cancelled() => false,
        }
    }

    /// Records a failed start or an exit (after `up_for` serving): logged, counted, published.
    fn fail(
        &mut self,
        attempt: u64,
        kind: FailureKind,
        tail: &Tail,
        up_for: Option<Duration>,
    ) -> Arc<Failure> {
        let failure = Arc::new(Failure {
            attempt,
            kind,
            output: tail.text(),
        });
        report(&failure);
        self.window.record(Instant::now());
        self.backoff.failed(up_for);
        let published = failure.clone();
        self.publish(|s| s.last_failure = Some(published));
        self.emit(EventKind::Failed(failure.clone()));
        failure
    }

    /// Starts one process and waits until it listens. A port lost to another process is
    /// retried on a fresh port without counting as a failure.
    async fn start(&mut self, attempt: u64) -> Started<L::Process> {
        let cfg = self.ctx.config();
        let mut collisions = 0;
        loop {
            let tail = Tail::default();
            self.publish(|s| s.output = tail.clone());
            let picked = match self.fixed_port {
                Some(port) => Ok(port),
                None => pick_port().await,
            };
            let port = match picked {
                Ok(port) => port,
                Err(err) => {
                    let kind = FailureKind::Spawn {
                        program: cfg.command.program.display().to_string(),
                        error: format!("no free loopback port: {err}"),
                    };
                    return Started::Failed(self.fail(attempt, kind, &tail, None));
                }
            };
            let token = new_token(&cfg);
            let spawned = self
                .launcher
                .spawn(
                    &self.ctx,
                    &cfg,
                    self.wiring.index,
                    port,
                    token.0.clone(),
                    &tail,
                )
                .await;
            let mut process = match spawned {
                Ok(process) => process,
                Err(err) => {
                    let kind = FailureKind::Spawn {
                        program: cfg.command.program.display().to_string(),
                        error: spawn_error_text(&err),
                    };
                    return Started::Failed(self.fail(attempt, kind, &tail, None));
                }
            };
            let waited_from = Instant::now();
            let readiness = tokio::select! {
                readiness = process.wait_ready(cfg.startup_time_limit, &self.wiring.cancel) => readiness,
                () = went_offline(&mut self.wiring.offline) => {
                    let exit = process.stop(None, &self.wiring.kill_now).await;
                    log_stopped(process.pid(), exit);
                    return Started::Offline;
                }
            };
            let kind = match readiness {
                Readiness::Listening(addr) => {
                    let backend = Arc::new(Backend::new(addr, token.1, process.pid(), cfg.clone()));
                    let Some(path) = cfg.ready_path.clone() else {
                        return Started::Running(Running { process, backend });
                    };
                    let deadline = waited_from + cfg.startup_time_limit;
                    match self.warm_up(&mut process, &backend, &path, deadline).await {
                        WarmUp::Warm => return Started::Running(Running { process, backend }),
                        WarmUp::Cold(last) => {
                            process.reap().await;
                            FailureKind::NotWarm {
                                limit: cfg.startup_time_limit,
                                path,
                                last,
                            }
                        }
                        WarmUp::Exited(exit) => {
                            process.reap().await;
                            match exit {
                                Ok(exit) => FailureKind::Exited {
                                    status: describe_exit(exit),
                                    exit: Some(exit.into()),
                                    before_ready: true,
                                },
                                Err(err) => FailureKind::Exited {
                                    status: format!("was lost ({err})"),
                                    exit: None,
                                    before_ready: true,
                                },
                            }
                        }
                        WarmUp::Offline => {
                            let exit = process.stop(Some(addr), &self.wiring.kill_now).await;
                            log_stopped(process.pid(), exit);
                            return Started::Offline;
                        }
                        WarmUp::Cancelled => {
                            self.publish(|s| s.phase = Phase::Stopping);
                            let exit = process.stop(Some(addr), &self.wiring.kill_now).await;
                            log_stopped(process.pid(), exit);
                            return Started::Cancelled;
                        }
                    }
                }
                Readiness::Taken(holder) => {
                    process.reap().await;
                    match self.port_lost(port, holder, &mut collisions) {
                        Some(kind) => kind,
                        None => continue,
                    }
                }
                Readiness::Exited(exit) => {
                    process.reap().await;
                    // Most likely it could not bind: then the port's holder is the reason.
                    match port_holder(port).await {
                        Some(holder) => match self.port_lost(port, holder, &mut collisions) {
                            Some(kind) => kind,
                            None => continue,
                        },
                        None => FailureKind::Exited {
                            status: describe_exit(exit),
                            exit: Some(exit.into()),
                            before_ready: true,
                        },
                    }
                }
                Readiness::TimedOut(listening_elsewhere) => {
                    process.reap().await;
                    FailureKind::StartTimeout {
                        limit: cfg.startup_time_limit,
                        listening_elsewhere,
                    }
                }
                Readiness::Cancelled => {
                    self.publish(|s| s.phase = Phase::Stopping);
                    let exit = process.stop(None, &self.wiring.kill_now).await;
                    log_stopped(process.pid(), exit);
                    return Started::Cancelled;
                }
            };
            return Started::Failed(self.fail(attempt, kind, &tail, None));
        }
    }

    /// Asks the new process's warm-up path until it answers below 500 (by `deadline`), while
    /// watching for its exit, app_offline.htm and the stop.
    async fn warm_up(
        &mut self,
        process: &mut L::Process,
        backend: &Backend,
        path: &str,
        deadline: Instant,
    ) -> WarmUp {
        let pid = process.pid();
        tracing::info!(
            pid,
            "the app listens on port {}; it takes requests once GET {path} answers below 500",
            backend.addr.port()
        );
        let cancel = self.wiring.cancel.clone();
        tokio::select! {
            warm = probe::warm_up(&self.ctx.http, backend, path, deadline) => match warm {
                Ok(status) => {
                    tracing::info!(pid, "GET {path} answered {status}: the app is warm");
                    WarmUp::Warm
                }
                Err(last) => WarmUp::Cold(last),
            },
            exit = process.wait() => WarmUp::Exited(exit),
            () = went_offline(&mut self.wiring.offline) => WarmUp::Offline,
            () = cancel.cancelled() => WarmUp::Cancelled,
        }
    }

    /// Another process holds the app's port, so the stopped start is retried on a fresh port
    /// (`None`), unless the port is fixed or too many picks in a row were taken: then it fails.
    fn port_lost(&self, port: u16, holder: String, collisions: &mut u32) -> Option<FailureKind> {
        let fixed = self.fixed_port.is_some();
        if !fixed && *collisions < MAX_PORT_COLLISIONS {
            *collisions += 1;
            tracing::warn!(
                port,
                "port {port} is taken by {holder}; starting the app again on another port"
            );
            return None;
        }
        Some(FailureKind::PortTaken {
            port,
            holder,
            fixed,
        })
    }

    /// Serves with `running` until it exits, app_offline.htm appears, or the slot is stopped.
    async fn serve(&mut self, mut running: Running<L::Process>) -> Served {
        loop {
            let backend = running.backend.clone();
            let ready_at = Instant::now();
            self.publish(|s| {
                s.phase = Phase::Ready(backend.clone());
                s.ready_since = Some(ready_at);
            });
            let verdict = probe::watch(
                self.ctx.http.clone(),
                backend.config.clone(),
                backend.clone(),
                ready_at,
            );
            self.emit(EventKind::Ready(backend));
            let cancel = self.wiring.cancel.clone();
            tokio::select! {
                exit = running.process.wait() => {
                    // New requests wait for the next start, not for this one's report.
                    let next = self.attempt + 1;
                    self.publish(|s| {
                        s.phase = Phase::Starting;
                        s.attempt = next;
                        s.ready_since = None;
                    });
                    let up_for = ready_at.elapsed();
                    running.backend.mark_gone();
                    running.process.reap().await;
                    let status = exit.as_ref().map_or_else(|e| format!("was lost ({e})"), |s| describe_exit(*s));
                    let exit = exit.ok().map(Exit::from);
                    let tail = self.wiring.status.borrow().output.clone();
                    self.fail(self.attempt, FailureKind::Exited { status, exit, before_ready: false }, &tail, Some(up_for));
                    return Served::Exited;
                }
                () = cancel.cancelled() => {
                    self.publish(|s| s.phase = Phase::Stopping);
                    self.emit(EventKind::Stopping);
                    self.stop_running(running).await;
                    return Served::Stopped;
                }
                () = went_offline(&mut self.wiring.offline) => {
                    tracing::info!(pid = running.process.pid(), "app_offline.htm appeared: stopping the app");
                    self.publish(|s| s.phase = Phase::Offline);
                    self.stop_running(running).await;
                    return Served::Offline;
                }
                verdict = verdict => {
                    let pid = running.process.pid();
                    match verdict {
                        probe::Verdict::Age(_) => tracing::info!(pid, "{verdict}; replacing it without downtime"),
                        _ => tracing::warn!(pid, "{verdict}; replacing it without downtime"),
                    }
                    // Nobody waits for the answer: a failed start is logged, and the old
                    // process keeps serving and being watched.
                    let (reply, _) = oneshot::channel();
                    if let Some(old) = self.recycle(&mut running, reply).await {
                        tracing::info!(
                            pid = running.process.pid(),
                            "replaced: the new process serves; the old one ({pid}) stops once its requests finish"
                        );
                        self.retire(old);
                    }
                }
                Some(command) = self.wiring.commands.recv() => match command {
                    Command::Recycle(reply) => {
                        if let Some(old) = self.recycle(&mut running, reply).await {
                            self.retire(old);
                        }
                    }
                }
            }
        }
    }

    /// Stops a serving process once its requests in flight are done (bounded).
    async fn stop_running(&mut self, running: Running<L::Process>) {
        let Running {
            mut process,
            backend,
        } = running;
        backend
            .drained(self.ctx.config().shutdown_time_limit, &self.wiring.kill_now)
            .await;
        let exit = process
            .stop(Some(backend.addr), &self.wiring.kill_now)
            .await;
        backend.mark_gone();
        log_stopped(process.pid(), exit);
    }

    /// Starts a replacement for `running`; once it listens, swaps it in and returns the old
    /// process. If it fails, `running` keeps serving and the caller hears why.
    async fn recycle(
        &mut self,
        running: &mut Running<L::Process>,
        reply: oneshot::Sender<Result<Arc<Backend>, Arc<Failure>>>,
    ) -> Option<Running<L::Process>> {
        tracing::info!(
            pid = running.process.pid(),
            "recycling: starting a new process before stopping this one"
        );
        self.emit(EventKind::Recycling);
        self.attempt += 1;
        let attempt = self.attempt;
        self.publish(|s| s.attempt = attempt);
        self.emit(EventKind::Starting { attempt });
        let previous_output = self.wiring.status.borrow().output.clone();
        match self.start(attempt).await {
            Started::Running(new) => {
                let backend = new.backend.clone();
                self.publish(|s| s.restarts += 1);
                let _ = reply.send(Ok(backend));
                Some(std::mem::replace(running, new))
            }
            Started::Failed(failure) => {
                tracing::warn!(
                    pid = running.process.pid(),
                    "the new process did not start; the old one keeps serving"
                );
                self.publish(|s| s.output = previous_output);
                let _ = reply.send(Err(failure));
                None
            }
            Started::Offline | Started::Cancelled => None,
        }
    }

    /// Lets the old process finish the requests it has (up to shutdownTimeLimit), then stops it.
    fn retire(&mut self, old: Running<L::Process>) {
        let limit = self.ctx.config().shutdown_time_limit;
        let kill_now = self.wiring.kill_now.clone();
        self.retiring.spawn(async move {
            let Running {
                mut process,
                backend,
            } = old;
            backend.drained(limit, &kill_now).await;
            let exit = process.stop(Some(backend.addr), &kill_now).await;
            backend.mark_gone();
            log_stopped(process.pid(), exit);
        });
    }
}

/// Returns once app_offline.htm is there (never, if the supervisor is gone).
async fn went_offline(offline: &mut watch::Receiver<Option<Bytes>>) {
    if offline.wait_for(Option::is_some).await.is_err() {
        std::future::pending::<()>().await;
    }
}
