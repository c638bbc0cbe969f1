//! One `ancm helper` session: the app it started (one at most) and one method per op (start,
//! status, recycle, stop), with the task that turns the supervisor's events into protocol
//! events. Must not import the stdin/stdout loop (mod.rs).

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::protocol::{self, with_id, Events, StartRequest};
use crate::config;
use crate::serving::stop::{Hangup, KillNow};
use crate::serving::{supervise, Host, Serving, Stop};
use crate::signals::Signals;
use crate::supervisor::{Event, EventKind, FailureKind, Phase, RecycleError, Supervisor};
use crate::watch::Reload;

/// The app once started: the supervisor, and the proxy when `listen` was given.
enum App {
    /// The module forwards to the app itself; ancm watches the app folder.
    Supervised {
        supervisor: Supervisor,
        _watch: Option<crate::watch::Watch>,
    },
    Serving(Serving),
}

impl App {
    fn supervisor(&self) -> &Supervisor {
        match self {
            App::Supervised { supervisor, .. } => supervisor,
            App::Serving(serving) => &serving.supervisor,
        }
    }

    async fn stop(self, stop: &Stop) {
        match self {
            App::Supervised { supervisor, .. } => supervisor.stop().await,
            App::Serving(serving) => serving.stop(stop).await,
        }
    }
}

/// What the helper has started, and where its events go.
pub(super) struct Session {
    events: Events,
    app: Option<App>,
    forwarder: Option<JoinHandle<()>>,
}

impl Session {
    pub(super) fn new(events: Events) -> Session {
        Session {
            events,
            app: None,
            forwarder: None,
        }
    }

    /// `start`: loads the configuration and starts the app, behind the proxy when it asks to
    /// listen. One start per helper.
    pub(super) async fn start(&mut self, host: &Host, start: &StartRequest, id: Option<&Value>) {
        let events = &self.events;
        if self.app.is_some() {
            events.error(id, "the app is already started; one start per helper");
            return;
        }
        // Read now, and again whenever web.config changes.
        let reload: Reload = {
            let request = start.request();
            Arc::new(move || config::load(&request))
        };
        let config = match reload() {
            Ok(config) => config,
            Err(err) => {
                events.send(json!({"event": "failed", "reason": err.to_string(), "output": ""}));
                return;
            }
        };
        let started = if config.listen.is_empty() {
            supervise(host, config, Some(reload), None)
                .await
                .map(|(supervisor, watch)| App::Supervised {
                    supervisor,
                    _watch: watch,
                })
        } else {
            Serving::start(host, config, Some(reload))
                .await
                .map(App::Serving)
        };
        let started = match started {
            Ok(started) => started,
            Err(err) => {
                events.send(json!({"event": "failed", "reason": format!("{err:#}"), "output": ""}));
                return;
            }
        };
        let urls = match &started {
            App::Serving(serving) => serving.urls.clone(),
            App::Supervised { .. } => Vec::new(),
        };
        self.forwarder = Some(tokio::spawn(forward(
            started.supervisor().events(),
            events.clone(),
            urls,
            started.supervisor().slot_count(),
        )));
        self.app = Some(started);
    }

    /// `status`: the app's, or idle before `start`.
    pub(super) fn status(&self, id: Option<&Value>) {
        let status = match &self.app {
            Some(app) => protocol::status(app.supervisor()),
            None => json!({"event": "status", "state": "idle"}),
        };
        self.events.send(with_id(status, id));
    }

    /// `recycle`: a new process replaces the running one, in the background, so that status
    /// and stop are answered meanwhile.
    pub(super) fn recycle(&self, id: Option<Value>) {
        let Some(app) = &self.app else {
            self.events
                .error(id.as_ref(), "nothing to recycle: send start first");
            return;
        };
        let supervisor = app.supervisor().clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let old_pid = match &supervisor.watch().borrow().phase {
                Phase::Ready(backend) => Some(backend.pid),
                _ => None,
            };
            match supervisor.recycle().await {
                Ok(_) => {}
                Err(RecycleError::Failed(failure)) => events.send(with_id(
                    json!({
                        "event": "recycleFailed",
                        "reason": failure.kind.to_string(),
                        "output": failure.output,
                        "pid": old_pid,
                    }),
                    id.as_ref(),
                )),
                Err(RecycleError::NotRunning) => events.error(
                    id.as_ref(),
                    "nothing to recycle: the app is not running (starting, paused or stopping)",
                ),
            }
        });
    }

    /// End of input, a signal or `stop`: stops gracefully (a second signal kills the app), then
    /// says so.
    pub(super) async fn stop(self, signals: Signals) {
        self.events.send(json!({"event": "stopping"}));
        if let Some(app) = self.app {
            let supervisor = app.supervisor().clone();
            let limit = supervisor.config().shutdown_time_limit;
            let kill_now = KillNow::on_second_signal(signals, supervisor, Hangup::Kills);
            let stop = Stop::after(limit, kill_now);
            app.stop(&stop).await;
            drop(stop);
        }
        if let Some(forwarder) = self.forwarder {
            let _ = forwarder.await;
        }
        self.events.send(json!({"event": "stopped"}));
    }
}

/// Turns the supervisor's events into protocol events, until every process has stopped.
async fn forward(
    mut rx: broadcast::Receiver<Event>,
    events: Events,
    urls: Vec<String>,
    slots: usize,
) {
    let mut ready_pids = vec![None; slots];
    let mut stopped = 0;
    loop {
        let event = match rx.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the helper fell behind the app's events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut out = match event.kind {
            EventKind::Starting { attempt } => json!({"event": "starting", "attempt": attempt}),
            EventKind::Ready(backend) => {
                if let Some(pid) = ready_pids.get_mut(event.slot) {
                    *pid = Some(backend.pid);
                }
                let mut ready = json!({
                    "event": "ready",
                    "pid": backend.pid,
                    "port": backend.addr.port(),
                    "token": backend.token.to_str().unwrap_or_default(),
                });
                if !urls.is_empty() {
                    ready["listen"] = json!(urls);
                }
                ready
            }
            EventKind::Failed(failure) => match &failure.kind {
                FailureKind::Exited {
                    before_ready: false,
                    ..
                } => json!({
                    "event": "exited",
                    "pid": ready_pids.get(event.slot).copied().flatten(),
                    "reason": failure.kind.to_string(),
                    "output": failure.output,
                }),
                _ => json!({
                    "event": "failed",
                    "reason": failure.kind.to_string(),
                    "output": failure.output,
                }),
            },
            EventKind::Paused { until, limit } => json!({
                "event": "paused",
                "reason": format!("the app failed more than rapidFailsPerMinute ({limit}) times within a minute"),
                "retryInSecs": until.saturating_duration_since(Instant::now()).as_secs() + 1,
            }),
            EventKind::Recycling => json!({"event": "recycling"}),
            // The helper says these itself, in order with its exit.
            EventKind::Stopping => continue,
            EventKind::Stopped => {
                stopped += 1;
                if stopped >= slots {
                    return;
                }
                continue;
            }
        };
        if slots > 1 {
            out["slot"] = json!(event.slot);
        }
        events.send(out);
    }
}
