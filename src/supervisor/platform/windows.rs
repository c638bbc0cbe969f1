//! Windows: the child gets CREATE_NEW_PROCESS_GROUP, so that CTRL_BREAK sent to its group
//! reaches it and not us, and shares ancm's console, which that event needs (its output is
//! piped, so nothing shows in the console directly). It is assigned to a job object that
//! kills every process in it when the last handle closes, which happens when ancm exits in
//! any way.
//!
//! Imports nothing of the crate.

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
