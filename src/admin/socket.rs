//! The admin listener's socket: a TCP address, or a Unix socket path made 0600 (0660 and given
//! to `--admin-group`) between bind and listen, whatever the umask; a stale socket file left by
//! a killed ancm is removed, one another process listens on is not taken over.
//!
//! Imports only the admin settings' `Address`; must not import the server that serves on it.

use anyhow::Context as _;

use super::Address;

/// A bound admin socket: TCP, or a Unix socket path.
pub(super) enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// Binds `address` (with `--admin-group`'s `group` for a socket path); also how it is shown.
pub(super) async fn listen(
    address: &Address,
    group: Option<&str>,
) -> anyhow::Result<(Listener, String)> {
    match address {
        Address::Tcp(addr) if group.is_some() => {
            anyhow::bail!("--admin-group applies to a socket path; --admin {addr} is a TCP address")
        }
        Address::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--admin {addr}: cannot listen there"))?;
            let local = listener.local_addr()?;
            Ok((Listener::Tcp(listener), format!("http://{local}")))
        }
        #[cfg(unix)]
        Address::Unix(path) => {
            remove_stale_socket(path).await?;
            let gid = match group {
                Some(name) => Some(group_id(name).await?),
                None => None,
            };
            let listener = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || listen_unix(&path, gid)).await??
            };
            let listener = tokio::net::UnixListener::from_std(listener)
                .with_context(|| format!("--admin {}: cannot listen there", path.display()))?;
            Ok((Listener::Unix(listener), path.display().to_string()))
        }
        #[cfg(not(unix))]
        Address::Unix(path) => anyhow::bail!(
            "--admin {}: a socket path works on Unix only; give an IP:PORT",
            path.display()
        ),
    }
}

/// Makes the socket at `path` 0600 (0660 and owned by `group` with one) between bind and
/// listen: no one connects before the mode is set, whatever the umask made it.
#[cfg(unix)]
fn listen_unix(
    path: &std::path::Path,
    group: Option<nix::unistd::Gid>,
) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = SockFlag::SOCK_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = SockFlag::empty();
    let fd = socket::socket(AddressFamily::Unix, SockType::Stream, flags, None)
        .with_context(|| format!("--admin {shown}: cannot make a socket"))?;
    let addr = UnixAddr::new(path).with_context(|| format!("--admin {shown}: path too long"))?;
    socket::bind(fd.as_raw_fd(), &addr)
        .with_context(|| format!("--admin {shown}: cannot listen there"))?;
    let mode = if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(gid)).with_context(|| {
            format!("--admin {shown}: cannot give the socket to group {gid} (--admin-group)")
        })?;
        0o660
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("--admin {shown}: cannot set the socket's mode to {mode:o}"))?;
    socket::listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
        .with_context(|| format!("--admin {shown}: cannot listen there"))?;
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// `--admin-group`: a group name, or a gid.
#[cfg(unix)]
async fn group_id(name: &str) -> anyhow::Result<nix::unistd::Gid> {
    if let Ok(gid) = name.parse() {
        return Ok(nix::unistd::Gid::from_raw(gid));
    }
    let owned = name.to_owned();
    let found = tokio::task::spawn_blocking(move || nix::unistd::Group::from_name(&owned))
        .await?
        .with_context(|| format!("--admin-group {name}: cannot read the group database"))?;
    found.map(|group| group.gid).ok_or_else(|| {
        anyhow::anyhow!("--admin-group {name}: no such group (give a name or a gid)")
    })
}

/// A socket file left by an ancm that was killed is in the way of binding; one that another
/// process still listens on is not taken over.
#[cfg(unix)]
async fn remove_stale_socket(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(meta) = tokio::fs::symlink_metadata(path).await else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        anyhow::bail!(
            "--admin {}: the path exists and is not a socket; give a new path",
            path.display()
        );
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        anyhow::bail!(
            "--admin {}: another process listens on this socket",
            path.display()
        );
    }
    tokio::fs::remove_file(path)
        .await
        .with_context(|| format!("--admin {}: cannot remove the stale socket", path.display()))
}

/// One accepted connection, of the listener's kind.
pub(super) enum Accepted {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// Waits for the next connection on `listener`.
pub(super) async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) => listener.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        #[cfg(unix)]
        Listener::Unix(listener) => listener.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}
