//! The app's output (stdout and stderr share one pipe, as in ANCM, so lines keep the order they
//! were written in): relayed line by line to ancm's console (marked as the app's), written to
//! the stdout log file when it is on, kept as a 30 KB tail for the start-failure page, and
//! as the last lines for `ancm logs`. The stdout log can start a new file past a size and keep
//! only the newest files, and is reopened on request (SIGUSR1, SIGHUP: logrotate).
//! Reading never stops while the app runs, so the app never blocks on a full pipe: the file
//! gets every line it can take (a full disk drops lines, counted and noted in the file once
//! there is room), and the console drops lines rather than wait for a console that is not
//! read. A line longer than [`LINE_LIMIT`] is cut, with a note saying how much went.

mod console;
pub(crate) mod file;
pub(crate) mod format;
pub mod open_as;
mod recent;
pub(crate) mod spinner;
mod tail;
mod text;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::config::{Rotation, RunAs};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use file::LineFile;

pub(crate) use console::{flush as flush_console, print_stderr, LogWriter};
pub use console::{Console, ConsoleThread};
#[cfg(unix)]
pub use open_as::{is_opener_process, run_opener};
pub use recent::{Recent, RecentLine};
pub use tail::Tail;

/// One line of the app's output for the console, without its line ending.
#[derive(Debug)]
pub struct Line {
    pub pid: u32,
    /// Which of the app's processes wrote it (0 unless processesPerApplication > 1).
    pub slot: usize,
    /// `stdout`, `stderr`, or `stdout+stderr` where both share one pipe (so that their lines
    /// keep the order they were written in) and cannot be told apart.
    pub stream: &'static str,
    pub text: String,
}

/// Protocol lines longer than this are cut into pieces, so one endless line cannot eat memory.
const MAX_LINE: usize = 64 * 1024;

/// The app's lines keep this much, and the rest up to the line end is replaced by a note: as
/// Docker splits its log lines, so that a flood of long lines costs the console, the stdout log
/// and `ancm logs` a bounded amount (at most 4 MiB in flight per process, 64 lines in
/// `ancm logs`'s 1 MiB) while a stack trace in one JSON line still fits.
pub const LINE_LIMIT: usize = 16 * 1024;

/// Stdout log bytes gathered before they are written, in a burst.
const BATCH: usize = 64 * 1024;

/// Requests to reopen the log files, counted.
static REOPEN: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::Sender::new(0));

/// Reopen requests from now on, for a writer that reopens its file before its next line.
pub(crate) fn reopen_requests() -> watch::Receiver<u64> {
    REOPEN.subscribe()
}

/// Reopens the log files written here (the stdout logs, and through `reopen_requests` the
/// diagnostic log) by their path, between two lines, so that a file logrotate renamed or
/// deleted starts again: SIGUSR1 and SIGHUP ask for it, with the access log (signals.rs).
pub fn reopen() {
    REOPEN.send_modify(|asked| *asked += 1);
}

/// The name ANCM gives the stdout log (spec §3.8):
/// `<prefix>_<yyyyMMddHHmmss>_<pid>.log`, in UTC, where `pid` is the host's (ancm's) process id.
pub fn stdout_log_path(prefix: &Path, now: time::OffsetDateTime, host_pid: u32) -> PathBuf {
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .unwrap_or_default();
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!("_{stamp}_{host_pid}.log"));
    PathBuf::from(name)
}

/// The stdout log file a process's output goes to, and when to start the next one.
#[derive(Debug)]
pub struct StdoutLog {
    pub path: PathBuf,
    pub file: tokio::fs::File,
    /// The prefix names are made from.
    pub prefix: PathBuf,
    pub rotation: Rotation,
    /// The app's user (`--user`), as whom the files are opened and deleted.
    pub user: Option<RunAs>,
}

/// The stdout log being written: its file, and how much this process has written to it.
struct Writing {
    path: PathBuf,
    out: LineFile<std::fs::File>,
    written: u64,
    prefix: PathBuf,
    rotation: Rotation,
    user: Option<RunAs>,
}

