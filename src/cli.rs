//! The command line, as clap types. Nothing outside this module and `lib.rs` sees them: each
//! command's arguments become a plain [`config::Request`], which `config` turns into a
//! validated `AppConfig` before anything touches the OS.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::{admin, config};

#[derive(Debug, Parser)]
#[command(
    name = "ancm",
    version,
    about = "Run an ASP.NET Core (or any HTTP) app the way IIS's ASP.NET Core Module does: \
             start it on a private loopback port, proxy to it, restart it, capture its output.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the app, proxy requests to it and keep it running until Ctrl+C.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),

    /// Validate the app's web.config and flags, and print the effective configuration.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),

    /// Start the app behind the proxy, request some paths, stop: for CI.
    #[command(after_help = SMOKE_EXAMPLES)]
    Smoke(SmokeArgs),

    /// List the ancm instances running on this machine.
    #[command(after_help = LS_EXAMPLES)]
    Ls,

    /// Show one running ancm instance in detail: its app, listeners and processes.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        /// The instance: its pid, one of its app's pids, or its app folder (default: the only
        /// one running).
        #[arg(value_name = "APP|PID")]
        target: Option<String>,

        /// Print the instance's /status JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Print a running instance's last lines of app output, and follow it with -f.
    #[command(after_help = LOGS_EXAMPLES)]
    Logs {
        /// The instance: its pid, one of its app's pids, or its app folder (default: the only
        /// one running).
        #[arg(value_name = "APP|PID")]
        target: Option<String>,

        /// Keep printing new lines as the app writes them, across restarts, until the
        /// instance stops (or Ctrl+C).
        #[arg(short, long)]
        follow: bool,

        /// How many of the last lines to print first (ancm keeps the last 1000).
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
    },

    /// Serve a native web-server module over stdin/stdout (docs/helper-protocol.md).
    #[command(after_help = HELPER_EXAMPLES)]
    Helper,

    /// Print the shell completion script for SHELL.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const RUN_EXAMPLES: &str = "\
Examples:
  ancm run ./publish                       the app described by ./publish/web.config
  ancm run --listen 127.0.0.1:0 .          any free port; the ready line says which
  ancm run --port-env PORT -- node app.js  a non-.NET app, told its port in $PORT
  ancm run --processes 4 --watch 'bin/*.dll' .   four processes, recycled on a new build
  ancm run --tls-cert cert.pem --tls-key key.pem --listen 0.0.0.0:443 .
  ancm run --tls-cert cert.pem --tls-key key.pem --tls-client-cert require --tls-client-ca ca.pem .";

const CHECK_EXAMPLES: &str = "\
Examples:
  ancm check ./publish                     is this web.config valid, and what will run?
  ancm check --json . | jq .command        the resolved argv, for scripts
  ancm check --launcher-path bin/Debug/net8.0/App.exe .   a dev-time web.config

Exit status: 0 when valid (warnings allowed), 2 when not.";

const LS_EXAMPLES: &str = "\
Each `ancm run` registers itself in $XDG_RUNTIME_DIR/ancm (else a folder of this user's in the
temp folder) with a control socket that only this user can open.

Examples:
  ancm ls
  ancm status 4242                 the instance with pid 4242 (or whose app has that pid)";

const STATUS_EXAMPLES: &str = "\
Examples:
  ancm status                      the only instance running
  ancm status ./publish            the instance serving that app folder
  ancm status 4242 --json | jq '.processes[].pid'";

const LOGS_EXAMPLES: &str = "\
Examples:
  ancm logs                        the last 10 lines of the only instance running
  ancm logs ./publish -n 100       the last 100 lines of the app in ./publish
  ancm logs 4242 -f                follow, across restarts, until that ancm stops";

const HELPER_EXAMPLES: &str = "\
The helper speaks newline-delimited JSON: requests on stdin, events on stdout, logs on stderr.
See docs/helper-protocol.md.

