//! The app's output (stdout and stderr share one pipe, as in ANCM, so lines keep the order they
//! were written in): relayed line by line to ancm's console (marked as the app's), written to
//! the stdout log file when it is on, kept as a 30 KB tail for the start-failure page, and
//! as the last lines for `ancm logs`. The stdout log can start a new file past a size and keep
//! only the newest files.
//! Reading never stops while the app runs, so the app never blocks on a full pipe: the file
//! gets every line, and the console drops lines rather than wait for a console that is not
//! read.

mod console;
pub mod open_as;
mod recent;
mod tail;
mod text;

use std::path::{Path, PathBuf};

use crate::config::{Rotation, RunAs};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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

/// Longer lines are cut into pieces of this size, so one endless line cannot eat memory.
const MAX_LINE: usize = 64 * 1024;

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
    writer: tokio::io::BufWriter<tokio::fs::File>,
    written: u64,
    prefix: PathBuf,
    rotation: Rotation,
    user: Option<RunAs>,
}

impl Writing {
    /// Past the size limit, goes on in a new file (between two lines, so none is lost) and
    /// deletes the oldest beyond the number kept. A new name needs a new second (ANCM's
    /// names count seconds): until then, lines go on in the same file.
    async fn rotate_if_due(&mut self) {
        let Some(max) = self.rotation.max_size else {
            return;
        };
        if self.written < max {
            return;
        }
        let path = stdout_log_path(
            &self.prefix,
            time::OffsetDateTime::now_utc(),
            std::process::id(),
        );
        if path == self.path {
            return;
        }
        // Room for the new file first, so that no more than `keep` are there at any time
        // (with one kept, the current file goes once the new one is open).
        if let Some(keep) = self.rotation.keep.filter(|&keep| keep > 1) {
            prune(&self.prefix, keep - 1, &self.path, self.user.as_ref()).await;
        }
        let opened = async {
            self.writer.flush().await?;
            open_stdout_log(&path, self.user.as_ref()).await
        };
        match opened.await {
            Ok(file) => {
                tracing::debug!(from = %self.path.display(), to = %path.display(), "stdout log rotated");
                self.writer = tokio::io::BufWriter::new(file);
                self.path = path;
                self.written = 0;
                if let Some(keep) = self.rotation.keep {
                    prune(&self.prefix, keep, &self.path, self.user.as_ref()).await;
                }
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot start a new stdout log file; going on in the current one");
                // Not again before another max of bytes.
                self.written = 0;
            }
        }
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

async fn read_lines(
    pid: u32,
    reader: impl AsyncRead + Unpin,
    stream: &'static str,
    tx: mpsc::Sender<(&'static str, Vec<u8>)>,
) {
    let mut reader = BufReader::with_capacity(16 * 1024, reader);
    loop {
        let mut text = Vec::new();
        match read_line_capped(&mut reader, &mut text).await {
            Ok(0) => break,
            Ok(_) => {
                if tx.send((stream, text)).await.is_err() {
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

async fn collect(
    pid: u32,
    slot: usize,
    mut rx: mpsc::Receiver<(&'static str, Vec<u8>)>,
    console: Console,
    log_file: Option<StdoutLog>,
    tail: Tail,
) {
    let mut file = log_file.map(|log| Writing {
        path: log.path,
        writer: tokio::io::BufWriter::new(log.file),
        written: 0,
        prefix: log.prefix,
        rotation: log.rotation,
        user: log.user,
    });
    if let Some(writing) = &file {
        if let Some(keep) = writing.rotation.keep {
            prune(&writing.prefix, keep, &writing.path, writing.user.as_ref()).await;
        }
    }
    let keep_escapes = console.keeps_escapes();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Write what has piled up, then flush once: fast writers get batched, slow ones
        // still see each line in the file at once.
        while let Some((stream, bytes)) = next.take().or_else(|| rx.try_recv().ok()) {
            let shown = text::lossy(&bytes);
            let plain = text::plain(&shown);
            tail.push(plain.as_bytes());
            console.recent().push(pid, &plain);
            if let Some(writing) = &mut file {
                let written = async {
                    writing.writer.write_all(plain.as_bytes()).await?;
                    writing.writer.write_all(b"\n").await
                };
                if let Err(err) = written.await {
                    tracing::warn!(path = %writing.path.display(), %err, "stdout log stopped: writing to it failed; the app keeps running");
                    file = None;
                } else {
                    writing.written += plain.len() as u64 + 1;
                    writing.rotate_if_due().await;
                }
            }
            let text = if keep_escapes { &shown } else { &plain };
            console.send(Line {
                pid,
                slot,
                stream,
                text: text.to_string(),
            });
        }
        if let Some(writing) = &mut file {
            if let Err(err) = writing.writer.flush().await {
                tracing::warn!(path = %writing.path.display(), %err, "stdout log stopped: writing to it failed; the app keeps running");
                file = None;
            }
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
}
