//! What keeps the app's process tree contained, per OS. Linux: each app process gets a cgroup
//! v2 of its own where ancm may create one, which holds every descendant whatever it does, and
//! ancm is the subreaper of the app's tree, so descendants that leave it are re-parented to
//! ancm. Unix: the app leads its own process group, so signals and kills reach its children
//! too, and on Linux it gets a parent-death signal; a guard process kills what is left when
//! ancm is killed. Windows: a new process group (for CTRL_BREAK) inside a kill-on-close job
//! object, which holds every descendant.

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

#[cfg(unix)]
mod imp {
    use std::io;

    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    use tokio::process::Command;

    #[cfg(target_os = "linux")]
    use crate::supervisor::cgroup::Cgroup;

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

    pub(super) struct Prepared;

    pub(super) fn contain(command: &mut Command) -> Prepared {
        command.creation_flags(CREATE_NEW_PROCESS_GROUP);
        Prepared
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
        pub(super) fn new(
            pid: u32,
            child: &tokio::process::Child,
            _prepared: Prepared,
        ) -> io::Result<Self> {
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

        /// Fails when ancm has no console shared with the app (started detached, or as a
        /// service), and always under Wine.
        #[allow(unsafe_code)]
        pub(super) fn terminate(&self) -> bool {
            // SAFETY: sends a console event to the child's process group; no memory involved.
            let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, self.pid) };
            if sent == 0 {
                let err = io::Error::last_os_error();
                tracing::error!(pid = self.pid, %err, "cannot send CTRL_BREAK to the app's process group; killing it now instead of waiting shutdownTimeLimit");
                return false;
            }
            true
        }

        #[allow(unsafe_code)]
        pub(super) fn kill(&self) {
            // SAFETY: the job handle stays valid until drop.
            unsafe {
                TerminateJobObject(self.job, 1);
            }
        }

        /// The job object lives until drop: nothing to release before.
        pub(super) async fn release(&mut self) {}

        /// The job object holds every descendant.
        pub(super) fn holds_all(&self) -> bool {
            true
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

/// Unix: a small process (ancm itself, started with ANCM_PROCESS_GUARD set) that kills the
/// app's trees if ancm dies without doing so, e.g. by SIGKILL. The parent-death signal only
/// reaches the app's direct child; the guard also reaches the rest: the app's process groups,
/// its cgroups (Linux), and the processes that left its tree and were re-parented to ancm.
/// ancm tells it what to kill over a pipe; end of file on that pipe means ancm is gone.
///
/// Without a cgroup (Linux), ancm also tells it each app's token: a process that left the tree
/// in the last second before ancm was killed is not yet on ancm's list of orphans, so once ancm
/// is gone the guard waits for ancm's orphans to be handed to ancm's own reaper (it is one of
/// them) and kills, with their descendants, those the reaper adopted that carry an app's
/// token, and every process in the apps' sessions and groups (see `orphans::kill_escaped`).
/// A process that both cleared its environment and left the session in that last second is
/// only held by a cgroup.
#[cfg(unix)]
pub(super) mod guard {
    use std::collections::BTreeSet;
    use std::io::{BufRead, Write};
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::Mutex;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

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
            let spawning = crate::supervisor::orphans::Spawning::begin();
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
                crate::supervisor::orphans::owned(child.id());
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
            super::imp::signal_group(pgid, Signal::SIGKILL);
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
            crate::supervisor::orphans::kill_escaped(reaper, &watched.groups, &watched.tokens);
        }
        #[cfg(target_os = "linux")]
        for cgroup in watched.cgroups {
            crate::supervisor::cgroup::kill_and_remove(&cgroup);
        }
    }

    /// Signals that would end the guard by default, and with it the app's protection, while
    /// ancm lives on: logrotate's SIGUSR1, a `killall -HUP ancm`, or `systemctl kill`'s SIGTERM
    /// to the whole unit (ancm stops on that, and the guard's pipe tells it so). The guard ends
    /// when its pipe from ancm closes, or by SIGKILL.
    fn ignore_stray_signals() {
        use nix::sys::signal::{signal, SigHandler, Signal::*};
        let named = [
            SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGVTALRM,
            SIGPROF, SIGIO, SIGXCPU, SIGXFSZ,
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
}
