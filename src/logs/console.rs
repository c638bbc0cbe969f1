//! ancm's console: its stdout and stderr, each written by a thread of its own from a bounded
//! queue, so that the app's lines (marked `[app PID]`) and ancm's log lines never interleave
//! mid-line, and nothing else ever waits on a console that is slow or not read at all (a
//! stalled `| tee`, a container runtime's blocking log driver). When a queue is full, lines
//! are dropped and counted, and the count is written where they are missing once the console
//! takes lines again. The stdout log file is written elsewhere and misses nothing.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::Line;

/// Bytes one stream holds waiting for the console at most, besides the batch being written:
/// a console that keeps up never gets near it, and one that does not costs no more.
const QUEUE_BYTES: usize = 1024 * 1024;

/// How long a wait for the console lasts (at exit, or for the message saying why ancm stops)
/// once the console has taken nothing: a slow console gets all the time it needs, one that is
/// not read does not hold ancm.
const PATIENCE: Duration = Duration::from_secs(1);

static STDOUT: Stream = Stream::new(Target::Stdout);
static STDERR: Stream = Stream::new(Target::Stderr);

/// A handle for sending app output to the console; cheap to clone.
#[derive(Debug, Clone)]
pub struct Console {
    stream: &'static Stream,
    /// Whether the app's lines go to a terminal, which shows its colours; anywhere else (a
    /// file, a pipe to a log collector) they would be noise.
    terminal: bool,
    /// The app's last lines, for `ancm logs`.
    recent: super::Recent,
}

/// The app's stream; [`ConsoleThread::join`] waits until the lines sent are written.
#[derive(Debug)]
pub struct ConsoleThread {
    stream: &'static Stream,
}

impl Console {
    /// Starts the writer. The app's lines go to stdout, or with `stdout_reserved` (the helper
    /// protocol owns stdout) to stderr, in order with ancm's log lines.
    pub fn start(stdout_reserved: bool) -> std::io::Result<(Console, ConsoleThread)> {
        let (stream, terminal) = if stdout_reserved {
            (&STDERR, std::io::stderr().is_terminal())
        } else {
            (&STDOUT, std::io::stdout().is_terminal())
        };
        stream.start()?;
        let console = Console {
            stream,
            terminal,
            recent: super::Recent::default(),
        };
        Ok((console, ConsoleThread { stream }))
    }

    /// The app's last lines, across its processes and restarts.
    pub fn recent(&self) -> &super::Recent {
        &self.recent
    }

    /// Whether lines sent may keep the app's escape sequences (colours).
    pub(crate) fn keeps_escapes(&self) -> bool {
        self.terminal && !super::format::json()
    }

    /// Queues `line`, or drops it if the console is that far behind; never waits.
    pub fn send(&self, line: Line) {
        if super::format::json() {
            let mut fields = serde_json::Map::new();
            fields.insert("pid".to_owned(), line.pid.into());
            fields.insert("slot".to_owned(), line.slot.into());
            fields.insert("stream".to_owned(), line.stream.into());
            let mut bytes = super::format::json_line("INFO", &line.text, fields)
                .to_string()
                .into_bytes();
            bytes.push(b'\n');
            self.stream.send(
                Entry::Bytes {
                    bytes,
                    app_text: None,
                },
                false,
            );
            return;
        }
        let mut bytes = Vec::with_capacity(line.text.len() + 16);
        // Writing to a Vec cannot fail.
        let _ = write!(bytes, "[app {}] ", line.pid);
        let text_start = bytes.len();
        bytes.extend_from_slice(line.text.as_bytes());
        bytes.push(b'\n');
        self.stream.send(
            Entry::Bytes {
                bytes,
                app_text: Some(text_start),
            },
            false,
        );
    }
}

impl ConsoleThread {
    /// Waits for the writer to write what it has been sent, giving up on a console that takes
    /// nothing for a while.
    pub fn join(self) {
        self.stream.drain();
    }
}

/// ancm's stderr for its log lines: each write queues one line and never waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        STDERR.send(
            Entry::Bytes {
                bytes: buf.to_vec(),
                app_text: None,
            },
            false,
        );
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `text` to stderr after the log lines queued before it, waiting for room if the
/// console is behind, but not for a console that takes nothing.
pub(crate) fn print_stderr(text: &str) {
    STDERR.send(
        Entry::Bytes {
            bytes: text.as_bytes().to_vec(),
            app_text: None,
        },
        true,
    );
}

/// Waits until what was queued on stdout and stderr is written, giving up on a console that
/// takes nothing for a while.
pub(crate) fn flush() {
    STDOUT.drain();
    STDERR.drain();
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Stdout,
    Stderr,
}

/// One of ancm's two output streams.
#[derive(Debug)]
pub(crate) struct Stream {
    target: Target,
    state: Mutex<State>,
    /// Signalled when there is something to write.
    queued: Condvar,
    /// Signalled when the writer has written a batch.
    written: Condvar,
    /// Whether the writer thread runs; without one, lines are written by their sender.
    thread: OnceLock<bool>,
}

