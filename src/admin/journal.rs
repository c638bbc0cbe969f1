//! What happened to the app's processes since ancm started, as the supervisor's events tell
//! it: starts, exits by cause (and the last one of each slot, with its time), restarts,
//! recycles and rapid-fail pauses, with wall-clock times for `/status`.

use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::supervisor::{Event, EventKind, FailureKind};

/// Why an app process went away, as the `cause` label of `ancm_app_exits_total` says it.
pub(crate) const EXIT_CAUSES: [&str; 6] = [
    "exit_code",
    "signal",
    "start_timeout",
    "spawn_failure",
    "port_taken",
    "lost",
];

/// The record, shared by the task that follows the events and the admin endpoints.
#[derive(Debug)]
pub(crate) struct Journal {
    entries: Mutex<Entries>,
}

/// The counts and the per-slot records at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entries {
    pub(crate) starts: u64,
    pub(crate) restarts: u64,
    pub(crate) recycles: u64,
    pub(crate) pauses: u64,
    /// Indexed as [`EXIT_CAUSES`].
    pub(crate) exits: [u64; EXIT_CAUSES.len()],
    pub(crate) slots: Vec<SlotRecord>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SlotRecord {
    /// The current (or last) process and when it became ready.
    pub(crate) pid: Option<u32>,
    pub(crate) started_at: Option<SystemTime>,
    pub(crate) last_exit: Option<LastExit>,
    pub(crate) recycles: u64,
    pub(crate) pauses: u64,
    /// Until when starts are paused by the rapid-fail limit.
    pub(crate) paused_until: Option<SystemTime>,
}

/// How and when a slot's process last went away (or its start last failed).
#[derive(Debug, Clone)]
pub(crate) struct LastExit {
    pub(crate) pid: Option<u32>,
    pub(crate) cause: &'static str,
    /// "exited with code 3", "was killed by signal 9 (SIGKILL)", or the failure's text.
    pub(crate) description: String,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) at: SystemTime,
}

impl Journal {
    pub(crate) fn new(slots: usize) -> Journal {
        Journal {
            entries: Mutex::new(Entries {
                slots: vec![SlotRecord::default(); slots],
                ..Entries::default()
            }),
        }
    }

    pub(crate) fn entries(&self) -> Entries {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records every event until the supervisor is gone.
    pub(crate) async fn follow(&self, mut events: broadcast::Receiver<Event>) {
        loop {
            match events.recv().await {
                Ok(event) => self.record(&event),
                // Counts may miss what was dropped; the record goes on.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "the status record fell behind the app's events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn record(&self, event: &Event) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Entries {
            starts,
            restarts,
            recycles,
            pauses,
            exits,
            slots,
        } = &mut *entries;
        if slots.len() <= event.slot {
            slots.resize(event.slot + 1, SlotRecord::default());
        }
        let slot = &mut slots[event.slot];
        match &event.kind {
            EventKind::Starting { attempt } => {
                *starts += 1;
                if *attempt > 1 {
                    *restarts += 1;
                }
            }
            EventKind::Ready(backend) => {
                slot.pid = Some(backend.pid);
                slot.started_at = Some(SystemTime::now());
                slot.paused_until = None;
            }
            EventKind::Failed(failure) => {
                let (cause, code, signal) = cause_of(&failure.kind);
                if let Some(index) = EXIT_CAUSES.iter().position(|c| *c == cause) {
                    exits[index] += 1;
                }
                let before_ready = !matches!(
                    failure.kind,
                    FailureKind::Exited {
                        before_ready: false,
                        ..
                    }
                );
                slot.last_exit = Some(LastExit {
                    pid: if before_ready { None } else { slot.pid },
                    cause,
                    description: failure.kind.to_string(),
                    code,
                    signal,
                    at: SystemTime::now(),
                });
            }
            EventKind::Paused { until, .. } => {
                *pauses += 1;
                slot.pauses += 1;
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                slot.paused_until = Some(SystemTime::now() + left);
            }
            EventKind::Recycling => {
                *recycles += 1;
                slot.recycles += 1;
            }
            EventKind::Stopping | EventKind::Stopped => {}
        }
    }
}

/// The exit cause label, with the exit code or signal when the process exited.
fn cause_of(kind: &FailureKind) -> (&'static str, Option<i32>, Option<i32>) {
    match kind {
        FailureKind::Exited { exit, .. } => match exit {
            Some(exit) => match (exit.code, exit.signal) {
                (Some(code), _) => ("exit_code", Some(code), None),
                (None, Some(signal)) => ("signal", None, Some(signal)),
                (None, None) => ("lost", None, None),
            },
            None => ("lost", None, None),
        },
        // A process that never warmed up did not start in time either.
        FailureKind::StartTimeout { .. } | FailureKind::NotWarm { .. } => {
            ("start_timeout", None, None)
        }
        FailureKind::Spawn { .. } => ("spawn_failure", None, None),
        FailureKind::PortTaken { .. } => ("port_taken", None, None),
    }
}
