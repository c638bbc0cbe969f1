//! Unix containment: the app leads a session and process group of its own, which ancm
//! signals and kills as one; on Linux it also gets a parent-death signal and, where ancm may
//! make one, a cgroup of its own that holds every descendant. Also `--user`'s switch of
//! credentials in the child, before the containment's own steps there.
//!
//! Imports only the cgroup code beside it and the configuration's `RunAs`.

use std::io;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Command;

#[cfg(target_os = "linux")]
use super::cgroup::Cgroup;

pub(super) struct Prepared {
    #[cfg(target_os = "linux")]
    cgroup: Option<(Cgroup, std::os::fd::OwnedFd)>,
}

/// Not std's `uid`/`gid`: those drop the supplementary groups, and std runs them after
/// `chdir`, which the user may not be allowed to do in an app folder only root can enter.
/// The app also inherits no descriptor of ancm's beyond its stdin, stdout and stderr:
/// whatever ancm itself inherited open (from a service manager, a shell) stays with ancm.
#[allow(unsafe_code)]
pub(super) fn run_as(command: &mut Command, user: &crate::config::RunAs) {
    use nix::libc;
    use nix::unistd::{setgid, setuid, Gid, Uid};
    #[cfg(target_os = "linux")]
    let groups: Vec<Gid> = user.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let gid = Gid::from_raw(user.gid);
    let uid = Uid::from_raw(user.uid);
    // For kernels without close_range: every descriptor number there can be.
    let highest = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft.min(1 << 20));
    let highest = libc::c_int::try_from(highest).unwrap_or(1024);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (close_range or fcntl, setgroups, setgid, setuid) on values made before
    // the fork; it allocates nothing. It runs before the containment's closures, so the
    // parent-death signal, which a change of credentials clears, is set after it. Marking
    // descriptors close-on-exec (rather than closing them) leaves std's error pipe and the
    // cgroup file the later closures write to working until the exec.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            let marked = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) == 0;
            #[cfg(not(target_os = "linux"))]
            let marked = false;
            if !marked {
                for fd in 3..highest {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            #[cfg(target_os = "linux")]
            nix::unistd::setgroups(&groups)?;
            setgid(gid)?;
            setuid(uid)?;
            Ok(())
        });
    }
}

pub(super) fn contain(command: &mut Command) -> Prepared {
    new_session(command);
    #[cfg(target_os = "linux")]
    {
        linux::die_with_parent(command);
        let cgroup = Cgroup::create().and_then(|cgroup| match cgroup.procs() {
            Ok(procs) => {
                linux::join_cgroup(command, &procs);
                Some((cgroup, procs))
            }
            Err(err) => {
                tracing::warn!(cgroup = %cgroup.path().display(), %err, "cannot place the app in its cgroup");
                drop(cgroup);
                None
            }
        });
        Prepared { cgroup }
    }
    #[cfg(not(target_os = "linux"))]
    Prepared {}
}

/// The app leads a session of its own, and so a process group (the unit ancm signals and
/// kills): a Ctrl+C meant for ancm does not reach it, and where the kernel shares CPU by
/// session (autogroup), ancm's proxy threads and the app no longer share one slice, which
/// made the proxy sleep and wake several times as often per request as nginx.
#[allow(unsafe_code)]
fn new_session(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe
    // system call (setsid); it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
}

#[derive(Debug)]
pub(super) struct Containment {
    pub(super) pgid: u32,
    #[cfg(target_os = "linux")]
    pub(super) cgroup: Option<Cgroup>,
}

impl Containment {
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub(super) fn new(
        pid: u32,
        _child: &tokio::process::Child,
        prepared: Prepared,
    ) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            // The child's own move cannot report failure; this one says whether it worked.
            let cgroup = prepared.cgroup.and_then(|(cgroup, _procs)| {
                match cgroup.adopt(pid) {
                    Ok(()) => Some(cgroup),
                    Err(err) => {
                        tracing::warn!(pid, cgroup = %cgroup.path().display(), %err, "cannot place the app in its cgroup");
                        drop(cgroup);
                        None
                    }
                }
            });
            Ok(Containment { pgid: pid, cgroup })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(Containment { pgid: pid })
    }

    pub(super) fn terminate(&self) -> bool {
        signal_group(self.pgid, Signal::SIGTERM)
    }

    pub(super) fn kill(&self) {
        #[cfg(target_os = "linux")]
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
        signal_group(self.pgid, Signal::SIGKILL);
    }

    pub(super) async fn release(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(cgroup) = self.cgroup.take() {
            let _ = tokio::task::spawn_blocking(move || cgroup.remove()).await;
        }
    }

    pub(super) fn holds_all(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.cgroup.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// The cgroup the guard must kill if ancm dies.
    #[cfg(target_os = "linux")]
    pub(super) fn cgroup_path(&self) -> Option<&std::path::Path> {
        self.cgroup.as_ref().map(Cgroup::path)
    }
}

/// Whether the signal reached the group, or the group is already gone.
pub(super) fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => true,
        Err(err) => {
            tracing::warn!(pgid, %signal, %err, "could not signal the app's process group");
            false
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{AsRawFd, OwnedFd};

    use nix::sys::signal::Signal;
    use nix::unistd::getppid;
    use tokio::process::Command;

    /// The kernel sends the app SIGKILL when ancm dies, even by SIGKILL. The signal is tied
    /// to the spawning *thread*; ancm spawns from runtime worker threads, which live as
    /// long as ancm does.
    #[allow(unsafe_code)]
    pub(super) fn die_with_parent(command: &mut Command) {
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes two
        // async-signal-safe system calls (prctl, getppid); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL))?;
                // ancm may have died between fork and prctl: then nobody would kill us.
                if u32::try_from(getppid().as_raw()).ok() != Some(parent) {
                    return Err(std::io::Error::other("ancm exited while starting the app"));
                }
                Ok(())
            });
        }
    }

    /// The child moves itself into the cgroup before exec, so nothing it starts is ever
    /// outside. `procs` must stay open until the spawn returns.
    #[allow(unsafe_code)]
    pub(super) fn join_cgroup(command: &mut Command, procs: &OwnedFd) {
        let fd = procs.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and makes one async-signal-safe
        // system call (write) on a descriptor that the parent keeps open until the spawn
        // returns; it allocates nothing. A failure is caught by the parent's check.
        unsafe {
            command.pre_exec(move || {
                nix::libc::write(fd, b"0".as_ptr().cast(), 1);
                Ok(())
            });
        }
    }
}
