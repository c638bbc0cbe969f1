//! The `ancm` binary: parse the command line, set up logging, run, map the outcome to an exit
//! status. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ancm::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANCM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .init();
    match ancm::run(cli) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ancm::exit_code_for(&err)
        }
    }
}
