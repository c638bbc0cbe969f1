//! The start-up spinner: while the app starts and stderr is a terminal, one line shows a
//! spinner, the time elapsed and the app's latest output line. Everything else written to the
//! terminal meanwhile goes through [`suspend`], so lines never tear the spinner apart.
//! Without a terminal there is no spinner, only the usual log lines. When it shows is
//! serving/observe.rs's to decide; this must not import the supervisor.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The spinner on screen, if any.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The app's latest line, kept for a spinner shown after it came: the app may print before
/// the task that shows the spinner has seen it start.
static LATEST: Mutex<String> = Mutex::new(String::new());

/// Whether a spinner can ever show: stderr is a terminal.
fn on_terminal() -> bool {
    static ON_TERMINAL: OnceLock<bool> = OnceLock::new();
    *ON_TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// Runs `write` with the spinner (if any) taken off the screen, then redraws it. Holds the
/// lock throughout while there is a spinner, so that it cannot be removed halfway and redrawn
/// after; without one, lets go first, so that a write to a console nobody reads holds up
/// no one else.
pub(crate) fn suspend<T>(write: impl FnOnce() -> T) -> T {
    let Ok(active) = ACTIVE.lock() else {
        return write();
    };
    if let Some(bar) = active.as_ref() {
        return bar.suspend(write);
    }
    drop(active);
    write()
}

/// Shows `line` (the app's latest output) beside the spinner.
pub(crate) fn note_line(line: &[u8]) {
    if !on_terminal() {
        return;
    }
    let text: String = String::from_utf8_lossy(line).chars().take(120).collect();
    let bar = ACTIVE.lock().ok().and_then(|active| active.clone());
    if let Some(bar) = bar {
        bar.set_message(text.clone());
    }
    if let Ok(mut latest) = LATEST.lock() {
        *latest = text;
    }
}

pub(crate) fn show() {
    let Ok(mut active) = ACTIVE.lock() else {
        return;
    };
    if active.is_some() {
        return;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} starting the app… {elapsed:>3} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    if let Ok(latest) = LATEST.lock() {
        bar.set_message(latest.clone());
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    *active = Some(bar);
}

pub(crate) fn hide() {
    if let Ok(mut active) = ACTIVE.lock() {
        if let Some(bar) = active.take() {
            bar.finish_and_clear();
        }
    }
}
