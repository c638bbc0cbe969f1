//! Unix: a small process (ancm itself, started with ANCM_PROCESS_GUARD set) that kills the
//! app's trees if ancm dies without doing so, e.g. by SIGKILL. The parent-death signal only
//! reaches the app's direct child; the guard also reaches the rest: the app's process groups,
//! its cgroups (Linux), and the processes that left its tree and were re-parented to ancm.
//! ancm tells it what to kill over a pipe; end of file on that pipe means ancm is gone.
//!
//! Without a cgroup (Linux), ancm also tells it each app's token: a process that left the tree
//! in the last second before ancm was killed is not yet on ancm's list of orphans, so once ancm
//! is gone the guard waits for ancm's orphans to be handed to ancm's own reaper (it is one of
//! them) and kills, with their descendants, those the reaper adopted that carry an app's
//! token, and every process in the apps' sessions and groups (see `orphans::kill_escaped`).
//! A process that both cleared its environment and left the session in that last second is
//! only held by a cgroup.
//!
//! [`watch_orphans`] is ancm's loop that reaps those orphans and keeps the guard's list of
//! them current: here rather than in `orphans.rs`, so that the orphans code does not import
//! the guard that imports it.
//!
//! Imports only the platform code beside it (containment, orphans, cgroups).

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[cfg(target_os = "linux")]
use std::collections::HashSet;
#[cfg(target_os = "linux")]
use std::sync::Arc;

#[cfg(target_os = "linux")]
use super::orphans;
use super::Containment;

#[derive(Debug)]
pub struct Guard {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Guard {
    pub(crate) fn start() -> std::io::Result<Guard> {
        let exe = std::env::current_exe()?;
        use std::os::unix::process::CommandExt;
        #[cfg(target_os = "linux")]
        let spawning = crate::children::Spawning::begin();
        let mut child = Command::new(exe)
            .env(GUARD_VARIABLE, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of ancm's group, so a Ctrl+C meant for ancm does not take it down.
            .process_group(0)
            .spawn()?;
        #[cfg(target_os = "linux")]
        {
            crate::children::owned(child.id());
            drop(spawning);
        }
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("guard has no stdin"))?;
        Ok(Guard {
            stdin: Mutex::new(Some(stdin)),
            child: Mutex::new(child),
        })
    }

    /// From now on, kills `tree`, whose processes were given `token`, if ancm dies.
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub(crate) fn watch(&self, tree: &Containment, token: &str) {
        self.tell(&format!("+{}\n", tree.group()));
        #[cfg(target_os = "linux")]
        match tree.inner.cgroup_path() {
            Some(path) => self.tell(&format!("+c{}\n", path.display())),
            // The token is a header value: it holds no line break.
            None => self.tell(&format!("+t{token}\n")),
        }
    }

    /// `tree` is gone: forgets it.
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub(crate) fn forget(&self, tree: &Containment, token: &str) {
        self.tell(&format!("-{}\n", tree.group()));
        #[cfg(target_os = "linux")]
        match tree.inner.cgroup_path() {
            Some(path) => self.tell(&format!("-c{}\n", path.display())),
            None => self.tell(&format!("-t{token}\n")),
        }
    }

    /// From now on, kills `pid`, a process that left the app's tree, if ancm dies.
    #[cfg(target_os = "linux")]
    pub(crate) fn watch_orphan(&self, pid: u32) {
        self.tell(&format!("+p{pid}\n"));
    }

    /// The orphan `pid` was reaped: forgets it.
    #[cfg(target_os = "linux")]
    pub(crate) fn forget_orphan(&self, pid: u32) {
        self.tell(&format!("-p{pid}\n"));
    }

    // A few bytes into a pipe the guard drains at once: this does not block in practice.
    fn tell(&self, message: &str) {
        if let Ok(mut stdin) = self.stdin.lock() {
            let Some(stdin) = stdin.as_mut() else { return };
            if let Err(err) = stdin.write_all(message.as_bytes()) {
                tracing::warn!(%err, "the process guard is gone; if ancm is killed, the app may outlive it");
            }
        }
    }
}

impl Drop for Guard {
    /// Closing the pipe tells the guard to kill what is still registered and exit; then
    /// it is reaped. Drop it outside the async runtime: the wait is short but blocking.
    fn drop(&mut self) {
        // ancm lives on until the guard has exited: its orphans are still its own.
        self.tell("q\n");
        if let Ok(mut stdin) = self.stdin.lock() {
            drop(stdin.take());
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.wait();
        }
    }
}

/// Reaps orphans when they exit, and tells the guard which are alive, so that it kills them
/// if ancm is killed. Runs until ancm's runtime stops.
#[cfg(target_os = "linux")]
pub async fn watch_orphans(guard: Option<Arc<Guard>>) {
    let mut exits = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    let mut known: HashSet<u32> = HashSet::new();
    loop {
        let alive = tokio::task::spawn_blocking(orphans::reap)
            .await
            .ok()
            .flatten();
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
                let _ = tokio::time::timeout(orphans::LOOK_EVERY, exits.recv()).await;
            }
            None => tokio::time::sleep(orphans::LOOK_EVERY).await,
        }
    }
}

