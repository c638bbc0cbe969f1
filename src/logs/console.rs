//! ancm's console: the app's lines, marked `[app PID]`, written by one thread so that they
//! never interleave mid-line with each other or with ancm's own log lines, and never block
//! the async runtime on a slow terminal.

use std::io::{IsTerminal, Write};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::Line;

/// A handle for sending app output to the console; cheap to clone.
#[derive(Debug, Clone)]
pub struct Console {
    tx: mpsc::Sender<Line>,
    /// Whether the app's lines go to a terminal, which shows its colours; anywhere else (a
    /// file, a pipe to a log collector) they would be noise.
    terminal: bool,
}

/// Owns the writer thread; [`ConsoleThread::join`] waits until every line sent is written.
#[derive(Debug)]
pub struct ConsoleThread {
    handle: JoinHandle<()>,
}

impl Console {
    /// Starts the writer. The app's lines go to stdout, or with `stdout_reserved` (the helper
    /// protocol owns stdout) to stderr.
    pub fn start(stdout_reserved: bool) -> std::io::Result<(Console, ConsoleThread)> {
        // Bounded: a terminal that cannot keep up slows the app's output down instead of
        // growing memory, as a plain pipe would.
        let (tx, mut rx) = mpsc::channel::<Line>(1024);
        let handle = std::thread::Builder::new()
            .name("ancm-console".into())
            .spawn(move || {
                while let Some(line) = rx.blocking_recv() {
                    crate::progress::note_line(super::text::plain(&line.text).as_bytes());
                    // Ignore write errors: a closed terminal must not stop the app.
                    let _ = crate::progress::suspend(|| {
                        if stdout_reserved {
                            write_line(&mut std::io::stderr().lock(), &line)
                        } else {
                            write_line(&mut std::io::stdout().lock(), &line)
                        }
                    });
                }
            })?;
        let terminal = if stdout_reserved {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Ok((Console { tx, terminal }, ConsoleThread { handle }))
    }

    /// Whether lines sent may keep the app's escape sequences (colours).
    pub(crate) fn keeps_escapes(&self) -> bool {
        self.terminal
    }

    pub async fn send(&self, line: Line) {
        // The writer thread only goes away at exit, after every sender is dropped.
        let _ = self.tx.send(line).await;
    }
}

impl ConsoleThread {
    /// Waits for the writer thread to write what it has been sent; call once every
    /// [`Console`] handle is dropped.
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

fn write_line(out: &mut impl Write, line: &Line) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(line.text.len() + 16);
    write!(buf, "[app {}] ", line.pid)?;
    buf.extend_from_slice(line.text.as_bytes());
    buf.push(b'\n');
    out.write_all(&buf)
}
