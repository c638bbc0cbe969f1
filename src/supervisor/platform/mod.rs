//! What keeps the app's process tree contained, per OS. Linux: each app process gets a cgroup
//! v2 of its own where ancm may create one, which holds every descendant whatever it does, and
//! ancm is the subreaper of the app's tree, so descendants that leave it are re-parented to
//! ancm. Unix: the app leads its own process group, so signals and kills reach its children
//! too, and on Linux it gets a parent-death signal; a guard process kills what is left when
//! ancm is killed. Windows: a new process group (for CTRL_BREAK) inside a kill-on-close job
//! object, which holds every descendant.
//!
//! [`Containment`] is the facade the process code uses; `unix.rs` and `windows.rs` implement
//! it, `guard.rs` is the process that outlives ancm, `cgroup.rs` and `orphans.rs` are Linux's
//! two ways to hold a tree, and `tree.rs` reads the tree from the process table.
//!
//! Must not import the rest of the supervisor: it knows processes, not slots or apps.

#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(unix)]
pub(super) mod guard;
#[cfg(target_os = "linux")]
pub(super) mod orphans;
pub(super) mod tree;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
use self::unix as imp;
#[cfg(windows)]
use self::windows as imp;

use std::io;

use tokio::process::Command;

/// What was prepared for a command before it is spawned.
pub(crate) struct Prepared {
    inner: imp::Prepared,
}

/// Prepares the app's command so that its whole tree can be signalled and killed.
pub(crate) fn contain(command: &mut Command) -> Prepared {
    Prepared {
        inner: imp::contain(command),
    }
}

/// Makes the app run as `user`: its groups, group and user ids are set in the child first,
/// before the containment's own steps there.
#[cfg(unix)]
pub(crate) fn run_as(command: &mut Command, user: &crate::config::RunAs) {
    imp::run_as(command, user);
}

/// The handle through which the app's tree is signalled, made right after spawning.
#[derive(Debug)]
pub(crate) struct Containment {
    inner: imp::Containment,
}

impl Containment {
    pub(crate) fn new(
        pid: u32,
        child: &tokio::process::Child,
        prepared: Prepared,
    ) -> io::Result<Self> {
        imp::Containment::new(pid, child, prepared.inner).map(|inner| Containment { inner })
    }

    /// Asks the whole tree to stop: SIGTERM to the process group, or CTRL_BREAK on Windows.
    /// False when the request could not be sent (it is logged): then waiting for the app to
    /// stop by itself is pointless.
    pub(crate) fn terminate(&self) -> bool {
        self.inner.terminate()
    }

    /// Kills the whole tree at once; harmless when it is already gone.
    pub(crate) fn kill(&self) {
        self.inner.kill();
    }

    /// Once the tree is dead: removes what held it (the cgroup), killing any latecomer.
    pub(crate) async fn release(&mut self) {
        self.inner.release().await;
    }

    /// Whether every descendant is held whatever it does (a cgroup or a job object); if not,
    /// those that leave the process group must be looked for.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn holds_all(&self) -> bool {
        self.inner.holds_all()
    }

    /// The process group (Unix) the guard must kill if ancm dies.
    #[cfg(unix)]
    pub(crate) fn group(&self) -> u32 {
        self.inner.pgid
    }
}
