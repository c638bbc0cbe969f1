//! The helper protocol's messages (docs/helper-protocol.md): the requests that come in on stdin
//! as serde types, with messages that name what is wrong, and the events that go out on stdout,
//! one JSON object per line. Must not import the session or the loop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::{self, Overrides};
use crate::supervisor::{Phase, Supervisor};

/// The protocol version in `hello`; see the document's Versioning section.
const PROTOCOL: u32 = 1;
const CAPABILITIES: [&str; 5] = ["start", "status", "recycle", "stop", "listen"];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub(super) enum Request {
    Start(Box<StartRequest>),
    Status {},
    Recycle {},
    Stop {},
}

/// `start`: the app and `ancm run`'s overrides, in camelCase.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StartRequest {
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
    pub(super) fn request(&self) -> config::Request {
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

/// A request from its JSON, with messages that name the problem.
pub(super) fn parse_request(value: Value) -> Result<Request, String> {
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

/// Writes events, one JSON object per line, in the order they are sent.
#[derive(Clone)]
pub(super) struct Events {
    tx: mpsc::UnboundedSender<Value>,
}

impl Events {
    /// The events, and the stream that carries them to the writer.
    pub(super) fn new() -> (Events, mpsc::UnboundedReceiver<Value>) {
        let (tx, rx) = mpsc::unbounded_channel::<Value>();
        (Events { tx }, rx)
    }

    pub(super) fn send(&self, event: Value) {
        // The writer lives until every sender is gone.
        let _ = self.tx.send(event);
    }

    pub(super) fn error(&self, id: Option<&Value>, message: impl Into<String>) {
        self.send(with_id(
            json!({"event": "error", "message": message.into()}),
            id,
        ));
    }
}

pub(super) fn with_id(mut event: Value, id: Option<&Value>) -> Value {
    if let (Some(id), Some(map)) = (id, event.as_object_mut()) {
        map.insert("id".to_owned(), id.clone());
    }
    event
}

/// `hello`, the first event: the protocol's version and what this helper can do.
pub(super) fn hello() -> Value {
    json!({
        "event": "hello",
        "protocol": PROTOCOL,
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": CAPABILITIES,
    })
}

/// `status`, for a started app.
pub(super) fn status(supervisor: &Supervisor) -> Value {
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
