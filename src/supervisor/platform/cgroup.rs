//! A cgroup v2 of its own for each app process, where ancm may create one: whatever the app's
//! descendants do (double fork, `setsid()`, ignoring SIGTERM), they stay in it, and writing
//! `cgroup.kill` ends them all at once.
//!
//! The cgroups are made below ancm's own (`/proc/self/cgroup`), so they need no more rights
//! than a delegated subtree gives. Without cgroup v2, or without the right to write there,
//! ancm falls back on being the subreaper of the app's tree (see `orphans`). Setting
//! `ANCM_NO_CGROUP` to any value skips the cgroup, for hosts whose service manager owns the
//! tree.
//!
//! Their names hold a random tag drawn once per ancm, not just its pid: an ancm killed in
//! another PID namespace can leave a cgroup behind under the same parent, and a later ancm with
//! the same pid must not collide with it. At its first cgroup, ancm removes the empty `ancm-*`
//! cgroups beside its own that are older than a minute: the kernel refuses to remove one that
//! holds a process, so a running ancm's are safe, and the age leaves alone one that another
//! ancm has just made and not yet filled.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Turns the cgroup off when set.
const DISABLE_VARIABLE: &str = "ANCM_NO_CGROUP";

/// How long a removal waits for the killed processes to leave the cgroup.
const REMOVE_WITHIN: Duration = Duration::from_secs(3);

/// An empty `ancm-*` cgroup older than this is left over: a live ancm fills its cgroup
/// within moments of making it, and removes it once empty.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// How many names a new cgroup tries before giving up, should one be taken.
const NAME_TRIES: usize = 4;

/// ancm's own cgroup directory, when there is a cgroup v2 hierarchy to make ours in.
static OWN: OnceLock<Option<PathBuf>> = OnceLock::new();
/// Set once a cgroup could not be made: the reason does not change, and it is said once.
static REFUSED: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);
/// This ancm's part of its cgroups' names.
static TAG: OnceLock<String> = OnceLock::new();

/// One app process's cgroup; removed by [`Cgroup::remove`] once its processes are killed.
#[derive(Debug)]
pub(crate) struct Cgroup {
    /// Taken by [`Cgroup::remove`]; one never removed is removed on drop.
    dir: Option<PathBuf>,
}

impl Cgroup {
    /// A new, empty cgroup below ancm's own; `None` where none can be made (said once).
    pub(crate) fn create() -> Option<Cgroup> {
        if REFUSED.load(Ordering::Relaxed) {
            return None;
        }
        let own = OWN.get_or_init(own_dir).as_ref()?;
        let tag = TAG.get_or_init(|| uuid::Uuid::new_v4().simple().to_string());
        let mut tries = 0;
        // cgroupfs lives in memory: these calls do not wait on a disk.
        let made = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = own.join(format!("ancm-{}-{tag}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && tries < NAME_TRIES => {
                    tries += 1;
                }
                made => break made.map(|()| dir),
            }
        };
        match made {
            Ok(dir) => Some(Cgroup { dir: Some(dir) }),
            Err(err) => {
                if !REFUSED.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        cgroup = %own.display(),
                        %err,
                        "cannot make a cgroup for the app; processes that leave its tree are followed as ancm's orphans instead"
                    );
                }
                None
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new(""))
    }

    /// `cgroup.procs`, open for the child to write "0" into between fork and exec, so that
    /// it is inside before it can start anything. Close-on-exec: the app does not keep it.
    pub(crate) fn procs(&self) -> io::Result<OwnedFd> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path().join("cgroup.procs"))?;
        Ok(file.into())
    }

    /// Moves `pid` in (a no-op when it is in already): the check that the child's own move
    /// worked.
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path().join("cgroup.procs"))?;
        file.write_all(pid.to_string().as_bytes())
    }

    /// SIGKILL to every process in the cgroup; harmless when it is empty.
    pub(crate) fn kill(&self) {
        kill_dir(self.path());
    }

    /// Kills what is left and removes the cgroup once it is empty. Blocking: waits up to a
    /// few seconds for the kernel to finish the killed processes.
    pub(crate) fn remove(mut self) {
        if let Some(dir) = self.dir.take() {
            kill_and_remove(&dir);
        }
    }
}

