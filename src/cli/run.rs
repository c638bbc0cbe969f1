//! `ancm run`'s arguments: everything `ancm check` takes, plus the front (listen addresses,
//! TLS, timeouts), the probes, the limits, `--watch`, `--user`, the admin address and the
//! console's format. Clap types only; they become a [`config::Request`]. Imports nothing of
//! the crate but `config`'s input types and `admin`'s address.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::overrides::OverrideArgs;
use crate::{admin, config};

pub(super) const RUN_EXAMPLES: &str = "\
Examples:
  ancm run ./publish                       the app described by ./publish/web.config
  ancm run --listen 127.0.0.1:0 .          any free port; the ready line says which
  ancm run --port-env PORT -- node app.js  a non-.NET app, told its port in $PORT
  ancm run --processes 4 --watch 'bin/*.dll' .   four processes, recycled on a new build
  ancm run --tls-cert cert.pem --tls-key key.pem --listen 0.0.0.0:443 .
  ancm run --tls-cert cert.pem --tls-key key.pem --tls-client-cert require --tls-client-ca ca.pem .";

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