#[derive(Debug)]
struct State {
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Lines dropped since the last entry was queued.
    dropped: u64,
    /// The writer holds a batch it has not finished writing.
    writing: bool,
    /// Batches written so far, to tell a slow console from one that takes nothing.
    batches: u64,
}

#[derive(Debug)]
enum Entry {
    Bytes {
        bytes: Vec<u8>,
        /// Where the app's own text starts, for an app line (shown beside the spinner).
        app_text: Option<usize>,
    },
    Dropped(u64),
}

impl Stream {
    const fn new(target: Target) -> Stream {
        Stream {
            target,
            state: Mutex::new(State {
                entries: VecDeque::new(),
                bytes: 0,
                dropped: 0,
                writing: false,
                batches: 0,
            }),
            queued: Condvar::new(),
            written: Condvar::new(),
            thread: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer that panicked left whole entries behind; they are still good to write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the writer thread, once.
    fn start(&'static self) -> std::io::Result<()> {
        let mut result = Ok(());
        self.thread.get_or_init(|| {
            let name = match self.target {
                Target::Stdout => "ancm-stdout",
                Target::Stderr => "ancm-stderr",
            };
            match std::thread::Builder::new()
                .name(name.into())
                .spawn(move || self.write_forever())
            {
                Ok(_) => true,
                Err(err) => {
                    result = Err(err);
                    false
                }
            }
        });
        result
    }

    /// Queues `entry`; when the queue is full, drops it (counting it) or, with `wait`, waits
    /// for room as long as the console keeps taking lines.
    fn send(&'static self, entry: Entry, wait: bool) {
        if self.start().is_err() {
            // No thread to hand lines to: write them here, as ancm did before it had one.
            self.write_batch(vec![entry], 0);
            return;
        }
        let len = entry.len();
        let mut state = self.lock();
        let mut batches = state.batches;
        while state.bytes + len > QUEUE_BYTES && !state.entries.is_empty() {
            if !wait {
                state.dropped += 1;
                return;
            }
            let (next, timeout) = self
                .written
                .wait_timeout(state, PATIENCE)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if timeout.timed_out() && state.batches == batches {
                state.dropped += 1;
                return;
            }
            batches = state.batches;
        }
        if state.dropped > 0 {
            let dropped = std::mem::take(&mut state.dropped);
            state.entries.push_back(Entry::Dropped(dropped));
        }
        state.bytes += len;
        state.entries.push_back(entry);
        drop(state);
        self.queued.notify_one();
    }

    fn write_forever(&self) {
        loop {
            let (batch, dropped) = {
                let mut state = self.lock();
                while state.entries.is_empty() && state.dropped == 0 {
                    state = self
                        .queued
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.bytes = 0;
                state.writing = true;
                (
                    std::mem::take(&mut state.entries),
                    std::mem::take(&mut state.dropped),
                )
            };
            self.write_batch(batch, dropped);
            let mut state = self.lock();
            state.writing = false;
            state.batches += 1;
            drop(state);
            self.written.notify_all();
        }
    }

    /// Writes `batch` in one go, then the note for `dropped_after` lines dropped after it.
    fn write_batch(&self, batch: impl IntoIterator<Item = Entry>, dropped_after: u64) {
        let mut out = Vec::new();
        let mut last_app_line = None;
        for entry in batch {
            match entry {
                Entry::Bytes { bytes, app_text } => {
                    if let Some(start) = app_text {
                        last_app_line = Some(out.len() + start..out.len() + bytes.len() - 1);
                    }
                    out.extend_from_slice(&bytes);
                }
                Entry::Dropped(n) => dropped_note(&mut out, n),
            }
        }
        if dropped_after > 0 {
            dropped_note(&mut out, dropped_after);
        }
        if let Some(range) = last_app_line.and_then(|range| out.get(range)) {
            let text = String::from_utf8_lossy(range);
            super::spinner::note_line(super::text::plain(&text).as_bytes());
        }
        // Ignore write errors: a closed console must not stop ancm or the app.
        let _ = super::spinner::suspend(|| match self.target {
            Target::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&out).and_then(|()| stdout.flush())
            }
            Target::Stderr => std::io::stderr().lock().write_all(&out),
        });
    }

    /// Waits until everything queued is written, or the console has taken nothing for
    /// [`PATIENCE`].
    fn drain(&self) {
        let mut state = self.lock();
        let mut batches = state.batches;
        while !state.entries.is_empty() || state.writing || state.dropped > 0 {
            let (next, timeout) = self
                .written
                .wait_timeout(state, PATIENCE)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if timeout.timed_out() && state.batches == batches {
                return;
            }
            batches = state.batches;
        }
    }
}

impl Entry {
    fn len(&self) -> usize {
        match self {
            Entry::Bytes { bytes, .. } => bytes.len(),
            Entry::Dropped(_) => 0,
        }
    }
}

fn dropped_note(out: &mut Vec<u8>, n: u64) {
    let lines = if n == 1 { "line" } else { "lines" };
    // Writing to a Vec cannot fail.
    let _ = writeln!(
        out,
        "[ancm] {n} {lines} dropped: the console did not keep up"
    );
}
