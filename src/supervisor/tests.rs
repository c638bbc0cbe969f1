//! The slots' state machine run in-process, with scripted app processes and paused time: what
//! the binary tests would need seconds or minutes of real processes for.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::launch::{Launcher, Process};
use super::readiness::Readiness;
use super::{
    Backend, Context, EventKind, FailureKind, Phase, RecycleError, Status, Supervisor, Unavailable,
};
use crate::config::AppConfig;
use crate::logs::{Console, Tail};

/// What one start of the fake app does.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Listens after this long, then runs until crashed or stopped.
    Listens(Duration),
    /// Exits with this code after this long, without listening.
    ExitsEarly(Duration, i32),
}

/// One process the fake launcher started, as the test sees it.
#[derive(Clone)]
struct Started {
    pid: u32,
    at: Instant,
    /// Set to make it exit with that code.
    exit: watch::Sender<Option<i32>>,
    /// Set once the slot stopped it.
    stopped: watch::Sender<bool>,
}

impl Started {
    fn crash(&self, code: i32) {
        self.exit.send_replace(Some(code));
    }

    fn was_stopped(&self) -> bool {
        *self.stopped.borrow()
    }
}

/// Starts fake processes that follow a script, one plan per start; with the script used up,
/// each start listens at once.
#[derive(Clone, Default)]
struct Script {
    plans: Arc<Mutex<VecDeque<Plan>>>,
    started: Arc<Mutex<Vec<Started>>>,
    /// How many processes were started, for waiting on.
    count: Arc<watch::Sender<usize>>,
}

impl Script {
    fn new(plans: impl IntoIterator<Item = Plan>) -> Script {
        let script = Script::default();
        script.then(plans);
        script
    }

    fn then(&self, plans: impl IntoIterator<Item = Plan>) {
        self.plans.lock().expect("plans").extend(plans);
    }

    fn started(&self) -> Vec<Started> {
        self.started.lock().expect("started").clone()
    }

    /// Waits until `n` processes have been started; returns the last.
    async fn wait_started(&self, n: usize) -> Started {
        let mut count = self.count.subscribe();
        count.wait_for(|c| *c >= n).await.expect("launcher alive");
        self.started()[n - 1].clone()
    }

    /// The time between consecutive starts.
    fn gaps(&self) -> Vec<Duration> {
        let started = self.started();
        started.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
}

struct FakeProcess {
    pid: u32,
    port: u16,
    spawned: Instant,
    plan: Plan,
    exit: watch::Receiver<Option<i32>>,
    stopped: watch::Sender<bool>,
}

impl FakeProcess {
    /// Returns once it exits: crashed by the test, or as its plan says.
    async fn exited(&mut self) -> ExitStatus {
        let planned = match self.plan {
            Plan::ExitsEarly(after, code) => Some((self.spawned + after, code)),
            Plan::Listens(_) => None,
        };
        let crashed = async {
            let code = self
                .exit
                .wait_for(Option::is_some)
                .await
                .map(|code| code.unwrap_or_default());
            match code {
                Ok(code) => code,
                Err(_) => std::future::pending().await,
            }
        };
        let code = match planned {
            Some((at, code)) => tokio::select! {
                () = tokio::time::sleep_until(at) => code,
                code = crashed => code,
            },
            None => crashed.await,
        };
        exit_status(code)
    }
}

impl Launcher for Script {
    type Process = FakeProcess;

    async fn spawn(
        &self,
        _ctx: &Arc<Context>,
        _cfg: &Arc<AppConfig>,
        _slot: usize,
        port: u16,
        _token: Arc<str>,
        _tail: &Tail,
    ) -> std::io::Result<FakeProcess> {
        let plan = self
            .plans
            .lock()
            .expect("plans")
            .pop_front()
            .unwrap_or(Plan::Listens(Duration::ZERO));
        let (exit, exit_rx) = watch::channel(None);
        let (stopped, _) = watch::channel(false);
        let mut started = self.started.lock().expect("started");
        let pid = 1000 + u32::try_from(started.len()).expect("few");
        let spawned = Instant::now();
        started.push(Started {
            pid,
            at: spawned,
            exit,
            stopped: stopped.clone(),
        });
        self.count.send_replace(started.len());
        Ok(FakeProcess {
            pid,
            port,
            spawned,
            plan,
            exit: exit_rx,
            stopped,
        })
    }
}

impl Process for FakeProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    async fn wait_ready(&mut self, limit: Duration, cancel: &CancellationToken) -> Readiness {
        let deadline = self.spawned + limit;
        // One that exits early never listens: its exit comes first.
        let listens = match self.plan {
            Plan::Listens(after) => self.spawned + after,
            Plan::ExitsEarly(after, _) => self.spawned + after + Duration::from_secs(1),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        tokio::select! {
            () = tokio::time::sleep_until(listens) => Readiness::Listening(addr),
            () = tokio::time::sleep_until(deadline) => Readiness::TimedOut(None),
            status = self.exited() => Readiness::Exited(status),
            () = cancel.cancelled() => Readiness::Cancelled,
        }
    }

    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        Ok(self.exited().await)
    }

