//! The subcommands, one module each: each turns its arguments into what serving/, config/ or
//! admin/ take, runs it and says how it went. Only lib.rs's dispatch imports them; they import
//! no command but their own.

pub(crate) mod check;
pub(crate) mod helper;
pub(crate) mod instances;
pub(crate) mod run;
pub(crate) mod smoke;

use std::process::ExitCode;

use crate::output::write_stdout;

/// For a command whose whole result is what it prints.
pub(crate) fn print(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    write_stdout(bytes)?;
    Ok(ExitCode::SUCCESS)
}
