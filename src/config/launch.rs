//! What runs: processPath and arguments (or the command after `--`) after the flags,
//! ANCM_LAUNCHER_PATH/ARGS and `%VAR%` expansion, with %LAUNCHER_PATH% and %LAUNCHER_ARGS% from
//! `--launcher-path`/`--launcher-args` or else the LAUNCHER_PATH/LAUNCHER_ARGS variables; the
//! variables that receive the app's port, and a fixed ASPNETCORE_PORT, checked here once; and
//! the program looked up before the first start.
//!
//! Reads through `sources`; of the other sections it imports only the [`Environment`] type.

use std::path::{Path, PathBuf};

use super::command::{self, split_command_line, CommandLine};
use super::environment::Environment;
use super::error::{ConfigError, Origin};
use super::sources::{Errors, Settings};
use super::values;
use super::webconfig::AspNetCoreElement;

/// The program and argv, and processPath and arguments as they end up after overrides and
/// expansion, as reported.
pub(super) struct Launch {
    pub command: CommandLine,
    pub process_path: String,
    pub arguments: String,
}

/// What runs; a bad processPath or arguments is noted in `errors`, and an empty command kept.
pub(super) fn resolve(
    settings: &Settings<'_>,
    app_dir: &Path,
    after_dashes: &[String],
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Launch {
    let (command, process_path, arguments) = errors.keep(
        command(settings, app_dir, after_dashes, warnings),
        (
            CommandLine {
                program: PathBuf::new(),
                args: Vec::new(),
            },
            String::new(),
            String::new(),
        ),
    );
    Launch {
        command,
        process_path,
        arguments,
    }
}

/// The program and argv, plus processPath and arguments as they end up after overrides
/// and expansion.
fn command(
    settings: &Settings<'_>,
    app_dir: &Path,
    after_dashes: &[String],
    warnings: &mut Vec<String>,
) -> Result<(CommandLine, String, String), ConfigError> {
    if let Some((program, args)) = after_dashes.split_first() {
        let line = CommandLine {
            program: command::resolve_program(app_dir, program),
            args: args.to_vec(),
        };
        return Ok((line, program.clone(), args.join(" ")));
    }
    let launcher_args = settings.var("ANCM_LAUNCHER_ARGS");
    let Some((origin, process_path)) = process_path(settings) else {
        return Err(match settings.element {
            Some(element) if element.is_transform => ConfigError::Transform {
                origin: element.origin(),
            },
            Some(element) => ConfigError::MissingProcessPath {
                origin: element.origin(),
            },
            None => ConfigError::MissingProcessPath {
                origin: Origin::Flag("--process-path"),
            },
        });
    };
    let (args_origin, arguments) = match (&settings.flags.arguments, launcher_args) {
        (Some(flag), _) => (Some(Origin::Flag("--arguments")), flag.clone()),
        (None, Some(launcher)) => (Some(Origin::Flag("ANCM_LAUNCHER_ARGS")), launcher),
        (None, None) => match settings.attribute("arguments") {
            Some((origin, value)) => (Some(origin), value),
            None => (None, String::new()),
        },
    };

    let process_path = expand_launcher(settings, &origin, "processPath", process_path.trim())?;
    let arguments = match &args_origin {
        Some(origin) => expand_launcher(settings, origin, "arguments", &arguments)?,
        None => arguments,
    };
    let program = match command::windows_absolute_file_name(&process_path) {
        // A Windows install path (C:\Program Files\dotnet\dotnet.exe) means that program;
        // here it is found on PATH.
        Some(name) => {
            let program = command::resolve_program(app_dir, name);
            warnings.push(format!(
                "{origin}: processPath \"{process_path}\" is a Windows path; running \"{}\" instead",
                program.display()
            ));
            program
        }
        None => command::resolve_program(app_dir, &process_path),
    };
    let args = split_command_line(&arguments)
        .iter()
        .map(|arg| command::native_argument(app_dir, arg))
        .collect();
    Ok((CommandLine { program, args }, process_path, arguments))
}

/// processPath as given, and where from: the flag, ANCM_LAUNCHER_PATH, or web.config.
fn process_path(settings: &Settings<'_>) -> Option<(Origin, String)> {
    let launcher_path = settings.var("ANCM_LAUNCHER_PATH").filter(|v| !v.is_empty());
    let process_path = match (&settings.flags.process_path, launcher_path) {
        (Some(flag), _) => Some((Origin::Flag("--process-path"), flag.clone())),
        (None, Some(launcher)) => Some((Origin::Flag("ANCM_LAUNCHER_PATH"), launcher)),
        (None, None) => settings.attribute("processPath"),
    };
    process_path.filter(|(_, v)| !v.trim().is_empty())
}

/// `%VAR%` expansion, with %LAUNCHER_PATH% and %LAUNCHER_ARGS% from the flags, else from
/// ancm's environment. Visual Studio fills those in at dev time; unfilled, nothing can run.
fn expand_launcher(
    settings: &Settings<'_>,
    origin: &Origin,
    attribute: &str,
    value: &str,
) -> Result<String, ConfigError> {
    let flags = settings.flags;
    let launcher_path = flags
        .launcher_path
        .clone()
        .or_else(|| settings.var("LAUNCHER_PATH").filter(|v| !v.is_empty()));
    // With a launcher path but no arguments, the arguments are empty.
    let launcher_args = flags
        .launcher_args
        .clone()
        .or_else(|| settings.var("LAUNCHER_ARGS"))
        .or_else(|| launcher_path.as_ref().map(|_| String::new()));
    let expanded = settings.expand(
        origin,
        attribute,
        value,
        &[
            ("LAUNCHER_PATH", launcher_path.as_deref()),
            ("LAUNCHER_ARGS", launcher_args.as_deref()),
        ],
    )?;
    let undefined = command::undefined_variables(&expanded);
    let launcher = [
        ("LAUNCHER_PATH", "--launcher-path"),
        ("LAUNCHER_ARGS", "--launcher-args"),
    ]
    .into_iter()
    .find(|(name, _)| undefined.iter().any(|v| v.eq_ignore_ascii_case(name)));
    if let Some((variable, flag)) = launcher {
        return Err(ConfigError::Launcher {
            origin: origin.clone(),
            attribute: attribute.to_owned(),
            variable,
            flag,
        });
    }
    if let Some(variable) = undefined.into_iter().next() {
        // IIS would pass it on as written, and the start would fail (502.5): say so now.
        return Err(ConfigError::UndefinedVariable {
            origin: origin.clone(),
            attribute: attribute.to_owned(),
            variable,
        });
    }
    Ok(expanded)
}

/// The variables that receive the app's port (`--port-env`), each checked to be a name; and a
/// user-set ASPNETCORE_PORT, checked to be a port ANCM allows. Bad ones are noted in `errors`.
pub(super) fn port_variables(
    settings: &Settings<'_>,
    environment: &Environment,
    errors: &mut Errors,
) -> Vec<String> {
    let port_env = &settings.flags.port_env;
    for name in port_env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            errors.push(ConfigError::invalid(
                Origin::Flag("--port-env"),
                "value",
                name,
                "an environment variable name (no = sign)",
            ));
        }
    }
    errors.keep(check_fixed_port(environment, settings.element), ());
    port_env.clone()
}

