//! A log file written a line at a time that outlives a full disk: a write that fails drops
//! the lines it held (counted, never half a line left open), later lines try again, and once
//! writing works again a note in the file says how many lines are missing and why. The file
//! can be swapped for a reopened one between two lines (logrotate).

use std::io::Write;

/// What the note for dropped lines says, from their count and the error.
pub(crate) type Note = fn(u64, &str) -> String;

/// The stdout log's note, as the console writes its own.
pub(crate) fn dropped_note(lines: u64, error: &str) -> String {
    let noun = if lines == 1 { "line" } else { "lines" };
    format!("[ancm] {lines} {noun} dropped: {error}")
}

pub(crate) struct LineFile<W> {
    out: W,
    /// Whole lines, each with its `\n`, waiting to be written.
    pending: Vec<u8>,
    lines: u64,
    failing: Option<Failing>,
    /// What the file is and where, for ancm's log: `stdout log /app/logs/stdout_…`.
    name: String,
    note: Note,
}

/// Since the last write that failed.
struct Failing {
    dropped: u64,
    error: String,
    /// The file ends within a line (a write stopped part way): the next write ends it first.
    cut: bool,
}

impl<W: Write> LineFile<W> {
    pub(crate) fn new(out: W, name: String, note: Note) -> LineFile<W> {
        LineFile {
            out,
            pending: Vec::new(),
            lines: 0,
            failing: None,
            name,
            note,
        }
    }

    /// Queues one line (without its line end) for the next [`LineFile::flush`].
    pub(crate) fn push(&mut self, line: &[u8]) {
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        self.lines += 1;
    }

    /// Bytes waiting for [`LineFile::flush`].
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Lines dropped since writing last failed.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.failing.as_ref().map_or(0, |failing| failing.dropped)
    }

    /// Writes the queued lines (after the note for lines dropped before them, if any); what a
    /// failed write held is dropped and counted. Blocking.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.lines);
        if let Some(failing) = &mut self.failing {
            let mut note = Vec::new();
            if failing.cut {
                note.push(b'\n');
            }
            note.extend_from_slice((self.note)(failing.dropped, &failing.error).as_bytes());
            note.push(b'\n');
            let (done, result) = write_counted(&mut self.out, &note);
            if let Err(err) = result {
                failing.dropped += lines;
                failing.error = err.to_string();
                failing.cut = ends_within_a_line(&note[..done], failing.cut);
                self.pending.clear();
                return;
            }
            tracing::info!(
                dropped = failing.dropped,
                "{}: writing works again; the lines dropped meanwhile are noted in it",
                self.name
            );
            self.failing = None;
        }
        let (done, result) = write_counted(&mut self.out, &self.pending);
        if let Err(err) = result {
            let written = self.pending[..done].iter().filter(|&&b| b == b'\n').count();
            let dropped = lines - written as u64;
            tracing::warn!(
                %err,
                "{}: writing failed; its lines are dropped and counted until writing works again",
                self.name
            );
            self.failing = Some(Failing {
                dropped,
                error: err.to_string(),
                cut: ends_within_a_line(&self.pending[..done], false),
            });
        }
        self.pending.clear();
    }

    /// What the file is named in ancm's log from now on.
    pub(crate) fn rename(&mut self, name: String) {
        self.name = name;
    }

    /// Writes what is queued to the current file, then goes on in `out`.
    pub(crate) fn replace(&mut self, out: W) {
        self.flush();
        if let Some(failing) = &mut self.failing {
            // The new file starts with whole lines.
            failing.cut = false;
        }
        self.out = out;
    }
}

/// Writes `bytes`, returning how many were written before an error, if any.
fn write_counted(out: &mut impl Write, bytes: &[u8]) -> (usize, std::io::Result<()>) {
    let mut done = 0;
    while done < bytes.len() {
        match out.write(&bytes[done..]) {
            Ok(0) => return (done, Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return (done, Err(err)),
        }
    }
    (done, out.flush())
}

/// Whether, after `written` (of what started at a line start, or within one if `cut`), the
/// file ends within a line.
fn ends_within_a_line(written: &[u8], cut: bool) -> bool {
    written.last().map_or(cut, |&b| b != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk with room for `room` more bytes; what is written lands in `file`.
    struct Disk {
        file: Vec<u8>,
        room: usize,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.file.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_drops_whole_lines_and_says_so_once_there_is_room() {
        let disk = Disk {
            file: Vec::new(),
            room: 10,
        };
        let mut log = LineFile::new(disk, "test log".into(), dropped_note);
        log.push(b"one");
        log.push(b"two two");
        log.flush();
        assert_eq!(log.dropped(), 1);
        log.push(b"three");
        log.flush();
        assert_eq!(log.dropped(), 2);
        assert_eq!(log.out.file, b"one\ntwo tw");
        log.out.room = 1000;
        log.push(b"four");
        log.flush();
        assert_eq!(log.dropped(), 0);
        assert_eq!(
            String::from_utf8_lossy(&log.out.file),
            "one\ntwo tw\n[ancm] 2 lines dropped: No space left on device (os error 28)\nfour\n"
        );
    }
}
