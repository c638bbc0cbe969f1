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
    // With --user, ancm starts a copy of itself that becomes the app's user to open the app's
    // log files (see logs::open_as).
    #[cfg(unix)]
    if ancm::logs::is_opener_process() {
        return ancm::logs::run_opener();
    }
    let logging = ancm::logging::init();
    let cli = ancm::cli::Cli::parse();
    let code = match ancm::run(cli, &logging) {
        Ok(code) => code,
        Err(err) => {
            // Not through the log: the reason ancm stops must show whatever ANCM_LOG says,
            // and as a plain message.
            if !ancm::is_broken_pipe(&err) {
                for line in ancm::error_message(&err).lines() {
                    logging.eprintln(&format!("ancm: error: {line}"));
                }
            }
            ancm::exit_code_for(&err)
        }
    };
    logging.flush();
    code
}
