//! What callers fill in to load a configuration, as plain data: the settings given beside
//! web.config ([`Overrides`]), where the app is and what runs it ([`Request`]), and what only
//! `ancm run` has ([`RunOnly`]). Nothing is checked here; numbers and durations stay text.
//! Imports nothing of the crate: the command line and the helper's protocol both build these.

use std::net::SocketAddr;
use std::path::PathBuf;

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
/// environment, which [`load`](super::load) reads (again, on each reload).
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
