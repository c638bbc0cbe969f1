//! What `ancm run`, `ancm smoke` and `ancm helper` share to serve an app: [`Serving::start`]
//! binds the front listeners (or takes the sockets systemd passed), starts the supervisor, the
//! proxy and the watch on the app folder; [`host`] is what runs around it, [`stop`] the one
//! stop, [`observe`] the tasks that follow the supervisor for the operator and systemd. Must
//! not import commands/.

pub(crate) mod host;
pub(crate) mod observe;
pub(crate) mod stop;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;
use crate::proxy::{self, Proxy};
use crate::supervisor::Supervisor;
use crate::systemd;
use crate::watch::{self, Reload};
pub(crate) use host::Host;
pub(crate) use stop::Stop;

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

impl Serving {
    /// Binds the listeners, starts the app and the proxy. Binding comes first, so a taken port is
    /// reported before anything runs. With `reload`, the app folder is watched (app_offline.htm,
    /// web.config, `--watch` globs); app_offline.htm is honoured at start either way.
    pub(crate) async fn start(
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

    /// Stops accepting, lets requests in flight finish until the stop's deadline (or until it
    /// kills now), then stops the app, which has shutdownTimeLimit of its own to exit before it
    /// is killed.
    pub(crate) async fn stop(mut self, stop: &Stop) {
        self.shutdown.cancel();
        let limit = self.supervisor.config().shutdown_time_limit;
        tokio::select! {
            _ = &mut self.server => {}
            () = tokio::time::sleep_until(stop.deadline) => {
                tracing::warn!("requests still in flight after shutdownTimeLimit ({} s); stopping the app anyway", limit.as_secs());
                self.server.abort();
            }
            () = stop.kill_now.cancelled() => self.server.abort(),
        }
        self.supervisor.stop().await;
    }
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
