//! web.config and command-line flags become one validated [`AppConfig`], the only configuration
//! type the supervisor and the proxy read. Nothing here binds a port or starts a process.

mod command;
mod error;
mod values;
mod webconfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use command::{split_command_line, CommandLine};
pub use error::{ConfigError, Origin};

use crate::cli::{Overrides, RunArgs};
use webconfig::AspNetCoreElement;

/// Everything `ancm run` needs to know about the app, with defaults applied.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The app folder: the child's working directory and the base of relative paths.
    pub app_dir: PathBuf,
    pub web_config: Option<PathBuf>,
    pub command: CommandLine,
    /// `<environmentVariables>` then `--env`, in order; names unique ignoring case.
    pub environment: Vec<(String, String)>,
    /// The stdout log prefix (absolute), when the stdout log is on.
    pub stdout_log: Option<PathBuf>,
    pub startup_time_limit: Duration,
    pub shutdown_time_limit: Duration,
    pub rapid_fails_per_minute: u32,
    /// `None` waits for ever (a requestTimeout of 0).
    pub request_timeout: Option<Duration>,
    /// ASPNETCORE_APPL_PATH: `/` or `/base` without a trailing slash.
    pub appl_path: String,
    /// Extra variables that receive the app's port.
    pub port_env: Vec<String>,
    pub listen: Vec<SocketAddr>,
    /// Things worth saying that do not stop the app from running.
    pub warnings: Vec<String>,
}

/// ANCM's schema defaults (spec §1.2).
const DEFAULT_STARTUP_TIME_LIMIT: u64 = 120;
const DEFAULT_SHUTDOWN_TIME_LIMIT: u64 = 10;
const DEFAULT_RAPID_FAILS_PER_MINUTE: u64 = 10;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_STDOUT_LOG_FILE: &str = r".\aspnetcore-stdout";

impl AppConfig {
    /// Builds the configuration for `ancm run` from its arguments and the app's web.config.
    pub fn from_run_args(args: &RunArgs) -> Result<Self, ConfigError> {
        let (app_dir, web_config) = locate(&args.app, !args.command.is_empty())?;
        let element = web_config.as_deref().map(webconfig::read).transpose()?;
        build(
            app_dir,
            web_config,
            element,
            &args.overrides,
            &args.command,
            &args.listen,
        )
    }
}

/// Finds the app folder and its web.config. A missing web.config is fine when the command
/// comes from the command line.
fn locate(app: &Path, have_command: bool) -> Result<(PathBuf, Option<PathBuf>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: app.to_owned(),
        source,
    };
    let meta = std::fs::metadata(app).map_err(read_error)?;
    if meta.is_file() {
        let file = std::fs::canonicalize(app).map_err(read_error)?;
        let dir = file.parent().map(Path::to_owned).unwrap_or_default();
        return Ok((dir, Some(file)));
    }
    let dir = std::fs::canonicalize(app).map_err(read_error)?;
    let file = dir.join("web.config");
    if file.is_file() {
        Ok((dir, Some(file)))
    } else if have_command {
        Ok((dir, None))
    } else {
        Err(ConfigError::NoWebConfig { path: dir })
    }
}

