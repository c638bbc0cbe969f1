//! `ancm helper`: the out-of-process helper for native web-server modules. Requests come in as
//! newline-delimited JSON on stdin, events go out the same way on stdout, ancm's log and the
//! app's output go to stderr. The protocol is documented in docs/helper-protocol.md; its
//! messages are in protocol.rs, what each op does in session.rs, and this is the loop that reads
//! stdin and writes stdout. Neither of them imports this loop.

mod protocol;
mod session;

use std::process::ExitCode;

use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};

use crate::serving::{host, Host};
use protocol::{Events, Request};
use session::Session;

/// `ancm helper`, with stdout kept for the protocol.
pub(crate) fn command() -> anyhow::Result<ExitCode> {
    host::run_with(true, run)
}

async fn run(mut host: Host) -> anyhow::Result<ExitCode> {
    let (events, mut rx) = Events::new();
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
    events.send(protocol::hello());

    let mut session = Session::new(events.clone());
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
        let request = match protocol::parse_request(value) {
            Ok(request) => request,
            Err(message) => {
                events.error(id.as_ref(), format!("line {line_number}: {message}"));
                continue;
            }
        };
        match request {
            Request::Start(start) => session.start(&host, &start, id.as_ref()).await,
            Request::Status {} => session.status(id.as_ref()),
            Request::Recycle {} => session.recycle(id),
            Request::Stop {} => break,
        }
    }

    // End of input, a signal or `stop`: stop gracefully, then say so and exit.
    session.stop(host.signals).await;
    drop(events);
    let _ = writer.await;
    Ok(ExitCode::SUCCESS)
}