    async fn stop(
        &mut self,
        _listening: Option<SocketAddr>,
        _kill_now: &CancellationToken,
    ) -> Option<ExitStatus> {
        self.stopped.send_replace(true);
        Some(exit_status(0))
    }

    async fn reap(&mut self) {
        // A real reap waits for the process and its output: others run meanwhile.
        tokio::task::yield_now().await;
    }
}

#[cfg(unix)]
fn exit_status(code: i32) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(code << 8)
}

#[cfg(windows)]
fn exit_status(code: i32) -> ExitStatus {
    use std::os::windows::process::ExitStatusExt;
    ExitStatus::from_raw(u32::from_ne_bytes(code.to_ne_bytes()))
}

/// A configuration for the fake app, with these `<aspNetCore>` attributes.
fn config(attributes: &str) -> AppConfig {
    let web_config = format!(
        r#"<configuration><system.webServer><aspNetCore processPath="fake-app" {attributes}/></system.webServer></configuration>"#
    );
    crate::config::parse_web_config(Path::new("/fake-app/web.config"), web_config.as_bytes())
        .expect("valid web.config")
}

fn start(script: &Script, attributes: &str, offline: Option<Bytes>) -> Supervisor {
    let (console, _thread) = Console::start(false).expect("console");
    let ctx = Context::new(
        config(attributes),
        console,
        reqwest::Client::new(),
        #[cfg(unix)]
        None,
    );
    Supervisor::start_with(ctx, offline, script.clone())
}

async fn phase(supervisor: &Supervisor, wanted: impl Fn(&Phase) -> bool) -> Status {
    let mut status = supervisor.watch();
    let seen = status
        .wait_for(|s| wanted(&s.phase))
        .await
        .expect("slot alive")
        .clone();
    seen
}

fn is_ready(phase: &Phase) -> bool {
    matches!(phase, Phase::Ready(_))
}

