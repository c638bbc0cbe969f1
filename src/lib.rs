//! ancm runs a web app the way IIS's ASP.NET Core Module runs it out-of-process: it reads the
//! app's web.config (or flags), starts the app on a private loopback port with the pairing
//! environment, forwards every request to it, restarts it when it exits, and captures what it
//! prints.
//!
//! # Layout
//! - [`cli`]: the command line (clap types only).
//! - [`config`]: web.config + flags → one validated [`config::AppConfig`].
//! - [`supervisor`]: the app's processes: spawn, readiness, restart, rapid-fail limit, stop.
//! - [`proxy`]: the front listener and forwarding, with the ANCM header contract.
//! - [`logs`]: the app's output: console, stdout log file, start-failure tail.
//! - [`signals`]: stop requests from the OS.
//! - [`logging`]: ancm's own log, and ANCM's diagnostic log.
//! - `run`: wires them together for `ancm run`; `check`: `ancm check`.

mod check;
pub mod cli;
pub mod config;
pub mod logging;
pub mod logs;
pub mod proxy;
mod run;
pub mod signals;
pub mod supervisor;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use cli::{Cli, Command};

/// Exit status for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Runs one ancm command to completion.
pub fn run(cli: Cli, logging: &logging::Logging) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let config = config::AppConfig::from_run_args(&args)?;
            if let Err(err) = logging.apply(&config.debug_log) {
                tracing::warn!(%err, "cannot write the diagnostic log (debugFile); going on without it");
            }
            run_app(config)
        }
        Command::Check(args) => Ok(check::run(&args)?),
        Command::Guard => {
            #[cfg(unix)]
            supervisor::run_guard();
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_app(config: config::AppConfig) -> anyhow::Result<ExitCode> {
    let signals = signals::Signals::install().context("cannot install the Ctrl+C handler")?;
    let (console, console_thread) =
        logs::Console::start().context("cannot start the console writer")?;
    #[cfg(unix)]
    let guard = match supervisor::Guard::start() {
        Ok(guard) => Some(std::sync::Arc::new(guard)),
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
    let result = runtime.block_on(run::run(
        config,
        console,
        #[cfg(unix)]
        guard.clone(),
        signals,
    ));
    runtime.shutdown_timeout(Duration::from_secs(2));
    // Outside the runtime: dropping the guard waits for it to exit, and joining the console
    // writes out the app's last lines.
    #[cfg(unix)]
    drop(guard);
    console_thread.join();
    result.map(|()| ExitCode::SUCCESS)
}

/// The exit status for an error that ended ancm: 2 for configuration and usage errors.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.downcast_ref::<config::ConfigError>().is_some() {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}
