//! `ancm ls` and `ancm status`: the instances running on this machine, asked over their
//! control sockets (the admin endpoints, served on a Unix socket in the runtime folder).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::registry::{self, Entry};
use super::status::Status;

/// How long an instance may take to answer before it is shown as not answering.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// Sends `GET path` to the instance behind `socket`.
pub(crate) async fn get(socket: &Path, path: &str) -> anyhow::Result<http::Response<Incoming>> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("no HTTP on the control socket")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::get(path)
        .header(http::header::HOST, "ancm")
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(request).await?)
}

/// One instance's status, or why it cannot be had.
async fn status_of(entry: &Entry) -> Result<Status, String> {
    let asked = async {
        let response = get(&entry.socket, "/status").await?;
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok(serde_json::from_slice::<Status>(&body)?)
    };
    match tokio::time::timeout(ANSWER_WITHIN, asked).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(err)) => {
            // Refused: nobody listens any more (an ancm killed, its pid reused since).
            let refused = err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
            if refused {
                registry::prune(&entry.socket);
            }
            Err(format!("{err:#}"))
        }
        Err(_) => Err(format!("no answer within {} s", ANSWER_WITHIN.as_secs())),
    }
}

/// Every registered instance with its status (or why there is none); gone ones left out.
async fn instances() -> anyhow::Result<(PathBuf, Vec<(Entry, Result<Status, String>)>)> {
    let folder = registry::folder().context("cannot open the runtime folder")?;
    let entries =
        registry::entries(&folder).with_context(|| format!("cannot list {}", folder.display()))?;
    let mut found = Vec::with_capacity(entries.len());
    for entry in entries {
        let status = status_of(&entry).await;
        if let Err(err) = &status {
            if !entry.socket.exists() {
                tracing::debug!(pid = entry.pid, err, "an ancm went away while listed");
                continue;
            }
        }
        found.push((entry, status));
    }
    Ok((folder, found))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `ancm ls`: one line per instance.
pub(super) fn ls() -> anyhow::Result<String> {
    let (_, found) = runtime()?.block_on(instances())?;
    let mut rows = vec![[
        "PID", "APP", "URL", "APP PIDS", "STATE", "UPTIME", "RESTARTS", "ADMIN",
    ]
    .map(str::to_owned)];
    for (entry, status) in &found {
        rows.push(match status {
            Ok(status) => row(status),
            Err(err) => [
                entry.pid.to_string(),
                "?".to_owned(),
                "?".to_owned(),
                "?".to_owned(),
                format!("not answering: {err}"),
                String::new(),
                String::new(),
                String::new(),
            ],
        });
    }
    if found.is_empty() {
        return Ok("no ancm is running\n".to_owned());
    }
    Ok(table(&rows))
}

fn row(status: &Status) -> [String; 8] {
    let pids: Vec<String> = status
        .processes
        .iter()
        .filter_map(|p| p.pid.map(|pid| pid.to_string()))
        .collect();
    [
        status.pid.to_string(),
        status.app_dir.clone(),
        status.urls.join(" "),
        if pids.is_empty() {
            "-".to_owned()
        } else {
            pids.join(",")
        },
        state(status),
        duration(status.uptime_seconds),
        status.restarts.to_string(),
        status.admin.clone().unwrap_or_else(|| "-".to_owned()),
    ]
}

/// The instance's state in a word: draining, ready (with how many of its processes when some
/// are not), or its first process's state.
fn state(status: &Status) -> String {
    if status.draining {
        return "draining".to_owned();
    }
    let ready = status
        .processes
        .iter()
        .filter(|p| p.state == "ready")
        .count();
    match (ready, status.processes.len()) {
        (0, _) => status
            .processes
            .first()
            .map_or_else(|| "-".to_owned(), |p| p.state.clone()),
        (ready, all) if ready == all => "ready".to_owned(),
        (ready, all) => format!("ready {ready}/{all}"),
    }
}

/// Columns padded to their widest cell, the last one not.
fn table(rows: &[[String; 8]]) -> String {
    let mut widths = [0; 8];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `3s`, `4m05s`, `2h07m`, `3d04h`.
pub(crate) fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Whether an instance is the one asked for.
type Matcher = dyn Fn(&Entry, &Status) -> bool;

/// The one instance `target` names: an ancm pid or an app pid, or an app folder (or its
/// web.config); without a target, the only one running.
pub(crate) async fn find(target: Option<&str>) -> anyhow::Result<(Entry, Status)> {
    let (folder, found) = instances().await?;
    let mut answering: Vec<(Entry, Status)> = found
        .into_iter()
        .filter_map(|(entry, status)| status.ok().map(|status| (entry, status)))
        .collect();
    let Some(target) = target else {
        return match answering.len() {
            0 => anyhow::bail!("no ancm is running (none in {})", folder.display()),
            1 => Ok(answering.remove(0)),
            _ => anyhow::bail!(
                "{} ancm instances are running ({}); name one by its pid or app folder",
                answering.len(),
                answering
                    .iter()
                    .map(|(entry, status)| format!("{} for {}", entry.pid, status.app_dir))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    };
    let wanted: Box<Matcher> = match target.parse::<u32>() {
        Ok(pid) => Box::new(move |entry: &Entry, status: &Status| {
            entry.pid == pid || status.processes.iter().any(|p| p.pid == Some(pid))
        }),
        Err(_) => {
            let path = Path::new(target);
            let path = if path.is_file() {
                path.parent().unwrap_or(path)
            } else {
                path
            };
            let folder = std::fs::canonicalize(path)
                .with_context(|| format!("{target}: not an ancm pid, nor an app folder"))?;
            Box::new(move |_: &Entry, status: &Status| {
                std::fs::canonicalize(&status.app_dir).is_ok_and(|dir| dir == folder)
            })
        }
    };
    answering
        .into_iter()
        .find(|(entry, status)| wanted(entry, status))
        .ok_or_else(|| anyhow::anyhow!("no running ancm serves {target} (see ancm ls)"))
}

/// `ancm status [APP|PID]`: one instance in detail, or its `/status` JSON.
pub(super) fn status(target: Option<&str>, json: bool) -> anyhow::Result<String> {
    let (_, status) = runtime()?.block_on(find(target))?;
    if json {
        let mut text = serde_json::to_string_pretty(&status)?;
        text.push('\n');
        return Ok(text);
    }
    Ok(detail(&status))
}

/// `ancm logs [APP|PID] [-n N] [-f]`: the app's last `lines` lines, then (with `follow`)
/// each new one, across restarts, until the instance stops.
pub(super) fn logs(target: Option<&str>, lines: usize, follow: bool) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    runtime()?.block_on(async {
        let (entry, _) = find(target).await?;
        let path = format!("/logs?lines={lines}&follow={}", u8::from(follow));
        let mut body = get(&entry.socket, &path).await?.into_body();
        let mut out = tokio::io::stdout();
        while let Some(frame) = body.frame().await {
            // The instance stopped: its output is over.
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .await
                    .context("cannot write to stdout")?;
                out.flush().await.context("cannot write to stdout")?;
            }
        }
        Ok(())
    })
}

fn detail(status: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ancm {} (version {}): {}, up {}",
        status.pid,
        status.version,
        state(status),
        duration(status.uptime_seconds)
    );
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "  {name:<14}{value}");
    };
    field("app folder", &status.app_dir);
    field("configuration", &status.config_source);
    field("listening", &status.urls.join(" "));
    field("admin", status.admin.as_deref().unwrap_or("off"));
    field("started", &status.started_at);
    field(
        "memory, CPU",
        &format!(
            "{}, {}",
            status.rss_bytes.map_or_else(|| "?".to_owned(), mebibytes),
            status
                .cpu_seconds
                .map_or_else(|| "?".to_owned(), |s| format!("{s:.2} s"))
        ),
    );
    field(
        "history",
        &format!(
            "{}, {}, {}, {}",
            count(status.starts, "start"),
            count(status.restarts, "restart"),
            count(status.recycles, "recycle"),
            count(status.rapid_fail_pauses, "rapid-fail pause"),
        ),
    );
    for process in &status.processes {
        let _ = write!(out, "process {}: {}", process.slot, process.state);
        if let (Some(pid), Some(port)) = (process.pid, process.port) {
            let _ = write!(out, ", pid {pid}, port {port}");
        }
        if let Some(up) = process.uptime_seconds {
            let _ = write!(out, ", up {}", duration(up));
        }
        let _ = writeln!(
            out,
            ", {}, {} in flight",
            count(process.restarts, "restart"),
            count(process.requests_in_flight as u64, "request"),
        );
        if let (Some(rss), Some(cpu)) = (process.rss_bytes, process.cpu_seconds) {
            let _ = writeln!(out, "  memory {}, CPU {cpu:.2} s", mebibytes(rss));
        }
        if let Some(until) = &process.paused_until {
            let _ = writeln!(out, "  paused by rapidFailsPerMinute until {until}");
        }
        if let Some(exit) = &process.last_exit {
            let pid = exit
                .pid
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  last exit: {}{pid} at {}", exit.description, exit.at);
        }
    }
    out
}

/// `1 restart`, `2 restarts`.
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[allow(clippy::cast_precision_loss)]
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(245), "4m05s");
        assert_eq!(duration(7_620), "2h07m");
        assert_eq!(duration(273_600), "3d04h");
    }

    #[test]
    fn table_pads_every_column_but_the_last() {
        let rows = [
            ["PID", "APP", "", "", "", "", "", "ADMIN"].map(str::to_owned),
            ["12345", "/srv/a", "", "", "", "", "", "-"].map(str::to_owned),
        ];
        assert_eq!(
            table(&rows),
            "PID    APP               ADMIN\n12345  /srv/a            -\n"
        );
    }
}
