//! `/status`: the instance and each of its app processes, as one JSON document.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::journal::LastExit;
use super::processes::Usage;
use super::{phase_name, Observed};
use crate::supervisor::Phase;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) pid: u32,
    pub(crate) version: String,
    pub(crate) app_dir: String,
    pub(crate) urls: Vec<String>,
    pub(crate) config_source: String,
    /// The admin listener, when there is one.
    pub(crate) admin: Option<String>,
    pub(crate) started_at: String,
    pub(crate) uptime_seconds: u64,
    pub(crate) ready: bool,
    pub(crate) draining: bool,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) processes: Vec<Process>,
    pub(crate) starts: u64,
    pub(crate) restarts: u64,
    pub(crate) recycles: u64,
    pub(crate) rapid_fail_pauses: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Process {
    pub(crate) slot: usize,
    pub(crate) state: String,
    pub(crate) pid: Option<u32>,
    pub(crate) port: Option<u16>,
    pub(crate) started_at: Option<String>,
    pub(crate) uptime_seconds: Option<u64>,
    pub(crate) restarts: u64,
    pub(crate) recycles: u64,
    pub(crate) rapid_fail_pauses: u64,
    pub(crate) paused_until: Option<String>,
    pub(crate) last_exit: Option<Exit>,
    pub(crate) requests_in_flight: usize,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) cpu_percent: Option<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Exit {
    pub(crate) pid: Option<u32>,
    pub(crate) cause: String,
    pub(crate) description: String,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) at: String,
}

/// One slot as the supervisor shows it now.
pub(super) struct SlotNow {
    pub(super) phase: Phase,
    pub(super) restarts: u64,
}

impl Observed {
    /// Each slot's state now.
    pub(super) fn slots_now(&self) -> Vec<SlotNow> {
        (0..self.supervisor.slot_count())
            .map(|slot| {
                let status = self.supervisor.watch_slot(slot).borrow().clone();
                SlotNow {
                    phase: status.phase,
                    restarts: status.restarts,
                }
            })
            .collect()
    }

    /// The pids to look up in the process table: ancm's, then each ready app process's.
    pub(super) fn usage(&self, slots: &[SlotNow]) -> HashMap<u32, Usage> {
        let mut pids = vec![std::process::id()];
        pids.extend(slots.iter().filter_map(|slot| match &slot.phase {
            Phase::Ready(backend) => Some(backend.pid),
            _ => None,
        }));
        self.processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .look(&pids)
    }

    /// The whole status now. Blocking: it reads the process table.
    pub(crate) fn status(&self) -> Status {
        let slots = self.slots_now();
        let usage = self.usage(&slots);
        let journal = self.journal.entries();
        let now = SystemTime::now();
        let processes = slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let record = journal.slots.get(index).cloned().unwrap_or_default();
                let backend = match &slot.phase {
                    Phase::Ready(backend) => Some(backend),
                    _ => None,
                };
                let used = backend.and_then(|b| usage.get(&b.pid));
                let started_at = backend.and(record.started_at);
                Process {
                    slot: index,
                    state: phase_name(&slot.phase).to_owned(),
                    pid: backend.map(|b| b.pid),
                    port: backend.map(|b| b.addr.port()),
                    started_at: started_at.map(rfc3339),
                    uptime_seconds: started_at.map(|at| seconds_between(at, now)),
                    restarts: slot.restarts,
                    recycles: record.recycles,
                    rapid_fail_pauses: record.pauses,
                    paused_until: match slot.phase {
                        Phase::Paused { .. } => record.paused_until.map(rfc3339),
                        _ => None,
                    },
                    last_exit: record.last_exit.as_ref().map(exit),
                    requests_in_flight: backend.map_or(0, |b| b.in_flight.load(Ordering::Relaxed)),
                    rss_bytes: used.map(|u| u.rss_bytes),
                    cpu_seconds: used.map(|u| u.cpu_seconds),
                    cpu_percent: used.map(|u| u.cpu_percent),
                }
            })
            .collect();
        let own = usage.get(&std::process::id());
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            app_dir: self.about.app_dir.display().to_string(),
            urls: self.about.urls.clone(),
            config_source: self.about.source.clone(),
            admin: self.about.admin.clone(),
            started_at: rfc3339(self.about.started_at),
            uptime_seconds: seconds_between(self.about.started_at, now),
            ready: self.readiness().is_ok(),
            draining: self.draining.is_draining(),
            rss_bytes: own.map(|u| u.rss_bytes),
            cpu_seconds: own.map(|u| u.cpu_seconds),
            processes,
            starts: journal.starts,
            restarts: journal.restarts,
            recycles: journal.recycles,
            rapid_fail_pauses: journal.pauses,
        }
    }
}

fn exit(last: &LastExit) -> Exit {
    Exit {
        pid: last.pid,
        cause: last.cause.to_owned(),
        description: last.description.clone(),
        code: last.code,
        signal: last.signal,
        at: rfc3339(last.at),
    }
}

fn seconds_between(from: SystemTime, to: SystemTime) -> u64 {
    to.duration_since(from).map_or(0, |d| d.as_secs())
}

/// `2026-12-01T17:46:35Z`: UTC, to the second.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
