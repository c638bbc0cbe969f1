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
mod check;
pub mod cli;
pub mod config;
mod helper;
mod host;
pub mod logging;
pub mod logs;
mod progress;
pub mod proxy;
mod run;
pub mod signals;
mod smoke;
pub mod supervisor;
mod systemd;
mod watch;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Exit status for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Runs one ancm command to completion.
pub fn run(cli: Cli, logging: &logging::Logging) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            if args.log_format == cli::LogFormat::Json {
                logging.use_json();
            }
            if let Some(path) = &args.access_log {
                proxy::access_log::start(&proxy::access_log::Target::from_arg(path)).map_err(
                    |err| {
                        anyhow::anyhow!(
                            "--access-log {}: cannot write there: {err}",
                            path.display()
                        )
                    },
                )?;
            }
            let request = args.request();
            let config = config::load(&request)?;
            if let Some(user) = &config.run_as {
                if let Some(web_config) = &config.web_config {
                    logs::open_as::warn_if_app_can_change(web_config, user);
                }
            }
            if let Err(err) = logging.apply(&config.debug_log, config.run_as.as_ref()) {
                let path = config
                    .debug_log
                    .file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""));
                tracing::warn!(path = %path.display(), %err, "cannot write the diagnostic log (debugFile); going on without it");
            }
            let admin = args.admin.clone().map(|address| admin::Settings {
                address,
                token: args.admin_token.clone(),
                group: args.admin_group.clone(),
            });
            let ran = host::run(|host| run::run(host, config, request, admin));
            proxy::access_log::finish();
            ran?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => Ok(check::run(
            &args.request(),
            args.json,
            &cli::flag_sources(),
        )?),
        Command::Smoke(args) => {
            let config = config::load(&args.request())?;
            let checks = smoke::Checks::from_args(&args);
            host::run(|host| smoke::run(host, config, checks))
        }
        Command::Ls => {
            write_stdout(admin::ls()?.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { target, json } => {
            write_stdout(admin::status(target.as_deref(), json)?.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            target,
            follow,
            lines,
        } => {
            admin::logs(target.as_deref(), lines, follow)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Helper => host::run_with(true, helper::run),
        Command::Completions { shell } => {
            write_stdout(&cli::completions(shell))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a command's result to stdout, reporting a failed write instead of panicking as
/// `print!` does.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|err| anyhow::Error::new(err).context("cannot write to stdout"))
}

/// The reader of ancm's output went away (`ancm ... | head`): nothing is wrong, and there is
/// no one to tell.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
