//! The files ancm opens for the app (the stdout log and its rotation, the diagnostic log), at
//! paths the app's own web.config names. With `--user`, ancm stays root and the app does not:
//! these files are then opened, created and deleted by a short-lived copy of ancm that has
//! become the app's user first, as IIS's worker process writes them as the app pool identity.
//! The app's user can then reach through them nothing it could not reach itself: no symlink it
//! plants and no folder it names lets it have root write, create or delete a file. The opened
//! file comes back over a socket. The last component of a log file's path is never followed
//! when it is a symlink, and only a regular file is written to, with or without `--user`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::RunAs;

/// Opens `path` for appending, creating it and its missing folders: as `user` when there is
/// one. Blocking.
pub fn open_append(path: &Path, user: Option<&RunAs>) -> io::Result<File> {
    #[cfg(unix)]
    if let Some(user) = user {
        return opener::open(user, path);
    }
    let _ = user;
    open_here(path)
}

/// Deletes the oldest stdout log files of `prefix` beyond `keep`, never `current`, as `user`
/// when there is one; returns each file it tried and how that went. Blocking.
pub fn prune(
    prefix: &Path,
    keep: u32,
    current: &Path,
    user: Option<&RunAs>,
) -> Vec<(PathBuf, io::Result<()>)> {
    #[cfg(unix)]
    if let Some(user) = user {
        return opener::prune(user, prefix, keep, current)
            .unwrap_or_else(|err| vec![(prefix.to_owned(), Err(err))]);
    }
    let _ = user;
    prune_here(prefix, keep, current)
}

/// Under `--user`: says so when the app's user can change `web_config` (or replace it, or a
/// folder above it), since then the app can change its own settings, which IIS keeps out of
/// the app pool identity's reach. Blocking.
pub fn warn_if_app_can_change(web_config: &Path, user: &RunAs) {
    #[cfg(unix)]
    match opener::changeable(user, web_config) {
        Ok(paths) => {
            if let Some(path) = paths.first() {
                tracing::warn!(
                    web_config = %web_config.display(),
                    path = %path.display(),
                    user = %user.name,
                    "the app's user can change the app's web.config (it can write {}): the app can change its own settings; make web.config and the folders above it root's and not writable by that user",
                    path.display()
                );
            }
        }
        Err(err) => {
            tracing::warn!(web_config = %web_config.display(), %err, "cannot tell whether the app's user can change its web.config");
        }
    }
    #[cfg(not(unix))]
    let _ = (web_config, user);
}

/// The open itself, by whoever runs it.
fn open_here(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // No symlink at the end, and no wait on a FIFO put there: the check below refuses it.
        options
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits());
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The pruning itself, by whoever runs it.
fn prune_here(prefix: &Path, keep: u32, current: &Path) -> Vec<(PathBuf, io::Result<()>)> {
    let (Some(folder), Some(stem)) = (prefix.parent(), prefix.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let Ok(items) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut logs: Vec<(String, PathBuf)> = items
        .filter_map(Result::ok)
        .filter_map(|item| {
            let name = item.file_name().into_string().ok()?;
            let rest = name
                .strip_prefix(stem)?
                .strip_prefix('_')?
                .strip_suffix(".log")?;
            let (stamp, pid) = rest.split_once('_')?;
            let ours = stamp.len() == 14
                && stamp.bytes().all(|b| b.is_ascii_digit())
                && !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit());
            ours.then(|| (stamp.to_owned(), item.path()))
        })
        .collect();
    logs.sort();
    let excess = logs
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    logs.into_iter()
        .take(excess)
        .filter(|(_, path)| path != current)
        .map(|(_, path)| {
            let removed = std::fs::remove_file(&path);
            (path, removed)
        })
        .collect()
}