impl Writing {
    fn new(
        path: PathBuf,
        file: std::fs::File,
        prefix: PathBuf,
        rotation: Rotation,
        user: Option<RunAs>,
    ) -> Writing {
        let name = format!("stdout log {}", path.display());
        Writing {
            path,
            out: LineFile::new(file, name, file::dropped_note),
            written: 0,
            prefix,
            rotation,
            user,
        }
    }

    /// Writes the lines gathered, off the async runtime.
    async fn flush(mut self) -> Option<Writing> {
        let flushed = tokio::task::spawn_blocking(move || {
            self.out.flush();
            self
        });
        flushed.await.ok()
    }

    /// Goes on in a file opened again at the same path (created again if it was renamed or
    /// deleted); the lines before went to the old one.
    async fn reopen(self) -> Option<Writing> {
        let mut writing = self.flush().await?;
        match open_stdout_log(&writing.path, writing.user.as_ref()).await {
            Ok(file) => {
                let file = file.into_std().await;
                tracing::debug!(path = %writing.path.display(), "stdout log reopened");
                writing.out.replace(file);
            }
            Err(err) => {
                tracing::warn!(path = %writing.path.display(), %err, "cannot reopen the stdout log; going on in the file open");
            }
        }
        Some(writing)
    }

    /// Past the size limit, goes on in a new file (between two lines, so none is lost) and
    /// deletes the oldest beyond the number kept. A new name needs a new second (ANCM's
    /// names count seconds): until then, lines go on in the same file.
    async fn rotate_if_due(self) -> Option<Writing> {
        let Some(max) = self.rotation.max_size else {
            return Some(self);
        };
        if self.written < max {
            return Some(self);
        }
        let path = stdout_log_path(
            &self.prefix,
            time::OffsetDateTime::now_utc(),
            std::process::id(),
        );
        if path == self.path {
            return Some(self);
        }
        // Room for the new file first, so that no more than `keep` are there at any time
        // (with one kept, the current file goes once the new one is open).
        if let Some(keep) = self.rotation.keep.filter(|&keep| keep > 1) {
            prune(&self.prefix, keep - 1, &self.path, self.user.as_ref()).await;
        }
        let mut writing = self.flush().await?;
        match open_stdout_log(&path, writing.user.as_ref()).await {
            Ok(file) => {
                tracing::debug!(from = %writing.path.display(), to = %path.display(), "stdout log rotated");
                writing.out.replace(file.into_std().await);
                writing.out.rename(format!("stdout log {}", path.display()));
                writing.path = path;
                writing.written = 0;
                if let Some(keep) = writing.rotation.keep {
                    prune(&writing.prefix, keep, &writing.path, writing.user.as_ref()).await;
                }
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot start a new stdout log file; going on in the current one");
                // Not again before another max of bytes.
                writing.written = 0;
            }
        }
        Some(writing)
    }
}

/// Deletes the oldest stdout log files of `prefix` (by their stamp) beyond `keep`, never
/// `current`, as the app's user when there is one.
async fn prune(prefix: &Path, keep: u32, current: &Path, user: Option<&RunAs>) {
    let (prefix, current, user) = (prefix.to_owned(), current.to_owned(), user.cloned());
    let tried =
        tokio::task::spawn_blocking(move || open_as::prune(&prefix, keep, &current, user.as_ref()))
            .await
            .unwrap_or_default();
    for (path, result) in tried {
        match result {
            Ok(()) => tracing::debug!(path = %path.display(), "deleted an old stdout log file"),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot delete an old stdout log file")
            }
        }
    }
}

/// Opens (appending) the stdout log for one start of the app, creating missing folders, as
/// the app's user when there is one (`--user`); never through a symlink at the end of `path`.
pub async fn open_stdout_log(
    path: &Path,
    user: Option<&RunAs>,
) -> std::io::Result<tokio::fs::File> {
    let (path, user) = (path.to_owned(), user.cloned());
    let file = tokio::task::spawn_blocking(move || open_as::open_append(&path, user.as_ref()))
        .await
        .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(file))
}

