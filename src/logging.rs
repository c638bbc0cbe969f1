//! ancm's own log: to stderr at the level ANCM_LOG asks (info by default), plus ANCM's
//! diagnostic log when web.config asks for it (debugLevel / debugFile): more detail on the
//! console, and/or every line in a file, written by a background thread. The console's lines
//! are written through logs/ in the console's format (text, or with `--log-format json` one
//! JSON object per line, ancm's and the app's alike: logs/format.rs).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

use crate::config::{DebugLevel, DebugLog, RunAs};
use crate::logs::format;

/// The variable that sets how much ancm logs to stderr.
const LOG_VARIABLE: &str = "ANCM_LOG";

/// Handle on the installed subscriber, for turning the diagnostic log on once the
/// configuration is known. Keep it until exit: dropping it flushes the log file.
pub struct Logging {
    console: reload::Handle<EnvFilter, Registry>,
    file: Arc<DebugFile>,
}

#[derive(Default)]
struct DebugFile {
    writer: OnceLock<tracing_appender::non_blocking::NonBlocking>,
    /// Flushes the file when ancm exits.
    guard: Mutex<Option<tracing_appender::non_blocking::WorkerGuard>>,
    level: OnceLock<tracing::Level>,
}

/// Installs the global subscriber. Call once, first thing.
pub fn init() -> Logging {
    let console_filter =
        EnvFilter::try_from_env(LOG_VARIABLE).unwrap_or_else(|_| EnvFilter::new("info"));
    let (console_filter, console) = reload::Layer::new(console_filter);
    let file = Arc::new(DebugFile::default());
    let file_level = file.clone();
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(DebugFileWriter(file.clone()))
        .with_filter(filter_fn(move |meta| {
            file_level
                .level
                .get()
                .is_some_and(|level| meta.target().starts_with("ancm") && meta.level() <= level)
        }));
    let console_layer = tracing_subscriber::fmt::layer()
        .with_writer(|| crate::logs::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(format::ConsoleLines::new())
        .with_filter(console_filter);
    // A second init (in tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(console_layer)
        .with(file_layer)
        .try_init();
    Logging { console, file }
}

impl Logging {
    /// Turns on the diagnostic log that web.config (or ASPNETCORE_MODULE_DEBUG) asks for.
    /// ANCM_LOG, when set, keeps the say over the console. The file is opened as `user` when
    /// there is one (`--user`): the app's web.config names it.
    pub fn apply(&self, debug: &DebugLog, user: Option<&RunAs>) -> std::io::Result<()> {
        let Some(level) = debug.level.map(to_tracing) else {
            return Ok(());
        };
        if debug.console && std::env::var_os(LOG_VARIABLE).is_none() && level > tracing::Level::INFO
        {
            let filter = EnvFilter::new(format!("info,ancm={level}"));
            if let Err(err) = self.console.reload(filter) {
                tracing::warn!(%err, "cannot raise the console log level");
            }
        }
        if let Some(path) = &debug.file {
            let file = Reopening {
                file: open_debug_file(path, user)?,
                path: path.clone(),
                user: user.cloned(),
                asked: crate::logs::reopen_requests(),
            };
            let (writer, guard) = tracing_appender::non_blocking(file);
            let _ = self.file.writer.set(writer);
            if let Ok(mut slot) = self.file.guard.lock() {
                *slot = Some(guard);
            }
            let _ = self.file.level.set(level);
            let level_name = debug.level.map_or("INFO", DebugLevel::as_str);
            tracing::info!(
                pid = std::process::id(),
                version = env!("CARGO_PKG_VERSION"),
                "diagnostic log ({level_name}) started"
            );
        }
        Ok(())
    }
}

/// Opens (appending) the diagnostic log, as the app's user under `--user` (the app's
/// web.config names it): at start, and again when the log files are reopened.
fn open_debug_file(path: &Path, user: Option<&RunAs>) -> std::io::Result<std::fs::File> {
    crate::logs::open_as::open_append(path, user)
}

/// The diagnostic log file, opened again by its path before the first line after a reopen
/// request (SIGUSR1, SIGHUP: logrotate). Written by tracing-appender's worker thread.
struct Reopening {
    file: std::fs::File,
    path: PathBuf,
    user: Option<RunAs>,
    asked: tokio::sync::watch::Receiver<u64>,
}

impl std::io::Write for Reopening {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.asked.has_changed().unwrap_or(false) {
            self.asked.mark_unchanged();
            match open_debug_file(&self.path, self.user.as_ref()) {
                Ok(file) => self.file = file,
                // Not through tracing: this runs inside its writer. The old file goes on.
                Err(err) => crate::logs::print_stderr(&format!(
                    "ancm: cannot reopen the diagnostic log {}: {err}\n",
                    self.path.display()
                )),
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Logging {
    /// From now on, every console line (ancm's and the app's) is one JSON object, for log
    /// shippers.
    pub fn use_json(&self) {
        format::use_json();
    }

    /// Writes `line` (the reason ancm stops) to stderr after the log lines before it; it may
    /// wait for a slow console, not for one that is not read.
    pub fn eprintln(&self, line: &str) {
        if format::json() {
            let message = line.strip_prefix("ancm: error: ").unwrap_or(line);
            let line = format::json_line("ERROR", message, serde_json::Map::new());
            crate::logs::print_stderr(&format!("{line}\n"));
            return;
        }
        crate::logs::print_stderr(&format!("{line}\n"));
    }

    /// Waits until every line logged or relayed so far is written, giving up on a console
    /// that takes nothing for a second. Call before exit.
    pub fn flush(&self) {
        crate::logs::flush_console();
    }
}

fn to_tracing(level: DebugLevel) -> tracing::Level {
    match level {
        DebugLevel::Error => tracing::Level::ERROR,
        DebugLevel::Warning => tracing::Level::WARN,
        DebugLevel::Info => tracing::Level::INFO,
        DebugLevel::Trace => tracing::Level::TRACE,
    }
}

/// Writes to the diagnostic log file once there is one, and nowhere before.
struct DebugFileWriter(Arc<DebugFile>);

impl<'a> MakeWriter<'a> for DebugFileWriter {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        match self.0.writer.get() {
            Some(writer) => Box::new(writer.make_writer()),
            None => Box::new(std::io::sink()),
        }
    }
}