/// The copy of ancm that does the work as the app's user, and ancm's side of it.
#[cfg(unix)]
mod opener {
    use std::ffi::OsString;
    use std::fs::File;
    use std::io::{self, IoSlice, IoSliceMut, Read, Write};
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitCode, Stdio};
    use std::time::Duration;

    use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    use serde::{Deserialize, Serialize};

    use crate::config::RunAs;

    /// Set in the opener's environment: who to become (`uid:gid:group,group...`).
    const VARIABLE: &str = "ANCM_OPEN_AS";

    /// How long the opener may take: a file system that hangs must not hang ancm.
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// The most a request or a reply may be.
    const MAX_MESSAGE: u64 = 1 << 20;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "op", rename_all = "camelCase")]
    enum Request {
        Open {
            path: Vec<u8>,
        },
        Prune {
            prefix: Vec<u8>,
            keep: u32,
            current: Vec<u8>,
        },
        Changeable {
            path: Vec<u8>,
        },
    }

    /// An error as it crosses the socket: the OS's number when there is one.
    #[derive(Debug, Serialize, Deserialize)]
    struct Failure {
        errno: Option<i32>,
        message: String,
    }

    impl From<&io::Error> for Failure {
        fn from(err: &io::Error) -> Failure {
            Failure {
                errno: err.raw_os_error(),
                message: err.to_string(),
            }
        }
    }

    impl From<Failure> for io::Error {
        fn from(failure: Failure) -> io::Error {
            match failure.errno {
                Some(errno) => io::Error::from_raw_os_error(errno),
                None => io::Error::other(failure.message),
            }
        }
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Reply {
        error: Option<Failure>,
        /// Prune: each file tried, and its error if it stayed.
        removed: Vec<(Vec<u8>, Option<Failure>)>,
        /// Changeable: the paths the user can write whose change changes the file.
        writable: Vec<Vec<u8>>,
    }

    fn bytes(path: &Path) -> Vec<u8> {
        path.as_os_str().as_bytes().to_vec()
    }

    fn path(bytes: Vec<u8>) -> PathBuf {
        PathBuf::from(OsString::from_vec(bytes))
    }

    pub(super) fn open(user: &RunAs, path: &Path) -> io::Result<File> {
        let (fd, reply) = ask(user, &Request::Open { path: bytes(path) })?;
        if let Some(failure) = reply.error {
            return Err(failure.into());
        }
        let file = File::from(fd.ok_or_else(|| io::Error::other("the opener sent no file"))?);
        // The opener is the app's user: what it sends back is checked here too.
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    pub(super) fn prune(
        user: &RunAs,
        prefix: &Path,
        keep: u32,
        current: &Path,
    ) -> io::Result<Vec<(PathBuf, io::Result<()>)>> {
        let request = Request::Prune {
            prefix: bytes(prefix),
            keep,
            current: bytes(current),
        };
        let (_, reply) = ask(user, &request)?;
        if let Some(failure) = reply.error {
            return Err(failure.into());
        }
        Ok(reply
            .removed
            .into_iter()
            .map(|(file, failure)| (path(file), failure.map_or(Ok(()), |f| Err(f.into()))))
            .collect())
    }

    pub(super) fn changeable(user: &RunAs, file: &Path) -> io::Result<Vec<PathBuf>> {
        let (_, reply) = ask(user, &Request::Changeable { path: bytes(file) })?;
        if let Some(failure) = reply.error {
            return Err(failure.into());
        }
        Ok(reply.writable.into_iter().map(path).collect())
    }

    /// Starts the opener as `user`, sends it `request`, and takes its reply and the file it
    /// opened, if any.
    fn ask(user: &RunAs, request: &Request) -> io::Result<(Option<OwnedFd>, Reply)> {
        let (mut ours, theirs) = UnixStream::pair()?;
        ours.set_read_timeout(Some(TIMEOUT))?;
        ours.set_write_timeout(Some(TIMEOUT))?;
        let groups: Vec<String> = user.groups.iter().map(u32::to_string).collect();
        // Started as root and changing user itself: the app's user may not be allowed to run
        // ancm's executable, nor to enter the folder it sits in.
        // On Linux, /proc/self/exe: still there when ancm's file was replaced by an upgrade.
        #[cfg(target_os = "linux")]
        let exe = PathBuf::from("/proc/self/exe");
        #[cfg(not(target_os = "linux"))]
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .env_clear()
            .env(
                VARIABLE,
                format!("{}:{}:{}", user.uid, user.gid, groups.join(",")),
            )
            .current_dir("/")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(target_os = "linux")]
        let spawning = crate::children::Spawning::begin();
        let mut child = command.spawn()?;
        drop(command);
        #[cfg(target_os = "linux")]
        {
            crate::children::owned(child.id());
            drop(spawning);
        }
        let answer = exchange(&mut ours, request);
        if answer.is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
        #[cfg(target_os = "linux")]
        crate::children::released(child.id());
        answer
    }

    fn exchange(
        stream: &mut UnixStream,
        request: &Request,
    ) -> io::Result<(Option<OwnedFd>, Reply)> {
        stream.write_all(&serde_json::to_vec(request)?)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut first = [0u8; 1];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut fd = None;
        let received = loop {
            let mut iov = [IoSliceMut::new(&mut first)];
            let message = match recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                // With a receive timeout set, a signal interrupts the wait even with SA_RESTART.
                Err(nix::errno::Errno::EINTR) => continue,
                received => received?,
            };
            for cmsg in message.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    for raw in fds {
                        let owned = take_fd(raw);
                        // One file is asked for; any other is closed at once.
                        if fd.is_none() {
                            fd = Some(owned);
                        }
                    }
                }
            }
            break message.bytes;
        };
        if received == 0 {
            return Err(io::Error::other("the opener ended without an answer"));
        }
        let mut text = Vec::new();
        stream.take(MAX_MESSAGE).read_to_end(&mut text)?;
        let reply: Reply = serde_json::from_slice(&text)?;
        Ok((fd, reply))
    }

    /// Owns a descriptor that came in an SCM_RIGHTS message.
    #[allow(unsafe_code)]
    fn take_fd(raw: RawFd) -> OwnedFd {
        // SAFETY: the kernel has just put this descriptor in ancm's table for this message;
        // nothing else knows or owns it.
        unsafe { OwnedFd::from_raw_fd(raw) }
    }

    /// Whether this process was started as the opener.
    pub fn is_opener_process() -> bool {
        std::env::var_os(VARIABLE).is_some()
    }

    /// The opener: becomes the user, does the one thing asked on stdin (a socket), answers
    /// there, and exits.
    pub fn run() -> ExitCode {
        let Ok(stream) = io::stdin().as_fd().try_clone_to_owned() else {
            return ExitCode::FAILURE;
        };
        let mut stream = UnixStream::from(stream);
        let answered = match become_user() {
            Ok(()) => serve(&mut stream),
            Err(err) => answer(&mut stream, None, &failed(&err)),
        };
        if answered.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn failed(err: &io::Error) -> Reply {
        Reply {
            error: Some(err.into()),
            ..Reply::default()
        }
    }

    fn become_user() -> io::Result<()> {
        let value = std::env::var(VARIABLE).map_err(io::Error::other)?;
        let bad = || io::Error::other(format!("{VARIABLE}={value:?} is not uid:gid:groups"));
        let mut parts = value.splitn(3, ':');
        let uid: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let gid: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let groups = parts
            .next()
            .ok_or_else(bad)?
            .split(',')
            .filter(|g| !g.is_empty())
            .map(|g| g.parse().map(Gid::from_raw).map_err(|_| bad()))
            .collect::<io::Result<Vec<Gid>>>()?;
        #[cfg(target_os = "linux")]
        setgroups(&groups)?;
        #[cfg(not(target_os = "linux"))]
        let _ = (&groups, setgroups);
        setgid(Gid::from_raw(gid))?;
        setuid(Uid::from_raw(uid))?;
        if uid != 0 && setuid(Uid::from_raw(0)).is_ok() {
            return Err(io::Error::other("could not give up root"));
        }
        Ok(())
    }

    fn serve(stream: &mut UnixStream) -> io::Result<()> {
        let mut text = Vec::new();
        (&mut *stream).take(MAX_MESSAGE).read_to_end(&mut text)?;
        let request: Request = match serde_json::from_slice(&text) {
            Ok(request) => request,
            Err(err) => return answer(stream, None, &failed(&err.into())),
        };
        match request {
            Request::Open { path: file } => match super::open_here(&path(file)) {
                Ok(file) => answer(stream, Some(&file), &Reply::default()),
                Err(err) => answer(stream, None, &failed(&err)),
            },
            Request::Prune {
                prefix,
                keep,
                current,
            } => {
                let removed = super::prune_here(&path(prefix), keep, &path(current))
                    .into_iter()
                    .map(|(file, result)| (bytes(&file), result.err().map(|e| (&e).into())))
                    .collect();
                let reply = Reply {
                    removed,
                    ..Reply::default()
                };
                answer(stream, None, &reply)
            }
            Request::Changeable { path: file } => {
                let reply = Reply {
                    writable: writable_chain(&path(file))
                        .iter()
                        .map(|p| bytes(p))
                        .collect(),
                    ..Reply::default()
                };
                answer(stream, None, &reply)
            }
        }
    }

    /// What this user can write that would change `file`: the file itself, or a folder on
    /// its path where it could rename or replace the entry below (not in a sticky folder such
    /// as /tmp, where only an entry's owner can).
    fn writable_chain(file: &Path) -> Vec<PathBuf> {
        use nix::unistd::{access, getuid, AccessFlags};
        let me = getuid().as_raw();
        let mut found = Vec::new();
        if access(file, AccessFlags::W_OK).is_ok() {
            found.push(file.to_owned());
        }
        let mut entry = file;
        while let Some(folder) = entry.parent().filter(|f| !f.as_os_str().is_empty()) {
            let (Ok(folder_meta), Ok(entry_meta)) =
                (std::fs::metadata(folder), std::fs::symlink_metadata(entry))
            else {
                break;
            };
            let sticky = folder_meta.mode() & 0o1000 != 0;
            let replaceable = access(folder, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
                && (!sticky || entry_meta.uid() == me || folder_meta.uid() == me);
            if replaceable {
                found.push(folder.to_owned());
            }
            entry = folder;
        }
        found
    }

    /// The first byte carries the file, if any; the reply follows.
    fn answer(stream: &mut UnixStream, file: Option<&File>, reply: &Reply) -> io::Result<()> {
        let fds: Vec<RawFd> = file.iter().map(|f| f.as_raw_fd()).collect();
        let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
            Vec::new()
        } else {
            vec![ControlMessage::ScmRights(&fds)]
        };
        sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(b"r")],
            &cmsgs,
            MsgFlags::empty(),
            None,
        )?;
        stream.write_all(&serde_json::to_vec(reply)?)?;
        Ok(())
    }
}

