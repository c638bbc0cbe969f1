//! `ancm run`: serves the app (serving/) with the admin endpoints beside it, announces where
//! to browse, recycles the app on SIGHUP, and on a stop signal stops in three steps: stop
//! accepting and finish requests in flight, stop the app, exit.

use std::process::ExitCode;
use std::sync::Arc;

use crate::admin;
use crate::cli::{self, RunArgs};
use crate::config::{self, AppConfig, Request};
use crate::logging::Logging;
use crate::logs;
use crate::proxy;
use crate::serving::observe::{self, Spinner};
use crate::serving::stop::{Hangup, KillNow};
use crate::serving::{host, Host, Serving, Stop};
use crate::signals::Signal;
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
    let serving = Serving::start(&host, config, Some(reload.clone())).await?;
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
    let announcers = observe::announce(&serving.supervisor, &serving.urls.join(" and "));
    let spinner = Spinner::follow(&serving.supervisor);
    let service_manager = observe::systemd(&serving.supervisor);

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
    let kill_now =
        KillNow::on_second_signal(host.signals, serving.supervisor.clone(), Hangup::Ignored);
    // The stop's one deadline, made now: the shutdown delay, then shutdownTimeLimit for the
    // requests in flight; the app then has shutdownTimeLimit to exit. Worst case from the
    // signal to exit: shutdownDelay + 2 x shutdownTimeLimit.
    let config = serving.supervisor.config();
    let delay = config.shutdown_delay;
    let stop = Stop::after(delay + config.shutdown_time_limit, kill_now);
    if !delay.is_zero() {
        tracing::info!(
            "serving {delay:?} more (the shutdown delay) while /readyz answers 503, so that load balancers take this instance out first"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.kill_now.cancelled() => {}
        }
    }
    spinner.stop();
    serving.stop(&stop).await;
    operators.stop().await;
    for task in announcers.into_iter().chain(reloads).chain(service_manager) {
        task.abort();
    }
    drop(stop);
    tracing::info!("stopped");
    Ok(())
}