fn build(
    app_dir: PathBuf,
    web_config: Option<PathBuf>,
    element: Option<AspNetCoreElement>,
    flags: &Overrides,
    command_after_dashes: &[String],
    listen: &[SocketAddr],
) -> Result<AppConfig, ConfigError> {
    let settings = Settings {
        element: element.as_ref(),
        flags,
    };
    let mut warnings = element
        .as_ref()
        .map(|e| e.warnings.clone())
        .unwrap_or_default();

    if let Some(model) = settings.attribute("hostingModel", None) {
        let value = model.1.trim();
        if value.eq_ignore_ascii_case("inprocess") {
            warnings.push(format!(
                "{}: hostingModel=\"{value}\" asks IIS to load the app into its own process; \
                 ancm runs it out-of-process instead, as its own process behind the proxy",
                model.0
            ));
        } else if !value.is_empty() && !value.eq_ignore_ascii_case("outofprocess") {
            return Err(ConfigError::invalid(
                model.0,
                "attribute hostingModel",
                value,
                "inprocess or outofprocess (any case), or empty",
            ));
        }
    }

    let command = settings.command(&app_dir, command_after_dashes)?;

    let startup = settings.uint(
        "startupTimeLimit",
        "--startup-time-limit",
        &flags.startup_time_limit,
        (0, 3600),
        DEFAULT_STARTUP_TIME_LIMIT,
    )?;
    let shutdown = settings.uint(
        "shutdownTimeLimit",
        "--shutdown-time-limit",
        &flags.shutdown_time_limit,
        (0, 600),
        DEFAULT_SHUTDOWN_TIME_LIMIT,
    )?;
    let rapid_fails = settings.uint(
        "rapidFailsPerMinute",
        "--rapid-fails-per-minute",
        &flags.rapid_fails_per_minute,
        (0, 100),
        DEFAULT_RAPID_FAILS_PER_MINUTE,
    )?;
    let request_timeout = settings.request_timeout()?;

    let log_enabled = match settings.attribute("stdoutLogEnabled", None) {
        Some((origin, value)) => values::boolean(&value).map_err(|allowed| {
            ConfigError::invalid(origin, "attribute stdoutLogEnabled", value, allowed)
        })?,
        None => false,
    };
    let stdout_log = match (&flags.stdout_log, log_enabled) {
        (Some(prefix), _) => Some(prefix.clone()),
        (None, true) => Some(
            settings
                .attribute("stdoutLogFile", None)
                .map_or_else(|| DEFAULT_STDOUT_LOG_FILE.to_owned(), |(_, v)| v),
        ),
        (None, false) => None,
    }
    .map(|prefix| {
        let native = command::native_path(&command::expand_env(&prefix));
        command::normalize(&app_dir.join(native))
    });

    let mut environment: Vec<(String, String)> = element
        .as_ref()
        .map(|e| {
            e.environment
                .iter()
                .map(|(name, value)| (name.clone(), command::expand_env(value)))
                .collect()
        })
        .unwrap_or_default();
    for pair in &flags.env {
        let (name, value) = pair
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--env"),
                    "value",
                    pair,
                    "NAME=VALUE with a non-empty NAME",
                )
            })?;
        environment.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        environment.push((name.to_owned(), value.to_owned()));
    }

    let appl_path = match &flags.app_path {
        None => "/".to_owned(),
        Some(path) => {
            if !path.starts_with('/') || path.contains(['?', '#']) {
                return Err(ConfigError::invalid(
                    Origin::Flag("--app-path"),
                    "value",
                    path,
                    "a URL path that starts with / (such as /shop), without ? or #",
                ));
            }
            let trimmed = path.trim_end_matches('/');
            if trimmed.is_empty() { "/" } else { trimmed }.to_owned()
        }
    };

    for name in &flags.port_env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(ConfigError::invalid(
                Origin::Flag("--port-env"),
                "value",
                name,
                "an environment variable name (no = sign)",
            ));
        }
    }

    Ok(AppConfig {
        app_dir,
        web_config,
        command,
        environment,
        stdout_log,
        startup_time_limit: Duration::from_secs(startup),
        shutdown_time_limit: Duration::from_secs(shutdown),
        rapid_fails_per_minute: u32::try_from(rapid_fails).unwrap_or(u32::MAX),
        request_timeout,
        appl_path,
        port_env: flags.port_env.clone(),
        listen: listen.to_vec(),
        warnings,
    })
}

/// Looks a setting up in the flags first, then in `<aspNetCore>`.
struct Settings<'a> {
    element: Option<&'a AspNetCoreElement>,
    flags: &'a Overrides,
}

