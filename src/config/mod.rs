//! web.config and command-line flags become one validated [`AppConfig`], the only configuration
//! type the supervisor and the proxy read. Nothing here binds a port or starts a process.
//!
//! Precedence, highest first: flags; ANCM_LAUNCHER_PATH/ARGS from ancm's environment; the
//! `<aspNetCore>` element; ANCM's schema defaults (spec §1). %LAUNCHER_PATH% and
//! %LAUNCHER_ARGS% in web.config stand for `--launcher-path`/`--launcher-args`, else for the
//! LAUNCHER_PATH/LAUNCHER_ARGS variables.

mod command;
mod debug_log;
mod env_file;
mod error;
mod position;
mod request_limits;
mod scan;
mod values;
mod webconfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use command::{split_command_line, CommandLine};
pub use debug_log::{DebugLevel, DebugLog};
pub use error::{ConfigError, Origin};
pub use request_limits::RequestLimits;

use webconfig::AspNetCoreElement;

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
    /// `<environmentVariables>` then `--env`, in order; names unique ignoring case.
    pub environment: Vec<(String, String)>,
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

/// A user of this machine, resolved when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups, as its login would have them.
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

/// The liveness probe: `path` is sent every `interval`; `failures` failed probes in a row
/// (no answer within the interval, or 500 and above) replace the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub failures: u32,
}

/// Rotation and retention of the stdout log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// A file past this many bytes is followed by a new one.
    pub max_size: Option<u64>,
    /// Files of the prefix beyond this many are deleted, oldest first.
    pub keep: Option<u32>,
}

/// How X-Forwarded-For gives the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedFor {
    /// `1.2.3.4`, `::1`: what Express's `trust proxy`, Django and gunicorn or uvicorn parse.
    Ip,
    /// `1.2.3.4:5678`, `[::1]:5678`: ANCM's form (spec §4.3), which ASP.NET Core parses.
    IpPort,
}

/// The front's TLS certificate chain and private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients are asked for a certificate, which goes to the app (`--tls-client-cert`).
    pub client_cert: Option<ClientCert>,
}

/// How the front takes client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// A client that sends no certificate is refused, instead of served without one.
    pub required: bool,
    /// The CAs a certificate must be issued by (a PEM bundle); without it, any certificate
    /// whose key the client proves it holds is taken.
    pub ca: Option<PathBuf>,
}

/// ANCM's schema defaults (spec §1.2).
const DEFAULT_STARTUP_TIME_LIMIT: u64 = 120;
const DEFAULT_SHUTDOWN_TIME_LIMIT: u64 = 10;
const DEFAULT_RAPID_FAILS_PER_MINUTE: u64 = 10;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_STDOUT_LOG_FILE: &str = r".\aspnetcore-stdout";
const DEFAULT_PROCESSES_PER_APPLICATION: u64 = 1;
/// As nginx's client_header_timeout is 60 s, but a loopback sidecar can be stricter.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// nginx's keepalive_timeout, which also closes its idle HTTP/2 connections.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// nginx's send_timeout.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest shutdown delay taken: ten minutes, as shutdownTimeLimit's bound.
const MAX_SHUTDOWN_DELAY_MS: u64 = 600_000;
/// http.sys's MaxRequestBytes: what IIS takes of a request line and headers by default.
const DEFAULT_MAX_REQUEST_HEAD: usize = 16 * 1024;
/// hyper's least read buffer, and a bound well past any real request head.
const MIN_REQUEST_HEAD: usize = 1024;
const MAX_REQUEST_HEAD: usize = 1024 * 1024;

/// Variables ancm always sets for the app, whatever web.config says (spec §2).
const OWN_VARIABLES: &[&str] = &[
    "ASPNETCORE_APPL_PATH",
    "ASPNETCORE_IIS_HTTPAUTH",
    "ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED",
    "ASPNETCORE_IIS_PHYSICAL_PATH",
];

/// Handler settings that only the in-process handler reads (spec §1.3).
const IN_PROCESS_SETTINGS: &[&str] = &[
    "stackSize",
    "setCurrentDirectory",
    "callStartupHook",
    "experimentalEnableShadowCopy",
    "enableShadowCopy",
    "shadowCopyDirectory",
    "cleanShadowCopyDirectory",
    "suppressRecycleOnStartupTimeout",
];

/// The settings given beside web.config, one per `<aspNetCore>` attribute (plus a few of
/// ancm's own), each overriding the file. Plain data: the command line and the helper's start
/// request both fill it in; numbers and durations stay text, so that their errors name the
/// value as it was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    pub process_path: Option<String>,
    pub arguments: Option<String>,
    /// `NAME=VALUE` pairs, in order.
    pub env: Vec<String>,
    /// `--env-file`: KEY=VALUE lines for the app's environment.
    pub env_file: Option<std::path::PathBuf>,
    pub stdout_log: Option<String>,
    /// As written: bytes, or with K, M or G (KiB, MiB, GiB).
    pub stdout_log_max_size: Option<String>,
    pub stdout_log_keep: Option<String>,
    pub startup_time_limit: Option<String>,
    pub shutdown_time_limit: Option<String>,
    pub rapid_fails_per_minute: Option<String>,
    pub request_timeout: Option<String>,
    pub max_request_body: Option<String>,
    pub app_path: Option<String>,
    pub port_env: Vec<String>,
    pub processes: Option<String>,
    pub lazy: bool,
    /// What %LAUNCHER_PATH% stands for; without it, the LAUNCHER_PATH environment variable.
    pub launcher_path: Option<String>,
    /// What %LAUNCHER_ARGS% stands for; without it, the LAUNCHER_ARGS environment variable.
    pub launcher_args: Option<String>,
    /// Forward without the --app-path base, named in X-Forwarded-Prefix instead.
    pub strip_app_path: bool,
    /// X-Forwarded-For's form as given (`ip` or `ip:port`); by the kind of run without it.
    pub forwarded_for: Option<String>,
    /// Send ANCM's shutdown message to a `--` command too.
    pub shutdown_message: bool,
}

