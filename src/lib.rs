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
//! - [`logging`]: ancm's own log, and ANCM's diagnostic log; `progress`: the start-up spinner.
//! - `run`: wires them together for `ancm run`; `smoke` and `check` for those commands;
//!   `host`: what every command that runs an app sets up around it.
//! - `helper`: `ancm helper`, the protocol for native web-server modules.
//! - `watch`: app_offline.htm, web.config and `--watch` changes.
//! - [`admin`]: the admin listener: health, readiness, status and Prometheus metrics.

pub mod admin;
pub mod cli;
mod commands;
pub mod config;
pub mod logging;
pub mod logs;
mod output;
pub mod proxy;
mod serving;
pub mod signals;
pub mod supervisor;
mod systemd;
mod watch;

use std::process::ExitCode;

use cli::{Cli, Command};
pub use output::is_broken_pipe;

/// Exit status for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Runs one ancm command to completion.
pub fn run(cli: Cli, logging: &logging::Logging) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => commands::run::command(args, logging),
        Command::Check(args) => {
            commands::check::run(&args.request(), args.json, &cli::flag_sources())
        }
        Command::Smoke(args) => commands::smoke::command(&args),
        Command::Ls => commands::instances::ls(),
        Command::Status { target, json } => commands::instances::status(target.as_deref(), json),
        Command::Logs {
            target,
            follow,
            lines,
        } => commands::instances::logs(target.as_deref(), lines, follow),
        Command::Helper => commands::helper::command(),
        Command::Completions { shell } => commands::print(&cli::completions(shell)),
    }
}

/// The message for an error that ended ancm, one line per problem. A configuration error's
/// message is complete; others show their causes.
pub fn error_message(err: &anyhow::Error) -> String {
    match err.downcast_ref::<config::ConfigError>() {
        Some(config) => config.to_string(),
        None => format!("{err:#}"),
    }
}

/// The exit status for an error that ended ancm: 2 for configuration and usage errors, 0 for
/// a reader that went away.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        ExitCode::SUCCESS
    } else if err.downcast_ref::<config::ConfigError>().is_some() {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}