impl Settings<'_> {
    /// The value of a setting and where it came from: the flag when given, else the attribute.
    fn attribute(
        &self,
        name: &str,
        flag: Option<(&'static str, &Option<String>)>,
    ) -> Option<(Origin, String)> {
        if let Some((flag_name, Some(value))) = flag {
            return Some((Origin::Flag(flag_name), value.clone()));
        }
        let attribute = self.element?.attribute(name)?;
        Some((attribute.origin.clone(), attribute.value.clone()))
    }

    fn uint(
        &self,
        name: &str,
        flag: &'static str,
        flag_value: &Option<String>,
        (min, max): (u64, u64),
        default: u64,
    ) -> Result<u64, ConfigError> {
        let Some((origin, value)) = self.attribute(name, Some((flag, flag_value))) else {
            return Ok(default);
        };
        let unit = if name.ends_with("TimeLimit") {
            " of seconds"
        } else {
            ""
        };
        values::uint(&value, min, max, unit).map_err(|allowed| {
            let what = match origin {
                Origin::Flag(_) => "value".to_owned(),
                Origin::File { .. } => format!("attribute {name}"),
            };
            ConfigError::invalid(origin, what, value, allowed)
        })
    }

    fn request_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        let timeout = match (
            &self.flags.request_timeout,
            self.element.and_then(|e| e.attribute("requestTimeout")),
        ) {
            (Some(flag), _) => values::human_duration(flag).map_err(|allowed| {
                ConfigError::invalid(Origin::Flag("--request-timeout"), "value", flag, allowed)
            })?,
            (None, Some(attr)) => values::timespan(&attr.value).map_err(|allowed| {
                ConfigError::invalid(
                    attr.origin.clone(),
                    "attribute requestTimeout",
                    &attr.value,
                    allowed,
                )
            })?,
            (None, None) => DEFAULT_REQUEST_TIMEOUT,
        };
        // As with WinHTTP, 0 means no limit.
        Ok((!timeout.is_zero()).then_some(timeout))
    }

    fn command(&self, app_dir: &Path, after_dashes: &[String]) -> Result<CommandLine, ConfigError> {
        if let Some((program, args)) = after_dashes.split_first() {
            return Ok(CommandLine {
                program: command::resolve_program(app_dir, program),
                args: args.to_vec(),
            });
        }
        let process_path = self
            .attribute(
                "processPath",
                Some(("--process-path", &self.flags.process_path)),
            )
            .filter(|(_, v)| !v.trim().is_empty());
        let Some((_, process_path)) = process_path else {
            let origin = match self.element {
                Some(element) => element.origin(),
                None => Origin::Flag("--process-path"),
            };
            return Err(ConfigError::MissingProcessPath { origin });
        };
        let arguments = self
            .attribute("arguments", Some(("--arguments", &self.flags.arguments)))
            .map(|(_, v)| v)
            .unwrap_or_default();
        let program = command::resolve_program(app_dir, &command::expand_env(process_path.trim()));
        let args = split_command_line(&command::expand_env(&arguments))
            .iter()
            .map(|arg| command::native_argument(app_dir, arg))
            .collect();
        Ok(CommandLine { program, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_for(web_config: &str, flags: Overrides) -> Result<AppConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("web.config");
        std::fs::write(&path, web_config).expect("write");
        let element = webconfig::read(&path)?;
        build(
            dir.path().to_owned(),
            Some(path),
            Some(element),
            &flags,
            &[],
            &[],
        )
    }

    #[test]
    fn defaults_follow_the_ancm_schema() {
        let cfg = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="dotnet" arguments=".\App.dll"/></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect("valid");
        assert_eq!(cfg.startup_time_limit, Duration::from_secs(120));
        assert_eq!(cfg.shutdown_time_limit, Duration::from_secs(10));
        assert_eq!(cfg.rapid_fails_per_minute, 10);
        assert_eq!(cfg.request_timeout, Some(Duration::from_secs(120)));
        assert_eq!(cfg.stdout_log, None);
        assert_eq!(cfg.appl_path, "/");
        assert_eq!(cfg.command.program, PathBuf::from("dotnet"));
        if cfg!(unix) {
            assert_eq!(cfg.command.args, ["./App.dll"]);
        }
    }

    #[test]
    fn flags_override_attributes() {
        let flags = Overrides {
            startup_time_limit: Some("5".into()),
            request_timeout: Some("0".into()),
            env: vec!["SAMPLE_VAR=flag".into()],
            app_path: Some("/shop/".into()),
            stdout_log: Some(r"logs\out".into()),
            ..Overrides::default()
        };
        let cfg = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="app" startupTimeLimit="60">
<environmentVariables><environmentVariable name="sample_var" value="file"/></environmentVariables>
</aspNetCore></system.webServer></configuration>"#,
            flags,
        )
        .expect("valid");
        assert_eq!(cfg.startup_time_limit, Duration::from_secs(5));
        assert_eq!(cfg.request_timeout, None);
        assert_eq!(
            cfg.environment,
            [("SAMPLE_VAR".to_owned(), "flag".to_owned())]
        );
        assert_eq!(cfg.appl_path, "/shop");
        let log = cfg.stdout_log.expect("log on");
        assert!(
            log.ends_with("logs/out") || log.ends_with(r"logs\out"),
            "{}",
            log.display()
        );
    }

    #[test]
    fn bad_values_name_file_line_attribute_value_and_range() {
        let err = config_for(
            "<configuration>\n<system.webServer>\n  <aspNetCore processPath=\"x\" startupTimeLimit=\"5000\"/>\n</system.webServer></configuration>",
            Overrides::default(),
        )
        .expect_err("out of range");
        let text = err.to_string();
        assert!(text.contains("web.config:3:"), "{text}");
        assert!(
            text.contains("startupTimeLimit")
                && text.contains("5000")
                && text.contains("0 to 3600"),
            "{text}"
        );

        let err = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#,
            Overrides {
                rapid_fails_per_minute: Some("lots".into()),
                ..Overrides::default()
            },
        )
        .expect_err("bad flag");
        assert_eq!(
            err.to_string(),
            "--rapid-fails-per-minute: value \"lots\" is not valid: a whole number from 0 to 100"
        );
    }

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
    fn unknown_hosting_model_is_an_error_and_inprocess_a_warning() {
        let err = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x" hostingModel="sideways"/></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect_err("bad model");
        assert!(err.to_string().contains("hostingModel"), "{err}");
        let cfg = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x" hostingModel="InProcess"/></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect("valid");
        assert!(
            cfg.warnings.iter().any(|w| w.contains("out-of-process")),
            "{:?}",
            cfg.warnings
        );
    }
}