/// What a configuration is loaded from: everything but web.config itself and ancm's
/// environment, which [`load`] reads (again, on each reload).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    /// A folder holding web.config, or a web.config file.
    pub app: PathBuf,
    pub overrides: Overrides,
    /// The command after `--` (may be empty): it replaces processPath and arguments.
    pub command: Vec<String>,
    /// The proxy's listen addresses (none when the caller forwards to the app itself).
    pub listen: Vec<SocketAddr>,
    /// The settings only `ancm run` has.
    pub run: Option<RunOnly>,
}

/// The settings of `ancm run` beyond the shared ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOnly {
    /// As written: 30, 30s, 500ms.
    pub header_read_timeout: String,
    /// As written: 75, 75s, 500ms.
    pub idle_timeout: String,
    /// As written: 60, 60s, 500ms, 0.
    pub send_timeout: String,
    /// As written: 16KiB, 65536.
    pub max_request_head: String,
    /// As written: 5s, 500ms; `None` leaves web.config's or the environment's.
    pub shutdown_delay: Option<String>,
    /// Globs relative to the app folder.
    pub watch: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// A path that must answer below 500 before a new process takes traffic; wins over
    /// web.config's initializationPage.
    pub ready_path: Option<String>,
    /// The liveness probe's path, and as written: its interval (5s, 500ms) and how many
    /// failures in a row replace the process.
    pub health_path: Option<String>,
    pub health_interval: String,
    pub health_failures: String,
    /// As written: 512MiB, 1G.
    pub max_memory: Option<String>,
    /// As written: 1MiB, 256K.
    pub logs_keep: Option<String>,
    /// As written: 24h, 90m.
    pub recycle_every: Option<String>,
    /// A user name (or uid) to run the app as.
    pub user: Option<String>,
}

/// The most `--logs-keep` may keep: memory for the app's output is bounded whatever is asked.
const MAX_LOGS_KEEP: usize = 1 << 30;

/// Reads the app's web.config (if any) and builds its configuration with the request's
/// overrides and ancm's environment.
pub fn load(request: &Request) -> Result<AppConfig, ConfigError> {
    let mut config = load_shared(
        &request.app,
        &request.overrides,
        &request.command,
        &request.listen,
    )?;
    if let Some(run) = &request.run {
        apply_run_only(&mut config, run)?;
    }
    Ok(config)
}

fn apply_run_only(config: &mut AppConfig, run: &RunOnly) -> Result<(), ConfigError> {
    for glob in &run.watch {
        globset::Glob::new(glob).map_err(|err| {
            ConfigError::invalid(
                Origin::Flag("--watch"),
                "value",
                glob,
                format!("a glob such as bin/*.dll or **/*.json ({})", err.kind()),
            )
        })?;
    }
    config.watch.clone_from(&run.watch);
    config.header_read_timeout = values::human_duration(&run.header_read_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::invalid(
                Origin::Flag("--header-read-timeout"),
                "value",
                &run.header_read_timeout,
                "a duration above zero, such as 30s or 500ms",
            )
        })?;
    config.idle_timeout = values::human_duration(&run.idle_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::invalid(
                Origin::Flag("--idle-timeout"),
                "value",
                &run.idle_timeout,
                "a duration above zero, such as 75s or 500ms",
            )
        })?;
    config.send_timeout = values::human_duration(&run.send_timeout)
        .map_err(|_| {
            ConfigError::invalid(
                Origin::Flag("--send-timeout"),
                "value",
                &run.send_timeout,
                "a duration such as 60s or 500ms (at most 360 hours), or 0 for none",
            )
        })
        .map(|d| (!d.is_zero()).then_some(d))?;
    config.max_request_head = values::human_size(&run.max_request_head)
        .ok()
        .filter(|size| (MIN_REQUEST_HEAD..=MAX_REQUEST_HEAD).contains(size))
        .ok_or_else(|| {
            ConfigError::invalid(
                Origin::Flag("--max-request-head"),
                "value",
                &run.max_request_head,
                "a size from 1KiB to 1MiB, such as 16KiB, 64KiB or 32768",
            )
        })?;
    if let Some(delay) = &run.shutdown_delay {
        config.shutdown_delay = values::human_duration(delay)
            .ok()
            .filter(|d| d.as_millis() <= u128::from(MAX_SHUTDOWN_DELAY_MS))
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--shutdown-delay"),
                    "value",
                    delay,
                    "a duration up to 10 minutes, such as 5s or 500ms",
                )
            })?;
    }
    config.tls.clone_from(&run.tls);
    if let Some(path) = &run.ready_path {
        config.ready_path = Some(probe_path(Origin::Flag("--ready-path"), "value", path)?);
    }
    if let Some(path) = &run.health_path {
        let path = probe_path(Origin::Flag("--health-path"), "value", path)?;
        let interval = values::human_duration(&run.health_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--health-interval"),
                    "value",
                    &run.health_interval,
                    "a duration above zero, such as 10s or 500ms",
                )
            })?;
        let failures = run
            .health_failures
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--health-failures"),
                    "value",
                    &run.health_failures,
                    "a number from 1 to 100",
                )
            })?;
        config.health = Some(HealthCheck {
            path,
            interval,
            failures,
        });
    }
    if let Some(size) = &run.max_memory {
        config.max_memory = Some(
            values::human_size(size)
                .ok()
                .filter(|&size| size >= 1024 * 1024)
                .and_then(|size| u64::try_from(size).ok())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        Origin::Flag("--max-memory"),
                        "value",
                        size,
                        "a size of at least 1MiB, such as 512MiB or 2G",
                    )
                })?,
        );
    }
    if let Some(size) = &run.logs_keep {
        config.logs_keep = values::human_size(size)
            .ok()
            .filter(|&size| size <= MAX_LOGS_KEEP)
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--logs-keep"),
                    "value",
                    size,
                    "a size from 1KiB to 1GiB, such as 1MiB or 256K",
                )
            })?;
    }
    if let Some(every) = &run.recycle_every {
        config.recycle_every = Some(
            values::human_duration(every)
                .ok()
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        Origin::Flag("--recycle-every"),
                        "value",
                        every,
                        "a duration of at least 1s, such as 24h or 90m",
                    )
                })?,
        );
    }
    if let Some(name) = &run.user {
        config.run_as = run_as(name)?;
    }
    Ok(())
}

