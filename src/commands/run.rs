//! `ancm run`: binds the front listeners, starts the supervisor and the proxy, announces where
//! to browse, recycles the app on SIGHUP, and on a stop signal stops in three steps: stop
//! accepting and finish requests in flight, stop the app, exit.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::cli::{self, RunArgs};
use crate::config::{self, AppConfig, Request};
use crate::host::{self, Host};
use crate::logging::Logging;
use crate::logs;
use crate::proxy::{self, Proxy};
use crate::signals::Signal;
use crate::supervisor::{Phase, Supervisor};
use crate::systemd;
use crate::watch::{self, Reload};

/// `ancm run`: the console's format, the access log and the diagnostic log set up from the
/// flags and web.config, then the app served until a stop signal.
pub(crate) fn command(args: RunArgs, logging: &Logging) -> anyhow::Result<ExitCode> {
    if args.log_format == cli::LogFormat::Json {
        logging.use_json();
    }
    if let Some(path) = &args.access_log {
        proxy::access_log::start(&proxy::access_log::Target::from_arg(path)).map_err(|err| {
            anyhow::anyhow!("--access-log {}: cannot write there: {err}", path.display())
        })?;
    }
    let request = args.request();
    let config = config::load(&request)?;
    if let Some(user) = &config.run_as {
        if let Some(web_config) = &config.web_config {
            logs::open_as::warn_if_app_can_change(web_config, user);
        }
    }
    if let Err(err) = logging.apply(&config.debug_log, config.run_as.as_ref()) {
        let path = config
            .debug_log
            .file
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        tracing::warn!(path = %path.display(), %err, "cannot write the diagnostic log (debugFile); going on without it");
    }
    let admin = args.admin.clone().map(|address| admin::Settings {
        address,
        token: args.admin_token.clone(),
        group: args.admin_group.clone(),
    });
    let ran = host::run(|host| run(host, config, request, admin));
    proxy::access_log::finish();
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// The app behind the proxy, serving.
pub(crate) struct Serving {
    pub(crate) supervisor: Supervisor,
    /// Where the proxy listens, as URLs to browse (with the app's base path).
    pub(crate) urls: Vec<String>,
    /// Where the proxy listens.
    pub(crate) addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    /// Watching the app folder, for as long as this serves.
    _watch: Option<watch::Watch>,
}

/// Binds the listeners, starts the app and the proxy. Binding comes first, so a taken port is
/// reported before anything runs. With `reload`, the app folder is watched (app_offline.htm,
/// web.config, `--watch` globs); app_offline.htm is honoured at start either way.
pub(crate) async fn serve(
    host: &Host,
    config: AppConfig,
    reload: Option<Reload>,
) -> anyhow::Result<Serving> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let tls = proxy::tls_acceptor(&config)?;
    // Before the app starts: it inherits the limit, as it would from a service manager that
    // set it.
    proxy::raise_open_file_limit();
    // Socket activation: systemd holds the sockets and passes them; --listen is not bound then.
    let mut listeners = systemd::passed_listeners()?;
    if listeners.is_empty() {
        for addr in &config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("--listen {addr}: cannot listen there"))?;
            listeners.push(listener);
        }
    } else {
        tracing::info!(
            "serving on the {} socket(s) systemd passed (socket activation)",
            listeners.len()
        );
    }
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let base = config.appl_path.trim_end_matches('/');
    let scheme = if tls.is_some() { "https" } else { "http" };
    let urls: Vec<String> = addrs
        .iter()
        .map(|a| format!("{scheme}://{a}{base}/"))
        .collect();
    tracing::info!("ancm listening on {}; starting the app", urls.join(" and "));

    let https_port = tls.as_ref().and_then(|_| one_port(&addrs));
    let (supervisor, watch) = supervise(host, config, reload, https_port).await?;
    let proxy = Arc::new(Proxy::new(supervisor.clone(), tls));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(proxy::serve(proxy, listeners, shutdown.clone()));
    Ok(Serving {
        supervisor,
        urls,
        addrs,
        shutdown,
        server,
        _watch: watch,
    })
}

/// The port every listener shares, if they share one: as IIS gives the app its site's HTTPS
/// port only when all its HTTPS bindings agree on one.
fn one_port(addrs: &[SocketAddr]) -> Option<u16> {
    let (first, rest) = addrs.split_first()?;
    rest.iter()
        .all(|a| a.port() == first.port())
        .then_some(first.port())
}

/// Starts the app's processes (none while app_offline.htm is there) and, with `reload`, the
/// watch on the app folder. If the watch cannot start, the processes are stopped again.
/// `https_port` is the port the front serves HTTPS on, for the app's environment.
pub(crate) async fn supervise(
    host: &Host,
    config: AppConfig,
    reload: Option<Reload>,
    https_port: Option<u16>,
) -> anyhow::Result<(Supervisor, Option<watch::Watch>)> {
    let dir = config.app_dir.clone();
    let offline = tokio::task::spawn_blocking(move || watch::app_offline(&dir)).await?;
    if offline.is_some() {
        tracing::info!("app_offline.htm is there: the app starts when it goes");
    }
    let watched = config.clone();
    let mut context = host.context(config)?;
    context.https_port = https_port;
    let supervisor = Supervisor::start(context, offline);
    let Some(reload) = reload else {
        return Ok((supervisor, None));
    };
    match watch::start(&watched, supervisor.clone(), reload) {
        Ok(watch) => Ok((supervisor, Some(watch))),
        Err(err) => {
            supervisor.stop().await;
            Err(err)
        }
    }
}

impl Serving {
    /// Stops accepting, lets requests in flight finish (up to shutdownTimeLimit, or until
    /// `kill_now`), then stops the app.
    pub(crate) async fn stop(self, kill_now: &CancellationToken) {
        let limit = self.supervisor.config().shutdown_time_limit;
        self.stop_by(tokio::time::Instant::now() + limit, kill_now)
            .await;
    }

