//! The `ancm` binary: parse the command line, set up logging, run, map the outcome to an exit
//! status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // ancm starts a copy of itself as the process guard (see supervisor::Guard).
    #[cfg(unix)]
    if ancm::supervisor::is_guard_process() {
        ancm::supervisor::run_guard();
        return ExitCode::SUCCESS;
    }
    let logging = ancm::logging::init();
    let cli = ancm::cli::Cli::parse();
    match ancm::run(cli, &logging) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ancm::exit_code_for(&err)
        }
    }
}
