//! The one stop of a command that serves an app: decided once, with one deadline for the
//! requests in flight, and one way to cut it short (a second signal, or a command's own time
//! limit) that kills the app at once. The proxy's drain waits until the deadline; then the
//! supervisor stops the app's processes, each with shutdownTimeLimit of its own (as a recycle
//! does), unless the stop kills now ([`Supervisor::kill_now`]). Must not import commands/ or
//! the rest of serving/.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::signals::{Signal, Signals};
use crate::supervisor::Supervisor;

/// A stop, as decided.
pub(crate) struct Stop {
    /// Requests in flight are waited for until then; the app then has shutdownTimeLimit of its
    /// own to exit.
    pub(crate) deadline: Instant,
    /// Once it fires, nothing is waited for any more.
    pub(crate) kill_now: KillNow,
}

impl Stop {
    /// The stop decided now: requests in flight have `grace`.
    pub(crate) fn after(grace: Duration, kill_now: KillNow) -> Stop {
        Stop {
            deadline: Instant::now() + grace,
            kill_now,
        }
    }
}

/// Whether SIGHUP while stopping is a second stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hangup {
    /// Every signal stops the command (`ancm helper`), so any second one kills.
    Kills,
    /// SIGHUP reloads (`ancm run`): while stopping there is nothing to reload, and it is said.
    Ignored,
}

/// What kills the app at once during a stop: the task that waits for it, and the token it
/// fires. The task ends when this is dropped.
pub(crate) struct KillNow {
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl KillNow {
    /// A second stop signal kills the app now.
    pub(crate) fn on_second_signal(
        mut signals: Signals,
        supervisor: Supervisor,
        hangup: Hangup,
    ) -> KillNow {
        let token = CancellationToken::new();
        let task = tokio::spawn({
            let kill_now = token.clone();
            async move {
                loop {
                    let signal = signals.again().await;
                    if signal == Signal::Hangup && hangup == Hangup::Ignored {
                        tracing::info!("{signal} received while stopping: nothing to reload");
                        continue;
                    }
                    tracing::warn!("{signal} received again: killing the app now");
                    kill_now.cancel();
                    supervisor.kill_now();
                    return;
                }
            }
        });
        KillNow { token, task }
    }

    /// At `at`, whatever happens before, nothing is waited for any more and the app is killed:
    /// a command's own time limit (`ancm smoke --timeout`).
    pub(crate) fn at(at: Instant, supervisor: Supervisor) -> KillNow {
        let token = CancellationToken::new();
        let task = tokio::spawn({
            let kill_now = token.clone();
            async move {
                tokio::time::sleep_until(at).await;
                kill_now.cancel();
                supervisor.kill_now();
            }
        });
        KillNow { token, task }
    }

    /// Returns once the app is to be killed now.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

impl Drop for KillNow {
    fn drop(&mut self) {
        self.task.abort();
    }
}