/// `--user`: the user to become, or `None` when ancm already runs as that user.
#[cfg(unix)]
fn run_as(name: &str) -> Result<Option<RunAs>, ConfigError> {
    use nix::unistd::{geteuid, Uid, User};
    let bad =
        |allowed: String| ConfigError::invalid(Origin::Flag("--user"), "value", name, allowed);
    let by_id = || {
        name.parse::<u32>()
            .ok()
            .and_then(|id| User::from_uid(Uid::from_raw(id)).ok().flatten())
    };
    let user = User::from_name(name)
        .ok()
        .flatten()
        .or_else(by_id)
        .ok_or_else(|| bad("the name (or uid) of a user of this machine".to_owned()))?;
    let me = geteuid();
    if me == user.uid {
        return Ok(None);
    }
    if !me.is_root() {
        return Err(bad(format!(
            "ancm itself (uid {me}), or any user when ancm runs as root"
        )));
    }
    #[cfg(target_os = "linux")]
    let groups = std::ffi::CString::new(user.name.clone())
        .ok()
        .and_then(|login| nix::unistd::getgrouplist(&login, user.gid).ok())
        .map_or_else(
            || vec![user.gid.as_raw()],
            |groups| groups.iter().map(|g| g.as_raw()).collect(),
        );
    #[cfg(not(target_os = "linux"))]
    let groups = vec![user.gid.as_raw()];
    Ok(Some(RunAs {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
    }))
}

#[cfg(not(unix))]
fn run_as(name: &str) -> Result<Option<RunAs>, ConfigError> {
    Err(ConfigError::invalid(
        Origin::Flag("--user"),
        "value",
        name,
        "nothing here: --user is for Unix (on Windows, run ancm as the service account)",
    ))
}

/// A path probed on the app's port: absolute, and fit for a request line.
fn probe_path(origin: Origin, what: &str, path: &str) -> Result<String, ConfigError> {
    if path.starts_with('/') && path.parse::<http::uri::PathAndQuery>().is_ok() {
        Ok(path.to_owned())
    } else {
        Err(ConfigError::invalid(
            origin,
            what,
            path,
            "a path starting with /, such as /warmup or /health?full=1",
        ))
    }
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

fn load_shared(
    app: &Path,
    flags: &Overrides,
    command: &[String],
    listen: &[SocketAddr],
) -> Result<AppConfig, ConfigError> {
    let (app_dir, web_config) = locate(app, !command.is_empty())?;
    let element = web_config.as_deref().map(webconfig::read).transpose()?;
    build(
        Sources {
            app_dir,
            web_config,
            element,
            flags,
            command_after_dashes: command,
            listen,
            find_program: true,
        },
        &|name| std::env::var(name).ok(),
    )
}

/// Finds the app folder and its web.config. A missing web.config is fine when the command
/// comes from the command line.
fn locate(app: &Path, have_command: bool) -> Result<(PathBuf, Option<PathBuf>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: app.to_owned(),
        source,
    };
    let meta = std::fs::metadata(app).map_err(read_error)?;
    if meta.is_file() && !is_config_file(app) {
        return Err(ConfigError::NotWebConfig {
            path: app.to_owned(),
            hint: run_hint(app),
        });
    }
    if meta.is_file() {
        let file = dunce::canonicalize(app).map_err(read_error)?;
        let dir = file.parent().map(Path::to_owned).unwrap_or_default();
        return Ok((dir, Some(file)));
    }
    let dir = dunce::canonicalize(app).map_err(read_error)?;
    let file = dir.join("web.config");
    if file.is_file() {
        Ok((dir, Some(file)))
    } else if have_command {
        Ok((dir, None))
    } else {
        Err(ConfigError::NoWebConfig { path: dir })
    }
}

/// web.config, web.Release.config, app.config: a file ancm can read.
fn is_config_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("config"))
}

/// The command that most likely runs `file`, from its extension.
fn run_hint(file: &Path) -> String {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let runner = match ext.as_str() {
        "js" | "mjs" | "cjs" => "node",
        "py" => "python3",
        "dll" => "dotnet",
        _ => return "COMMAND ARGS...".to_owned(),
    };
    format!("{runner} {}", file.display())
}

/// Everything a configuration is built from.
struct Sources<'a> {
    app_dir: PathBuf,
    web_config: Option<PathBuf>,
    element: Option<AspNetCoreElement>,
    flags: &'a Overrides,
    command_after_dashes: &'a [String],
    listen: &'a [SocketAddr],
    /// Look for the program (in the app folder, on PATH) and make its absence an error.
    find_program: bool,
}

/// ancm's own environment, injectable so that tests need not change the process's.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The errors found so far while building a configuration.
struct Errors(Vec<ConfigError>);

impl Errors {
    /// The value, or `fallback` with the error noted, so that reading can go on.
    fn keep<T>(&mut self, result: Result<T, ConfigError>, fallback: T) -> T {
        result.unwrap_or_else(|err| {
            self.0.push(err);
            fallback
        })
    }
}