impl Drop for Cgroup {
    /// The app process was dropped without being stopped: its tree must not outlive it.
    /// Removal waits, so it is done off the caller's thread.
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            kill_dir(&dir);
            std::thread::spawn(move || kill_and_remove(&dir));
        }
    }
}

/// SIGKILL to every process in the cgroup at `dir`.
fn kill_dir(dir: &Path) {
    match std::fs::write(dir.join("cgroup.kill"), b"1") {
        Ok(()) => return,
        Err(err) if err.kind() == io::ErrorKind::NotFound && !dir.exists() => return,
        // Before Linux 5.14 there is no cgroup.kill: kill each member, again while a fork
        // adds more.
        Err(_) => {}
    }
    for _ in 0..16 {
        let members = members(dir);
        if members.is_empty() {
            return;
        }
        for pid in members {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
}

fn members(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills the cgroup at `dir` and removes it once empty (blocking, bounded).
pub(crate) fn kill_and_remove(dir: &Path) {
    kill_dir(dir);
    let deadline = Instant::now() + REMOVE_WITHIN;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return,
            Err(err) if Instant::now() >= deadline => {
                tracing::warn!(cgroup = %dir.display(), %err, "could not remove the app's cgroup");
                return;
            }
            // Busy until the killed processes have exited.
            Err(_) => {
                kill_dir(dir);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Where ancm's own cgroup is in the file system: the cgroup v2 mount plus the path in
/// `/proc/self/cgroup`.
fn own_dir() -> Option<PathBuf> {
    if std::env::var_os(DISABLE_VARIABLE).is_some() {
        tracing::debug!("{DISABLE_VARIABLE} is set: no cgroup for the app");
        return None;
    }
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dir = own_dir_in(own, &mountinfo);
    tracing::debug!(?dir, "ancm's own cgroup");
    if let Some(dir) = &dir {
        remove_stale(dir);
    }
    dir
}

/// Removes the empty `ancm-*` cgroups in `own` older than [`STALE_AFTER`]: left by an ancm
/// that was killed before it could remove them. Those that hold a process stay: the kernel
/// refuses to remove them.
fn remove_stale(own: &Path) {
    let Ok(entries) = std::fs::read_dir(own) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("ancm-") {
            continue;
        }
        let Ok(age) = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|m| m.elapsed())
        else {
            continue;
        };
        if age.is_ok_and(|age| age >= STALE_AFTER) && std::fs::remove_dir(entry.path()).is_ok() {
            tracing::info!(cgroup = %entry.path().display(), "removed an empty cgroup left by an ancm that is gone");
        }
    }
}

/// The directory of cgroup `own` under the cgroup v2 mount listed in `mountinfo`.
fn own_dir_in(own: &str, mountinfo: &str) -> Option<PathBuf> {
    // Fields: id parent major:minor root mount-point options... - fstype source options.
    let (root, mount_point) = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split(' ').next() != Some("cgroup2") {
            return None;
        }
        let mut fields = before.split(' ').skip(3);
        Some((fields.next()?, fields.next()?))
    })?;
    // Octal escapes (a space in a path): rare enough to do without a cgroup.
    if mount_point.contains('\\') || own.contains('\n') {
        return None;
    }
    let relative = own.strip_prefix(root.trim_end_matches('/'))?;
    let relative = relative.trim_start_matches('/');
    // A process in "/(deleted)" or outside the mount's root cannot place children.
    if relative.contains(" (deleted)") {
        return None;
    }
    let dir = Path::new(mount_point).join(relative);
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup_under_the_v2_mount() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                         41 31 0:38 / /proc rw,relatime - cgroup2 cgroup2 rw\n";
        // /proc exists everywhere the tests run, standing in for the mount point.
        assert_eq!(own_dir_in("/", mountinfo), Some(PathBuf::from("/proc")));
        assert_eq!(
            own_dir_in("/self", mountinfo),
            Some(PathBuf::from("/proc/self"))
        );
    }

    #[test]
    fn no_cgroup_without_a_v2_mount_or_outside_its_root() {
        let v1_only = "30 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(own_dir_in("/", v1_only), None);
        let rooted = "41 31 0:38 /a /proc rw - cgroup2 cgroup2 rw\n";
        assert_eq!(own_dir_in("/b/c", rooted), None);
        assert_eq!(
            own_dir_in("/a/self", rooted),
            Some(PathBuf::from("/proc/self"))
        );
    }
}
