//! The app's process tree as the process table shows it (through sysinfo, on every OS): its
//! descendants, their memory, and the kill of those that left its process group.
//!
//! Imports nothing of the crate.

/// Every process descended from `pid` now, read from the process table (blocking: it reads
/// the whole table).
pub fn descendants(pid: u32) -> Vec<u32> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let Ok(mut system) = System::new() else {
        return Vec::new();
    };
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            system
                .processes()
                .iter()
                .filter(|(_, p)| p.parent().map(sysinfo::Pid::as_u32) == Some(parent))
                .map(|(child, _)| child.as_u32()),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The resident memory of `pid` and every process descended from it, in bytes; `None` when
/// `pid` is gone (blocking: it reads the whole process table).
pub fn tree_memory(pid: u32) -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let mut system = System::new().ok()?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    let processes = system.processes();
    let mut total = processes.get(&sysinfo::Pid::from_u32(pid))?.memory();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (child, process) in processes {
            if process.parent().map(sysinfo::Pid::as_u32) == Some(parent) {
                tree.push(child.as_u32());
                total = total.saturating_add(process.memory());
            }
        }
        i += 1;
    }
    Some(total)
}

/// Kills `pids`, the app's descendants seen before its stop, where they outlived the group
/// kill: the last resort for those that left its process group.
pub(in crate::supervisor) async fn kill_stragglers(pids: Vec<u32>) {
    if pids.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
        let wanted: Vec<sysinfo::Pid> = pids.iter().map(|&p| sysinfo::Pid::from_u32(p)).collect();
        let Ok(mut system) = System::new() else {
            return;
        };
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&wanted),
            true,
            ProcessRefreshKind::nothing(),
        );
        for (pid, process) in system.processes() {
            tracing::warn!(
                pid = pid.as_u32(),
                "killing a process the app left outside its process group"
            );
            process.kill();
        }
    })
    .await;
}
