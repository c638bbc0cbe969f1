//! What keeps the app's process tree contained, per OS. Unix: the app leads its own process
//! group, so signals and kills reach its children too, and on Linux it gets a parent-death
//! signal; a guard process covers grandchildren when ancm is killed. Windows: a new process
//! group (for CTRL_BREAK) inside a kill-on-close job object.

use std::io;

use tokio::process::Command;

/// Prepares the app's command so that its whole tree can be signalled and killed.
pub(crate) fn contain(command: &mut Command) {
    imp::contain(command);
}

/// The handle through which the app's tree is signalled, made right after spawning.
#[derive(Debug)]
pub(crate) struct Containment {
    inner: imp::Containment,
}

impl Containment {
    pub(crate) fn new(pid: u32, child: &tokio::process::Child) -> io::Result<Self> {
        imp::Containment::new(pid, child).map(|inner| Containment { inner })
    }

    /// Asks the whole tree to stop: SIGTERM to the process group, or CTRL_BREAK on Windows.
    pub(crate) fn terminate(&self) {
        self.inner.terminate();
    }

    /// Kills the whole tree at once; harmless when it is already gone.
    pub(crate) fn kill(&self) {
        self.inner.kill();
    }

    /// The process group (Unix) the guard must kill if ancm dies.
    #[cfg(unix)]
    pub(crate) fn group(&self) -> u32 {
        self.inner.pgid
    }
}

#[cfg(unix)]
mod imp {
    use std::io;

    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    use tokio::process::Command;

    pub(super) fn contain(command: &mut Command) {
        command.process_group(0);
        #[cfg(target_os = "linux")]
        linux::die_with_parent(command);
    }

    #[derive(Debug)]
    pub(super) struct Containment {
        pub(super) pgid: u32,
    }

    impl Containment {
        pub(super) fn new(pid: u32, _child: &tokio::process::Child) -> io::Result<Self> {
            Ok(Containment { pgid: pid })
        }

        pub(super) fn terminate(&self) {
            signal_group(self.pgid, Signal::SIGTERM);
        }

        pub(super) fn kill(&self) {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }

    pub(super) fn signal_group(pgid: u32, signal: Signal) {
        let Ok(raw) = i32::try_from(pgid) else { return };
        match killpg(Pid::from_raw(raw), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(pgid, %signal, %err, "could not signal the app's process group")
            }
        }
    }

    #[cfg(target_os = "linux")]
    mod linux {
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
    }
}

#[cfg(windows)]
mod imp {
    //! Windows: the child gets CREATE_NEW_PROCESS_GROUP, so that CTRL_BREAK sent to its group
    //! reaches it and not us, and shares ancm's console, which that event needs (its output is
    //! piped, so nothing shows in the console directly). It is assigned to a job object that
    //! kills every process in it when the last handle closes, which happens when ancm exits in
    //! any way.

    use std::io;

    use tokio::process::Command;
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };
    use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;

    pub(super) fn contain(command: &mut Command) {
        command.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }

    #[derive(Debug)]
    pub(super) struct Containment {
        pid: u32,
        job: HANDLE,
    }

    // SAFETY: the job handle is a kernel handle, usable from any thread.
    #[allow(unsafe_code)]
    unsafe impl Send for Containment {}
    #[allow(unsafe_code)]
    unsafe impl Sync for Containment {}

    impl Containment {
        #[allow(unsafe_code)]
        pub(super) fn new(pid: u32, child: &tokio::process::Child) -> io::Result<Self> {
            let process = child
                .raw_handle()
                .ok_or_else(|| io::Error::other("the app exited before it could be contained"))?;
            // SAFETY: plain Win32 calls on handles we own; every failure is checked.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return Err(io::Error::last_os_error());
                }
                let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let ok = SetInformationJobObject(
                    job,
                    JobObjectExtendedLimitInformation,
                    std::ptr::addr_of!(limits).cast(),
                    u32::try_from(std::mem::size_of_val(&limits)).unwrap_or(u32::MAX),
                );
                if ok == 0 || AssignProcessToJobObject(job, process as HANDLE) == 0 {
                    let err = io::Error::last_os_error();
                    CloseHandle(job);
                    return Err(err);
                }
                Ok(Containment { pid, job })
            }
        }

        #[allow(unsafe_code)]
        pub(super) fn terminate(&self) {
            // SAFETY: sends a console event to the child's process group; no memory involved.
            unsafe {
                GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, self.pid);
            }
        }

        #[allow(unsafe_code)]
        pub(super) fn kill(&self) {
            // SAFETY: the job handle stays valid until drop.
            unsafe {
                TerminateJobObject(self.job, 1);
            }
        }
    }

    impl Drop for Containment {
        #[allow(unsafe_code)]
        fn drop(&mut self) {
            // SAFETY: closing our own handle once; KILL_ON_JOB_CLOSE ends what is left.
            unsafe {
                CloseHandle(self.job);
            }
        }
    }
}

/// Unix: a small process (ancm itself, started with ANCM_PROCESS_GUARD set) that kills the app's process
/// groups if ancm dies without doing so, e.g. by SIGKILL. The parent-death signal only
/// reaches the app's direct child; the guard also reaches grandchildren. ancm tells it which
/// groups to kill over a pipe; end of file on that pipe means ancm is gone.
#[cfg(unix)]
pub(super) mod guard {
    use std::collections::BTreeSet;
    use std::io::{BufRead, Write};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::Mutex;

    use nix::sys::signal::Signal;

    #[derive(Debug)]
    pub struct Guard {
        stdin: Mutex<Option<ChildStdin>>,
        child: Mutex<Child>,
    }

    impl Guard {
        pub(crate) fn start() -> std::io::Result<Guard> {
            let exe = std::env::current_exe()?;
            use std::os::unix::process::CommandExt;
            let mut child = Command::new(exe)
                .env(GUARD_VARIABLE, "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Out of ancm's group, so a Ctrl+C meant for ancm does not take it down.
                .process_group(0)
                .spawn()?;
            let stdin = child
                .stdin
                .take()
                .ok_or_else(|| std::io::Error::other("guard has no stdin"))?;
            Ok(Guard {
                stdin: Mutex::new(Some(stdin)),
                child: Mutex::new(child),
            })
        }

        pub(crate) fn watch(&self, pgid: u32) {
            self.tell(&format!("+{pgid}\n"));
        }

        pub(crate) fn forget(&self, pgid: u32) {
            self.tell(&format!("-{pgid}\n"));
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
            if let Ok(mut stdin) = self.stdin.lock() {
                drop(stdin.take());
            }
            if let Ok(mut child) = self.child.lock() {
                let _ = child.wait();
            }
        }
    }

    /// Set in the guard's environment: it is how ancm, started again, knows to be the guard.
    const GUARD_VARIABLE: &str = "ANCM_PROCESS_GUARD";

    /// Whether this process was started as the guard.
    pub fn is_guard_process() -> bool {
        std::env::var_os(GUARD_VARIABLE).is_some()
    }

    /// The guard's main loop.
    pub fn run() {
        let mut groups = BTreeSet::new();
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let (op, pgid) = line.split_at(1.min(line.len()));
            let Ok(pgid) = pgid.trim().parse::<u32>() else {
                continue;
            };
            match op {
                "+" => {
                    groups.insert(pgid);
                }
                "-" => {
                    groups.remove(&pgid);
                }
                _ => {}
            }
        }
        for pgid in groups {
            super::imp::signal_group(pgid, Signal::SIGKILL);
        }
    }
}
