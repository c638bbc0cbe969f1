//! The operator's view of a running ancm: the admin listener (`--admin`, off by default, never
//! on the front's listener) serves `/healthz`, `/readyz`, `/status` (JSON) and `/metrics`
//! (Prometheus text), read from the supervisor, the proxy's counters and the process table.
//! The same endpoints answer on each instance's control socket (Unix, owner-only, in the
//! runtime folder), which `ancm ls` and `ancm status` ask. On the admin listener `/status` and
//! `/metrics` are served from a copy at most a second old, and with `--admin-token` all but
//! the probes ask for it.

#[cfg(unix)]
mod control;
mod journal;
mod metrics;
mod processes;
#[cfg(unix)]
mod registry;
mod server;
mod socket;
mod status;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::AppConfig;
use crate::supervisor::{Phase, Supervisor};

use journal::Journal;
pub(crate) use server::bind;
use server::{Admin, Bound};

/// `ancm ls`: the instances running on this machine, as a table.
pub fn ls() -> anyhow::Result<String> {
    #[cfg(unix)]
    return control::ls();
    #[cfg(not(unix))]
    anyhow::bail!("ancm ls is not available on Windows yet: use --admin and its /status")
}

/// `ancm logs [APP|PID] [-n N] [-f]`: a running instance's app output, followed across
/// restarts with `follow`.
pub fn logs(target: Option<&str>, lines: usize, follow: bool) -> anyhow::Result<()> {
    #[cfg(unix)]
    return control::logs(target, lines, follow);
    #[cfg(not(unix))]
    {
        let _ = (target, lines, follow);
        anyhow::bail!("ancm logs is not available on Windows yet: use --stdout-log")
    }
}

/// `ancm status [APP|PID]`: one running instance in detail (or as JSON).
pub fn status(target: Option<&str>, json: bool) -> anyhow::Result<String> {
    #[cfg(unix)]
    return control::status(target, json);
    #[cfg(not(unix))]
    {
        let _ = (target, json);
        anyhow::bail!("ancm status is not available on Windows yet: use --admin and its /status")
    }
}

/// Where the admin listener listens: a TCP address, or (on Unix) a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// The admin listener as asked for on the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: Address,
    /// `--admin-token`: what every request but the probes must bear.
    pub token: Option<String>,
    /// `--admin-group`: the group a socket path is opened to (0660 instead of 0600).
    pub group: Option<String>,
}

/// Set when ancm starts to stop: from then on `/readyz` answers 503, so that a load balancer
/// stops sending before the front stops accepting.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draining(Arc<AtomicBool>);

impl Draining {
    pub(crate) fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the admin endpoints read.
pub(crate) struct Observed {
    pub(crate) supervisor: Supervisor,
    pub(crate) journal: Arc<Journal>,
    pub(crate) draining: Draining,
    pub(crate) about: About,
    /// The app's last lines, for `/logs` on the control socket.
    pub(crate) recent: crate::logs::Recent,
    /// Kept between looks, so that CPU use is measured since the previous one.
    processes: Mutex<processes::Table>,
}

/// The instance, as it started.
pub(crate) struct About {
    pub(crate) app_dir: PathBuf,
    /// Where the front listens, as URLs to browse.
    pub(crate) urls: Vec<String>,
    /// web.config's path, or that the command line alone describes the app.
    pub(crate) source: String,
    /// Where the admin listener listens, if it does.
    pub(crate) admin: Option<String>,
    pub(crate) started_at: SystemTime,
}

impl About {
    pub(crate) fn new(config: &AppConfig, urls: Vec<String>, admin: Option<String>) -> About {
        About {
            app_dir: config.app_dir.clone(),
            urls,
            source: config.web_config.as_ref().map_or_else(
                || "the command line".to_owned(),
                |path| path.display().to_string(),
            ),
            admin,
            started_at: SystemTime::now(),
        }
    }
}

impl Observed {
    pub(crate) fn new(
        supervisor: Supervisor,
        journal: Arc<Journal>,
        draining: Draining,
        about: About,
        recent: crate::logs::Recent,
    ) -> Observed {
        Observed {
            supervisor,
            journal,
            draining,
            about,
            recent,
            processes: Mutex::new(processes::Table::new()),
        }
    }

    /// At least one app process is ready and ancm is not draining; else why not.
    pub(crate) fn readiness(&self) -> Result<(), &'static str> {
        if self.draining.is_draining() {
            return Err("draining: ancm is stopping");
        }
        let any_ready = (0..self.supervisor.slot_count()).any(|slot| {
            matches!(
                self.supervisor.watch_slot(slot).borrow().phase,
                Phase::Ready(_)
            )
        });
        if any_ready {
            Ok(())
        } else {
            Err("no app process is ready")
        }
    }
}

/// The operator's side of `ancm run`: the record of the app's events, the draining flag, the
/// admin listener (when asked for) and the control socket.
pub(crate) struct Operators {
    draining: Draining,
    admin: Option<Admin>,
    control: Option<Admin>,
    following: tokio::task::JoinHandle<()>,
}

impl Operators {
    /// Starts them for the app `supervisor` runs; `admin` is the admin listener, bound before
    /// the app started. Call before anything else subscribes to the supervisor's events: the
    /// record then sees every event since the start.
    pub(crate) async fn start(
        supervisor: &Supervisor,
        about: About,
        recent: crate::logs::Recent,
        admin: Option<Bound>,
    ) -> Operators {
        let journal = Arc::new(Journal::new(supervisor.slot_count()));
        let following = tokio::spawn({
            let journal = journal.clone();
            let events = supervisor.events();
            async move { journal.follow(events).await }
        });
        let draining = Draining::default();
        let observed = Arc::new(Observed::new(
            supervisor.clone(),
            journal,
            draining.clone(),
            about,
            recent,
        ));
        let admin = admin.map(|bound| {
            let admin = bound.serve(observed.clone());
            tracing::info!(
                "admin endpoints on {} (/healthz, /readyz, /status, /metrics)",
                admin.shown
            );
            admin
        });
        Operators {
            draining,
            admin,
            control: control(observed).await,
            following,
        }
    }

    /// ancm is stopping: `/readyz` says 503 from now on.
    pub(crate) fn drain(&self) {
        self.draining.start();
    }

    /// Once the app has stopped: closes the listeners and removes the control socket.
    pub(crate) async fn stop(self) {
        for listener in self.admin.into_iter().chain(self.control) {
            listener.stop().await;
        }
        self.following.abort();
    }
}

/// The control socket, for `ancm ls`, `status` and `logs`; ancm runs on without it if it
/// cannot be made.
#[cfg(unix)]
async fn control(observed: Arc<Observed>) -> Option<Admin> {
    match server::bind_control().await {
        Ok(bound) => {
            let control = bound.serve(observed);
            tracing::debug!(socket = control.shown, "control socket ready");
            Some(control)
        }
        Err(err) => {
            tracing::warn!("{err:#}; ancm ls, status and logs will not see this instance");
            None
        }
    }
}

#[cfg(not(unix))]
async fn control(_observed: Arc<Observed>) -> Option<Admin> {
    None
}

/// A phase as `/status` and `ancm ls` name it.
pub(crate) fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::Idle => "idle",
        Phase::Starting => "starting",
        Phase::Ready(_) => "ready",
        Phase::Backoff { .. } => "backoff",
        Phase::Paused { .. } => "paused",
        Phase::Offline => "offline",
        Phase::Stopping => "stopping",
        Phase::Stopped => "stopped",
    }
}