    /// Stops accepting, lets requests in flight finish until `drained_by` (or `kill_now`), then
    /// stops the app, which has shutdownTimeLimit of its own to exit before it is killed.
    async fn stop_by(mut self, drained_by: tokio::time::Instant, kill_now: &CancellationToken) {
        self.shutdown.cancel();
        let limit = self.supervisor.config().shutdown_time_limit;
        tokio::select! {
            _ = &mut self.server => {}
            () = tokio::time::sleep_until(drained_by) => {
                tracing::warn!("requests still in flight after shutdownTimeLimit ({} s); stopping the app anyway", limit.as_secs());
                self.server.abort();
            }
            () = kill_now.cancelled() => self.server.abort(),
        }
        self.supervisor.stop().await;
    }
}

/// Runs the app behind the proxy until a stop signal, then stops everything cleanly. `config`
/// is `request` as loaded at start; a change to web.config loads `request` again. SIGHUP reads
/// the configuration again and recycles the app with it, as a reload does for nginx, gunicorn
/// and PM2.
///
/// With `admin`, the admin endpoints listen there until the app has stopped; `/readyz` says
/// 503 from the stop signal on.
pub(crate) async fn run(
    mut host: Host,
    config: AppConfig,
    request: Request,
    admin: Option<admin::Settings>,
) -> anyhow::Result<()> {
    let bound = match admin {
        Some(settings) => Some(admin::bind(settings).await?),
        None => None,
    };
    let about = admin::About::new(
        &config,
        Vec::new(),
        bound.as_ref().map(|bound| bound.shown.clone()),
    );
    host.console.recent().keep_bytes(config.logs_keep);
    let reload: Reload = Arc::new(move || config::load(&request));
    let serving = serve(&host, config, Some(reload.clone())).await?;
    let about = admin::About {
        urls: serving.urls.clone(),
        ..about
    };
    let operators = admin::Operators::start(
        &serving.supervisor,
        about,
        host.console.recent().clone(),
        bound,
    )
    .await;
    let urls = serving.urls.join(" and ");
    let announcers: Vec<_> = (0..serving.supervisor.slot_count())
        .map(|slot| tokio::spawn(announce(serving.supervisor.clone(), slot, urls.clone())))
        .collect();
    let spinner = tokio::spawn(crate::progress::follow(serving.supervisor.clone()));
    let service_manager = [
        tokio::spawn(systemd::follow(serving.supervisor.clone())),
        tokio::spawn(systemd::watchdog(serving.supervisor.clone())),
    ];

    let mut reloads = Vec::new();
    let signal = loop {
        let signal = host.signals.next().await;
        if signal != Signal::Hangup {
            break signal;
        }
        tracing::info!(
            "{signal} received: reopening the log files, reading the configuration again and recycling the app with it"
        );
        let supervisor = serving.supervisor.clone();
        let reload = reload.clone();
        reloads.push(tokio::spawn(async move {
            watch::reload_now(&supervisor, &reload).await;
        }));
    };
    tracing::info!(
        "{signal} received: stopping gracefully: finishing requests in flight, then stopping the app ({signal} again kills it now)"
    );
    systemd::stopping();
    operators.drain();
    let kill_now = CancellationToken::new();
    let second_signal = tokio::spawn({
        let supervisor = serving.supervisor.clone();
        let kill_now = kill_now.clone();
        let mut signals = host.signals;
        async move {
            loop {
                let signal = signals.again().await;
                if signal == Signal::Hangup {
                    tracing::info!("{signal} received while stopping: nothing to reload");
                    continue;
                }
                tracing::warn!("{signal} received again: killing the app now");
                kill_now.cancel();
                supervisor.kill_now();
                return;
            }
        }
    });
    // The stop's one deadline, made now: the shutdown delay, then shutdownTimeLimit for the
    // requests in flight; the app then has shutdownTimeLimit to exit. Worst case from the
    // signal to exit: shutdownDelay + 2 x shutdownTimeLimit.
    let config = serving.supervisor.config();
    let delay = config.shutdown_delay;
    let drained_by = tokio::time::Instant::now() + delay + config.shutdown_time_limit;
    if !delay.is_zero() {
        tracing::info!(
            "serving {delay:?} more (the shutdown delay) while /readyz answers 503, so that load balancers take this instance out first"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = kill_now.cancelled() => {}
        }
    }
    spinner.abort();
    crate::progress::suspend(|| ());
    serving.stop_by(drained_by, &kill_now).await;
    operators.stop().await;
    for task in announcers.into_iter().chain(reloads).chain(service_manager) {
        task.abort();
    }
    second_signal.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Says where to browse each time a new app process is ready.
async fn announce(supervisor: Supervisor, slot: usize, urls: String) {
    let mut status = supervisor.watch_slot(slot);
    let mut announced = None;
    loop {
        if let Phase::Ready(backend) = &status.borrow_and_update().phase {
            if announced != Some(backend.pid) {
                announced = Some(backend.pid);
                tracing::info!(
                    "Now listening on: {urls} (app pid {}, port {})",
                    backend.pid,
                    backend.addr.port()
                );
            }
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_port_only_when_every_listener_shares_one() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("address");
        assert_eq!(one_port(&[addr("127.0.0.1:8443")]), Some(8443));
        assert_eq!(
            one_port(&[addr("127.0.0.1:8443"), addr("[::1]:8443")]),
            Some(8443)
        );
        assert_eq!(
            one_port(&[addr("127.0.0.1:8443"), addr("127.0.0.1:9443")]),
            None
        );
        assert_eq!(one_port(&[]), None);
    }
}
