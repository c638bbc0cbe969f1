//! The app's most recent lines, across its processes and restarts, for `ancm logs`: a ring of
//! the last lines, and a feed of each new one for followers (`ancm logs -f`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// Lines kept for `ancm logs -n N`.
pub(super) const KEPT: usize = 1000;

/// Lines a follower may fall behind by before it misses some (and is told how many).
const FEED: usize = 1024;

/// One line the app printed.
#[derive(Debug, Clone)]
pub struct RecentLine {
    pub pid: u32,
    pub text: Arc<str>,
}

#[derive(Debug)]
struct Inner {
    kept: Mutex<VecDeque<RecentLine>>,
    feed: broadcast::Sender<RecentLine>,
}

/// Shared by every process's output relay; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recent(Arc<Inner>);

impl Default for Recent {
    fn default() -> Recent {
        Recent(Arc::new(Inner {
            kept: Mutex::new(VecDeque::with_capacity(KEPT)),
            feed: broadcast::Sender::new(FEED),
        }))
    }
}

impl Recent {
    pub fn push(&self, pid: u32, text: &str) {
        let line = RecentLine {
            pid,
            text: Arc::from(text),
        };
        let mut kept = self.0.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(line.clone());
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
            .iter()
            .skip(kept.len().saturating_sub(count))
            .cloned()
            .collect();
        (lines, feed)
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
}
