//! The access log (`--access-log PATH|-`, off by default): one line per request in the W3C
//! extended log format IIS writes, plus the app's pid. A request formats its line when it is
//! over and hands it to a writer thread through a bounded queue, never waiting: when the queue
//! is full the line is dropped and counted, and the count is logged. A write that fails (a full
//! disk) drops lines, counted and noted in the file once writing works again; the file is
//! reopened by its path on request (SIGUSR1, SIGHUP: logrotate), with the header again in a new
//! file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use http::{header, Request, StatusCode};

use crate::logs::file::LineFile;

/// Lines waiting for the writer at most.
const QUEUE: usize = 16 * 1024;

/// How long the writer lets lines gather after a write before it takes more (see
/// [`write_lines`]).
const GATHER_FOR: Duration = Duration::from_millis(10);

/// The fields of each line, as the `#Fields` directive names them.
const FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port c-ip cs(User-Agent) sc-status time-taken x-app-pid";

struct AccessLog {
    lines: SyncSender<String>,
    dropped: AtomicU64,
    /// A reopen was asked for; the writer is woken by an empty line.
    reopen: AtomicBool,
    /// ancm is ending ([`finish`]): the writer takes what is queued at once, and says so here.
    finishing: AtomicBool,
    drained: (Mutex<bool>, Condvar),
}

/// How long ancm's exit waits for the lines still queued to be written.
const FINISH_FOR: Duration = Duration::from_secs(1);

static LOG: OnceLock<AccessLog> = OnceLock::new();

/// Whether requests are logged.
pub(crate) fn enabled() -> bool {
    LOG.get().is_some()
}

/// Where the access log goes.
#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    /// `-` is stdout; anything else a file, appended to.
    pub fn from_arg(path: &Path) -> Target {
        if path.as_os_str() == "-" {
            Target::Stdout
        } else {
            Target::File(path.to_owned())
        }
    }
}

/// Opens the access log and starts its writer; from then on every request is logged.
pub fn start(target: &Target) -> std::io::Result<()> {
    let (out, name): (Box<dyn std::io::Write + Send>, String) = match target {
        Target::Stdout => (
            Box::new(std::io::stdout()),
            "access log (stdout)".to_owned(),
        ),
        Target::File(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            (
                Box::new(open(path)?),
                format!("access log {}", path.display()),
            )
        }
    };
    let (lines, queue) = sync_channel(QUEUE);
    let path = match target {
        Target::File(path) => Some(path.clone()),
        Target::Stdout => None,
    };
    let out = LineFile::new(out, name, note);
    std::thread::Builder::new()
        .name("ancm-access-log".to_owned())
        .spawn(move || write_lines(out, path.as_deref(), &queue))?;
    let _ = LOG.set(AccessLog {
        lines,
        dropped: AtomicU64::new(0),
        reopen: AtomicBool::new(false),
        finishing: AtomicBool::new(false),
        drained: (Mutex::new(false), Condvar::new()),
    });
    Ok(())
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Writes the lines still queued before ancm exits, waiting at most [`FINISH_FOR`]: the writer
/// may be letting lines gather. Called once the proxy has stopped, off the async runtime.
pub(crate) fn finish() {
    let Some(log) = LOG.get() else {
        return;
    };
    log.finishing.store(true, Ordering::Relaxed);
    // A full queue wakes the writer anyway.
    let _ = log.lines.try_send(String::new());
    let (done, woken) = &log.drained;
    let Ok(done) = done.lock() else {
        return;
    };
    let _ = woken.wait_timeout_while(done, FINISH_FOR, |done| !*done);
}

/// The note for lines a failed write dropped: a W3C remark, which log readers skip.
fn note(lines: u64, error: &str) -> String {
    let noun = if lines == 1 { "line" } else { "lines" };
    format!("#Remark: ancm: {lines} {noun} dropped: {error}")
}

/// Reopens the access log file by its path before its next line (see [`crate::logs::reopen`]).
pub(crate) fn reopen() {
    if let Some(log) = LOG.get() {
        log.reopen.store(true, Ordering::Relaxed);
        // A full queue wakes the writer anyway.
        let _ = log.lines.try_send(String::new());
    }
}

/// The directives a W3C log file starts with.
fn push_header(out: &mut LineFile<Box<dyn std::io::Write + Send>>) {
    let software = format!("#Software: ancm {}", env!("CARGO_PKG_VERSION"));
    let date = format!("#Date: {}", stamp(time::OffsetDateTime::now_utc()));
    let fields = format!("#Fields: {FIELDS}");
    for line in [&software, "#Version: 1.0", &date, &fields] {
        out.push(line.as_bytes());
    }
}

/// Writes lines as they come, flushing whenever the queue is empty: a burst is written in one
/// go, and a quiet log is on disk at once. After each flush the writer lets [`GATHER_FOR`]
/// pass before it takes more, so that under load it wakes once per batch rather than once per
/// request: each wake is a futex call on the request's thread and a thread to schedule, CPU
/// taken from the proxy and the app, enough on a small machine to slow an app's answers.
fn write_lines(
    mut out: LineFile<Box<dyn std::io::Write + Send>>,
    path: Option<&Path>,
    queue: &Receiver<String>,
) {
    push_header(&mut out);
    out.flush();
    while let Ok(line) = queue.recv() {
        let mut next = Some(line);
        loop {
            let Some(line) = next.take().or_else(|| queue.try_recv().ok()) else {
                out.flush();
                if let Some(log) = LOG
                    .get()
                    .filter(|log| log.finishing.load(Ordering::Relaxed))
                {
                    let (done, woken) = &log.drained;
                    if let Ok(mut done) = done.lock() {
                        *done = true;
                    }
                    woken.notify_all();
                    break;
                }
                // Lines of the next moment wait in the (bounded) queue meanwhile; none came,
                // and the writer waits for the next.
                std::thread::sleep(GATHER_FOR);
                match queue.try_recv() {
                    Ok(line) => {
                        next = Some(line);
                        continue;
                    }
                    Err(_) => break,
                }
            };
            if LOG
                .get()
                .is_some_and(|log| log.reopen.swap(false, Ordering::Relaxed))
            {
                if let Some(path) = path {
                    reopen_file(&mut out, path);
                }
            }
            if !line.is_empty() {
                out.push(line.as_bytes());
                if out.pending() >= 64 * 1024 {
                    out.flush();
                }
            }
        }
        out.flush();
        let dropped = LOG
            .get()
            .map_or(0, |log| log.dropped.swap(0, Ordering::Relaxed));
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access log lines dropped: the log could not keep up"
            );
        }
    }
}

