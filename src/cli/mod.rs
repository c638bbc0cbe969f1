//! The command line, as clap types. Nothing outside this module and `lib.rs` sees them: each
//! command's arguments become a plain [`Request`](crate::config::Request), which `config`
//! turns into a validated `AppConfig` before anything touches the OS.
//!
//! This file holds the commands and the flags' provenance; each command's arguments have a
//! file of their own (`run`, `check`, `smoke`), and `overrides` the flags they share. None
//! imports anything of the crate but `config`'s input types and `admin`'s address.

mod check;
mod overrides;
mod run;
mod smoke;

use clap::{CommandFactory, Parser, Subcommand};

pub use check::CheckArgs;
pub use overrides::OverrideArgs;
pub use run::{LogFormat, RunArgs, TlsClientCert};
pub use smoke::SmokeArgs;

use check::CHECK_EXAMPLES;
use run::RUN_EXAMPLES;
use smoke::SMOKE_EXAMPLES;

#[derive(Debug, Parser)]
#[command(
    name = "ancm",
    version,
    about = "Run an ASP.NET Core (or any HTTP) app the way IIS's ASP.NET Core Module does: \
             start it on a private loopback port, proxy to it, restart it, capture its output.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the app, proxy requests to it and keep it running until Ctrl+C.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),

    /// Validate the app's web.config and flags, and print the effective configuration.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),

    /// Start the app behind the proxy, request some paths, stop: for CI.
    #[command(after_help = SMOKE_EXAMPLES)]
    Smoke(SmokeArgs),

    /// List the ancm instances running on this machine.
    #[command(after_help = LS_EXAMPLES)]
    Ls,

    /// Show one running ancm instance in detail: its app, listeners and processes.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        /// The instance: its pid, one of its app's pids, or its app folder (default: the only
        /// one running).
        #[arg(value_name = "APP|PID")]
        target: Option<String>,

        /// Print the instance's /status JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Print a running instance's last lines of app output, and follow it with -f.
    #[command(after_help = LOGS_EXAMPLES)]
    Logs {
        /// The instance: its pid, one of its app's pids, or its app folder (default: the only
        /// one running).
        #[arg(value_name = "APP|PID")]
        target: Option<String>,

        /// Keep printing new lines as the app writes them, across restarts, until the
        /// instance stops (or Ctrl+C).
        #[arg(short, long)]
        follow: bool,

        /// How many of the last lines to print first (ancm keeps the last 1000).
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
    },

    /// Serve a native web-server module over stdin/stdout (docs/helper-protocol.md).
    #[command(after_help = HELPER_EXAMPLES)]
    Helper,

    /// Print the shell completion script for SHELL.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const LS_EXAMPLES: &str = "\
Each `ancm run` registers itself in $XDG_RUNTIME_DIR/ancm (else a folder of this user's in the
temp folder) with a control socket that only this user can open.

Examples:
  ancm ls
  ancm status 4242                 the instance with pid 4242 (or whose app has that pid)";

const STATUS_EXAMPLES: &str = "\
Examples:
  ancm status                      the only instance running
  ancm status ./publish            the instance serving that app folder
  ancm status 4242 --json | jq '.processes[].pid'";

const LOGS_EXAMPLES: &str = "\
Examples:
  ancm logs                        the last 10 lines of the only instance running
  ancm logs ./publish -n 100       the last 100 lines of the app in ./publish
  ancm logs 4242 -f                follow, across restarts, until that ancm stops";

const HELPER_EXAMPLES: &str = "\
The helper speaks newline-delimited JSON: requests on stdin, events on stdout, logs on stderr.
See docs/helper-protocol.md.

Examples:
  ancm helper                      then type: {\"op\":\"start\",\"appPath\":\"./publish\"}
  printf '%s\\n' '{\"op\":\"start\",\"appPath\":\".\"}' '{\"op\":\"stop\"}' | ancm helper";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  ancm completions bash > ~/.local/share/bash-completion/completions/ancm
  ancm completions zsh > ~/.zfunc/_ancm
  ancm completions fish > ~/.config/fish/completions/ancm.fish
  ancm completions powershell >> $PROFILE

The same scripts are in the completions/ folder of the source.";

/// The flags set for this invocation's subcommand and where each came from: the command line,
/// or the ANCM_* variable that stands for it. Read again from the process's arguments, as the
/// derived types keep no origins.
pub fn flag_sources() -> Vec<(String, String)> {
    use clap::parser::ValueSource;
    let command = Cli::command();
    let Ok(matches) = command.clone().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    let Some((name, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let Some(subcommand) = command.find_subcommand(name) else {
        return Vec::new();
    };
    subcommand
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let from = match sub.value_source(arg.get_id().as_str())? {
                ValueSource::CommandLine => "command line".to_owned(),
                ValueSource::EnvVariable => arg.get_env()?.to_string_lossy().into_owned(),
                _ => return None,
            };
            Some((format!("--{long}"), from))
        })
        .collect()
}

/// The completion script for `shell`. Made in memory, because the generator cannot report a
/// write error (it panics), and stdout may be a pipe closed early.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ancm", &mut script);
    script
}
