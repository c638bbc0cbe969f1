//! The followers of the supervisor: tasks that watch the app's phases and tell the operator
//! and the service manager. "Now listening" when a process is ready, the start-up spinner
//! shown while the app starts, and systemd's READY=/STATUS=/RELOADING= notifications and
//! watchdog pings. Must not import commands/.

use std::io::IsTerminal;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::logs;
use crate::supervisor::{EventKind, Phase, Supervisor};
use crate::systemd;

/// Says where to browse (`urls`) each time a new app process is ready, one task per slot.
pub(crate) fn announce(supervisor: &Supervisor, urls: &str) -> Vec<JoinHandle<()>> {
    (0..supervisor.slot_count())
        .map(|slot| tokio::spawn(announce_slot(supervisor.clone(), slot, urls.to_owned())))
        .collect()
}

/// The start-up spinner, shown whenever the app is starting, until [`Spinner::stop`].
pub(crate) struct Spinner(JoinHandle<()>);

impl Spinner {
    pub(crate) fn follow(supervisor: &Supervisor) -> Spinner {
        Spinner(tokio::spawn(spinner(supervisor.clone())))
    }

    /// Takes the spinner off for good, before the stop's lines.
    pub(crate) fn stop(self) {
        self.0.abort();
        logs::spinner::suspend(|| ());
    }
}

/// Tells systemd how the app is doing, and pings its watchdog: two tasks, which do nothing
/// outside systemd.
pub(crate) fn systemd(supervisor: &Supervisor) -> [JoinHandle<()>; 2] {
    [
        tokio::spawn(follow_for_systemd(supervisor.clone())),
        tokio::spawn(watchdog(supervisor.clone())),
    ]
}

/// Says where to browse each time a new app process is ready.
async fn announce_slot(supervisor: Supervisor, slot: usize, urls: String) {
    let mut status = supervisor.watch_slot(slot);
    let mut announced = None;
    loop {
        if let Phase::Ready(backend) = &status.borrow_and_update().phase {
            if announced != Some(backend.pid) {
                announced = Some(backend.pid);
                tracing::info!(
                    "Now listening on: {urls} (app pid {}, port {})",
                    backend.pid,
                    backend.addr.port()
                );
            }
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Shows the spinner whenever the app is starting, until ancm stops. Does nothing unless
/// stderr is a terminal.
async fn spinner(supervisor: Supervisor) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut status = supervisor.watch();
    loop {
        let starting = matches!(status.borrow_and_update().phase, Phase::Starting);
        if starting {
            logs::spinner::show();
        } else {
            logs::spinner::hide();
        }
        if status.changed().await.is_err() {
            logs::spinner::hide();
            return;
        }
    }
}

/// Follows the supervisor for systemd: READY=1 once the first app process is ready, a STATUS=
/// line at each change, RELOADING=1 when a recycle starts and READY=1 when its new process is
/// ready. Runs until the supervisor stops.
async fn follow_for_systemd(supervisor: Supervisor) {
    if !systemd::notifying() {
        return;
    }
    let mut events = supervisor.events();
    let mut status = supervisor.watch();
    let mut ready_once = false;
    let mut reloading = false;
    let mut last_status = String::new();
    loop {
        let line = status_line(&supervisor);
        let mut states = Vec::new();
        if !ready_once && ready_count(&supervisor) > 0 {
            ready_once = true;
            states.push("READY=1".to_owned());
        }
        if line != last_status {
            states.push(format!("STATUS={line}"));
            last_status = line;
        }
        if !states.is_empty() {
            systemd::notify(states);
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => match event.kind {
                    EventKind::Recycling if ready_once && !reloading => {
                        reloading = true;
                        systemd::notify(vec!["RELOADING=1".into(), systemd::monotonic_now()]);
                    }
                    // The recycle's new process is ready, or it failed and the old one goes
                    // on: either way the reload is over.
                    EventKind::Ready(_) | EventKind::Failed(_) if reloading => {
                        reloading = false;
                        systemd::notify(vec!["READY=1".into()]);
                    }
                    _ => {}
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            changed = status.changed() => if changed.is_err() { return },
        }
    }
}

fn ready_count(supervisor: &Supervisor) -> usize {
    (0..supervisor.slot_count())
        .filter(|&slot| matches!(supervisor.watch_slot(slot).borrow().phase, Phase::Ready(_)))
        .count()
}

/// "2 processes ready, 1 restart" and the like.
fn status_line(supervisor: &Supervisor) -> String {
    let slots = supervisor.slot_count();
    let mut ready: u64 = 0;
    let mut restarts = 0;
    let mut waiting = None;
    for slot in 0..slots {
        let status = supervisor.watch_slot(slot).borrow().clone();
        restarts += status.restarts;
        match status.phase {
            Phase::Ready(_) => ready += 1,
            Phase::Starting => waiting = waiting.or(Some("starting")),
            Phase::Backoff { .. } => waiting = waiting.or(Some("restarting after a failure")),
            Phase::Paused { .. } => waiting = waiting.or(Some("paused after repeated failures")),
            Phase::Offline => waiting = waiting.or(Some("offline (app_offline.htm)")),
            Phase::Idle => waiting = waiting.or(Some("waiting for the first request")),
            Phase::Stopping | Phase::Stopped => waiting = waiting.or(Some("stopping")),
        }
    }
    let counted =
        |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "{} of {slots} ready, {}",
        counted(ready, "process", "processes"),
        counted(restarts, "restart", "restarts")
    );
    if let Some(waiting) = waiting {
        line.push_str("; ");
        line.push_str(waiting);
    }
    line
}

/// WATCHDOG=1 at half of WATCHDOG_USEC, for as long as the supervisor answers: if it hangs or
/// its task has died, the pings stop and systemd restarts ancm.
async fn watchdog(supervisor: Supervisor) {
    let Some(timeout) = systemd::watchdog_timeout() else {
        return;
    };
    let every = (timeout / 2).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(every);
    let status = supervisor.watch();
    loop {
        ticks.tick().await;
        // The supervisor's tasks hold the sending side: gone, the loop is not healthy.
        if status.has_changed().is_err() {
            tracing::warn!("the supervisor has stopped; no more watchdog pings to systemd");
            return;
        }
        systemd::notify(vec!["WATCHDOG=1".into()]);
    }
}
