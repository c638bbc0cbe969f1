//! A lean connection's one deadline (idle, header read, requestTimeout in turn), checked
//! lazily so that a request costs no timer work unless a deadline is near.
//!
//! A leaf: imports nothing of the crate.

use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// One connection's deadline, checked lazily: moving it later only notes the time, and the
/// timer, when it fires early, is set again to the real deadline. A request costs no timer
/// work unless a deadline is near.
pub(super) struct Deadline {
    due: Instant,
    armed: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    pub(super) fn new(due: Instant) -> Deadline {
        Deadline {
            due,
            armed: due,
            sleep: Box::pin(tokio::time::sleep_until(due)),
        }
    }

    pub(super) fn set(&mut self, due: Instant) {
        self.due = due;
        if due < self.armed {
            self.sleep.as_mut().reset(due);
            self.armed = due;
        }
    }

    /// Resolves once the deadline has passed.
    pub(super) async fn passed(&mut self) {
        loop {
            self.sleep.as_mut().await;
            if self.due <= Instant::now() {
                return;
            }
            self.sleep.as_mut().reset(self.due);
            self.armed = self.due;
        }
    }
}
