//! The two gates on a restart: [`Backoff`], which spaces repeated failures out, and
//! [`RapidFailWindow`], the rapidFailsPerMinute limit (spec §3.4) that pauses starts for the
//! rest of the minute. Plain counters over the time they are given; the slot applies them.
//!
//! Imports nothing of the crate.

use std::time::Duration;

use tokio::time::Instant;

/// After this long up, a process counts as healthy and the restart backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The first repeated failure waits this long; each further one twice as long, up to the cap.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Restart backoff: the first restart after a failure is immediate; repeated failures wait
/// 100 ms, 200 ms, 400 ms ... up to 5 s; a process that stayed up a while starts it over.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    /// Failures since the app was last healthy.
    streak: u32,
}

impl Backoff {
    /// A start failed, or a process exited after being up for `up_for`.
    pub(super) fn failed(&mut self, up_for: Option<Duration>) {
        if up_for.is_some_and(|up| up >= HEALTHY_AFTER) {
            self.streak = 0;
        }
        self.streak = self.streak.saturating_add(1);
    }

    pub(super) fn reset(&mut self) {
        self.streak = 0;
    }

    /// Failures since the app was last healthy.
    pub(super) fn streak(&self) -> u32 {
        self.streak
    }

    /// How long to wait before the next start.
    pub(super) fn delay(&self) -> Duration {
        match self.streak {
            0 | 1 => Duration::ZERO,
            n => BACKOFF_BASE
                .saturating_mul(1 << (n - 2).min(16))
                .min(BACKOFF_CAP),
        }
    }
}

/// The rapidFailsPerMinute gate: a fixed one-minute window that opens at the first failure;
/// once failures in it exceed the limit, no start happens until the window has passed.
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
    fn backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() {
        let mut backoff = Backoff::default();
        let mut delays = Vec::new();
        for _ in 0..9 {
            backoff.failed(None);
            delays.push(backoff.delay().as_millis());
        }
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        // A crash after a long healthy run is a first failure again: restart at once.
        backoff.failed(Some(Duration::from_secs(60)));
        assert_eq!(backoff.delay(), Duration::ZERO);
        // A short run does not reset it.
        backoff.failed(Some(Duration::from_secs(1)));
        assert_eq!(backoff.delay(), Duration::from_millis(100));
    }

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
