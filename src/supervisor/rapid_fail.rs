//! The rapidFailsPerMinute gate (spec §3.4): a fixed one-minute window that opens at the first
//! failure; once failures in it exceed the limit, no start happens until the window has passed.

use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct RapidFailWindow {
    limit: u32,
    started: Option<Instant>,
    failures: u32,
}

impl RapidFailWindow {
    pub(crate) fn new(limit: u32) -> Self {
        RapidFailWindow {
            limit,
            started: None,
            failures: 0,
        }
    }

    pub(crate) fn record(&mut self, now: Instant) {
        match self.started {
            Some(start) if now.duration_since(start) < WINDOW => {}
            _ => {
                self.started = Some(now);
                self.failures = 0;
            }
        }
        self.failures += 1;
    }

    /// When starts may resume, if they must wait. Like ANCM, the limit is exceeded only when
    /// failures are strictly more than it: the default 10 allows ten and pauses at the 11th.
    pub(crate) fn paused_until(&self, now: Instant) -> Option<Instant> {
        let start = self.started?;
        let end = start + WINDOW;
        (self.failures > self.limit && now < end).then_some(end)
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_after_more_than_the_limit_until_the_window_ends() {
        let t0 = Instant::now();
        let mut window = RapidFailWindow::new(2);
        window.record(t0);
        window.record(t0 + Duration::from_secs(1));
        assert_eq!(window.paused_until(t0 + Duration::from_secs(1)), None);
        window.record(t0 + Duration::from_secs(2));
        assert_eq!(
            window.paused_until(t0 + Duration::from_secs(2)),
            Some(t0 + WINDOW)
        );
        assert_eq!(window.paused_until(t0 + WINDOW), None);
        // A failure after the window opens a new one.
        window.record(t0 + WINDOW + Duration::from_secs(1));
        assert_eq!(window.failures(), 1);
    }

    #[test]
    fn zero_pauses_after_the_first_failure() {
        let t0 = Instant::now();
        let mut window = RapidFailWindow::new(0);
        assert_eq!(window.paused_until(t0), None);
        window.record(t0);
        assert!(window.paused_until(t0).is_some());
    }
}