/// A user-set ASPNETCORE_PORT fixes the app's port; ANCM allows 1025-48000 (spec §2).
fn check_fixed_port(
    environment: &Environment,
    element: Option<&AspNetCoreElement>,
) -> Result<(), ConfigError> {
    let Some(value) = environment
        .get("ASPNETCORE_PORT")
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(());
    };
    values::uint(value, 1025, 48000, "")
        .map(|_| ())
        .map_err(|allowed| {
            ConfigError::invalid(
                element.map_or(Origin::Flag("--env"), AspNetCoreElement::origin),
                "environment variable ASPNETCORE_PORT",
                value,
                format!("{allowed}, or empty for a free port picked at each start"),
            )
        })
}

/// An error saying where the program was looked for, when it is not there (in the app folder,
/// or on the app's PATH, else ancm's): found now, not as a start that fails again and again.
/// Noted in `errors`.
pub(super) fn find_program(
    settings: &Settings<'_>,
    app_dir: &Path,
    launch: &Launch,
    after_dashes: &[String],
    environment: &Environment,
    errors: &mut Errors,
) {
    let search_path = environment
        .get("PATH")
        .map(str::to_owned)
        .or_else(|| settings.var("PATH"));
    errors.keep(
        missing_program(
            settings,
            app_dir,
            &launch.command,
            after_dashes,
            search_path.as_deref(),
        ),
        (),
    );
}

fn missing_program(
    settings: &Settings<'_>,
    app_dir: &Path,
    command: &CommandLine,
    after_dashes: &[String],
    search_path: Option<&str>,
) -> Result<(), ConfigError> {
    let Some(looked) = command::missing_program(app_dir, &command.program, search_path) else {
        return Ok(());
    };
    let (origin, attribute, value) = match after_dashes.first() {
        Some(program) => (
            Origin::Flag("the command after --"),
            "program",
            program.clone(),
        ),
        None => {
            let origin =
                process_path(settings).map_or(Origin::Flag("--process-path"), |(origin, _)| origin);
            (origin, "processPath", expanded_process_path(settings))
        }
    };
    Err(ConfigError::ProgramNotFound {
        origin,
        attribute,
        value,
        looked,
    })
}

/// processPath after `%VAR%` expansion, for messages.
fn expanded_process_path(settings: &Settings<'_>) -> String {
    process_path(settings)
        .and_then(|(origin, value)| {
            expand_launcher(settings, &origin, "processPath", value.trim()).ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config_for;
    use crate::config::Overrides;

    #[test]
    fn missing_process_path_points_at_the_element() {
        let err = config_for(
            "<configuration>\n<system.webServer>\n<aspNetCore arguments=\"x\"/>\n</system.webServer></configuration>",
            Overrides::default(),
        )
        .expect_err("no processPath");
        assert!(
            err.to_string()
                .contains("web.config:3:1: <aspNetCore> has no processPath"),
            "{err}"
        );
    }

    #[test]
    fn an_unset_variable_in_process_path_is_an_error() {
        let err = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="%ANCM_SURELY_UNSET_VAR%\app" /></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect_err("unset variable");
        assert!(err.to_string().contains("%ANCM_SURELY_UNSET_VAR%"), "{err}");
    }
}
