//! One slot's life: start, wait until listening, serve, and on exit start again, pausing when
//! the rapid-fail limit is reached; on request, recycle with no gap (the new process is ready
//! before the old one stops). Runs as one task until the supervisor is stopped.

use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::launch::{Launcher, Process};
use super::probe;
use super::process::{pick_port, port_holder, Readiness};
use super::rapid_fail::RapidFailWindow;
use super::{Backend, Context, Event, EventKind, Exit, Failure, FailureKind, Phase, Status};
use crate::config::AppConfig;
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

/// After this long up, a process counts as healthy and the restart backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The first repeated failure waits this long; each further one twice as long, up to the cap.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Restart backoff: the first restart after a failure is immediate; repeated failures wait
/// 100 ms, 200 ms, 400 ms ... up to 5 s; a process that stayed up a while starts it over.
#[derive(Debug, Default)]
struct Backoff {
    /// Failures since the app was last healthy.
    streak: u32,
}

impl Backoff {
    /// A start failed, or a process exited after being up for `up_for`.
    fn failed(&mut self, up_for: Option<Duration>) {
        if up_for.is_some_and(|up| up >= HEALTHY_AFTER) {
            self.streak = 0;
        }
        self.streak = self.streak.saturating_add(1);
    }

    fn reset(&mut self) {
        self.streak = 0;
    }

    /// How long to wait before the next start.
    fn delay(&self) -> Duration {
        match self.streak {
            0 | 1 => Duration::ZERO,
            n => BACKOFF_BASE
                .saturating_mul(1 << (n - 2).min(16))
                .min(BACKOFF_CAP),
        }
    }
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
            failures = self.backoff.streak,
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
        drain(
            &backend,
            self.ctx.config().shutdown_time_limit,
            &self.wiring.kill_now,
        )
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
            drain(&backend, limit, &kill_now).await;
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

/// Waits until no request is in flight to `backend`, for at most `limit`.
async fn drain(backend: &Backend, limit: Duration, kill_now: &CancellationToken) {
    let deadline = Instant::now() + limit;
    while backend.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
            () = kill_now.cancelled() => return,
        }
    }
}

/// A user-set ASPNETCORE_PORT, which fixes the port (one process only).
fn fixed_port(config: &AppConfig) -> Option<u16> {
    user_value(config, "ASPNETCORE_PORT").and_then(|p| p.parse::<u16>().ok())
}

/// A value the user gave the app in `<environmentVariables>` or `--env`, if not empty.
fn user_value<'a>(config: &'a AppConfig, name: &str) -> Option<&'a str> {
    config
        .environment
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The pairing token: the user's ASPNETCORE_TOKEN if set (as in ANCM), else a fresh UUID.
fn new_token(config: &AppConfig) -> (Arc<str>, HeaderValue) {
    if let Some(user) = user_value(config, "ASPNETCORE_TOKEN") {
        if let Ok(header) = HeaderValue::from_str(user) {
            return (Arc::from(user), header);
        }
        tracing::warn!(
            "ASPNETCORE_TOKEN holds characters a header cannot carry; using a generated token"
        );
    }
    let token = uuid::Uuid::new_v4().hyphenated().to_string();
    let header = HeaderValue::from_str(&token).unwrap_or_else(|_| HeaderValue::from_static("0"));
    (Arc::from(token), header)
}

fn spawn_error_text(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            "not found (check processPath: a relative path is looked up in the app folder, a bare name on PATH)".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_owned(),
        _ => err.to_string(),
    }
}

/// "exited with code 3", "was killed by signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            return format!("was killed by signal {signal}{name}");
        }
    }
    format!("exited ({status})")
}

fn report(failure: &Failure) {
    let output = last_lines(&failure.output, 20);
    if output.is_empty() {
        tracing::warn!(attempt = failure.attempt, "{}", failure.kind);
    } else {
        // No fields: the log shows them after the message, glued to the app's last line.
        tracing::warn!(
            "{} (attempt {}); its last output:\n{output}",
            failure.kind,
            failure.attempt
        );
    }
}

fn last_lines(text: &str, n: usize) -> &str {
    let text = text.trim_end();
    let start = text
        .rmatch_indices('\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

fn log_stopped(pid: u32, exit: Option<ExitStatus>) {
    match exit {
        Some(status) => tracing::info!(pid, "the app stopped: it {}", describe_exit(status)),
        None => tracing::info!(pid, "the app was killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::{last_lines, Backoff, Duration};

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() {
        let mut backoff = Backoff::default();
        let mut delays = Vec::new();
        for _ in 0..9 {
            backoff.failed(None);
            delays.push(backoff.delay().as_millis());
        }
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        // A crash after a long healthy run is a first failure again: restart at once.
        backoff.failed(Some(Duration::from_secs(60)));
        assert_eq!(backoff.delay(), Duration::ZERO);
        // A short run does not reset it.
        backoff.failed(Some(Duration::from_secs(1)));
        assert_eq!(backoff.delay(), Duration::from_millis(100));
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 5), "");
    }
}
