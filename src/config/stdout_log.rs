//! The stdout log (`stdoutLogEnabled`, `stdoutLogFile` or `--stdout-log`): its prefix as an
//! absolute path, whether it is really written, and its rotation (`--stdout-log-max-size`,
//! `--stdout-log-keep`).
//!
//! Reads through `sources` only; must not import another section.

use std::path::{Path, PathBuf};

use super::command;
use super::error::{ConfigError, Origin};
use super::sources::{Errors, Settings};
use super::values;

/// ANCM's schema default for stdoutLogFile.
const DEFAULT_STDOUT_LOG_FILE: &str = r".\aspnetcore-stdout";

/// Rotation and retention of the stdout log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// A file past this many bytes is followed by a new one.
    pub max_size: Option<u64>,
    /// Files of the prefix beyond this many are deleted, oldest first.
    pub keep: Option<u32>,
}

/// The stdout log's settings, read.
pub(super) struct StdoutLog {
    pub enabled: bool,
    /// The prefix (absolute), whether or not the log is on.
    pub file: PathBuf,
    /// The prefix when the log is really written: on, and output captured.
    pub log: Option<PathBuf>,
    pub rotation: Rotation,
}

/// The stdout log from its flags, else web.config, else the default; `capture_output` says
/// whether the app's output is read at all. Bad values are noted in `errors`.
pub(super) fn resolve(
    settings: &Settings<'_>,
    app_dir: &Path,
    capture_output: bool,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> StdoutLog {
    let flags = settings.flags;
    let stdout_log_enabled = flags.stdout_log.is_some()
        || errors.keep(settings.boolean("stdoutLogEnabled", false), false);
    let stdout_log_file = {
        let (origin, prefix) = match &flags.stdout_log {
            Some(flag) => (Origin::Flag("--stdout-log"), flag.clone()),
            None => settings
                .attribute("stdoutLogFile")
                .unwrap_or_else(|| (Origin::Flag("default"), DEFAULT_STDOUT_LOG_FILE.to_owned())),
        };
        let mut expanded = errors.keep(
            settings.expand(&origin, "stdoutLogFile", &prefix, &[]),
            String::new(),
        );
        if stdout_log_enabled {
            for variable in command::undefined_variables(&expanded) {
                warnings.push(format!(
                    "{origin}: stdoutLogFile uses %{variable}%, which is not set; the name is used as written"
                ));
            }
        }
        if command::windows_absolute_file_name(&expanded).is_some() {
            if stdout_log_enabled {
                warnings.push(format!(
                    "{origin}: stdoutLogFile \"{expanded}\" is a Windows drive path, which this \
                     system cannot use; the stdout log goes to {DEFAULT_STDOUT_LOG_FILE} in the \
                     app folder instead"
                ));
            }
            expanded = DEFAULT_STDOUT_LOG_FILE.to_owned();
        }
        log_prefix(app_dir, &expanded)
    };
    if stdout_log_enabled && !capture_output {
        warnings.push(
            "stdoutLogEnabled is on but enableOutOfProcessConsoleRedirection is false: \
             the app's output is not captured, so no stdout log is written"
                .to_owned(),
        );
    }
    let stdout_log = (stdout_log_enabled && capture_output).then(|| stdout_log_file.clone());
    let stdout_log_rotation = Rotation {
        max_size: flags.stdout_log_max_size.as_deref().and_then(|value| {
            errors.keep(
                values::size(value).map(Some).map_err(|allowed| {
                    ConfigError::invalid(
                        Origin::Flag("--stdout-log-max-size"),
                        "value",
                        value,
                        allowed,
                    )
                }),
                None,
            )
        }),
        keep: flags.stdout_log_keep.as_deref().and_then(|value| {
            errors.keep(
                values::uint(value, 1, 100_000, " of files")
                    .map(|n| Some(u32::try_from(n).unwrap_or(u32::MAX)))
                    .map_err(|allowed| {
                        ConfigError::invalid(
                            Origin::Flag("--stdout-log-keep"),
                            "value",
                            value,
                            allowed,
                        )
                    }),
                None,
            )
        }),
    };
    if stdout_log.is_none() && stdout_log_rotation != Rotation::default() {
        warnings.push(
            "--stdout-log-max-size and --stdout-log-keep apply to the stdout log, which is off \
             (turn it on with --stdout-log or stdoutLogEnabled)"
                .to_owned(),
        );
    }
    StdoutLog {
        enabled: stdout_log_enabled,
        file: stdout_log_file,
        log: stdout_log,
        rotation: stdout_log_rotation,
    }
}

/// The stdout log prefix as an absolute path. A prefix ending in a separator names a folder:
/// the files go inside it (`logs\` gives `logs/_<time>_<pid>.log`), as with ANCM.
fn log_prefix(app_dir: &Path, prefix: &str) -> PathBuf {
    let native = command::native_path(prefix);
    let path = command::normalize(&app_dir.join(&native));
    if native.ends_with(std::path::MAIN_SEPARATOR) || native.ends_with('/') {
        let mut folder = path.into_os_string();
        folder.push(std::path::MAIN_SEPARATOR_STR);
        PathBuf::from(folder)
    } else {
        path
    }
}
