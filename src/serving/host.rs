//! What every command that runs an app needs around it: the console writer, the process guard,
//! the signal handler and the async runtime, set up in order and torn down in reverse, so that
//! the app's last lines are written and no process is left behind.

use std::future::Future;
#[cfg(unix)]
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::AppConfig;
use crate::logs::{Console, ConsoleThread};
use crate::signals::Signals;
use crate::supervisor;

/// Handed to the command's async body.
pub(crate) struct Host {
    pub(crate) console: Console,
    pub(crate) signals: Signals,
    #[cfg(unix)]
    guard: Option<Arc<supervisor::Guard>>,
}

impl Host {
    /// The supervisor's context for `config`.
    pub(crate) fn context(&self, config: AppConfig) -> anyhow::Result<supervisor::Context> {
        Ok(supervisor::Context::new(
            config,
            self.console.clone(),
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("cannot set up the HTTP client for the shutdown message")?,
            #[cfg(unix)]
            self.guard.clone(),
        ))
    }
}

/// Runs `body` on a fresh runtime with a [`Host`], then tears everything down.
pub(crate) fn run<T, F, Fut>(body: F) -> anyhow::Result<T>
where
    F: FnOnce(Host) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    run_with(false, body)
}

/// [`run`], with stdout kept for a protocol when `stdout_reserved`: the app's output then
/// goes to stderr only.
pub(crate) fn run_with<T, F, Fut>(stdout_reserved: bool, body: F) -> anyhow::Result<T>
where
    F: FnOnce(Host) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (console, console_thread): (Console, ConsoleThread) =
        Console::start(stdout_reserved).context("cannot start the console writer")?;
    // Before anything is spawned: the app's descendants that leave its tree come back to ancm.
    #[cfg(target_os = "linux")]
    supervisor::adopt_orphans();
    #[cfg(unix)]
    let guard = match supervisor::Guard::start() {
        Ok(guard) => Some(Arc::new(guard)),
        Err(err) => {
            tracing::warn!(%err, "cannot start the process guard; if ancm is killed, the app's children may outlive it");
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ancm")
        .build()
        .context("cannot start the async runtime")?;
    let signals = {
        let _runtime = runtime.enter();
        Signals::install().context("cannot listen for signals")?
    };
    #[cfg(target_os = "linux")]
    runtime.spawn(supervisor::watch_orphans(guard.clone()));
    let host = Host {
        console,
        signals,
        #[cfg(unix)]
        guard: guard.clone(),
    };
    let result = runtime.block_on(body(host));
    runtime.shutdown_timeout(Duration::from_secs(2));
    // Outside the runtime: dropping the guard waits for it to exit, and joining the console
    // writes out the app's last lines.
    #[cfg(unix)]
    drop(guard);
    console_thread.join();
    result
}