fn build(sources: Sources<'_>, env: Env<'_>) -> Result<AppConfig, ConfigError> {
    let Sources {
        app_dir,
        web_config,
        mut element,
        flags,
        command_after_dashes,
        listen,
        find_program,
    } = sources;
    // Each bad value is noted and the rest still read, so that one run reports them all.
    let mut errors = Errors(
        element
            .as_mut()
            .map(|e| std::mem::take(&mut e.errors))
            .unwrap_or_default(),
    );
    let settings = Settings {
        element: element.as_ref(),
        flags,
        env,
        budget: command::Budget::new(),
    };
    let mut warnings = element
        .as_ref()
        .map(|e| e.warnings.clone())
        .unwrap_or_default();

    let hosting_model = errors.keep(
        settings.hosting_model(&mut warnings),
        "outofprocess".to_owned(),
    );
    let command_line = settings.command(&app_dir, command_after_dashes, &mut warnings);
    let (command, process_path, arguments) = errors.keep(
        command_line,
        (
            CommandLine {
                program: PathBuf::new(),
                args: Vec::new(),
            },
            String::new(),
            String::new(),
        ),
    );

    let startup = errors.keep(
        settings.uint(
            "startupTimeLimit",
            ("--startup-time-limit", &flags.startup_time_limit),
            (0, 3600),
            DEFAULT_STARTUP_TIME_LIMIT,
        ),
        DEFAULT_STARTUP_TIME_LIMIT,
    );
    let shutdown = errors.keep(
        settings.uint(
            "shutdownTimeLimit",
            ("--shutdown-time-limit", &flags.shutdown_time_limit),
            (0, 600),
            DEFAULT_SHUTDOWN_TIME_LIMIT,
        ),
        DEFAULT_SHUTDOWN_TIME_LIMIT,
    );
    let rapid_fails = errors.keep(
        settings.uint(
            "rapidFailsPerMinute",
            ("--rapid-fails-per-minute", &flags.rapid_fails_per_minute),
            (0, 100),
            DEFAULT_RAPID_FAILS_PER_MINUTE,
        ),
        DEFAULT_RAPID_FAILS_PER_MINUTE,
    );
    let processes = errors.keep(
        settings.uint(
            "processesPerApplication",
            ("--processes", &flags.processes),
            (1, 100),
            DEFAULT_PROCESSES_PER_APPLICATION,
        ),
        DEFAULT_PROCESSES_PER_APPLICATION,
    );
    let request_timeout = errors.keep(settings.request_timeout(), Some(DEFAULT_REQUEST_TIMEOUT));
    let forward_windows_auth_token =
        errors.keep(settings.boolean("forwardWindowsAuthToken", true), true);
    if forward_windows_auth_token && element.is_some() {
        warnings.push(windows_auth_warning(
            settings.attribute("forwardWindowsAuthToken"),
        ));
    }
    let disable_startup_error_page =
        errors.keep(settings.boolean("disableStartUpErrorPage", false), false);

    let handler_settings: Vec<(String, String)> = element
        .as_ref()
        .map(|e| {
            e.handler_settings
                .iter()
                .map(|(n, v, _)| (n.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let handler = |name: &str| {
        handler_settings
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    for (name, _) in &handler_settings {
        if IN_PROCESS_SETTINGS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
        {
            warnings.push(format!(
                "handlerSetting {name} applies only to in-process hosting; ignored"
            ));
        } else if name.eq_ignore_ascii_case("handlerVersion") {
            warnings
                .push("handlerSetting handlerVersion picks an IIS handler DLL; ignored".to_owned());
        } else if ![
            "debugFile",
            "debugLevel",
            "disallowRotationOnConfigChange",
            "enableOutOfProcessConsoleRedirection",
            "forwardResponseConnectionHeader",
            "shutdownDelay",
        ]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
        {
            warnings.push(format!("unknown handlerSetting {name}; ignored"));
        }
    }
    // Exactly "false" turns capture off, as in ANCM.
    let capture_output = !handler("enableOutOfProcessConsoleRedirection")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let forward_response_connection_header = handler("forwardResponseConnectionHeader")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let disallow_rotation_on_config_change = handler("disallowRotationOnConfigChange")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    // Milliseconds, from handlerSettings or else ANCM_shutdownDelay.
    let shutdown_delay = match handler("shutdownDelay") {
        Some(value) => Some(("handlerSetting shutdownDelay", value.to_owned())),
        None => env("ANCM_shutdownDelay").map(|value| ("ANCM_shutdownDelay", value)),
    };
    let shutdown_delay = match shutdown_delay {
        None => Duration::ZERO,
        Some((origin, value)) => match value.trim().parse::<u64>() {
            Ok(ms) if ms <= MAX_SHUTDOWN_DELAY_MS => Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::invalid(
                    Origin::Flag(origin),
                    "value",
                    &value,
                    "a whole number of milliseconds from 0 to 600000",
                ))
            }
        },
    };
    let debug_level = handler("debugLevel")
        .map(str::to_owned)
        .or_else(|| env("ASPNETCORE_MODULE_DEBUG").map(|v| module_debug_level(&v)));
    let debug_file = element
        .as_ref()
        .and_then(|e| {
            e.handler_settings
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case("debugFile"))
                .map(|(_, v, origin)| (origin.clone(), v.clone()))
        })
        .or_else(|| {
            env("ASPNETCORE_MODULE_DEBUG_FILE")
                .map(|v| (Origin::Flag("ASPNETCORE_MODULE_DEBUG_FILE"), v))
        })
        .map(|(origin, file)| {
            errors.keep(
                settings.expand(&origin, "handlerSetting debugFile", &file, &[]),
                String::new(),
            )
        });
    let debug_log = DebugLog::parse(
        debug_level.as_deref(),
        debug_file.as_deref(),
        &app_dir,
        &mut warnings,
    );

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
        log_prefix(&app_dir, &expanded)
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

    let environment = errors.keep(settings.environment(), Vec::new());
    for (name, _) in &environment {
        if let Some(set_by) = OWN_VARIABLES.iter().find(|v| v.eq_ignore_ascii_case(name)) {
            warnings.push(format!(
                "environment variable {name}: ancm sets {set_by} for the app itself (as ANCM does); this value is replaced"
            ));
        }
    }
    let appl_path = errors.keep(app_path(flags.app_path.as_deref()), "/".to_owned());
    let forwarded_for = match flags.forwarded_for.as_deref() {
        None if element.is_some() => ForwardedFor::IpPort,
        None => ForwardedFor::Ip,
        Some("ip") => ForwardedFor::Ip,
        Some("ip:port") => ForwardedFor::IpPort,
        Some(other) => {
            errors.0.push(ConfigError::invalid(
                Origin::Flag("--forwarded-for"),
                "value",
                other,
                "ip or ip:port",
            ));
            ForwardedFor::Ip
        }
    };
    for name in &flags.port_env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            errors.0.push(ConfigError::invalid(
                Origin::Flag("--port-env"),
                "value",
                name,
                "an environment variable name (no = sign)",
            ));
        }
    }
    errors.keep(check_fixed_port(&environment, element.as_ref()), ());
    let request_limits = errors.keep(
        request_limits::resolve(
            element
                .as_ref()
                .map_or(&[], |e| e.request_limits.as_slice()),
            flags.max_request_body.as_deref(),
        ),
        RequestLimits::default(),
    );
    let ready_path = element
        .as_ref()
        .and_then(|e| e.initialization_page.as_ref())
        .and_then(|page| {
            errors.keep(
                probe_path(
                    page.origin.clone(),
                    "<applicationInitialization> attribute initializationPage",
                    &page.value,
                )
                .map(Some),
                None,
            )
        });
    // Last, and only when the command itself is sound: a missing program is worth knowing
    // about, but a bad attribute is the first thing to fix.
    if find_program && errors.0.is_empty() {
        let search_path = environment
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case("PATH"))
            .map(|(_, value)| value.clone())
            .or_else(|| env("PATH"));
        errors.keep(
            settings.find_program(
                &app_dir,
                &command,
                command_after_dashes,
                search_path.as_deref(),
            ),
            (),
        );
    }
    if let Some(err) = ConfigError::from_all(errors.0) {
        return Err(err);
    }

    Ok(AppConfig {
        app_dir,
        web_config,
        command,
        process_path,
        arguments,
        environment,
        stdout_log_enabled,
        stdout_log_file,
        stdout_log,
        stdout_log_rotation,
        capture_output,
        startup_time_limit: Duration::from_secs(startup),
        shutdown_time_limit: Duration::from_secs(shutdown),
        rapid_fails_per_minute: u32::try_from(rapid_fails).unwrap_or(u32::MAX),
        request_timeout,
        hosting_model,
        processes_per_application: u32::try_from(processes).unwrap_or(1),
        lazy: flags.lazy,
        forward_windows_auth_token,
        disable_startup_error_page,
        forward_response_connection_header,
        disallow_rotation_on_config_change,
        request_limits,
        handler_settings,
        debug_log,
        appl_path,
        strip_app_path: flags.strip_app_path,
        forwarded_for,
        shutdown_message: flags.shutdown_message || element.is_some(),
        port_env: flags.port_env.clone(),
        listen: listen.to_vec(),
        tls: None,
        watch: Vec::new(),
        header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        send_timeout: Some(DEFAULT_SEND_TIMEOUT),
        max_request_head: DEFAULT_MAX_REQUEST_HEAD,
        shutdown_delay,
        ready_path,
        health: None,
        max_memory: None,
        logs_keep: crate::logs::RECENT_BYTES,
        recycle_every: None,
        run_as: None,
        warnings,
    })
}

