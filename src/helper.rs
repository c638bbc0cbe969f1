//! `ancm helper`: the out-of-process helper for native web-server modules. Requests come in as
//! newline-delimited JSON on stdin, events go out the same way on stdout, ancm's log and the
//! app's output go to stderr. The protocol is documented in docs/helper-protocol.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides};
use crate::host::Host;
use crate::run::{serve, supervise, Serving};
use crate::supervisor::{Event, EventKind, FailureKind, Phase, RecycleError, Supervisor};
use crate::watch::Reload;

/// The protocol version in `hello`; see the document's Versioning section.
const PROTOCOL: u32 = 1;
const CAPABILITIES: [&str; 5] = ["start", "status", "recycle", "stop", "listen"];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
enum Request {
    Start(Box<StartRequest>),
    Status {},
    Recycle {},
    Stop {},
}

/// `start`: the app and `ancm run`'s overrides, in camelCase.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartRequest {
    app_path: PathBuf,
    process_path: Option<String>,
    arguments: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    stdout_log: Option<String>,
    startup_time_limit: Option<Value>,
    shutdown_time_limit: Option<Value>,
    rapid_fails_per_minute: Option<Value>,
    request_timeout: Option<Value>,
    max_request_body: Option<Value>,
    virtual_path: Option<String>,
    #[serde(default)]
    strip_virtual_path: bool,
    forwarded_for: Option<String>,
    #[serde(default)]
    shutdown_message: bool,
    #[serde(default)]
    port_env: Vec<String>,
    launcher_path: Option<String>,
    launcher_args: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    listen: Vec<SocketAddr>,
    processes: Option<Value>,
    #[serde(default)]
    lazy: bool,
}

impl StartRequest {
    /// What the configuration is loaded from, at start and on each reload.
    fn request(&self) -> config::Request {
        config::Request {
            app: self.app_path.clone(),
            overrides: self.overrides(),
            command: self.command.clone(),
            listen: self.listen.clone(),
            run: None,
        }
    }

    fn overrides(&self) -> Overrides {
        // Numbers may come as JSON numbers or strings; config validates either as text.
        let text = |v: &Option<Value>| {
            v.as_ref().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        Overrides {
            process_path: self.process_path.clone(),
            arguments: self.arguments.clone(),
            env: self.env.iter().map(|(n, v)| format!("{n}={v}")).collect(),
            env_file: None,
            stdout_log: self.stdout_log.clone(),
            stdout_log_max_size: None,
            stdout_log_keep: None,
            startup_time_limit: text(&self.startup_time_limit),
            shutdown_time_limit: text(&self.shutdown_time_limit),
            rapid_fails_per_minute: text(&self.rapid_fails_per_minute),
            request_timeout: text(&self.request_timeout),
            max_request_body: text(&self.max_request_body),
            app_path: self.virtual_path.clone(),
            strip_app_path: self.strip_virtual_path,
            forwarded_for: self.forwarded_for.clone(),
            shutdown_message: self.shutdown_message,
            port_env: self.port_env.clone(),
            launcher_path: self.launcher_path.clone(),
            launcher_args: self.launcher_args.clone(),
            processes: text(&self.processes),
            lazy: self.lazy,
        }
    }
}

/// Writes events, one JSON object per line, in the order they are sent.
#[derive(Clone)]
struct Events {
    tx: mpsc::UnboundedSender<Value>,
}

impl Events {
    fn send(&self, event: Value) {
        // The writer lives until every sender is gone.
        let _ = self.tx.send(event);
    }

    fn error(&self, id: Option<&Value>, message: impl Into<String>) {
        self.send(with_id(
            json!({"event": "error", "message": message.into()}),
            id,
        ));
    }
}

fn with_id(mut event: Value, id: Option<&Value>) -> Value {
    if let (Some(id), Some(map)) = (id, event.as_object_mut()) {
        map.insert("id".to_owned(), id.clone());
    }
    event
}

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

    async fn stop(self, kill_now: &CancellationToken) {
        match self {
            App::Supervised { supervisor, .. } => supervisor.stop().await,
            App::Serving(serving) => serving.stop(kill_now).await,
        }
    }
}