Examples:
  ancm helper                      then type: {\"op\":\"start\",\"appPath\":\"./publish\"}
  printf '%s\\n' '{\"op\":\"start\",\"appPath\":\".\"}' '{\"op\":\"stop\"}' | ancm helper";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  ancm completions bash > ~/.local/share/bash-completion/completions/ancm
  ancm completions zsh > ~/.zfunc/_ancm
  ancm completions fish > ~/.config/fish/completions/ancm.fish
  ancm completions powershell >> $PROFILE

The same scripts are in the completions/ folder of the source.";

const SMOKE_EXAMPLES: &str = "\
Examples:
  ancm smoke ./publish                            GET / must answer 200
  ancm smoke . --path /health --path /api/ping    several checks
  ancm smoke . --path /admin --expect 401 --timeout 30

Exit status: 0 when every check passes, 1 when one fails or the app does not start,
2 for a usage or configuration error. Nothing is left running either way.";

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// A folder holding web.config, or a web.config file.
    #[arg(value_name = "APP", default_value = ".")]
    pub app: PathBuf,

    /// A path to GET through the proxy (repeatable; default /).
    #[arg(long = "path", value_name = "P", env = "ANCM_SMOKE_PATH")]
    pub paths: Vec<String>,

    /// The status every path must answer with.
    #[arg(long, value_name = "STATUS", default_value_t = 200, env = "ANCM_SMOKE_EXPECT",
          value_parser = clap::value_parser!(u16).range(100..=599))]
    pub expect: u16,

    /// Fail if the app is not up and every check done within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, env = "ANCM_SMOKE_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// The command to run instead of web.config's processPath and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A folder holding web.config, or a web.config file.
    #[arg(value_name = "APP", default_value = ".")]
    pub app: PathBuf,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// The command to run instead of web.config's processPath and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// A folder holding web.config, or a web.config file.
    #[arg(value_name = "APP", default_value = ".")]
    pub app: PathBuf,

    /// Address the proxy listens on (repeatable): IP:PORT, or PORT, :PORT or localhost:PORT
    /// for 127.0.0.1:PORT. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = listen_address, env = "ANCM_LISTEN")]
    pub listen: Vec<SocketAddr>,

    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key", env = "ANCM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert", env = "ANCM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Ask HTTPS clients for a certificate and pass it to the app in MS-ASPNETCORE-CLIENTCERT,
    /// as IIS does: `optional` also serves clients without one, `require` refuses them.
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        requires = "tls_cert",
        env = "ANCM_TLS_CLIENT_CERT"
    )]
    pub tls_client_cert: Option<TlsClientCert>,

    /// Accept only client certificates issued by a CA in this PEM bundle. Without it, any
    /// certificate is accepted whose key the client proves it holds.
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_client_cert",
        env = "ANCM_TLS_CLIENT_CA"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Close a client connection that takes longer than this to send a request's headers
    /// (or its TLS handshake): 30, 30s, 500ms.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        env = "ANCM_HEADER_READ_TIMEOUT"
    )]
    pub header_read_timeout: String,

    /// Close a client connection (HTTP/1.1 keep-alive or HTTP/2) that has had no request in
    /// progress for this long; HTTP/2 clients are told with GOAWAY: 75, 75s, 500ms.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "75s",
        env = "ANCM_IDLE_TIMEOUT"
    )]
    pub idle_timeout: String,

    /// Close a client connection that takes nothing of a response for this long, as nginx's
    /// send_timeout, and abort the app's request; an HTTP/2 stream the client does not read is
    /// reset. 0 turns it off: 60, 60s, 500ms, 0.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        env = "ANCM_SEND_TIMEOUT"
    )]
    pub send_timeout: String,

    /// The largest HTTP/1.1 request head (request line and headers) taken; larger ones get
    /// 431. The default is http.sys's (IIS's MaxRequestBytes). It also bounds the response
    /// ancm queues for a client that does not read, so raising it costs memory per slow
    /// client: 16KiB, 64KiB, 32768.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "16KiB",
        env = "ANCM_MAX_REQUEST_HEAD"
    )]
    pub max_request_head: String,

    /// On a stop, keep serving this long with /readyz answering 503, so that load balancers
    /// and Kubernetes take this instance out before it stops accepting: 5s, 500ms. Overrides
    /// handlerSetting shutdownDelay and ANCM_shutdownDelay (milliseconds, as in ANCM).
    #[arg(long, value_name = "DURATION", env = "ANCM_SHUTDOWN_DELAY")]
    pub shutdown_delay: Option<String>,
    /// How ancm writes its own lines and the app's to the console: `text`, or `json` (one
    /// object per line: time, level, message, fields; the app's lines with pid, slot and
    /// stream), for log shippers.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text, env = "ANCM_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Write one line per request in the W3C extended log format IIS writes (plus the app's
    /// pid) to PATH (appended), or to stdout with `-`. Off by default.
    #[arg(long, value_name = "PATH|-", env = "ANCM_ACCESS_LOG")]
    pub access_log: Option<PathBuf>,

    /// Serve /healthz, /readyz, /status and /metrics (Prometheus) on ADDR, apart from the
    /// front: IP:PORT, PORT or localhost:PORT as for --listen, or a Unix socket path (with a
    /// `/`). Off by default.
    #[arg(long, value_name = "ADDR", value_parser = admin_address, env = "ANCM_ADMIN")]
    pub admin: Option<admin::Address>,

    /// Ask every admin request but /healthz and /readyz for `Authorization: Bearer TOKEN`
    /// (401 without it). Without a token, --admin on an address other than loopback is
    /// warned about at start.
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "admin",
        env = "ANCM_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Make the --admin socket path group-accessible (0660) to this group (a name or gid)
    /// rather than owner-only (0600).
    #[arg(
        long,
        value_name = "GROUP",
        requires = "admin",
        env = "ANCM_ADMIN_GROUP"
    )]
    pub admin_group: Option<String>,

    /// Recycle the app without downtime when a file matching GLOB (relative to the app
    /// folder) changes, as ANCM's recycleOnFileChange would (repeatable). web.config is
    /// always watched.
    #[arg(long = "watch", value_name = "GLOB", env = "ANCM_WATCH")]
    pub watch: Vec<String>,

    /// A new process takes traffic only once a GET of PATH (sent as the proxy sends
    /// requests, with the pairing token) answers below 500, polled within startupTimeLimit.
    /// Wins over web.config's <applicationInitialization> initializationPage.
    #[arg(long, value_name = "PATH", env = "ANCM_READY_PATH")]
    pub ready_path: Option<String>,

    /// Probe each ready process with a GET of PATH every --health-interval; after
    /// --health-failures failures in a row (no answer within the interval, or 500 and
    /// above) it is replaced without downtime. Off by default.
    #[arg(long, value_name = "PATH", env = "ANCM_HEALTH_PATH")]
    pub health_path: Option<String>,

    /// How often --health-path is probed, and how long a probe may take: 10s, 500ms.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        requires = "health_path",
        env = "ANCM_HEALTH_INTERVAL"
    )]
    pub health_interval: String,

    /// How many failed probes in a row replace the process (1-100).
    #[arg(
        long,
        value_name = "N",
        default_value = "3",
        requires = "health_path",
        env = "ANCM_HEALTH_FAILURES"
    )]
    pub health_failures: String,

    /// Replace, without downtime, a process whose tree (it and its descendants) uses more
    /// resident memory than SIZE: 512MiB, 2G. Off by default.
    #[arg(long, value_name = "SIZE", env = "ANCM_MAX_MEMORY")]
    pub max_memory: Option<String>,

    /// How much of the app's latest output `ancm logs` can show, at most 1,000 lines: SIZE of
    /// text, 1MiB by default. Lines are cut at 16 KiB.
    #[arg(long, value_name = "SIZE", env = "ANCM_LOGS_KEEP")]
    pub logs_keep: Option<String>,

    /// Replace each process, without downtime, after it has served this long: 24h, 90m.
    /// Off by default.
    #[arg(long, value_name = "DURATION", env = "ANCM_RECYCLE_EVERY")]
    pub recycle_every: Option<String>,

    /// Run the app as this user (a name or uid), with its groups and HOME, USER and LOGNAME;
    /// needs ancm to run as root. ancm itself keeps running as root.
    #[arg(long, value_name = "NAME", env = "ANCM_USER")]
    pub user: Option<String>,

    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// The command to run instead of web.config's processPath and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `--listen`: an IP address and port, or a port on the IPv4 loopback. `localhost` is
