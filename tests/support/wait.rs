//! Waiting on a condition with a deadline: the suite's one polling loop. Imports nothing from a
//! test module.

use std::path::Path;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// How often [`eventually_ok`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `poll` gives `Ok`, looking again every 10 ms, and returns its value; fails the
/// test after [`DEADLINE`] naming `what` and the state the last `Err` described. The suite's one
/// polling loop: tests wait on conditions with a deadline, never sleep to synchronise.
pub fn eventually_ok<T, E: std::fmt::Display>(
    what: &str,
    mut poll: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match poll() {
            Ok(value) => return value,
            Err(state) => {
                let state = state.to_string();
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}{}{state}",
                    if state.is_empty() { "" } else { ": " }
                );
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until `condition` holds; see [`eventually_ok`].
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    eventually_ok(what, || if condition() { Ok(()) } else { Err("") });
}

/// Waits until `found` gives a value and returns it; see [`eventually_ok`].
pub fn eventually_some<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    eventually_ok(what, || found().ok_or(""))
}

/// Waits until `path` exists and its text (invalid UTF-8 replaced) satisfies `done`; returns
/// the text.
pub fn wait_file(path: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    eventually_ok(what, || {
        let text = std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        if path.exists() && done(&text) {
            Ok(text)
        } else {
            Err(format!("not in {}:\n{text}", path.display()))
        }
    })
}
