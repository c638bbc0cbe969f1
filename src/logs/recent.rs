//! The app's most recent lines, across its processes and restarts, for `ancm logs`: a ring of
//! the last lines, bounded in lines and in bytes (`--logs-keep`), and a feed of each new one
//! for followers (`ancm logs -f`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// Lines kept for `ancm logs -n N` at most.
pub(super) const KEPT: usize = 1000;

/// Bytes of text kept by default (`--logs-keep`'s default, which config owns).
pub(super) const DEFAULT_BYTES: usize = crate::config::DEFAULT_LOGS_KEEP;

/// Lines a follower may fall behind by before it misses some (and is told how many).
const FEED: usize = 1024;

/// One line the app printed.
#[derive(Debug, Clone)]
pub struct RecentLine {
    pub pid: u32,
    pub text: Arc<str>,
}

#[derive(Debug)]
struct Kept {
    lines: VecDeque<RecentLine>,
    /// The text bytes of `lines`.
    bytes: usize,
}

#[derive(Debug)]
struct Inner {
    kept: Mutex<Kept>,
    /// At most this many bytes of text are kept.
    budget: AtomicUsize,
    feed: broadcast::Sender<RecentLine>,
}

/// Shared by every process's output relay; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recent(Arc<Inner>);

impl Default for Recent {
    fn default() -> Recent {
        Recent(Arc::new(Inner {
            kept: Mutex::new(Kept {
                lines: VecDeque::new(),
                bytes: 0,
            }),
            budget: AtomicUsize::new(DEFAULT_BYTES),
            feed: broadcast::Sender::new(FEED),
        }))
    }
}

impl Recent {
    /// Keeps at most `bytes` of text from now on (and the lines over it go at once).
    pub fn keep_bytes(&self, bytes: usize) {
        self.0.budget.store(bytes, Ordering::Relaxed);
        let mut kept = self.0.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.trim(0, bytes);
    }

    pub fn push(&self, pid: u32, text: &str) {
        let line = RecentLine {
            pid,
            text: Arc::from(text),
        };
        let budget = self.0.budget.load(Ordering::Relaxed);
        let mut kept = self.0.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.trim(text.len(), budget);
        if text.len() <= budget {
            kept.bytes += text.len();
            kept.lines.push_back(line.clone());
        }
        // Under the lock, so that a follower sees each line once: in its start or its feed.
        let _ = self.0.feed.send(line);
    }

    /// The last `count` lines, and (with `follow`) every line after them.
    pub fn last(
        &self,
        count: usize,
        follow: bool,
    ) -> (Vec<RecentLine>, Option<broadcast::Receiver<RecentLine>>) {
        let kept = self.0.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let feed = follow.then(|| self.0.feed.subscribe());
        let lines = kept
            .lines
            .iter()
            .skip(kept.lines.len().saturating_sub(count))
            .cloned()
            .collect();
        (lines, feed)
    }
}

impl Kept {
    /// Drops the oldest lines until one more of `len` bytes fits in `budget`.
    fn trim(&mut self, len: usize, budget: usize) {
        while !self.lines.is_empty() && (self.lines.len() >= KEPT || self.bytes + len > budget) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.text.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_lines_then_each_new_one_once() {
        let recent = Recent::default();
        for i in 0..KEPT + 5 {
            recent.push(1, &format!("line {i}"));
        }
        let (lines, feed) = recent.last(2, true);
        let texts: Vec<&str> = lines.iter().map(|l| &*l.text).collect();
        assert_eq!(texts, ["line 1003", "line 1004"]);
        recent.push(2, "after");
        let next = feed.expect("feed").recv().await.expect("a line");
        assert_eq!((next.pid, &*next.text), (2, "after"));
        assert_eq!(recent.last(usize::MAX, false).0.len(), KEPT);
    }

    #[test]
    fn long_lines_are_kept_within_the_bytes() {
        let recent = Recent::default();
        let long = "x".repeat(16 * 1024);
        for _ in 0..KEPT {
            recent.push(1, &long);
        }
        let (lines, _) = recent.last(usize::MAX, false);
        assert_eq!(lines.len(), DEFAULT_BYTES / long.len());
        recent.keep_bytes(40_000);
        recent.push(1, "short");
        let texts: Vec<usize> = recent
            .last(usize::MAX, false)
            .0
            .iter()
            .map(|l| l.text.len())
            .collect();
        assert_eq!(texts, [16 * 1024, 16 * 1024, 5]);
        // A line over the whole budget is followed, not kept.
        recent.keep_bytes(100);
        recent.push(1, &long);
        assert!(recent.last(usize::MAX, false).0.is_empty());
    }
}