#[cfg(unix)]
pub use opener::{is_opener_process, run as run_opener};

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_or_a_fifo_at_the_name_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("target");
        std::fs::write(&target, "kept\n").expect("write");
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(open_append(&link, None).is_err());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "kept\n");

        // No reader: opening it to write would wait for one for ever.
        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        assert!(open_append(&fifo, None).is_err());
    }

    #[test]
    fn folders_are_made_and_the_file_appended_to() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a/b/out.log");
        for line in ["one\n", "two\n"] {
            let mut file = open_append(&path, None).expect("open");
            std::io::Write::write_all(&mut file, line.as_bytes()).expect("write");
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\ntwo\n");
    }

    #[test]
    fn prune_keeps_the_newest_and_the_current() {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = |stamp: u32| {
            dir.path()
                .join(format!("stdout_2026010100000{stamp}_7.log"))
        };
        for stamp in 1..=4 {
            std::fs::write(name(stamp), "").expect("write");
        }
        std::fs::write(dir.path().join("stdout_other.log"), "").expect("write");
        let tried = prune(&dir.path().join("stdout"), 2, &name(1), None);
        let removed: Vec<PathBuf> = tried
            .into_iter()
            .map(|(path, r)| {
                r.expect("removed");
                path
            })
            .collect();
        assert_eq!(removed, vec![name(2)]);
        assert!(name(1).exists() && name(3).exists() && name(4).exists());
        assert!(dir.path().join("stdout_other.log").exists());
    }
}