/// 127.0.0.1, not a name to resolve, so that the address does not depend on /etc/hosts.
fn listen_address(value: &str) -> Result<SocketAddr, String> {
    let port = value
        .strip_prefix(':')
        .or_else(|| {
            value
                .get(..10)
                .filter(|host| host.eq_ignore_ascii_case("localhost:"))
                .and_then(|_| value.get(10..))
        })
        .unwrap_or(value);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| format!("port {port} is not from 0 to 65535"));
    }
    value.parse().map_err(|_| {
        "expected IP:PORT (127.0.0.1:8080, 0.0.0.0:443, [::1]:8080), or PORT, :PORT or \
         localhost:PORT for 127.0.0.1:PORT"
            .to_owned()
    })
}

/// `--admin`: an address as for `--listen`, or a socket path.
fn admin_address(value: &str) -> Result<admin::Address, String> {
    if value.contains('/') {
        return Ok(admin::Address::Unix(PathBuf::from(value)));
    }
    listen_address(value)
        .map(admin::Address::Tcp)
        .map_err(|err| format!("{err}; or a Unix socket path such as ./admin.sock"))
}

/// `--log-format`: how console lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `--tls-client-cert`: whether a client without a certificate is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsClientCert {
    /// Ask for a certificate; serve clients that send none.
    Optional,
    /// Refuse the handshake of a client that sends none.
    Require,
}

