//! ancm as the subreaper of the app's tree: a process that leaves it (a double fork, `setsid()`)
//! is re-parented to ancm instead of init, so ancm can still find it, kill it, and must reap it.
//!
//! ancm's direct children whose owner waits for them (the app's processes, whose statuses
//! tokio collects, and the process guard) are registered here; every other child of ancm is an
//! orphan of the app's tree. Orphans are only ever reaped by pid, never with `waitpid(-1)`,
//! which would steal the statuses tokio waits for.
//!
//! ancm learns of an orphan only when it looks (on SIGCHLD, or every second: adoption sends no
//! signal), so a process that left the tree just before ancm was killed may be unknown to the
//! guard. The guard therefore does not rely on that list alone once ancm is gone: it cannot be
//! the tree's subreaper itself (only an ancestor can, and ancm's pid must not change), so it
//! finds the tree by what its members carry: [`kill_escaped`] kills every process in one of
//! the apps' sessions or groups, every process that ancm's own reaper adopted with an app's
//! token in its environment, and all their descendants.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::children;

/// How often orphans are looked for besides on SIGCHLD: an orphan that does not exit sends
/// none, and the guard must learn of it.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Makes ancm the subreaper of its descendants; said once if the kernel refuses.
pub fn adopt_orphans() {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%err, "cannot become the subreaper of the app's tree: a process that leaves it may outlive ancm");
    }
}

/// ancm's children that nobody waits for: (pid, whether it is a zombie). Blocking: reads
/// /proc. `None` when a spawn overlapped the scan.
fn orphans() -> Option<Vec<(u32, bool)>> {
    let scan = children::Scan::begin()?;
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in children().unwrap_or_else(process_table) {
        if entry.ppid == me && !children::is_owned(entry.pid) {
            found.push((entry.pid, entry.zombie));
        }
    }
    scan.undisturbed().then_some(found)
}

/// One process, as /proc/PID/stat shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    pid: u32,
    ppid: u32,
    group: u32,
    session: u32,
    zombie: bool,
}

/// Every process now, from /proc/PID/stat. Blocking.
fn process_table() -> Vec<Entry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .collect()
}

/// ancm's children as [`process_table`] gives them, read from /proc/self/task/TID/children:
/// far cheaper than the whole table, but only there with CONFIG_PROC_CHILDREN.
fn children() -> Option<Vec<Entry>> {
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
            if let Some(entry) = parse_stat(pid, &stat) {
                found.push(entry);
            }
        }
    }
    Some(found)
}

/// Process `pid`'s /proc/PID/stat line; the name before the fields may hold anything, so
/// they are read after its last ')'.
fn parse_stat(pid: u32, stat: &str) -> Option<Entry> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut number = || fields.next()?.parse().ok();
    Some(Entry {
        pid,
        ppid: number()?,
        group: number()?,
        session: number()?,
        zombie: matches!(state, 'Z' | 'X'),
    })
}

/// Reaps the orphans that exited; returns those alive. Blocking.
pub(super) fn reap() -> Option<Vec<u32>> {
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
        for victim in std::iter::once(pid).chain(super::tree::descendants(pid)) {
            tracing::warn!(pid = victim, "killing a process that left the app's tree");
            if let Ok(raw) = i32::try_from(victim) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
    // They are ancm's children: reap them now rather than at the next look.
    let _ = reap();
}

/// How many times [`kill_escaped`] looks again for what the processes it killed started
/// meanwhile.
const SWEEPS: usize = 50;

/// For the guard, once ancm is gone: kills, with all their descendants, every process in
/// one of `sessions` (the app leads its own session and group, with the same id), and every
/// process that `reaper` (what took ancm's orphans) adopted whose environment holds
/// `ASPNETCORE_TOKEN=` one of `tokens`. Looks again until nothing is left, as the killed may
/// have forked meanwhile. Blocking: reads the process table, and the environment of the
/// processes `reaper` adopted.
pub(crate) fn kill_escaped(reaper: u32, sessions: &BTreeSet<u32>, tokens: &BTreeSet<String>) {
    let me = std::process::id();
    let wanted: Vec<Vec<u8>> = tokens
        .iter()
        .map(|token| format!("ASPNETCORE_TOKEN={token}").into_bytes())
        .collect();
    let has_token = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
            environ
                .split(|&b| b == 0)
                .any(|v| wanted.iter().any(|w| v == w.as_slice()))
        })
    };
    for _ in 0..SWEEPS {
        let victims = escaped(&process_table(), me, reaper, sessions, has_token);
        if victims.is_empty() {
            return;
        }
        for pid in victims {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
        // SIGKILL lands asynchronously: give it a moment before looking again.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The living processes of `table` that [`kill_escaped`] kills, but never `me`.
fn escaped(
    table: &[Entry],
    me: u32,
    reaper: u32,
    sessions: &BTreeSet<u32>,
    has_token: impl Fn(u32) -> bool,
) -> Vec<u32> {
    let living = || table.iter().filter(|e| !e.zombie && e.pid != me);
    let mut found: Vec<u32> = living()
        .filter(|e| {
            sessions.contains(&e.session)
                || sessions.contains(&e.group)
                || (e.ppid == reaper && has_token(e.pid))
        })
        .map(|e| e.pid)
        .collect();
    let mut seen: HashSet<u32> = found.iter().copied().collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for child in living().filter(|e| e.ppid == parent) {
            if seen.insert(child.pid) {
                found.push(child.pid);
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32, ppid: u32, group: u32, session: u32) -> Entry {
        Entry {
            pid,
            ppid,
            group,
            session,
            zombie: false,
        }
    }

    #[test]
    fn reads_the_fields_after_the_name() {
        assert_eq!(
            parse_stat(42, "42 (a) Z (b) Z 17 40 41 0 -1"),
            Some(Entry {
                zombie: true,
                ..entry(42, 17, 40, 41)
            })
        );
        assert_eq!(
            parse_stat(42, "42 (sleep) S 1 42 42"),
            Some(entry(42, 1, 42, 42))
        );
        assert_eq!(parse_stat(42, "garbage"), None);
    }

    #[test]
    fn escaped_are_the_sessions_the_adopted_with_a_token_and_their_descendants() {
        let table = [
            entry(100, 1, 100, 100),   // the app, leading its session
            entry(101, 100, 101, 100), // left its group, not its session
            entry(200, 1, 200, 200),   // a daemon in a session of its own, with the token
            entry(201, 200, 200, 200), // its child
            entry(300, 1, 300, 300),   // unrelated, adopted by the same reaper
            entry(400, 7, 400, 400),   // has the token but another parent: another app's
            entry(500, 1, 500, 500),   // the guard itself, with the token
            Entry {
                zombie: true,
                ..entry(600, 100, 100, 100)
            },
        ];
        let sessions = [100].into();
        let mut found = escaped(&table, 500, 1, &sessions, |pid| {
            [200, 400, 500].contains(&pid)
        });
        found.sort_unstable();
        assert_eq!(found, [100, 101, 200, 201]);
    }
}