/// Set in the guard's environment: it is how ancm, started again, knows to be the guard.
const GUARD_VARIABLE: &str = "ANCM_PROCESS_GUARD";

/// Whether this process was started as the guard.
pub fn is_guard_process() -> bool {
    std::env::var_os(GUARD_VARIABLE).is_some()
}

/// What the guard kills when ancm is gone.
#[derive(Debug, Default, PartialEq)]
struct Watched {
    groups: BTreeSet<u32>,
    cgroups: BTreeSet<PathBuf>,
    orphans: BTreeSet<u32>,
    tokens: BTreeSet<String>,
    /// ancm closes the pipe on purpose and lives on (`q`).
    quitting: bool,
}

impl Watched {
    /// Applies one line of ancm's: `+PGID`, `+cPATH` (a cgroup), `+pPID` (an orphan),
    /// `+tTOKEN` (an app's token), or the same with `-` to forget it; `q` when ancm is
    /// about to close the pipe itself. Anything else is ignored.
    fn apply(&mut self, line: &str) {
        if line == "q" {
            self.quitting = true;
            return;
        }
        let (add, rest) = match line.as_bytes().first() {
            Some(b'+') => (true, &line[1..]),
            Some(b'-') => (false, &line[1..]),
            _ => return,
        };
        fn set<T: Ord>(set: &mut BTreeSet<T>, add: bool, item: T) {
            if add {
                set.insert(item);
            } else {
                set.remove(&item);
            }
        }
        if let Some(path) = rest.strip_prefix('c') {
            set(&mut self.cgroups, add, PathBuf::from(path));
        } else if let Some(token) = rest.strip_prefix('t') {
            set(&mut self.tokens, add, token.to_owned());
        } else if let Some(pid) = rest.strip_prefix('p') {
            if let Ok(pid) = pid.trim().parse() {
                set(&mut self.orphans, add, pid);
            }
        } else if let Ok(pgid) = rest.trim().parse() {
            set(&mut self.groups, add, pgid);
        }
    }
}

/// The guard's main loop.
pub fn run() {
    ignore_stray_signals();
    #[cfg(target_os = "linux")]
    let ancm = nix::unistd::getppid();
    let mut watched = Watched::default();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        watched.apply(&line);
    }
    // The orphans first: they would fork again if given the time.
    for pid in watched.orphans {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    for &pgid in &watched.groups {
        super::unix::signal_group(pgid, Signal::SIGKILL);
    }
    #[cfg(target_os = "linux")]
    if !watched.tokens.is_empty() {
        let reaper = if watched.quitting {
            ancm
        } else {
            reaper_after(ancm)
        };
        // A token ancm itself was given may be shared by anything its reaper adopted.
        let own = std::env::var("ASPNETCORE_TOKEN").ok();
        watched.tokens.retain(|t| Some(t) != own.as_ref());
        let reaper = u32::try_from(reaper.as_raw()).unwrap_or(1);
        orphans::kill_escaped(reaper, &watched.groups, &watched.tokens);
    }
    #[cfg(target_os = "linux")]
    for cgroup in watched.cgroups {
        super::cgroup::kill_and_remove(&cgroup);
    }
}

/// Signals that would end the guard by default, and with it the app's protection, while
/// ancm lives on: logrotate's SIGUSR1, a `killall -HUP ancm`, or `systemctl kill`'s SIGTERM
/// to the whole unit (ancm stops on that, and the guard's pipe tells it so). The guard ends
/// when its pipe from ancm closes, or by SIGKILL.
fn ignore_stray_signals() {
    use nix::sys::signal::{signal, SigHandler, Signal::*};
    let named = [
        SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF,
        SIGIO, SIGXCPU, SIGXFSZ,
    ];
    for sig in named {
        // SAFETY: SIG_IGN runs no code of ours in a signal handler.
        #[allow(unsafe_code)]
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

/// The process that took ancm's orphans, the guard among them: the guard's parent once it
/// is no longer `ancm`. ancm's threads exit one by one after its pipe is closed, so this
/// waits, a bounded time, for the last of them.
#[cfg(target_os = "linux")]
fn reaper_after(ancm: Pid) -> Pid {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let parent = nix::unistd::getppid();
        if parent != ancm || std::time::Instant::now() >= deadline {
            return parent;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_reads_what_to_kill() {
        let mut watched = Watched::default();
        for line in [
            "+12",
            "+c/sys/fs/cgroup/a b/ancm-1-1",
            "+p40",
            "+p41",
            "-p40",
            "+13",
            "-12",
            "junk",
            "+pjunk",
            "+tone",
            "+ttwo",
            "-tone",
            "",
        ] {
            watched.apply(line);
        }
        let expected = Watched {
            groups: [13].into(),
            cgroups: [PathBuf::from("/sys/fs/cgroup/a b/ancm-1-1")].into(),
            orphans: [41].into(),
            tokens: ["two".to_owned()].into(),
            quitting: false,
        };
        assert_eq!(watched, expected);
        watched.apply("q");
        assert!(watched.quitting);
    }
}
