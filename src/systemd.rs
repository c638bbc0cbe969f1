//! systemd's service protocol: readiness, status, reload and stop notifications on
//! `NOTIFY_SOCKET` (`Type=notify` and `Type=notify-reload`), the watchdog, and the listening
//! sockets systemd passes by socket activation (`LISTEN_FDS`). Without those variables every
//! call here does nothing, so ancm behaves the same outside systemd. The protocol only: what
//! ancm tells systemd and when is serving/observe.rs's. A leaf: it imports nothing from the
//! crate.

use std::time::Duration;

use tokio::net::TcpListener;

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

/// MONOTONIC_USEC, which Type=notify-reload wants beside RELOADING=1.
pub(crate) fn monotonic_now() -> String {
    #[cfg(unix)]
    if let Ok(state) = sd_notify::NotifyState::monotonic_usec_now() {
        return state.to_string();
    }
    String::new()
}

/// WATCHDOG_USEC, when it is for ancm (WATCHDOG_PID, if set, is ancm's pid).
#[cfg(unix)]
pub(crate) fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

#[cfg(not(unix))]
pub(crate) fn watchdog_timeout() -> Option<Duration> {
    None
}

/// Whether systemd listens for notifications.
pub(crate) fn notifying() -> bool {
    cfg!(unix) && std::env::var_os("NOTIFY_SOCKET").is_some()
}
