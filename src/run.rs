//! `ancm run`: binds the front listeners, starts the supervisor and the proxy, announces where
//! to browse, and on a signal stops in three steps: stop accepting and finish requests in
//! flight, stop the app, exit.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;
use crate::logs::Console;
use crate::proxy::{self, Proxy};
use crate::signals::Signals;
use crate::supervisor::{self, Phase, Supervisor};

/// Runs the app behind the proxy until a stop signal, then stops everything cleanly.
pub(crate) async fn run(
    config: AppConfig,
    console: Console,
    #[cfg(unix)] guard: Option<Arc<supervisor::Guard>>,
    mut signals: Signals,
) -> anyhow::Result<()> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Bind before starting the app: a taken port is reported before anything runs.
    let mut listeners = Vec::with_capacity(config.listen.len());
    for addr in &config.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("--listen {addr}: cannot listen there"))?;
        listeners.push(listener);
    }
    let mut urls = Vec::with_capacity(listeners.len());
    for listener in &listeners {
        let addr = listener.local_addr()?;
        let base = config.appl_path.trim_end_matches('/');
        urls.push(format!("http://{addr}{base}/"));
    }

    tracing::info!("ancm listening on {}; starting the app", urls.join(" and "));
    let shutdown_limit = config.shutdown_time_limit;
    let supervisor = Supervisor::start(supervisor::Context {
        config: Arc::new(config),
        console,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("cannot set up the HTTP client for the shutdown message")?,
        #[cfg(unix)]
        guard,
    });
    let proxy = Arc::new(Proxy::new(supervisor.clone()));
    let shutdown = CancellationToken::new();
    let mut server = tokio::spawn(proxy::serve(proxy, listeners, shutdown.clone()));
    let announcer = tokio::spawn(announce(supervisor.clone(), urls.join(" and ")));

    signals.next().await;
    tracing::info!(
        "stopping: finishing requests in flight, then stopping the app (Ctrl+C again kills it now)"
    );
    shutdown.cancel();
    let kill_now = CancellationToken::new();
    let second_signal = tokio::spawn({
        let supervisor = supervisor.clone();
        let kill_now = kill_now.clone();
        async move {
            signals.next().await;
            tracing::warn!("second stop request: killing the app now");
            kill_now.cancel();
            supervisor.kill_now();
        }
    });

    tokio::select! {
        _ = &mut server => {}
        () = tokio::time::sleep(shutdown_limit) => {
            tracing::warn!("requests still in flight after shutdownTimeLimit ({} s); stopping the app anyway", shutdown_limit.as_secs());
            server.abort();
        }
        () = kill_now.cancelled() => server.abort(),
    }
    supervisor.stop().await;
    announcer.abort();
    second_signal.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Says where to browse each time a new app process is ready.
async fn announce(supervisor: Supervisor, urls: String) {
    let mut status = supervisor.watch();
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