/// One flag per `<aspNetCore>` attribute; each overrides web.config.
#[derive(Debug, Args, Default, Clone)]
pub struct OverrideArgs {
    /// Overrides processPath: the executable to start.
    #[arg(long, value_name = "PATH", env = "ANCM_PROCESS_PATH")]
    pub process_path: Option<String>,

    /// Overrides arguments (split the way Windows splits a command line).
    #[arg(
        long,
        value_name = "ARGS",
        allow_hyphen_values = true,
        env = "ANCM_ARGUMENTS"
    )]
    pub arguments: Option<String>,

    /// Adds or overrides an environment variable for the app (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", env = "ANCM_ENV")]
    pub env: Vec<String>,

    /// Adds the variables of FILE (KEY=VALUE lines, systemd's EnvironmentFile syntax) to the
    /// app's environment, over web.config's; --env wins over both.
    #[arg(long, value_name = "FILE", env = "ANCM_ENV_FILE")]
    pub env_file: Option<PathBuf>,

    /// Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log.
    #[arg(long, value_name = "PREFIX", env = "ANCM_STDOUT_LOG")]
    pub stdout_log: Option<String>,

    /// With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M,
    /// 1G). Off by default, as in ANCM.
    #[arg(long, value_name = "SIZE", env = "ANCM_STDOUT_LOG_MAX_SIZE")]
    pub stdout_log_max_size: Option<String>,

    /// With the stdout log on, delete the oldest of its files beyond N. Off by default.
    #[arg(long, value_name = "N", env = "ANCM_STDOUT_LOG_KEEP")]
    pub stdout_log_keep: Option<String>,

    /// Overrides startupTimeLimit: seconds the app has to start listening (0-3600).
    #[arg(long, value_name = "SECS", env = "ANCM_STARTUP_TIME_LIMIT")]
    pub startup_time_limit: Option<String>,

    /// Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600).
    #[arg(long, value_name = "SECS", env = "ANCM_SHUTDOWN_TIME_LIMIT")]
    pub shutdown_time_limit: Option<String>,

    /// Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100).
    #[arg(long, value_name = "N", env = "ANCM_RAPID_FAILS_PER_MINUTE")]
    pub rapid_fails_per_minute: Option<String>,

    /// Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever.
    #[arg(long, value_name = "DURATION", env = "ANCM_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,

    /// Overrides requestLimits maxAllowedContentLength: the largest request body in bytes
    /// (IIS's default 30000000); 0 = no limit.
    #[arg(long, value_name = "BYTES", env = "ANCM_MAX_REQUEST_BODY")]
    pub max_request_body: Option<String>,

    /// The app's virtual path, given to it as ASPNETCORE_APPL_PATH (default /).
    #[arg(long, value_name = "/BASE", env = "ANCM_APP_PATH")]
    pub app_path: Option<String>,

    /// Also export the app's port under NAME, for apps that are not .NET (repeatable).
    #[arg(long, value_name = "NAME", env = "ANCM_PORT_ENV")]
    pub port_env: Vec<String>,

    /// Forward requests under --app-path without that base, which goes to the app in
    /// X-Forwarded-Prefix instead (for apps that do not know their base).
    #[arg(long, requires = "app_path", env = "ANCM_STRIP_APP_PATH")]
    pub strip_app_path: bool,

    /// X-Forwarded-For's form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or
    /// `ip:port` (ANCM's; the default with web.config).
    #[arg(long, value_name = "FORM", value_parser = ["ip", "ip:port"], env = "ANCM_FORWARDED_FOR")]
    pub forwarded_for: Option<String>,

    /// Send ANCM's shutdown message (POST /iisintegration) before the stop signal, as
    /// web.config runs always do; -- COMMAND runs get the signal only.
    #[arg(long, env = "ANCM_SHUTDOWN_MESSAGE")]
    pub shutdown_message: bool,

    /// Overrides processesPerApplication: how many processes serve the app (1-100).
    #[arg(long, value_name = "N", env = "ANCM_PROCESSES")]
    pub processes: Option<String>,

    /// Start the app on the first request, as ANCM does, instead of at once.
    #[arg(long, env = "ANCM_LAZY")]
    pub lazy: bool,

    /// What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs);
    /// default: the LAUNCHER_PATH environment variable.
    #[arg(long, value_name = "PATH")]
    pub launcher_path: Option<String>,

    /// What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub launcher_args: Option<String>,
}

