//! `ancm ls`, `ancm status` and `ancm logs`: ask the ancm instances running on this machine,
//! through their control sockets. The client and its rendering are admin's (admin/control.rs),
//! beside the server that answers it. Must not import serving/: no app runs here.

use std::process::ExitCode;

use crate::admin;

/// `ancm ls`: the instances running on this machine, as a table.
pub(crate) fn ls() -> anyhow::Result<ExitCode> {
    super::print(admin::ls()?.as_bytes())
}

/// `ancm status [APP|PID] [--json]`: one running instance in detail.
pub(crate) fn status(target: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    super::print(admin::status(target, json)?.as_bytes())
}

/// `ancm logs [APP|PID] [-n N] [-f]`: a running instance's app output.
pub(crate) fn logs(target: Option<&str>, lines: usize, follow: bool) -> anyhow::Result<ExitCode> {
    admin::logs(target, lines, follow)?;
    Ok(ExitCode::SUCCESS)
}
