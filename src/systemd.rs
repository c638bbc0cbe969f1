//! systemd's service protocol: readiness, status, reload and stop notifications on
//! `NOTIFY_SOCKET` (`Type=notify` and `Type=notify-reload`), the watchdog, and the listening
//! sockets systemd passes by socket activation (`LISTEN_FDS`). Without those variables every
//! call here does nothing, so ancm behaves the same outside systemd.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::supervisor::{EventKind, Phase, Supervisor};

/// The variables of systemd's protocol, meant for ancm alone: the app must not see them, or it
/// would tell systemd it is ready (or take the sockets) on ancm's behalf.
pub(crate) const SERVICE_VARIABLES: [&str; 6] = [
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// A socket systemd passed that ancm cannot serve on.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) enum ActivationError {
    #[error("LISTEN_FDS: {0}")]
    Variables(#[source] std::io::Error),
    #[error("socket activation passed descriptor {fd}, which is not a listening TCP socket ({reason}); use ListenStream= with an address or port")]
    NotTcp { fd: i32, reason: String },
}

/// The listening sockets systemd passed for ancm (LISTEN_PID is ancm's pid), or none.
#[cfg(unix)]
pub(crate) fn passed_listeners() -> Result<Vec<TcpListener>, ActivationError> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    use std::os::fd::{FromRawFd, OwnedFd};
    let fds = sd_notify::listen_fds().map_err(ActivationError::Variables)?;
    let mut listeners = Vec::with_capacity(fds.len());
    for fd in fds {
        let not_tcp = |reason: String| ActivationError::NotTcp { fd, reason };
        // SAFETY: systemd hands the descriptors from 3 to 3 + LISTEN_FDS to this process
        // (LISTEN_PID) to own; each is taken here once and nowhere else.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let kind = getsockopt(&owned, sockopt::SockType).map_err(|err| not_tcp(err.to_string()))?;
        let listening =
            getsockopt(&owned, sockopt::AcceptConn).map_err(|err| not_tcp(err.to_string()))?;
        if kind != SockType::Stream || !listening {
            return Err(not_tcp(
                "a datagram socket, or one that is not listening".into(),
            ));
        }
        let std_listener = std::net::TcpListener::from(owned);
        if let Err(err) = std_listener.local_addr() {
            return Err(not_tcp(format!("no TCP address: {err}")));
        }
        std_listener
            .set_nonblocking(true)
            .map_err(|err| not_tcp(err.to_string()))?;
        let listener =
            TcpListener::from_std(std_listener).map_err(|err| not_tcp(err.to_string()))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

#[cfg(not(unix))]
pub(crate) fn passed_listeners() -> Result<Vec<TcpListener>, ActivationError> {
    Ok(Vec::new())
}

/// Sends `states` to systemd, if it listens; off the async runtime, as it is a socket write.
pub(crate) fn notify(states: Vec<String>) {
    #[cfg(unix)]
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        tokio::task::spawn_blocking(move || {
            let states: Vec<_> = states
                .iter()
                .map(|s| sd_notify::NotifyState::Custom(s))
                .collect();
            if let Err(err) = sd_notify::notify(&states) {
                tracing::warn!(%err, "could not notify systemd (NOTIFY_SOCKET)");
            }
        });
    }
    #[cfg(not(unix))]
    drop(states);
}

/// Tells systemd that ancm is stopping.
pub(crate) fn stopping() {
    notify(vec!["STOPPING=1".into(), "STATUS=stopping".into()]);
}

/// Follows the supervisor for systemd: READY=1 once the first app process is ready, a STATUS=
/// line at each change, RELOADING=1 when a recycle starts and READY=1 when its new process is
/// ready. Runs until the supervisor stops.
pub(crate) async fn follow(supervisor: Supervisor) {
    if !notifying() {
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
            notify(states);
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => match event.kind {
                    EventKind::Recycling if ready_once && !reloading => {
                        reloading = true;
                        notify(vec!["RELOADING=1".into(), monotonic_now()]);
                    }
                    // The recycle's new process is ready, or it failed and the old one goes
                    // on: either way the reload is over.
                    EventKind::Ready(_) | EventKind::Failed(_) if reloading => {
                        reloading = false;
                        notify(vec!["READY=1".into()]);
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

/// MONOTONIC_USEC, which Type=notify-reload wants beside RELOADING=1.
fn monotonic_now() -> String {
    #[cfg(unix)]
    if let Ok(state) = sd_notify::NotifyState::monotonic_usec_now() {
        return state.to_string();
    }
    String::new()
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

/// WATCHDOG_USEC, when it is for ancm (WATCHDOG_PID, if set, is ancm's pid).
#[cfg(unix)]
fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

#[cfg(not(unix))]
fn watchdog_timeout() -> Option<Duration> {
    None
}

/// Whether systemd listens for notifications.
fn notifying() -> bool {
    cfg!(unix) && std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// WATCHDOG=1 at half of WATCHDOG_USEC, for as long as the supervisor answers: if it hangs or
/// its task has died, the pings stop and systemd restarts ancm.
pub(crate) async fn watchdog(supervisor: Supervisor) {
    let Some(timeout) = watchdog_timeout() else {
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
        notify(vec!["WATCHDOG=1".into()]);
    }
}