/// Goes on in the file at `path`, created again (with the header) if it was renamed or deleted.
fn reopen_file(out: &mut LineFile<Box<dyn std::io::Write + Send>>, path: &Path) {
    match open(path) {
        Ok(file) => {
            let fresh = file.metadata().is_ok_and(|meta| meta.len() == 0);
            out.replace(Box::new(file));
            if fresh {
                push_header(out);
            }
            tracing::debug!(path = %path.display(), "access log reopened");
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "cannot reopen the access log; going on in the file open");
        }
    }
}

/// `2026-12-01 18:24:32`: UTC, as IIS writes it.
fn stamp(at: time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// A request being logged: what is known from its head, until it is over.
#[derive(Debug)]
pub(crate) struct Entry {
    method: String,
    stem: String,
    query: String,
    user_agent: String,
    client: SocketAddr,
    server: SocketAddr,
    status: u16,
    pid: Option<u32>,
}

/// The app process that answered a request, carried on its response for the access log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppPid(pub(crate) u32);

impl Entry {
    pub(crate) fn new<B>(request: &Request<B>, client: SocketAddr, server: SocketAddr) -> Entry {
        let uri = request.uri();
        let user_agent = request.headers().get(header::USER_AGENT);
        Entry::from_head(
            request.method().as_str(),
            uri.path(),
            uri.query(),
            user_agent.map(http::HeaderValue::as_bytes),
            client,
            server,
        )
    }

    /// A request's line from what either proxy path read of its head: the method, the target's
    /// path and query string, and the (first) User-Agent.
    pub(crate) fn from_head(
        method: &str,
        path: &str,
        query: Option<&str>,
        user_agent: Option<&[u8]>,
        client: SocketAddr,
        server: SocketAddr,
    ) -> Entry {
        Entry {
            method: method.to_owned(),
            stem: field(path),
            query: query.map_or_else(|| "-".to_owned(), field),
            user_agent: user_agent
                .map(|ua| field(&String::from_utf8_lossy(ua)))
                .unwrap_or_else(|| "-".to_owned()),
            client,
            server,
            status: 0,
            pid: None,
        }
    }

    pub(crate) fn answered(&mut self, status: StatusCode, pid: Option<u32>) {
        self.status = status.as_u16();
        self.pid = pid;
    }

    /// The request is over after `took`: its line goes to the writer.
    pub(crate) fn finish(&self, took: Duration) {
        let Some(log) = LOG.get() else { return };
        let line = format!(
            "{} {} {} {} {} {} {} {} {} {} {}",
            stamp(time::OffsetDateTime::now_utc()),
            self.server.ip(),
            self.method,
            self.stem,
            self.query,
            self.server.port(),
            self.client.ip(),
            self.user_agent,
            self.status,
            took.as_millis(),
            self.pid
                .map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
        );
        if let Err(TrySendError::Full(_)) = log.lines.try_send(line) {
            log.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A value as a W3C log field: spaces become `+` (as IIS writes a User-Agent), an empty value
/// `-`, and control characters are dropped so that one request is one line.
fn field(value: &str) -> String {
    if value.is_empty() {
        return "-".to_owned();
    }
    value
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == ' ' { '+' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_one_token_each() {
        assert_eq!(
            field("Mozilla/5.0 (X11; Linux)"),
            "Mozilla/5.0+(X11;+Linux)"
        );
        assert_eq!(field(""), "-");
        assert_eq!(field("a\r\nb"), "ab");
    }

    #[test]
    fn a_line_has_every_field() {
        let request = Request::get("/path/x?a=1&b=2")
            .header(header::USER_AGENT, "curl/8.5.0")
            .body(())
            .expect("request");
        let mut entry = Entry::new(
            &request,
            "10.0.0.7:50000".parse().expect("client"),
            "127.0.0.1:8080".parse().expect("server"),
        );
        entry.answered(StatusCode::OK, Some(4242));
        assert_eq!(entry.stem, "/path/x");
        assert_eq!(entry.query, "a=1&b=2");
        assert_eq!(entry.user_agent, "curl/8.5.0");
        assert_eq!(FIELDS.split(' ').count(), 12);
    }
}