/// The one place where a flag becomes a configuration override.
impl From<&OverrideArgs> for config::Overrides {
    fn from(args: &OverrideArgs) -> Self {
        config::Overrides {
            process_path: args.process_path.clone(),
            arguments: args.arguments.clone(),
            env: args.env.clone(),
            env_file: args.env_file.clone(),
            stdout_log: args.stdout_log.clone(),
            stdout_log_max_size: args.stdout_log_max_size.clone(),
            stdout_log_keep: args.stdout_log_keep.clone(),
            startup_time_limit: args.startup_time_limit.clone(),
            shutdown_time_limit: args.shutdown_time_limit.clone(),
            rapid_fails_per_minute: args.rapid_fails_per_minute.clone(),
            request_timeout: args.request_timeout.clone(),
            max_request_body: args.max_request_body.clone(),
            app_path: args.app_path.clone(),
            port_env: args.port_env.clone(),
            processes: args.processes.clone(),
            lazy: args.lazy,
            launcher_path: args.launcher_path.clone(),
            launcher_args: args.launcher_args.clone(),
            strip_app_path: args.strip_app_path,
            forwarded_for: args.forwarded_for.clone(),
            shutdown_message: args.shutdown_message,
        }
    }
}

impl RunArgs {
    /// What `ancm run` loads its configuration from, at start and on each reload.
    pub fn request(&self) -> config::Request {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(config::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_cert: self.tls_client_cert.map(|mode| config::ClientCert {
                    required: mode == TlsClientCert::Require,
                    ca: self.tls_client_ca.clone(),
                }),
            }),
            _ => None,
        };
        config::Request {
            app: self.app.clone(),
            overrides: (&self.overrides).into(),
            command: self.command.clone(),
            listen: self.listen.clone(),
            run: Some(config::RunOnly {
                header_read_timeout: self.header_read_timeout.clone(),
                idle_timeout: self.idle_timeout.clone(),
                send_timeout: self.send_timeout.clone(),
                max_request_head: self.max_request_head.clone(),
                shutdown_delay: self.shutdown_delay.clone(),
                watch: self.watch.clone(),
                tls,
                ready_path: self.ready_path.clone(),
                health_path: self.health_path.clone(),
                health_interval: self.health_interval.clone(),
                health_failures: self.health_failures.clone(),
                max_memory: self.max_memory.clone(),
                logs_keep: self.logs_keep.clone(),
                recycle_every: self.recycle_every.clone(),
                user: self.user.clone(),
            }),
        }
    }
}

impl SmokeArgs {
    /// As `ancm run` would load it, listening on a free loopback port.
    pub fn request(&self) -> config::Request {
        config::Request {
            app: self.app.clone(),
            overrides: (&self.overrides).into(),
            command: self.command.clone(),
            listen: vec![SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0))],
            run: None,
        }
    }
}

/// The flags set for this invocation's subcommand and where each came from: the command line,
/// or the ANCM_* variable that stands for it. Read again from the process's arguments, as the
/// derived types keep no origins.
pub fn flag_sources() -> Vec<(String, String)> {
    use clap::parser::ValueSource;
    let command = Cli::command();
    let Ok(matches) = command.clone().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    let Some((name, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let Some(subcommand) = command.find_subcommand(name) else {
        return Vec::new();
    };
    subcommand
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let from = match sub.value_source(arg.get_id().as_str())? {
                ValueSource::CommandLine => "command line".to_owned(),
                ValueSource::EnvVariable => arg.get_env()?.to_string_lossy().into_owned(),
                _ => return None,
            };
            Some((format!("--{long}"), from))
        })
        .collect()
}

impl CheckArgs {
    /// The configuration `ancm run` would use, without a proxy.
    pub fn request(&self) -> config::Request {
        config::Request {
            app: self.app.clone(),
            overrides: (&self.overrides).into(),
            command: self.command.clone(),
            listen: Vec::new(),
            run: None,
        }
    }
}

/// The completion script for `shell`. Made in memory, because the generator cannot report a
/// write error (it panics), and stdout may be a pipe closed early.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ancm", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_port_alone_for_the_loopback() {
        let loopback = |port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
        assert_eq!(listen_address("8080"), Ok(loopback(8080)));
        assert_eq!(listen_address(":0"), Ok(loopback(0)));
        assert_eq!(listen_address("LocalHost:5000"), Ok(loopback(5000)));
        assert_eq!(
            listen_address("0.0.0.0:443"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 443)))
        );
        assert!(listen_address("[::1]:80").is_ok());
        for bad in [
            "",
            ":",
            "70000",
            "localhost",
            "example.com:80",
            "localhost:x",
        ] {
            assert!(listen_address(bad).is_err(), "{bad}");
        }
    }
}
