//! ancm as the subreaper of the app's tree: a process that leaves it (a double fork, `setsid()`)
//! is re-parented to ancm instead of init, so ancm can still find it, kill it, and must reap it.
//!
//! ancm's direct children whose owner waits for them (the app's processes, whose statuses
//! tokio collects, and the process guard) are registered here; every other child of ancm is an
//! orphan of the app's tree. Orphans are only ever reaped by pid, never with `waitpid(-1)`,
//! which would steal the statuses tokio waits for.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::Guard;

/// Direct children that have an owner waiting for them.
static OWNED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
/// Spawns under way: their child may exist before it is registered.
static SPAWNING: AtomicUsize = AtomicUsize::new(0);
/// Bumped when a spawn ends, so a scan that overlapped one is not trusted.
static SPAWNED: AtomicU64 = AtomicU64::new(0);

/// How often orphans are looked for besides on SIGCHLD: an orphan that does not exit sends
/// none, and the guard must learn of it.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Makes ancm the subreaper of its descendants; said once if the kernel refuses.
pub fn adopt_orphans() {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%err, "cannot become the subreaper of the app's tree: a process that leaves it may outlive ancm");
    }
}

/// Held around a spawn until the child is registered with [`owned`].
pub(crate) struct Spawning(());

impl Spawning {
    pub(crate) fn begin() -> Spawning {
        SPAWNING.fetch_add(1, Ordering::SeqCst);
        Spawning(())
    }
}

impl Drop for Spawning {
    fn drop(&mut self) {
        SPAWNED.fetch_add(1, Ordering::SeqCst);
        SPAWNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Registers a direct child whose owner waits for it.
pub(crate) fn owned(pid: u32) {
    if let Ok(mut owned) = OWNED.lock() {
        owned.get_or_insert_with(HashSet::new).insert(pid);
    }
}

/// Unregisters a direct child once its owner has reaped it.
pub(crate) fn released(pid: u32) {
    if let Ok(mut owned) = OWNED.lock() {
        if let Some(owned) = owned.as_mut() {
            owned.remove(&pid);
        }
    }
}

fn is_owned(pid: u32) -> bool {
    OWNED
        .lock()
        .map(|o| o.as_ref().is_some_and(|o| o.contains(&pid)))
        .unwrap_or(true)
}

/// ancm's children that nobody waits for: (pid, whether it is a zombie). Blocking: reads
/// /proc. `None` when a spawn overlapped the scan.
fn orphans() -> Option<Vec<(u32, bool)>> {
    let before = SPAWNED.load(Ordering::SeqCst);
    if SPAWNING.load(Ordering::SeqCst) > 0 {
        return None;
    }
    let me = std::process::id();
    let mut found = Vec::new();
    for (pid, ppid, state) in children().unwrap_or_else(process_table) {
        if ppid == me && !is_owned(pid) {
            found.push((pid, state == 'Z'));
        }
    }
    let overlapped =
        SPAWNING.load(Ordering::SeqCst) > 0 || SPAWNED.load(Ordering::SeqCst) != before;
    (!overlapped).then_some(found)
}

/// Every process now: (pid, parent, state), from /proc/PID/stat. Blocking.
fn process_table() -> Vec<(u32, u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            parse_stat(&stat).map(|(ppid, state)| (pid, ppid, state))
        })
        .collect()
}

/// ancm's children as [`process_table`] gives them, read from /proc/self/task/TID/children:
/// far cheaper than the whole table, but only there with CONFIG_PROC_CHILDREN.
fn children() -> Option<Vec<(u32, u32, char)>> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).ok()?;
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some((ppid, state)) = parse_stat(&stat) {
                found.push((pid, ppid, state));
            }
        }
    }
    Some(found)
}

/// The parent and state in a /proc/PID/stat line; the name before them may hold anything,
/// so they are read after its last ')'.
fn parse_stat(stat: &str) -> Option<(u32, char)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Reaps the orphans that exited; returns those alive. Blocking.
fn reap() -> Option<Vec<u32>> {
    let mut alive = Vec::new();
    for (pid, zombie) in orphans()? {
        if !zombie {
            alive.push(pid);
            continue;
        }
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        match waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                tracing::debug!(pid, ?status, "reaped a process that left the app's tree")
            }
            Err(err) => {
                tracing::debug!(pid, %err, "could not reap a process that left the app's tree")
            }
        }
    }
    Some(alive)
}

/// Kills the living orphans that came from the app process holding `token` (their environment
/// says so), with their descendants. Blocking. For when there is no cgroup to kill.
pub(crate) fn kill_orphans_of(token: &str) {
    let Some(orphans) = orphans() else { return };
    let wanted = format!("ASPNETCORE_TOKEN={token}");
    for (pid, zombie) in orphans {
        if zombie {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            continue;
        }
        for victim in std::iter::once(pid).chain(super::descendants(pid)) {
            tracing::warn!(pid = victim, "killing a process that left the app's tree");
            if let Ok(raw) = i32::try_from(victim) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
    // They are ancm's children: reap them now rather than at the next look.
    let _ = reap();
}

/// Reaps orphans when they exit, and tells the guard which are alive, so that it kills them
/// if ancm is killed. Runs until ancm's runtime stops.
pub async fn watch_orphans(guard: Option<Arc<Guard>>) {
    let mut exits = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    let mut known: HashSet<u32> = HashSet::new();
    loop {
        let alive = tokio::task::spawn_blocking(reap).await.ok().flatten();
        if let Some(alive) = alive {
            let alive: HashSet<u32> = alive.into_iter().collect();
            for &pid in alive.difference(&known) {
                // The guard first: once this is logged, ancm may be killed at any moment.
                if let Some(guard) = &guard {
                    guard.watch_orphan(pid);
                }
                tracing::info!(
                    pid,
                    "a process left the app's tree and was re-parented to ancm; it is stopped with the app"
                );
            }
            if let Some(guard) = &guard {
                for &pid in known.difference(&alive) {
                    guard.forget_orphan(pid);
                }
            }
            known = alive;
        }
        match exits.as_mut() {
            Some(exits) => {
                let _ = tokio::time::timeout(LOOK_EVERY, exits.recv()).await;
            }
            None => tokio::time::sleep(LOOK_EVERY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parent_and_state_after_the_name() {
        assert_eq!(parse_stat("42 (a) Z (b) Z 17 42 42 0 -1"), Some((17, 'Z')));
        assert_eq!(parse_stat("42 (sleep) S 1 42 42"), Some((1, 'S')));
        assert_eq!(parse_stat("garbage"), None);
    }
}
