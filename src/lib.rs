//! ancm runs a web app the way IIS's ASP.NET Core Module runs it out-of-process: it reads the
//! app's web.config (or flags), starts the app on a private loopback port with the pairing
//! environment, forwards every request to it, restarts it when it exits, and captures what it
//! prints.
//!
//! # Layout
//! From the edge inwards: a module imports only modules further down this list (`lib.rs`
//! aside, which only dispatches); `scripts/layout-check` checks that no two modules import
//! each other, here or inside a folder, and that no source file passes 600 lines.
//! - `commands`: one module per subcommand (`run`, `smoke`, `check`, `helper`, and `ls`,
//!   `status`, `logs` in `instances`), each thin: its arguments in, its outcome out. Only this
//!   file imports it.
//! - [`cli`]: the command line (clap types only); each command's arguments become a
//!   [`config::Request`].
//! - `serving`: what `run`, `smoke` and `helper` share: `Serving::start` (front listeners or
//!   systemd's sockets, supervisor, proxy, watch), the host around it (runtime, console thread,
//!   guard, signals), the one stop with its deadline and second-signal task, and the followers
//!   of the supervisor (ready announcement, spinner, systemd notifications). Must not import
//!   `commands`.
//! - [`signals`]: signals by name; SIGUSR1 and SIGHUP reopen every log file.
//! - [`admin`]: the admin listener and the control socket (health, readiness, status, metrics),
//!   and the client `ls`, `status` and `logs` ask them with.
//! - `watch`: app_offline.htm, web.config and `--watch` changes.
//! - [`proxy`]: the front listener and forwarding, with the ANCM header contract.
//! - [`supervisor`]: the app's processes: spawn, readiness, restart, rapid-fail limit, stop.
//! - [`logging`]: ancm's own log (tracing), written through the console, and ANCM's
//!   diagnostic log.
//! - [`config`]: web.config + flags → one validated [`config::AppConfig`].
//! - [`logs`]: the app's output and ancm's console: capture, stdout log file, start-failure
//!   tail, last lines, the console with its text/JSON format, the spinner's drawing. Must not
//!   import `logging`, `proxy`, `serving` or `commands`.
//! - `systemd`: systemd's protocol only (notify, socket activation, the watchdog interval, the
//!   variables the app must not inherit). A leaf: it imports nothing from the crate.
//! - `output`: a command's stdout and the broken-pipe rule. A leaf.
//! - `children`: ancm's own direct children that an owner waits for, which the orphan reaper
//!   leaves alone (Linux). A leaf.

pub mod admin;
#[cfg(target_os = "linux")]
mod children;
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
