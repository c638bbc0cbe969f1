//! web.config and command-line flags become one validated [`AppConfig`], the only configuration
//! type the supervisor and the proxy read. Nothing here binds a port or starts a process.
//!
//! Precedence, highest first: flags; ANCM_LAUNCHER_PATH/ARGS from ancm's environment; the
//! `<aspNetCore>` element; ANCM's schema defaults (spec §1). %LAUNCHER_PATH% and
//! %LAUNCHER_ARGS% in web.config stand for `--launcher-path`/`--launcher-args`, else for the
//! LAUNCHER_PATH/LAUNCHER_ARGS variables.
//!
//! Layout: [`load`] takes a [`Request`] (`input`), finds and reads the app's web.config
//! (`locate`, `webconfig`), and `build` makes the configuration one section at a time, each
//! looking its settings up through `sources`: `launch` (what runs), `attributes` (the
//! one-value attributes), `handler` (hostingModel and `<handlerSettings>`), `stdout_log`,
//! `environment`, `forwarding`, `request_limits`; `run_only` then applies what only
//! `ancm run` sets. Config imports nothing of the crate.

mod attributes;
mod build;
mod command;
mod debug_log;
mod env_file;
mod environment;
mod error;
mod forwarding;
mod handler;
mod input;
mod launch;
mod locate;
mod position;
mod request_limits;
mod run_only;
mod scan;
mod sources;
mod stdout_log;
#[cfg(test)]
mod tests;
mod values;
mod webconfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use command::{split_command_line, CommandLine};
pub use debug_log::{DebugLevel, DebugLog};
pub use environment::Environment;
pub use error::{ConfigError, Origin};
pub use forwarding::ForwardedFor;
pub use input::{ClientCert, Overrides, Request, RunOnly, TlsFiles};
pub use request_limits::RequestLimits;
pub use run_only::{HealthCheck, RunAs, DEFAULT_LOGS_KEEP};
pub use stdout_log::Rotation;

use build::{build, Sources};

/// Everything ancm needs to know about the app, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// The app folder: the child's working directory and the base of relative paths.
    pub app_dir: PathBuf,
    pub web_config: Option<PathBuf>,
    pub command: CommandLine,
    /// processPath and arguments after overrides and `%VAR%` expansion, as reported.
    pub process_path: String,
    pub arguments: String,
    /// `<environmentVariables>`, then `--env-file`, then `--env`, in order; names unique
    /// ignoring case.
    pub environment: Environment,
    pub stdout_log_enabled: bool,
    /// The stdout log prefix (absolute), whether or not the log is on.
    pub stdout_log_file: PathBuf,
    /// The stdout log prefix when the log is really written: on, and output captured.
    pub stdout_log: Option<PathBuf>,
    /// When the stdout log starts a new file, and how many it keeps (off by default, as ANCM).
    pub stdout_log_rotation: Rotation,
    /// enableOutOfProcessConsoleRedirection: read the app's stdout and stderr at all.
    pub capture_output: bool,
    pub startup_time_limit: Duration,
    pub shutdown_time_limit: Duration,
    pub rapid_fails_per_minute: u32,
    /// `None` waits for ever (a requestTimeout of 0).
    pub request_timeout: Option<Duration>,
    /// `outofprocess` or `inprocess` (which runs out-of-process here, with a warning).
    pub hosting_model: String,
    pub processes_per_application: u32,
    /// Start on the first request (`--lazy`), as ANCM does; at once otherwise.
    pub lazy: bool,
    /// Accepted for compatibility; there is no Windows identity to forward outside IIS.
    pub forward_windows_auth_token: bool,
    /// Answer a failed start with a bare 502 instead of the explanatory page.
    pub disable_startup_error_page: bool,
    /// forwardResponseConnectionHeader: pass the app's Connection response header on.
    pub forward_response_connection_header: bool,
    /// disallowRotationOnConfigChange: a changed web.config does not recycle the app.
    pub disallow_rotation_on_config_change: bool,
    /// IIS requestFiltering/requestLimits, enforced by the proxy before the app.
    pub request_limits: RequestLimits,
    /// `<handlerSettings>` as written (names unique ignoring case).
    pub handler_settings: Vec<(String, String)>,
    pub debug_log: DebugLog,
    /// ASPNETCORE_APPL_PATH: `/` or `/base` without a trailing slash.
    pub appl_path: String,
    /// Forward requests under appl_path without it, naming it in X-Forwarded-Prefix.
    pub strip_app_path: bool,
    /// X-Forwarded-For's form: ANCM's for web.config runs, a bare IP for `-- COMMAND` runs.
    pub forwarded_for: ForwardedFor,
    /// POST ANCM's shutdown message before signalling the app: ASP.NET Core apps expect it,
    /// other apps answer it 404 (or worse, 202 and keep running).
    pub shutdown_message: bool,
    /// Extra variables that receive the app's port.
    pub port_env: Vec<String>,
    pub listen: Vec<SocketAddr>,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a client connection may stay open with no request in progress.
    pub idle_timeout: Duration,
    /// How long a write to a client may make no progress; `None` for ever.
    pub send_timeout: Option<Duration>,
    /// The largest HTTP/1.1 request head taken, in bytes.
    pub max_request_head: usize,
    /// How long a stopping ancm keeps serving, not ready, before it stops accepting.
    pub shutdown_delay: Duration,
    /// HTTPS on the front: the certificate chain and key files (PEM).
    pub tls: Option<TlsFiles>,
    /// Globs (relative to the app folder) whose changes recycle the app.
    pub watch: Vec<String>,
    /// A path GET through the pairing contract must answer below 500 before a new process
    /// takes traffic (web.config's `<applicationInitialization>` initializationPage, or
    /// `--ready-path`).
    pub ready_path: Option<String>,
    /// Probes of each ready process; one that keeps failing them is replaced.
    pub health: Option<HealthCheck>,
    /// A process whose tree's resident memory passes this many bytes is replaced.
    pub max_memory: Option<u64>,
    /// Bytes of the app's latest output kept for `ancm logs`.
    pub logs_keep: usize,
    /// Each process is replaced after serving this long.
    pub recycle_every: Option<Duration>,
    /// The user the app runs as (`--user`, when ancm runs as root).
    pub run_as: Option<RunAs>,
    /// Things worth saying that do not stop the app from running.
    pub warnings: Vec<String>,
}

/// Reads the app's web.config (if any) and builds its configuration with the request's
/// overrides and ancm's environment.
pub fn load(request: &Request) -> Result<AppConfig, ConfigError> {
    let located = locate::read(&request.app, !request.command.is_empty())?;
    let mut config = build(
        Sources {
            app_dir: located.app_dir,
            web_config: located.web_config,
            element: located.element,
            flags: &request.overrides,
            command_after_dashes: &request.command,
            listen: &request.listen,
            find_program: true,
        },
        &|name| std::env::var(name).ok(),
    )?;
    if let Some(run) = &request.run {
        run_only::apply(&mut config, run)?;
    }
    Ok(config)
}

/// Parses and validates web.config bytes with no flags, as if they were the file at `path`
/// (whose folder is the app folder). Never panics, whatever the bytes.
pub fn parse_web_config(path: &Path, bytes: &[u8]) -> Result<AppConfig, ConfigError> {
    let element = webconfig::from_bytes(path, bytes)?;
    let app_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    build(
        Sources {
            app_dir,
            web_config: Some(path.to_owned()),
            element: Some(element),
            flags: &Overrides::default(),
            command_after_dashes: &[],
            listen: &[],
            find_program: false,
        },
        &|name| std::env::var(name).ok(),
    )
}