/// Starts relaying one app process's output, read from `readers` (one pipe that both its
/// stdout and stderr write to; two where the platform cannot share one). The returned task
/// ends once every reader reaches end of file and every line has been written out, so
/// awaiting it means no line is lost.
pub fn capture<R>(
    pid: u32,
    slot: usize,
    readers: Vec<R>,
    console: Console,
    log_file: Option<StdoutLog>,
    tail: Tail,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    let streams: &[&'static str] = match readers.len() {
        1 => &["stdout+stderr"],
        _ => &["stdout", "stderr"],
    };
    for (reader, &stream) in readers.into_iter().zip(streams.iter().cycle()) {
        tokio::spawn(read_lines(pid, reader, stream, tx.clone()));
    }
    drop(tx);
    tokio::spawn(collect(pid, slot, rx, console, log_file, tail))
}

/// One line of the app's output as read: its first [`LINE_LIMIT`] bytes, and how many more
/// there were.
struct Read {
    stream: &'static str,
    bytes: Vec<u8>,
    cut: u64,
}

async fn read_lines(
    pid: u32,
    reader: impl AsyncRead + Unpin,
    stream: &'static str,
    tx: mpsc::Sender<Read>,
) {
    let mut reader = BufReader::with_capacity(16 * 1024, reader);
    loop {
        let mut bytes = Vec::new();
        match read_line_cut(&mut reader, &mut bytes, LINE_LIMIT).await {
            Ok(None) => break,
            Ok(Some(cut)) => {
                if tx.send(Read { stream, bytes, cut }).await.is_err() {
                    break;
                }
            }
            Err(err) => {
                tracing::debug!(pid, %err, "reading the app's output failed");
                break;
            }
        }
    }
}

/// Reads one line (without `\n` or `\r\n`), keeping its first `limit` bytes in `out` and
/// reading the rest up to the line end without keeping it. Returns how many bytes were not
/// kept, or `None` at end of file.
async fn read_line_cut(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    out: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<u64>> {
    let mut consumed = 0u64;
    let mut cut = 0u64;
    // The last two bytes of the line, kept or not, to tell its line end.
    let mut last = [0u8; 2];
    let mut ended = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let keep = take.min(limit.saturating_sub(out.len()));
        out.extend_from_slice(&buf[..keep]);
        cut += (take - keep) as u64;
        for &b in &buf[take.saturating_sub(2)..take] {
            last = [last[1], b];
        }
        reader.consume(take);
        consumed += take as u64;
        if done {
            ended = true;
            break;
        }
    }
    if consumed == 0 {
        return Ok(None);
    }
    if ended {
        let end: u64 = if last[0] == b'\r' { 2 } else { 1 };
        // The line end is not part of the line, whether it was kept or not.
        let dropped_end = end.min(cut);
        cut -= dropped_end;
        let kept_end = usize::try_from(end - dropped_end).unwrap_or(0);
        out.truncate(out.len().saturating_sub(kept_end));
    }
    Ok(Some(cut))
}

/// Reads one line (without `\n` or `\r\n`) of at most [`MAX_LINE`] bytes; returns the number
/// of bytes consumed, 0 at end of file.
pub(crate) async fn read_line_capped(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        let room = MAX_LINE - out.len();
        let (take, done) = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len().min(room), buf.len() >= room),
        };
        out.extend_from_slice(&buf[..take]);
        reader.consume(take);
        consumed += take;
        if done {
            break;
        }
    }
    if out.last() == Some(&b'\n') {
        out.pop();
        if out.last() == Some(&b'\r') {
            out.pop();
        }
    }
    Ok(consumed)
}

/// The note that ends a line cut at [`LINE_LIMIT`].
fn cut_note(cut: u64) -> String {
    format!(" [ancm: line cut, {cut} bytes dropped]")
}

