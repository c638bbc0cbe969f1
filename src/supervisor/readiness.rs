//! Whether the app listens: the probe that tells the app's listener from another process's on
//! its port (Linux: the socket tables and the tree's descriptors; elsewhere: a connect), the
//! look at where else the app's tree listens, and who holds a port the app could not take.
//!
//! Imports the platform's containment and the Linux listener tables; must not import the
//! process or the slot, which drive it.

use std::net::SocketAddr;
#[cfg(not(target_os = "linux"))]
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitStatus;
use std::time::Duration;

#[cfg(not(target_os = "linux"))]
use tokio::net::TcpStream;
#[cfg(not(target_os = "linux"))]
use tokio::time::timeout;
use tokio::time::Instant;

use super::platform::Containment;
use super::status::ListeningElsewhere;
use crate::config::AppConfig;

/// How waiting for the app to listen ended.
pub(crate) enum Readiness {
    Listening(SocketAddr),
    /// Another process listens on the app's port: "PID 4242 (nginx)" or "another process".
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Taken(String),
    Exited(ExitStatus),
    /// With where the app listens instead, when it does.
    TimedOut(Option<ListeningElsewhere>),
    Cancelled,
}

/// When to first look for an app that listens elsewhere: most apps listen well within this.
#[cfg(target_os = "linux")]
const FIRST_LOOK_ELSEWHERE: Duration = Duration::from_millis(1500);
/// How often to look again; each look reads the process table and the socket tables.
#[cfg(target_os = "linux")]
const LOOK_ELSEWHERE_EVERY: Duration = Duration::from_secs(1);

/// Whether the warning about an app listening on all interfaces was given: once per run is
/// enough, its restarts listen the same way.
#[cfg(target_os = "linux")]
static WARNED_EXPOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Looks at who listens on the app's port. Linux: the socket tables and the descriptors of the
/// app's tree, as ANCM checks the listener's owning PID against the app's job (spec §3.2).
#[cfg(target_os = "linux")]
pub(super) struct Probe {
    /// Moved to a blocking thread for each look, and back; `None` if that thread panicked.
    watch: Option<super::listeners::Watch>,
    pid: u32,
    port: u16,
    port_vars: Vec<String>,
    next_look_elsewhere: Duration,
    /// Where the app listens instead of its port, once seen.
    pub(super) elsewhere: Option<ListeningElsewhere>,
}

#[cfg(target_os = "linux")]
impl Probe {
    pub(super) fn new(pid: u32, port: u16, containment: &Containment, config: &AppConfig) -> Probe {
        let watch = super::listeners::Watch::new(port, pid, containment.group());
        Probe {
            watch: Some(watch),
            pid,
            port,
            port_vars: port_vars(config),
            next_look_elsewhere: FIRST_LOOK_ELSEWHERE,
            elsewhere: None,
        }
    }

    /// The app listening (where to reach it), another process ([`Readiness::Taken`]), or
    /// nobody yet (`None`).
    pub(super) async fn next(&mut self) -> Option<Readiness> {
        use super::listeners::Verdict;
        let mut watch = self.watch.take()?;
        let looked = tokio::task::spawn_blocking(move || {
            let verdict = watch.check();
            (watch, verdict)
        });
        let (watch, verdict) = looked.await.ok()?;
        tracing::trace!(reads = watch.reads, ?verdict, "looked at the app's port");
        self.watch = Some(watch);
        match verdict {
            Verdict::App { forward, exposed } => {
                if let Some(exposed) = exposed {
                    warn_exposed(self.pid, exposed);
                }
                Some(Readiness::Listening(forward))
            }
            Verdict::Foreign(holder) => Some(Readiness::Taken(describe_holder(holder))),
            Verdict::Nobody => None,
        }
    }

    /// While the app is not ready, looks now and then (from [`FIRST_LOOK_ELSEWHERE`] after
    /// its start) at what else its tree listens on, and says so once: an app that listens on
    /// a port of its own never gets ready, and the reason is not in its output.
    pub(super) async fn look_elsewhere(&mut self, started: Instant) {
        if self.elsewhere.is_some() || started.elapsed() < self.next_look_elsewhere {
            return;
        }
        self.next_look_elsewhere = started.elapsed() + LOOK_ELSEWHERE_EVERY;
        let pid = self.pid;
        let port = self.port;
        let addrs = tokio::task::spawn_blocking(move || super::listeners::tree_listeners(pid))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|addr| addr.port() != port)
            .collect::<Vec<_>>();
        if addrs.is_empty() {
            return;
        }
        let elsewhere = ListeningElsewhere {
            addrs,
            port,
            port_vars: self.port_vars.clone(),
        };
        tracing::warn!(pid, "{elsewhere}");
        self.elsewhere = Some(elsewhere);
    }
}

/// An app listening on all interfaces can be reached around ancm, from other machines.
#[cfg(target_os = "linux")]
fn warn_exposed(pid: u32, exposed: SocketAddr) {
    use std::sync::atomic::Ordering;
    if WARNED_EXPOSED.swap(true, Ordering::Relaxed) {
        return;
    }
    let loopback = if exposed.is_ipv4() {
        "127.0.0.1"
    } else {
        "::1"
    };
    tracing::warn!(
        pid,
        "the app listens on all interfaces ({exposed}): its private port is reachable from \
         other machines, around ancm; make it listen on {loopback} only"
    );
}

/// Elsewhere, whatever accepts a connection on the port counts as the app, as ANCM does
/// without its listener table. The way to tell on Windows is `GetExtendedTcpTable`
/// (TCP_TABLE_OWNER_PID_LISTENER): each listener's owning PID, to look for in the app's job.
#[cfg(not(target_os = "linux"))]
pub(super) struct Probe {
    port: u16,
    /// Never seen here: telling would take the listener table.
    pub(super) elsewhere: Option<ListeningElsewhere>,
}

#[cfg(not(target_os = "linux"))]
impl Probe {
    pub(super) fn new(
        _pid: u32,
        port: u16,
        _containment: &Containment,
        _config: &AppConfig,
    ) -> Probe {
        Probe {
            port,
            elsewhere: None,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Readiness> {
        let candidates = [
            SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, self.port)),
        ];
        for addr in candidates {
            if let Ok(Ok(_)) = timeout(Duration::from_millis(250), TcpStream::connect(addr)).await {
                return Some(Readiness::Listening(addr));
            }
        }
        None
    }

    pub(super) async fn look_elsewhere(&mut self, _started: Instant) {}
}

/// The variables that carry the app's port: ASPNETCORE_PORT, then each `--port-env` name.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn port_vars(cfg: &AppConfig) -> Vec<String> {
    let mut vars = vec!["ASPNETCORE_PORT".to_owned()];
    for name in &cfg.port_env {
        if !vars.iter().any(|v| v.eq_ignore_ascii_case(name)) {
            vars.push(name.clone());
        }
    }
    vars
}

/// Who holds `port` now ("PID 4242 (nginx)", "another process"); `None` when it is free.
pub(crate) async fn port_holder(port: u16) -> Option<String> {
    let holder = tokio::task::spawn_blocking(move || {
        #[cfg(target_os = "linux")]
        if let Some(holder) = super::listeners::holder_of(port) {
            return Some(describe_holder(holder));
        }
        (!super::ports::is_free(port)).then(|| describe_holder(None::<String>))
    });
    holder.await.ok().flatten()
}

/// "PID 4242 (nginx)", or "another process" when the holder could not be seen.
fn describe_holder(holder: Option<impl std::fmt::Display>) -> String {
    holder.map_or_else(|| "another process".to_owned(), |h| h.to_string())
}
