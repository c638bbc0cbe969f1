//! The runtime folder where each `ancm run` on this machine keeps its control socket,
//! `<pid>.sock`, owner-only: `$XDG_RUNTIME_DIR/ancm`, else `ancm-<uid>` in the temp folder.
//! The socket is the registration: it goes when its instance stops, and one left by an
//! instance that was killed is pruned by the next look.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The folder, created (owner-only) if it is not there.
pub(crate) fn folder() -> io::Result<PathBuf> {
    let folder = match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("ancm"),
        None => std::env::temp_dir().join(format!("ancm-{}", nix::unistd::getuid())),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&folder)?;
    // A temp folder shared by every user: one made by someone else is not ours to use.
    let meta = std::fs::symlink_metadata(&folder)?;
    use std::os::unix::fs::MetadataExt as _;
    if !meta.is_dir() || meta.uid() != nix::unistd::getuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a folder of this user's", folder.display()),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(folder)
}

/// This instance's control socket path.
pub(crate) fn own_socket(folder: &Path) -> PathBuf {
    folder.join(format!("{}.sock", std::process::id()))
}

/// An instance found in the folder.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) pid: u32,
    pub(crate) socket: PathBuf,
}

/// The instances registered now, by pid; entries of processes that are gone are removed.
pub(crate) fn entries(folder: &Path) -> io::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for item in std::fs::read_dir(folder)? {
        let path = item?.path();
        let Some(pid) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".sock"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if alive(pid) {
            found.push(Entry { pid, socket: path });
        } else {
            prune(&path);
        }
    }
    found.sort_by_key(|entry| entry.pid);
    Ok(found)
}

/// Removes the entry of an instance that is gone.
pub(crate) fn prune(socket: &Path) {
    match std::fs::remove_file(socket) {
        Ok(()) => {
            tracing::debug!(socket = %socket.display(), "removed the entry of an ancm that is gone")
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::debug!(%err, socket = %socket.display(), "cannot remove a stale entry")
        }
    }
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // EPERM: alive, someone else's (a pid reused since).
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}