async fn collect(
    pid: u32,
    slot: usize,
    mut rx: mpsc::Receiver<Read>,
    console: Console,
    log_file: Option<StdoutLog>,
    tail: Tail,
) {
    let mut reopen = reopen_requests();
    let mut file = match log_file {
        Some(log) => {
            let file = log.file.into_std().await;
            Some(Writing::new(
                log.path,
                file,
                log.prefix,
                log.rotation,
                log.user,
            ))
        }
        None => None,
    };
    if let Some(writing) = &file {
        if let Some(keep) = writing.rotation.keep {
            prune(&writing.prefix, keep, &writing.path, writing.user.as_ref()).await;
        }
    }
    let keep_escapes = console.keeps_escapes();
    loop {
        let first = tokio::select! {
            read = rx.recv() => match read {
                Some(read) => read,
                None => break,
            },
            Ok(()) = reopen.changed(), if file.is_some() => {
                if let Some(writing) = file.take() {
                    file = writing.reopen().await;
                }
                continue;
            }
        };
        let mut next = Some(first);
        // Write what has piled up, then flush once: fast writers get batched, slow ones
        // still see each line in the file at once.
        while let Some(read) = next.take().or_else(|| rx.try_recv().ok()) {
            // Asked within a burst that does not end: reopened between two lines all the same.
            if file.is_some() && reopen.has_changed().unwrap_or(false) {
                reopen.mark_unchanged();
                if let Some(writing) = file.take() {
                    file = writing.reopen().await;
                }
            }
            let lossy = text::lossy(&read.bytes);
            let mut plain = text::plain(&lossy);
            let mut shown = if keep_escapes {
                text::terminal(&lossy)
            } else {
                plain.clone()
            };
            if read.cut > 0 {
                let note = cut_note(read.cut);
                plain.to_mut().push_str(&note);
                shown.to_mut().push_str(&note);
            }
            tail.push(plain.as_bytes());
            console.recent().push(pid, &plain);
            if let Some(mut writing) = file.take() {
                writing.out.push(plain.as_bytes());
                writing.written += plain.len() as u64 + 1;
                let due = writing
                    .rotation
                    .max_size
                    .is_some_and(|max| writing.written >= max);
                let rotated = if due {
                    writing.rotate_if_due().await
                } else {
                    Some(writing)
                };
                // A burst that does not end is written as it goes, never gathered whole.
                file = match rotated {
                    Some(writing) if writing.out.pending() >= BATCH => writing.flush().await,
                    other => other,
                };
            }
            console.send(Line {
                pid,
                slot,
                stream: read.stream,
                text: shown.into_owned(),
            });
        }
        if let Some(writing) = file.take() {
            file = writing.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_name_follows_ancm() {
        let now = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let path = stdout_log_path(Path::new("/app/logs/stdout"), now, 4242);
        assert_eq!(path, Path::new("/app/logs/stdout_20260102030405_4242.log"));
    }

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        let mut input = b"one\r\ntwo\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        let mut reader = BufReader::new(&input[..]);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if read_line_capped(&mut reader, &mut line)
                .await
                .expect("read")
                == 0
            {
                break;
            }
            lines.push(line);
        }
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], b"one");
        assert_eq!(lines[1], b"two");
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3].len(), 10);
    }

    #[tokio::test]
    async fn the_app_s_long_lines_are_cut_once() {
        let mut input = b"one\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend(b"\r\n");
        input.extend(std::iter::repeat_n(b'y', 95));
        input.extend(b"\r\nlast");
        let mut reader = BufReader::with_capacity(7, &input[..]);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            match read_line_cut(&mut reader, &mut line, 96)
                .await
                .expect("read")
            {
                Some(cut) => lines.push((line, cut)),
                None => break,
            }
        }
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], (b"one".to_vec(), 0));
        assert_eq!(lines[1], (vec![b'x'; 96], 4));
        // The limit falls within the line end.
        assert_eq!(lines[2], (vec![b'y'; 95], 0));
        assert_eq!(lines[3], (b"last".to_vec(), 0));
    }
}
