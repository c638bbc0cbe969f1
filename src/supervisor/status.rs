//! What the supervisor tells the rest of ancm: each slot's [`Phase`] and [`Status`], the
//! [`Event`]s as they happen, why a start failed or a process went away ([`Failure`], with the
//! words for exits and spawn errors), why a request got no backend ([`Unavailable`]) and why a
//! recycle did not happen ([`RecycleError`]). Plain data and its wording.
//!
//! Must not import the slot, the process or the platform code: they report through it.

use std::fmt;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::backend::Backend;
use crate::logs::Tail;

/// What happens to a slot, as it happens (for the helper protocol).
#[derive(Debug, Clone)]
pub struct Event {
    /// Which of the app's processes (0 unless processesPerApplication > 1).
    pub slot: usize,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
pub enum EventKind {
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
    /// The app exited, before listening or after: `status` says how, `exit` in numbers when
    /// the exit status was had.
    Exited {
        status: String,
        exit: Option<Exit>,
        before_ready: bool,
    },
    /// It did not listen within startupTimeLimit and was killed; `listening_elsewhere` when
    /// its tree listened on other ports meanwhile (it ignored the port it was given).
    StartTimeout {
        limit: Duration,
        listening_elsewhere: Option<ListeningElsewhere>,
    },
    /// It listened, but its warm-up path did not answer below 500 within startupTimeLimit,
    /// and it was killed; `last` is its last answer, in words.
    NotWarm {
        limit: Duration,
        path: String,
        last: String,
    },
    /// Another process listens on the app's port: the fixed ASPNETCORE_PORT, or every port
    /// tried. `holder` is "PID 4242 (nginx)", or "another process" when it cannot be seen.
    PortTaken {
        port: u16,
        holder: String,
        fixed: bool,
    },
}

/// How a process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Exit {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal = None;
        Exit {
            code: status.code(),
            signal,
        }
    }
}

/// An app listening on other ports than the one ancm gave it: the usual mistake of a hard-coded
/// port, or of a port variable ancm was not told to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningElsewhere {
    /// Where the app's tree listens.
    pub addrs: Vec<SocketAddr>,
    /// The port ancm gave it.
    pub port: u16,
    /// The variables that carried the port: ASPNETCORE_PORT, then each `--port-env` name.
    pub port_vars: Vec<String>,
}

impl fmt::Display for ListeningElsewhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[String]| -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                let sep = match i {
                    0 => "",
                    i if i + 1 == items.len() => " and ",
                    _ => ", ",
                };
                write!(f, "{sep}{item}")?;
            }
            Ok(())
        };
        f.write_str("the app listens on ")?;
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        list(f, &addrs)?;
        write!(f, ", not on port {} that ancm gave it in ", self.port)?;
        list(f, &self.port_vars)?;
        f.write_str("; pass the port with --port-env NAME or %ASPNETCORE_PORT% in arguments")
    }
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
                ..
            } => write!(f, "the app {status} before it listened on its port"),
            FailureKind::Exited {
                status,
                before_ready: false,
                ..
            } => write!(f, "the app {status}"),
            FailureKind::StartTimeout {
                limit,
                listening_elsewhere,
            } => {
                write!(
                    f,
                    "the app did not listen on its port within startupTimeLimit ({} s) and was killed",
                    limit.as_secs()
                )?;
                match listening_elsewhere {
                    Some(elsewhere) => write!(f, ": {elsewhere}"),
                    None => Ok(()),
                }
            }
            FailureKind::NotWarm { limit, path, last } => write!(
                f,
                "the app listened, but GET {path} (the warm-up path) did not answer below 500 \
                 within startupTimeLimit ({} s; last: {last}) and the app was killed",
                limit.as_secs()
            ),
            FailureKind::PortTaken {
                port,
                holder,
                fixed: true,
            } => write!(
                f,
                "port {port} is taken by {holder}, and ASPNETCORE_PORT fixes the app's port to it"
            ),
            FailureKind::PortTaken {
                port,
                holder,
                fixed: false,
            } => write!(
                f,
                "port {port} is taken by {holder}, as was each port tried before it"
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Phase {
    /// Lazy start: waiting for the first request.
    Idle,
    Starting,
    Ready(Arc<Backend>),
    /// After repeated failures, waiting before the next start.
    Backoff {
        until: Instant,
    },
    /// Too many failures within a minute; starts resume at `until`.
    Paused {
        until: Instant,
    },
    /// app_offline.htm is there: no process runs until it goes.
    Offline,
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
    /// app_offline.htm is there; its content.
    Offline(Bytes),
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

/// What a failed spawn means, in words that point at the likely mistake.
pub(super) fn spawn_error_text(err: &std::io::Error) -> String {
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

/// Logs a failure, with the last lines the app printed.
pub(super) fn report(failure: &Failure) {
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

/// Logs how a process the slot stopped ended.
pub(super) fn log_stopped(pid: u32, exit: Option<ExitStatus>) {
    match exit {
        Some(status) => tracing::info!(pid, "the app stopped: it {}", describe_exit(status)),
        None => tracing::info!(pid, "the app was killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 5), "");
    }
}
