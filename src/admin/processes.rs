//! Memory and CPU of ancm and of the app's processes, from the process table (sysinfo). Each
//! look reads /proc (or the system's equivalent): callers run it off the async runtime.

use std::collections::HashMap;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One process as last looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) rss_bytes: u64,
    pub(crate) cpu_seconds: f64,
    /// Of one core, since the previous look (0 on the first).
    pub(crate) cpu_percent: f32,
    /// Seconds since the Unix epoch.
    pub(crate) start_time: u64,
}

/// The process table, kept between looks so that CPU use is measured over the interval.
pub(crate) struct Table {
    system: Option<System>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            system: System::new().ok(),
        }
    }

    /// Looks at `pids` now; a pid that is gone is left out.
    pub(crate) fn look(&mut self, pids: &[u32]) -> HashMap<u32, Usage> {
        let Some(system) = self.system.as_mut() else {
            return HashMap::new();
        };
        let wanted: Vec<Pid> = pids.iter().map(|&pid| Pid::from_u32(pid)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&wanted),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        wanted
            .iter()
            .filter_map(|&pid| {
                let process = system.process(pid)?;
                #[allow(clippy::cast_precision_loss)]
                let cpu_seconds = process.accumulated_cpu_time() as f64 / 1000.0;
                Some((
                    pid.as_u32(),
                    Usage {
                        rss_bytes: process.memory(),
                        cpu_seconds,
                        cpu_percent: process.cpu_usage(),
                        start_time: process.start_time(),
                    },
                ))
            })
            .collect()
    }
}