pub(crate) async fn run(mut host: Host) -> anyhow::Result<ExitCode> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let events = Events { tx };
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(event) = rx.recv().await {
            let mut line = event.to_string();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    events.send(json!({
        "event": "hello",
        "protocol": PROTOCOL,
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": CAPABILITIES,
    }));

    let mut app: Option<App> = None;
    let mut forwarder: Option<tokio::task::JoinHandle<()>> = None;
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line_number = 0u64;
    loop {
        let mut line = Vec::new();
        let read = tokio::select! {
            read = crate::logs::read_line_capped(&mut stdin, &mut line) => read,
            // Every signal stops here, SIGHUP included: the web server that drives the helper
            // asks for recycles through the protocol.
            signal = host.signals.next() => {
                tracing::info!("{signal} received: stopping gracefully");
                break;
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        line_number += 1;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(err) => {
                events.error(None, format!("line {line_number}: not JSON: {err}"));
                continue;
            }
        };
        let id = value.get("id").cloned();
        let request = match parse_request(value) {
            Ok(request) => request,
            Err(message) => {
                events.error(id.as_ref(), format!("line {line_number}: {message}"));
                continue;
            }
        };
        match request {
            Request::Start(start) => {
                if app.is_some() {
                    events.error(
                        id.as_ref(),
                        "the app is already started; one start per helper",
                    );
                    continue;
                }
                // Read now, and again whenever web.config changes.
                let reload: Reload = {
                    let request = start.request();
                    Arc::new(move || config::load(&request))
                };
                let config = match reload() {
                    Ok(config) => config,
                    Err(err) => {
                        events.send(
                            json!({"event": "failed", "reason": err.to_string(), "output": ""}),
                        );
                        continue;
                    }
                };
                let started = if config.listen.is_empty() {
                    supervise(&host, config, Some(reload), None)
                        .await
                        .map(|(supervisor, watch)| App::Supervised {
                            supervisor,
                            _watch: watch,
                        })
                } else {
                    serve(&host, config, Some(reload)).await.map(App::Serving)
                };
                let started = match started {
                    Ok(started) => started,
                    Err(err) => {
                        events.send(
                            json!({"event": "failed", "reason": format!("{err:#}"), "output": ""}),
                        );
                        continue;
                    }
                };
                let urls = match &started {
                    App::Serving(serving) => serving.urls.clone(),
                    App::Supervised { .. } => Vec::new(),
                };
                forwarder = Some(tokio::spawn(forward(
                    started.supervisor().events(),
                    events.clone(),
                    urls,
                    started.supervisor().slot_count(),
                )));
                app = Some(started);
            }
            Request::Status {} => {
                let status = match &app {
                    Some(app) => status(app.supervisor()),
                    None => json!({"event": "status", "state": "idle"}),
                };
                events.send(with_id(status, id.as_ref()));
            }
            Request::Recycle {} => {
                let Some(app) = &app else {
                    events.error(id.as_ref(), "nothing to recycle: send start first");
                    continue;
                };
                let supervisor = app.supervisor().clone();
                let events = events.clone();
                // In the background, so that status and stop are answered meanwhile.
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
            Request::Stop {} => break,
        }
    }

    // End of input, a signal or `stop`: stop gracefully, then say so and exit.
    events.send(json!({"event": "stopping"}));
    if let Some(app) = app {
        let kill_now = CancellationToken::new();
        let second_signal = tokio::spawn({
            let kill_now = kill_now.clone();
            let supervisor = app.supervisor().clone();
            let mut signals = host.signals;
            async move {
                let signal = signals.again().await;
                tracing::warn!("{signal} received again: killing the app now");
                kill_now.cancel();
                supervisor.kill_now();
            }
        });
        app.stop(&kill_now).await;
        second_signal.abort();
    }
    if let Some(forwarder) = forwarder {
        let _ = forwarder.await;
    }
    events.send(json!({"event": "stopped"}));
    drop(events);
    let _ = writer.await;
    Ok(ExitCode::SUCCESS)
}

/// A request from its JSON, with messages that name the problem.
fn parse_request(value: Value) -> Result<Request, String> {
    let op = match value.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(other) => return Err(format!("\"op\" must be a string, not {other}")),
        None => return Err("no \"op\": expected start, status, recycle or stop".to_owned()),
    };
    if !["start", "status", "recycle", "stop"].contains(&op.as_str()) {
        return Err(format!(
            "unknown op {op:?}: expected start, status, recycle or stop"
        ));
    }
    let mut value = value;
    if let Some(map) = value.as_object_mut() {
        map.remove("id");
    }
    serde_json::from_value(value).map_err(|err| format!("bad {op:?} request: {err}"))
}

fn status(supervisor: &Supervisor) -> Value {
    let status = supervisor.watch().borrow().clone();
    let (state, pid, port) = match &status.phase {
        Phase::Idle => ("idle", None, None),
        Phase::Starting | Phase::Backoff { .. } => ("starting", None, None),
        Phase::Ready(backend) => ("ready", Some(backend.pid), Some(backend.addr.port())),
        Phase::Paused { .. } => ("paused", None, None),
        Phase::Offline => ("offline", None, None),
        Phase::Stopping => ("stopping", None, None),
        Phase::Stopped => ("stopped", None, None),
    };
    json!({
        "event": "status",
        "state": state,
        "pid": pid,
        "port": port,
        "restarts": status.restarts,
        "uptimeSecs": status.ready_since.map(|t| t.elapsed().as_secs_f64()),
        "attempt": status.attempt,
    })
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