#[tokio::test(start_paused = true)]
async fn failed_starts_back_off_0_then_100_ms_doubling() {
    let early = Plan::ExitsEarly(Duration::ZERO, 1);
    let script = Script::new([early; 6]);
    let supervisor = start(&script, r#"rapidFailsPerMinute="100""#, None);

    script.wait_started(7).await;
    let ms: Vec<u128> = script.gaps().iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 100, 200, 400, 800, 1600]);
    // The seventh start listens: the slot serves it.
    let backend = supervisor
        .backend()
        .await
        .expect("ready after the failures");
    assert_eq!(backend.pid, script.started()[6].pid);
    supervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn more_failures_than_rapid_fails_per_minute_pause_starts_until_the_minute_passes() {
    let early = Plan::ExitsEarly(Duration::ZERO, 1);
    let script = Script::new([early; 3]);
    let supervisor = start(&script, r#"rapidFailsPerMinute="2""#, None);
    let mut events = supervisor.events();

    let first = script.wait_started(1).await;
    let paused = phase(&supervisor, |p| matches!(p, Phase::Paused { .. })).await;
    let Phase::Paused { until } = paused.phase else {
        unreachable!("waited for Paused")
    };
    assert_eq!(until, first.at + Duration::from_secs(60));
    assert_eq!(script.started().len(), 3);
    match supervisor.backend().await {
        Err(Unavailable::Paused { limit: 2, .. }) => {}
        other => panic!("expected Paused, got {other:?}"),
    }
    let paused_event = loop {
        match events.recv().await.expect("events").kind {
            EventKind::Paused { until, limit } => break (until, limit),
            _ => continue,
        }
    };
    assert_eq!(paused_event, (until, 2));

    // No start happens within the minute; the next one comes once it has passed.
    let fourth = script.wait_started(4).await;
    assert!(fourth.at >= until, "started {:?} early", until - fourth.at);
    assert!(fourth.at < until + Duration::from_secs(1));
    let backend = supervisor.backend().await.expect("ready after the pause");
    assert_eq!(backend.pid, fourth.pid);
    supervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_recycle_whose_new_process_fails_keeps_the_old_one_serving() {
    let script = Script::new([Plan::Listens(Duration::from_millis(50))]);
    let supervisor = start(&script, "", None);
    let old = supervisor.backend().await.expect("first start");

    script.then([Plan::ExitsEarly(Duration::from_millis(200), 3)]);
    match supervisor.recycle().await {
        Err(RecycleError::Failed(failure)) => assert!(
            matches!(
                &failure.kind,
                FailureKind::Exited {
                    before_ready: true,
                    status,
                    exit,
                } if status == "exited with code 3" && exit.is_some_and(|e| e.code == Some(3))
            ),
            "{:?}",
            failure.kind
        ),
        other => panic!("expected the recycle to fail, got {other:?}"),
    }
    let started = script.started();
    assert_eq!(started.len(), 2);
    assert!(!started[0].was_stopped(), "the old process was stopped");
    let now = supervisor.backend().await.expect("the old one serves");
    assert!(Arc::ptr_eq(&now, &old));
    assert!(is_ready(&supervisor.watch().borrow().phase));

    // A later recycle that works replaces it, and only then stops the old one.
    supervisor.recycle().await.expect("second recycle");
    let new = supervisor.backend().await.expect("the new one serves");
    assert_eq!(new.pid, script.started()[2].pid);
    supervisor.stop().await;
    assert!(script.started()[0].was_stopped());
}

#[tokio::test(start_paused = true)]
async fn app_offline_during_a_start_stops_the_starting_process_without_a_failure() {
    let script = Script::new([Plan::Listens(Duration::from_secs(5))]);
    let supervisor = start(&script, "", None);
    let starting = script.wait_started(1).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    supervisor.set_offline(Some(Bytes::from_static(b"down for maintenance")));
    let went_offline = Instant::now();
    let offline = phase(&supervisor, |p| matches!(p, Phase::Offline)).await;
    // At once, not once the start it interrupted would have listened.
    assert_eq!(Instant::now(), went_offline);
    assert!(offline.last_failure.is_none(), "counted as a failure");
    assert!(starting.was_stopped());
    match supervisor.backend().await {
        Err(Unavailable::Offline(content)) => assert_eq!(&content[..], b"down for maintenance"),
        other => panic!("expected the offline content, got {other:?}"),
    }
    // Long past the first start's readiness: nothing started while offline.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(script.started().len(), 1);

    supervisor.set_offline(None);
    let online = Instant::now();
    let backend = supervisor.backend().await.expect("back online");
    let second = script.started()[1].clone();
    assert_eq!(backend.pid, second.pid);
    // A fresh start at once, not a backed-off restart.
    assert_eq!(second.at, online);
    supervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_after_a_crash_waits_for_the_restart() {
    let script = Script::new([
        Plan::Listens(Duration::ZERO),
        Plan::Listens(Duration::from_millis(700)),
    ]);
    let supervisor = start(&script, "", None);
    let first = supervisor.backend().await.expect("first start");

    script.started()[0].crash(1);
    phase(&supervisor, |p| matches!(p, Phase::Starting)).await;
    let asked = Instant::now();
    let second = supervisor
        .backend()
        .await
        .expect("the restart, not the crash");
    assert_ne!(second.pid, first.pid);
    assert_eq!(second.pid, script.started()[1].pid);
    assert_eq!(asked.elapsed(), Duration::from_millis(700));
    let status = supervisor.watch().borrow().clone();
    assert_eq!(status.restarts, 1);
    assert!(matches!(
        status.last_failure.as_deref().map(|f| &f.kind),
        Some(FailureKind::Exited {
            before_ready: false,
            ..
        })
    ));
    supervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_start_that_never_listens_fails_after_startup_time_limit() {
    // Both starts outlive the limit: a restart that listened first would rightly serve.
    let script = Script::new([Plan::Listens(Duration::from_secs(3600)); 2]);
    let supervisor = start(&script, r#"startupTimeLimit="5""#, None);
    let started = Instant::now();
    match supervisor.backend().await {
        Err(Unavailable::Failed(failure)) => {
            assert!(matches!(failure.kind, FailureKind::StartTimeout { .. }));
        }
        other => panic!("expected a start timeout, got {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    supervisor.stop().await;
}

/// Waits (in paused time) until `backend` is marked gone.
async fn gone(backend: &Backend) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !backend.is_gone() {
        assert!(
            Instant::now() < deadline,
            "process {} not marked gone",
            backend.pid
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_process_is_its_own_backend_marked_gone_once_it_crashed_was_replaced_or_stopped() {
    let script = Script::new([Plan::Listens(Duration::ZERO); 3]);
    let supervisor = start(&script, "", None);
    let first = supervisor.backend().await.expect("first start");

    script.started()[0].crash(1);
    gone(&first).await;
    let second = supervisor.backend().await.expect("the restart");
    assert_ne!(second.id, first.id);
    assert!(!second.is_gone());

    supervisor.recycle().await.expect("recycle");
    let third = supervisor.backend().await.expect("the new process");
    assert!(third.id > second.id);
    gone(&second).await;
    assert!(!third.is_gone());

    supervisor.stop().await;
    assert!(third.is_gone());
}
