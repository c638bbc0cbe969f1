//! Signals from the outside, each by name: SIGINT, SIGTERM, SIGQUIT and SIGHUP on Unix, Ctrl+C
//! and Ctrl+Break on Windows. What a signal means is the command's to decide; what they share is
//! that a stop request that reaches ancm twice at once counts as one. Besides, on Unix: SIGUSR1
//! and SIGHUP reopen the log files (logrotate's `postrotate`, as for nginx), and every other
//! signal that would end ancm at once (and have the guard kill the app) is logged and ignored.

use std::fmt;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// A stop request this soon after the first is the same request, not the second one that kills
/// at once: GNU `timeout` (and `kill -- -PGID`) signals ancm and then its whole process group,
/// which ancm is in, so ancm can get one request twice within microseconds.
pub const SAME_REQUEST: Duration = Duration::from_secs(1);

/// A signal ancm listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT; Ctrl+C on Windows.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGQUIT: a graceful stop, as for nginx (whose container image stops with it).
    Quit,
    /// SIGHUP.
    Hangup,
    /// Ctrl+Break (Windows).
    Break,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt if cfg!(windows) => "Ctrl+C",
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Quit => "SIGQUIT",
            Signal::Hangup => "SIGHUP",
            Signal::Break => "Ctrl+Break",
        })
    }
}

pub struct Signals {
    rx: mpsc::UnboundedReceiver<(Signal, Instant)>,
    /// When the signal [`Signals::next`] last returned came.
    last: Option<Instant>,
}

impl Signals {
    /// Starts listening. Call inside the async runtime, before starting anything a signal
    /// should stop: from then on the signals no longer end ancm by themselves.
    pub fn install() -> std::io::Result<Signals> {
        let (tx, rx) = mpsc::unbounded_channel();
        imp::listen(&tx)?;
        Ok(Signals { rx, last: None })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Signal {
        let (signal, at) = self.recv().await;
        self.last = Some(at);
        signal
    }

    /// Waits for a signal that asks again, after the one [`Signals::next`] last returned: one
    /// that comes within [`SAME_REQUEST`] of that is the same request, and is passed over.
    pub async fn again(&mut self) -> Signal {
        loop {
            let (signal, at) = self.recv().await;
            match self.last {
                Some(first) if at.saturating_duration_since(first) < SAME_REQUEST => {
                    tracing::debug!(
                        "{signal} received again within {} s: the same request",
                        SAME_REQUEST.as_secs()
                    );
                }
                _ => return signal,
            }
        }
    }

    async fn recv(&mut self) -> (Signal, Instant) {
        match self.rx.recv().await {
            Some(received) => received,
            // The listeners live as long as the runtime; without them no signal comes.
            None => std::future::pending().await,
        }
    }
}

/// Reopens every log file ancm writes (the stdout logs, the diagnostic log, the access log) by
/// its path, between two lines, so that a file logrotate renamed or deleted starts again:
/// SIGUSR1 and SIGHUP ask for it on Unix.
pub fn reopen_log_files() {
    crate::logs::reopen();
    crate::proxy::access_log::reopen();
}

#[cfg(unix)]
mod imp {
    use tokio::signal::unix::{signal, SignalKind};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::{reopen_log_files, Signal};

    /// Signals whose default action ends the process, and that nothing in ancm sends itself:
    /// each is logged and ignored. (SIGPIPE Rust ignores already; SIGKILL and SIGSTOP cannot
    /// be caught; faults are not for the outside to send.)
    const IGNORED: &[nix::sys::signal::Signal] = {
        use nix::sys::signal::Signal::*;
        &[
            SIGUSR2,
            SIGALRM,
            SIGVTALRM,
            SIGPROF,
            SIGIO,
            SIGXCPU,
            SIGXFSZ,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            SIGPWR,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            SIGSTKFLT,
        ]
    };

    pub(super) fn listen(tx: &mpsc::UnboundedSender<(Signal, Instant)>) -> std::io::Result<()> {
        for (kind, name) in [
            (SignalKind::interrupt(), Signal::Interrupt),
            (SignalKind::terminate(), Signal::Terminate),
            (SignalKind::quit(), Signal::Quit),
            (SignalKind::hangup(), Signal::Hangup),
        ] {
            let mut stream = signal(kind)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if name == Signal::Hangup {
                        reopen_log_files();
                    }
                    // The receiver is gone only when ancm is on its way out.
                    if tx.send((name, Instant::now())).is_err() {
                        return;
                    }
                }
            });
        }
        let mut user1 = signal(SignalKind::user_defined1())?;
        tokio::spawn(async move {
            while user1.recv().await.is_some() {
                // First, so that this line is the first of the diagnostic log's new file.
                reopen_log_files();
                tracing::info!("SIGUSR1 received: reopening the log files");
            }
        });
        let named = IGNORED
            .iter()
            .map(|&sig| (sig as i32, sig.as_str().to_owned()));
        for (raw, name) in named.chain(realtime()) {
            // One that cannot be caught here keeps its default; the rest still are.
            let Ok(mut stream) = signal(SignalKind::from_raw(raw)) else {
                tracing::debug!("cannot catch {name}");
                continue;
            };
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::info!("{name} received: ignored (SIGUSR1 or SIGHUP reopens the log files; SIGTERM, SIGINT or SIGQUIT stops)");
                }
            });
        }
        Ok(())
    }

    /// The real-time signals, which end a process by default as well.
    #[cfg(target_os = "linux")]
    fn realtime() -> impl Iterator<Item = (i32, String)> {
        let (min, max) = (nix::libc::SIGRTMIN(), nix::libc::SIGRTMAX());
        (min..=max).map(move |raw| (raw, format!("SIGRTMIN+{}", raw - min)))
    }

    #[cfg(not(target_os = "linux"))]
    fn realtime() -> impl Iterator<Item = (i32, String)> {
        std::iter::empty()
    }
}

#[cfg(windows)]
mod imp {
    use tokio::signal::windows::{ctrl_break, ctrl_c};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::Signal;

    pub(super) fn listen(tx: &mpsc::UnboundedSender<(Signal, Instant)>) -> std::io::Result<()> {
        let mut interrupt = ctrl_c()?;
        let mut brk = ctrl_break()?;
        let sender = tx.clone();
        tokio::spawn(async move {
            while interrupt.recv().await.is_some() {
                if sender.send((Signal::Interrupt, Instant::now())).is_err() {
                    return;
                }
            }
        });
        let sender = tx.clone();
        tokio::spawn(async move {
            while brk.recv().await.is_some() {
                if sender.send((Signal::Break, Instant::now())).is_err() {
                    return;
                }
            }
        });
        Ok(())
    }
}