/// Windows authentication is IIS's: ancm has no Windows identity to pass on, so an app that
/// relies on it would silently see anonymous users.
fn windows_auth_warning(attribute: Option<(Origin, String)>) -> String {
    let (origin, default) = match &attribute {
        Some((origin, _)) => (format!("{origin}: "), ""),
        None => (String::new(), " (the default)"),
    };
    format!(
        "{origin}forwardWindowsAuthToken is true{default}, but ancm cannot forward a Windows \
         identity: the app sees every request as anonymous (ASPNETCORE_IIS_HTTPAUTH=anonymous;). \
         Set forwardWindowsAuthToken=\"false\" on <aspNetCore> to silence this warning"
    )
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

/// ASPNETCORE_MODULE_DEBUG holds a level name, or ANCM's old numbers 1 (errors) to 4 (trace).
fn module_debug_level(value: &str) -> String {
    match value.trim() {
        "1" => "ERROR".to_owned(),
        "2" => "WARNING".to_owned(),
        "3" => "INFO".to_owned(),
        "4" => "TRACE".to_owned(),
        other => other.to_owned(),
    }
}

fn app_path(flag: Option<&str>) -> Result<String, ConfigError> {
    let Some(path) = flag else {
        return Ok("/".to_owned());
    };
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(ConfigError::invalid(
            Origin::Flag("--app-path"),
            "value",
            path,
            "a URL path that starts with / (such as /shop), without ? or #",
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

/// A user-set ASPNETCORE_PORT fixes the app's port; ANCM allows 1025-48000 (spec §2).
fn check_fixed_port(
    environment: &[(String, String)],
    element: Option<&AspNetCoreElement>,
) -> Result<(), ConfigError> {
    let Some((_, value)) = environment
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("ASPNETCORE_PORT") && !v.trim().is_empty())
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

/// Looks a setting up in the flags first, then in `<aspNetCore>`.
struct Settings<'a> {
    element: Option<&'a AspNetCoreElement>,
    flags: &'a Overrides,
    env: Env<'a>,
    /// What `%VAR%` expansion may still produce for this configuration.
    budget: command::Budget,
}

impl Settings<'_> {
    /// `%VAR%` expansion of `attribute`'s `value` (see [`command::Budget::expand`]), refused
    /// with an error naming it and the limit before it grows past one.
    fn expand(
        &self,
        origin: &Origin,
        attribute: &str,
        value: &str,
        extra: &[(&str, Option<&str>)],
    ) -> Result<String, ConfigError> {
        self.budget.expand(value, extra).map_err(|exceeded| {
            let (limit, scope) = match exceeded {
                command::Exceeded::Value => {
                    (command::VALUE_LIMIT, "the most they may add to one value")
                }
                command::Exceeded::Total => (
                    command::TOTAL_LIMIT,
                    "the most they may add to a configuration in all",
                ),
            };
            ConfigError::ExpansionTooLong {
                origin: origin.clone(),
                attribute: attribute.to_owned(),
                limit,
                scope,
            }
        })
    }

    fn attribute(&self, name: &str) -> Option<(Origin, String)> {
        let attribute = self.element?.attribute(name)?;
        Some((attribute.origin.clone(), attribute.value.clone()))
    }

    /// The flag's value when given, else the attribute's.
    fn value(
        &self,
        name: &str,
        (flag, flag_value): (&'static str, &Option<String>),
    ) -> Option<(Origin, String)> {
        match flag_value {
            Some(value) => Some((Origin::Flag(flag), value.clone())),
            None => self.attribute(name),
        }
    }

    fn uint(
        &self,
        name: &str,
        flag: (&'static str, &Option<String>),
        (min, max): (u64, u64),
        default: u64,
    ) -> Result<u64, ConfigError> {
        let Some((origin, value)) = self.value(name, flag) else {
            return Ok(default);
        };
        let unit = if name.ends_with("TimeLimit") {
            " of seconds"
        } else {
            ""
        };
        values::uint(&value, min, max, unit).map_err(|allowed| {
            ConfigError::invalid(origin.clone(), what(&origin, name), &value, allowed)
        })
    }

    fn boolean(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let Some((origin, value)) = self.attribute(name) else {
            return Ok(default);
        };
        values::boolean(&value).map_err(|allowed| {
            ConfigError::invalid(origin.clone(), what(&origin, name), &value, allowed)
        })
    }

    fn hosting_model(&self, warnings: &mut Vec<String>) -> Result<String, ConfigError> {
        let Some((origin, value)) = self.attribute("hostingModel") else {
            return Ok("outofprocess".to_owned());
        };
        let model = value.trim();
        if model.eq_ignore_ascii_case("inprocess") {
            warnings.push(format!(
                "{origin}: hostingModel=\"{model}\" asks IIS to load the app into its own \
                 process; ancm runs it out-of-process instead, as its own process behind the proxy"
            ));
            Ok("inprocess".to_owned())
        } else if model.is_empty() || model.eq_ignore_ascii_case("outofprocess") {
            Ok("outofprocess".to_owned())
        } else {
            Err(ConfigError::invalid(
                origin,
                "attribute hostingModel",
                model,
                "inprocess or outofprocess (any case), or empty",
            ))
        }
    }

    fn request_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        let timeout = match (
            &self.flags.request_timeout,
            self.attribute("requestTimeout"),
        ) {
            (Some(flag), _) => values::human_duration(flag).map_err(|allowed| {
                ConfigError::invalid(Origin::Flag("--request-timeout"), "value", flag, allowed)
            })?,
            (None, Some((origin, value))) => values::timespan(&value).map_err(|allowed| {
                ConfigError::invalid(origin, "attribute requestTimeout", &value, allowed)
            })?,
            (None, None) => DEFAULT_REQUEST_TIMEOUT,
        };
        // As with WinHTTP, 0 means no limit.
        Ok((!timeout.is_zero()).then_some(timeout))
    }

    /// `<environmentVariables>` (expanded; ancm's own values win where
    /// ANCM_PREFER_ENVIRONMENT_VARIABLES asks), then `--env-file`'s, then `--env`.
    fn environment(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let prefer_own = (self.env)("ANCM_PREFER_ENVIRONMENT_VARIABLES")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1");
        let mut environment: Vec<(String, String)> = self
            .element
            .map(|e| {
                e.environment
                    .iter()
                    .map(|(name, value, origin)| {
                        let value = match prefer_own.then(|| (self.env)(name)).flatten() {
                            Some(own) => own,
                            None => self.expand(
                                origin,
                                &format!("<environmentVariable name=\"{name}\"> value"),
                                value,
                                &[],
                            )?,
                        };
                        Ok((name.clone(), value))
                    })
                    .collect::<Result<_, ConfigError>>()
            })
            .transpose()?
            .unwrap_or_default();
        if let Some(path) = &self.flags.env_file {
            for (name, value) in env_file::read(path)? {
                environment.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                environment.push((name, value));
            }
        }
        for pair in &self.flags.env {
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
        Ok(environment)
    }

    /// The program and argv, plus processPath and arguments as they end up after overrides
    /// and expansion.
    fn command(
        &self,
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
        let launcher_args = (self.env)("ANCM_LAUNCHER_ARGS");
        let Some((origin, process_path)) = self.process_path() else {
            return Err(match self.element {
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
        let (args_origin, arguments) = match (&self.flags.arguments, launcher_args) {
            (Some(flag), _) => (Some(Origin::Flag("--arguments")), flag.clone()),
            (None, Some(launcher)) => (Some(Origin::Flag("ANCM_LAUNCHER_ARGS")), launcher),
            (None, None) => match self.attribute("arguments") {
                Some((origin, value)) => (Some(origin), value),
                None => (None, String::new()),
            },
        };

        let process_path = self.expand_launcher(&origin, "processPath", process_path.trim())?;
        let arguments = match &args_origin {
            Some(origin) => self.expand_launcher(origin, "arguments", &arguments)?,
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
    fn process_path(&self) -> Option<(Origin, String)> {
        let launcher_path = (self.env)("ANCM_LAUNCHER_PATH").filter(|v| !v.is_empty());
        let process_path = match (&self.flags.process_path, launcher_path) {
            (Some(flag), _) => Some((Origin::Flag("--process-path"), flag.clone())),
            (None, Some(launcher)) => Some((Origin::Flag("ANCM_LAUNCHER_PATH"), launcher)),
            (None, None) => self.attribute("processPath"),
        };
        process_path.filter(|(_, v)| !v.trim().is_empty())
    }

    /// An error saying where the program was looked for, when it is not there: found now,
    /// not as a start that fails again and again.
    fn find_program(
        &self,
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
                let origin = self
                    .process_path()
                    .map_or(Origin::Flag("--process-path"), |(origin, _)| origin);
                (origin, "processPath", self.expanded_process_path())
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
    fn expanded_process_path(&self) -> String {
        self.process_path()
            .and_then(|(origin, value)| {
                self.expand_launcher(&origin, "processPath", value.trim())
                    .ok()
            })
            .unwrap_or_default()
    }

    /// `%VAR%` expansion, with %LAUNCHER_PATH% and %LAUNCHER_ARGS% from the flags, else from
    /// ancm's environment. Visual Studio fills those in at dev time; unfilled, nothing can run.
    fn expand_launcher(
        &self,
        origin: &Origin,
        attribute: &str,
        value: &str,
    ) -> Result<String, ConfigError> {
        let flags = self.flags;
        let launcher_path = flags
            .launcher_path
            .clone()
            .or_else(|| (self.env)("LAUNCHER_PATH").filter(|v| !v.is_empty()));
        // With a launcher path but no arguments, the arguments are empty.
        let launcher_args = flags
            .launcher_args
            .clone()
            .or_else(|| (self.env)("LAUNCHER_ARGS"))
            .or_else(|| launcher_path.as_ref().map(|_| String::new()));
        let expanded = self.expand(
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
}

/// "attribute startupTimeLimit" for web.config, "value" for a flag (whose name the origin
/// already gives).
fn what(origin: &Origin, name: &str) -> String {
    match origin {
        Origin::Flag(_) => "value".to_owned(),
        Origin::File { .. } => format!("attribute {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_for(web_config: &str, flags: Overrides) -> Result<AppConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("web.config");
        std::fs::write(&path, web_config).expect("write");
        config_with_env(&path, flags, &|_| None)
    }

    fn config_with_env(
        path: &Path,
        flags: Overrides,
        env: Env<'_>,
    ) -> Result<AppConfig, ConfigError> {
        let element = webconfig::read(path)?;
        build(
            Sources {
                app_dir: path.parent().expect("folder").to_owned(),
                web_config: Some(path.to_owned()),
                element: Some(element),
                flags: &flags,
                command_after_dashes: &[],
                listen: &[],
                find_program: false,
            },
            env,
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

    /// A command run without web.config, with `flags`.
    fn command_run(flags: Overrides) -> Result<AppConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        build(
            Sources {
                app_dir: dir.path().to_owned(),
                web_config: None,
                element: None,
                flags: &flags,
                command_after_dashes: &["node".to_owned(), "app.js".to_owned()],
                listen: &[],
                find_program: false,
            },
            &|_| None,
        )
    }

    #[test]
    fn command_runs_get_a_bare_ip_and_no_shutdown_message_unless_asked() {
        const WEB_CONFIG: &str = r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#;
        let cfg = config_for(WEB_CONFIG, Overrides::default()).expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::IpPort);
        assert!(cfg.shutdown_message);
        let cfg = config_for(
            WEB_CONFIG,
            Overrides {
                forwarded_for: Some("ip".into()),
                ..Overrides::default()
            },
        )
        .expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::Ip);

        let cfg = command_run(Overrides::default()).expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::Ip);
        assert!(!cfg.shutdown_message);
        assert!(!cfg.strip_app_path);
        let cfg = command_run(Overrides {
            forwarded_for: Some("ip:port".into()),
            shutdown_message: true,
            app_path: Some("/shop".into()),
            strip_app_path: true,
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::IpPort);
        assert!(cfg.shutdown_message);
        assert!(cfg.strip_app_path);

        let err = command_run(Overrides {
            forwarded_for: Some("port".into()),
            ..Overrides::default()
        })
        .expect_err("bad form");
        assert_eq!(
            err.to_string(),
            "--forwarded-for: value \"port\" is not valid: ip or ip:port"
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
    fn the_warm_up_page_comes_from_application_initialization() {
        let config = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x"/>
<applicationInitialization><add initializationPage="/warmup?full=1"/><add initializationPage="/second"/></applicationInitialization>
</system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect("valid");
        assert_eq!(config.ready_path.as_deref(), Some("/warmup?full=1"));

        let err = config_for(
            "<configuration><system.webServer><aspNetCore processPath=\"x\"/>\n<applicationInitialization><add initializationPage=\"warmup\"/></applicationInitialization>\n</system.webServer></configuration>",
            Overrides::default(),
        )
        .expect_err("not a path");
        let text = err.to_string();
        assert!(
            text.contains("web.config:2:")
                && text.contains("initializationPage \"warmup\"")
                && text.contains("a path starting with /"),
            "{text}"
        );
    }

    #[test]
    fn probe_and_limit_flags_are_checked() {
        let base = || RunOnly {
            header_read_timeout: "30s".into(),
            idle_timeout: "75s".into(),
            send_timeout: "60s".into(),
            max_request_head: "16KiB".into(),
            shutdown_delay: None,
            watch: Vec::new(),
            tls: None,
            ready_path: None,
            health_path: None,
            health_interval: "10s".into(),
            health_failures: "3".into(),
            max_memory: None,
            logs_keep: None,
            recycle_every: None,
            user: None,
        };
        let apply = |run: RunOnly| {
            let mut config = config_for(
                r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#,
                Overrides::default(),
            )
            .expect("valid");
            apply_run_only(&mut config, &run).map(|()| config)
        };
        let config = apply(RunOnly {
            ready_path: Some("/ready".into()),
            health_path: Some("/health".into()),
            health_interval: "500ms".into(),
            max_memory: Some("512MiB".into()),
            recycle_every: Some("24h".into()),
            ..base()
        })
        .expect("valid");
        assert_eq!(config.ready_path.as_deref(), Some("/ready"));
        assert_eq!(
            config.health,
            Some(HealthCheck {
                path: "/health".into(),
                interval: Duration::from_millis(500),
                failures: 3
            })
        );
        assert_eq!(config.max_memory, Some(512 * 1024 * 1024));
        assert_eq!(config.recycle_every, Some(Duration::from_secs(86_400)));
        assert_eq!(config.send_timeout, Some(Duration::from_secs(60)));
        let config = apply(RunOnly {
            send_timeout: "0".into(),
            ..base()
        })
        .expect("valid");
        assert_eq!(config.send_timeout, None, "0 turns the send timeout off");

        for (run, message) in [
            (
                RunOnly {
                    ready_path: Some("ready".into()),
                    ..base()
                },
                "--ready-path: value \"ready\" is not valid: a path starting with /",
            ),
            (
                RunOnly {
                    health_path: Some("/h".into()),
                    health_interval: "0".into(),
                    ..base()
                },
                "--health-interval: value \"0\" is not valid: a duration above zero",
            ),
            (
                RunOnly {
                    health_path: Some("/h".into()),
                    health_failures: "0".into(),
                    ..base()
                },
                "--health-failures: value \"0\" is not valid: a number from 1 to 100",
            ),
            (
                RunOnly {
                    max_memory: Some("12".into()),
                    ..base()
                },
                "--max-memory: value \"12\" is not valid: a size of at least 1MiB",
            ),
            (
                RunOnly {
                    user: Some("no-such-user-of-ancm".into()),
                    ..base()
                },
                "--user: value \"no-such-user-of-ancm\" is not valid: the name (or uid) of a user",
            ),
            (
                RunOnly {
                    send_timeout: "soon".into(),
                    ..base()
                },
                "--send-timeout: value \"soon\" is not valid: a duration such as 60s or 500ms (at most 360 hours), or 0 for none",
            ),
            (
                RunOnly {
                    recycle_every: Some("10ms".into()),
                    ..base()
                },
                "--recycle-every: value \"10ms\" is not valid: a duration of at least 1s",
            ),
        ] {
            let text = apply(run).expect_err(message).to_string();
            assert!(text.starts_with(message), "{text}");
        }
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

    #[test]
    fn warnings_for_what_cannot_apply_here() {
        let cfg = config_for(
            r#"<configuration>
<system.applicationHost />
<system.webServer><aspNetCore processPath="C:\Program Files\dotnet\dotnet.exe" stdoutLogEnabled="true" stdoutLogFile="logs\">
<environmentVariables><environmentVariable name="ASPNETCORE_IIS_HTTPAUTH" value="windows;" /></environmentVariables>
</aspNetCore></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect("valid");
        let warned = |needle: &str| cfg.warnings.iter().any(|w| w.contains(needle));
        assert!(
            warned("server-level IIS configuration"),
            "{:?}",
            cfg.warnings
        );
        assert!(
            warned("ancm sets ASPNETCORE_IIS_HTTPAUTH"),
            "{:?}",
            cfg.warnings
        );
        if cfg!(unix) {
            assert_eq!(cfg.command.program, PathBuf::from("dotnet"));
            assert!(warned("is a Windows path"), "{:?}", cfg.warnings);
            assert!(
                cfg.stdout_log_file.to_string_lossy().ends_with("/logs/"),
                "{:?}",
                cfg.stdout_log_file
            );
        }
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

    #[test]
    fn expansion_is_bounded_per_value_and_in_all() {
        let path = std::env::var("PATH").expect("PATH");
        let within = "%PATH%".repeat(command::VALUE_LIMIT / path.len());
        let web_config = |values: &[String]| {
            let vars: String = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("<environmentVariable name=\"E{i}\" value=\"{v}\"/>\n"))
                .collect();
            format!(
                "<configuration><system.webServer><aspNetCore processPath=\"app\">\n<environmentVariables>\n{vars}</environmentVariables></aspNetCore></system.webServer></configuration>"
            )
        };
        let one_too_long = [format!("{within}%PATH%")];
        let err =
            config_for(&web_config(&one_too_long), Overrides::default()).expect_err("too long");
        assert!(
            err.to_string().contains(
                r#"web.config:3:39: <environmentVariable name="E0"> value: its %VARIABLES% would add more than 128 KiB"#
            ),
            "{err}"
        );

        let many = vec![within; command::TOTAL_LIMIT / command::VALUE_LIMIT + 8];
        let err = config_for(&web_config(&many), Overrides::default()).expect_err("too much");
        let message = err.to_string();
        assert!(
            message.contains("would add more than 4096 KiB")
                && message.contains("to a configuration in all"),
            "{message}"
        );
    }
}
