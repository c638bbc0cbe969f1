//! Who listens on a TCP port, read from /proc (Linux): the LISTEN sockets in `/proc/net/tcp` and
//! `/proc/net/tcp6`, and the processes whose descriptors hold them. Readiness counts only the
//! app's own socket, as ANCM's ownership check does (spec §3.2); what else the app's tree listens
//! on tells an app that ignores its port. Blocking: call it off the runtime.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The `st` column's value for a listening socket.
const TCP_LISTEN: &str = "0A";

/// A listening socket, as the kernel's table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Socket {
    pub(crate) local: SocketAddr,
    pub(crate) inode: u64,
}

/// A process that holds a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    /// Its command name, when readable.
    pub(crate) name: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "PID {} ({name})", self.pid),
            None => write!(f, "PID {}", self.pid),
        }
    }
}

/// Who listens on a port, as far as the app is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing listens on it yet.
    Nobody,
    /// A process of the app's tree listens; requests go to `forward`. `exposed` is the app's
    /// listener on all interfaces (0.0.0.0 or ::), when it has one.
    App {
        forward: SocketAddr,
        exposed: Option<SocketAddr>,
    },
    /// Only other processes listen on it; `None` when the holder could not be seen (another
    /// user's process).
    Foreign(Option<Holder>),
}

/// The app's port, watched while the app starts. Reading the socket tables costs milliseconds
/// on a big host (the kernel walks its whole connection hash), so a check reads them only when
/// the app's direct child holds a socket not yet seen twice (a listener is made, bound and
/// set listening in microseconds), or when [`FULL_CHECK_EVERY`] has passed since the last read
/// (for a launcher whose descendant listens, and for another process on the port).
pub(crate) struct Watch {
    port: u16,
    pid: u32,
    group: u32,
    /// The child's socket inodes, with how many table reads saw them not listen on the port.
    seen: HashMap<u64, u8>,
    last_read: Instant,
    /// How many times the tables were read, for the debug log.
    pub(crate) reads: u32,
}

/// How often the tables are read even when the direct child made no new socket.
const FULL_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Table reads after which a socket of the child that does not listen on the port is ignored.
const SETTLED_AFTER: u8 = 2;

impl Watch {
    /// Watches `port` for the app whose direct child is `pid`, leading process `group`.
    pub(crate) fn new(port: u16, pid: u32, group: u32) -> Watch {
        Watch {
            port,
            pid,
            group,
            seen: HashMap::new(),
            last_read: Instant::now(),
            reads: 0,
        }
    }

    /// Who listens on the port now, as far as this check can tell.
    pub(crate) fn check(&mut self) -> Verdict {
        let child = socket_inodes(self.pid);
        match self.must_read(&child) {
            Some(extent) => verdict(self.port, self.pid, self.group, &child, extent),
            None => Verdict::Nobody,
        }
    }

    /// How much of the tables this check must read, given the child's sockets `child`, if at
    /// all; counts the read.
    fn must_read(&mut self, child: &HashSet<u64>) -> Option<Extent> {
        let fresh = child
            .iter()
            .any(|inode| self.seen.get(inode).is_none_or(|&n| n < SETTLED_AFTER));
        let extent = if self.last_read.elapsed() >= FULL_CHECK_EVERY {
            Extent::Whole
        } else if fresh {
            Extent::Listeners
        } else {
            return None;
        };
        for inode in child {
            let reads = self.seen.entry(*inode).or_default();
            *reads = reads.saturating_add(1);
        }
        self.last_read = Instant::now();
        self.reads += 1;
        Some(extent)
    }
}

/// Who listens on `port`: the app (its direct child `pid`, holding the sockets `child`; then
/// its descendants; then any process in its process `group`), someone else, or nobody.
fn verdict(port: u16, pid: u32, group: u32, child: &HashSet<u64>, extent: Extent) -> Verdict {
    // IPv4 first: the common case, and the address preferred when the app listens on both.
    let mut sockets = table(TCP4, port, extent);
    if !sockets.iter().any(|s| child.contains(&s.inode)) {
        sockets.extend(table(TCP6, port, extent));
    }
    if sockets.is_empty() {
        return Verdict::Nobody;
    }
    let inodes: HashSet<u64> = sockets.iter().map(|s| s.inode).collect();
    let mut held: HashSet<u64> = child.intersection(&inodes).copied().collect();
    // The descendants cost a read of the whole process table, so only when the child does not
    // hold the socket itself.
    if held.is_empty() {
        held = super::platform::tree::descendants(pid)
            .into_iter()
            .map(|p| held_by(p, &inodes))
            .find(|h| !h.is_empty())
            .unwrap_or_default();
    }
    let holders = if held.is_empty() {
        holders(&inodes)
    } else {
        Vec::new()
    };
    // A process that left the tree but not the group (a double-forked daemon) still belongs
    // to the app: the group kill reaches it.
    if let Some((_, inode)) = holders
        .iter()
        .find(|(p, _)| process_group(*p) == Some(group))
    {
        held.insert(*inode);
    }
    if held.is_empty() {
        return Verdict::Foreign(holders.first().map(|&(pid, _)| holder(pid)));
    }
    let own: Vec<&Socket> = sockets.iter().filter(|s| held.contains(&s.inode)).collect();
    let exposed = own
        .iter()
        .map(|s| s.local)
        .find(|local| local.ip().is_unspecified());
    Verdict::App {
        forward: forward_address(&own, port),
        exposed,
    }
}

/// Every address the app's tree (its direct child `pid` and that one's descendants) listens
/// on, on any port, IPv4-mapped addresses shown as IPv4.
pub(crate) fn tree_listeners(pid: u32) -> Vec<SocketAddr> {
    let mut inodes = socket_inodes(pid);
    for descendant in super::platform::tree::descendants(pid) {
        inodes.extend(socket_inodes(descendant));
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut sockets = read_table(TCP4, Extent::Whole);
    sockets.extend(read_table(TCP6, Extent::Whole));
    let mut addrs: Vec<SocketAddr> = sockets
        .into_iter()
        .filter(|s| inodes.contains(&s.inode))
        .map(|s| SocketAddr::new(s.local.ip().to_canonical(), s.local.port()))
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

/// Whoever listens on `port` now, when anything does: `Some(None)` when the holder could not
/// be seen.
pub(crate) fn holder_of(port: u16) -> Option<Option<Holder>> {
    let inodes: HashSet<u64> = listening(port).iter().map(|s| s.inode).collect();
    if inodes.is_empty() {
        return None;
    }
    Some(holders(&inodes).first().map(|&(pid, _)| holder(pid)))
}

const TCP4: &str = "/proc/net/tcp";
const TCP6: &str = "/proc/net/tcp6";

/// How much of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// Up to the first socket that does not listen. The kernel lists its listening sockets
    /// first, so these are all of them, and the read stops before the walk through every
    /// connection bucket that makes a whole read take milliseconds on a big host.
    Listeners,
    /// All of it, so that a kernel that ever lists otherwise only delays readiness.
    Whole,
}

/// The LISTEN sockets on `port`, IPv4 and IPv6, on any local address.
fn listening(port: u16) -> Vec<Socket> {
    let mut sockets = table(TCP4, port, Extent::Whole);
    sockets.extend(table(TCP6, port, Extent::Whole));
    sockets
}

/// Every port something listens on over IPv4.
pub(crate) fn listening_ports_v4() -> HashSet<u16> {
    read_table(TCP4, Extent::Listeners)
        .into_iter()
        .map(|socket| socket.local.port())
        .collect()
}

/// The LISTEN sockets on `port` in one table.
fn table(path: &str, port: u16, extent: Extent) -> Vec<Socket> {
    let mut sockets = read_table(path, extent);
    sockets.retain(|socket| socket.local.port() == port);
    sockets
}

/// The LISTEN sockets in one `/proc/net/tcp{,6}` table; none when it cannot be read (no
/// /proc, or no IPv6).
fn read_table(path: &str, extent: Extent) -> Vec<Socket> {
    let Ok(file) = fs::File::open(path) else {
        return Vec::new();
    };
    // Small reads: the kernel fills each one with as few sockets as fit, so stopping early
    // spares it the rest of the walk.
    let lines = BufReader::with_capacity(1024, file).lines();
    let mut sockets = Vec::new();
    for line in lines.skip(1) {
        let Ok(line) = line else { break };
        match parse_row(&line) {
            Some(Row::Listening(socket)) => sockets.push(socket),
            Some(Row::Other) if extent == Extent::Listeners => break,
            _ => {}
        }
    }
    sockets
}

/// The LISTEN sockets in the text of one table.
#[cfg(test)]
fn parse_table(table: &str) -> Vec<Socket> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| match parse_row(line)? {
            Row::Listening(socket) => Some(socket),
            Row::Other => None,
        })
        .collect()
}

/// One socket of a table.
enum Row {
    Listening(Socket),
    Other,
}

/// A table's line: `sl local_address rem_address st ... inode ...`; `None` when it is not one.
fn parse_row(line: &str) -> Option<Row> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local = parse_address(fields.get(1)?)?;
    let state = *fields.get(3)?;
    let inode = fields.get(9)?.parse::<u64>().ok()?;
    if state != TCP_LISTEN || inode == 0 {
        return Some(Row::Other);
    }
    Some(Row::Listening(Socket { local, inode }))
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each 32-bit
/// word of the address in the machine's byte order, the port as a plain number.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Where to send requests among the app's own listeners: IPv4 loopback when one listens on
/// IPv4 (also on 0.0.0.0), else IPv6 loopback, else the one address it listens on.
fn forward_address(own: &[&Socket], port: u16) -> SocketAddr {
    let ips: Vec<IpAddr> = own.iter().map(|s| s.local.ip().to_canonical()).collect();
    let v4 = |ip: &IpAddr| matches!(ip, IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified());
    let v6 = |ip: &IpAddr| matches!(ip, IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified());
    let ip = if ips.iter().any(v4) {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if ips.iter().any(v6) {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        ips.first()
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    };
    SocketAddr::new(ip, port)
}

/// Which of `inodes` process `pid` holds open.
fn held_by(pid: u32, inodes: &HashSet<u64>) -> HashSet<u64> {
    socket_inodes(pid).intersection(inodes).copied().collect()
}

/// The inodes of the sockets process `pid` holds open; none when its descriptors cannot be
/// read (gone, or another user's).
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| socket_inode(target.to_str()?))
        .collect()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every process that holds one of `inodes`, with the inode, lowest pid first. Processes
/// whose descriptors cannot be read (another user's) are not seen.
fn holders(inodes: &HashSet<u64>) -> Vec<(u32, u64)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| Some((pid, held_by(pid, inodes).into_iter().next()?)))
        .collect()
}

fn holder(pid: u32) -> Holder {
    let name = fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim_end().to_owned())
        .filter(|name| !name.is_empty());
    Holder { pid, name }
}

/// The process group of `pid`, from `/proc/PID/stat` (the third field after the name, which
/// may itself hold spaces and parentheses).
fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A pid no process has: above the kernel's largest pid_max.
    const NO_SUCH_PID: u32 = 0x7fff_fff0;

    #[test]
    fn parses_listen_sockets_only() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0\n\
           1: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 112 1 0000000000000000 100 0 0 10 0\n\
           2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 113 1 0000000000000000 20 4 30 10 -1\n\
           3: 0100007F:1F92 0100007F:C351 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000\n";
        let found = parse_table(tcp);
        assert_eq!(
            found.iter().map(|s| s.inode).collect::<Vec<_>>(),
            [111, 112]
        );
        if cfg!(target_endian = "little") {
            assert_eq!(found[0].local, "127.0.0.1:8080".parse().expect("addr"));
            assert_eq!(found[1].local, "0.0.0.0:8081".parse().expect("addr"));
        }
        assert!(parse_table("garbage\n 0: x y 0A\n").is_empty());
    }

    #[test]
    fn parses_ipv6_addresses_word_by_word() {
        if cfg!(target_endian = "little") {
            let loopback = parse_address("00000000000000000000000001000000:1F90");
            assert_eq!(loopback, Some("[::1]:8080".parse().expect("addr")));
            let mapped = parse_address("0000000000000000FFFF00000100007F:0050");
            assert_eq!(mapped, Some("[::ffff:127.0.0.1]:80".parse().expect("addr")));
        }
        assert_eq!(parse_address("0100007F"), None);
        assert_eq!(parse_address("0100:1F90"), None);
    }

    #[test]
    fn forwards_to_ipv4_loopback_when_the_app_listens_on_ipv4() {
        let socket = |local: &str| Socket {
            local: local.parse().expect("addr"),
            inode: 1,
        };
        let (any4, v6, any6, mapped, lan) = (
            socket("0.0.0.0:80"),
            socket("[::1]:80"),
            socket("[::]:80"),
            socket("[::ffff:127.0.0.1]:80"),
            socket("10.1.2.3:80"),
        );
        let to = |own: &[&Socket]| forward_address(own, 80).to_string();
        assert_eq!(to(&[&v6, &any4]), "127.0.0.1:80");
        assert_eq!(to(&[&mapped]), "127.0.0.1:80");
        assert_eq!(to(&[&v6]), "[::1]:80");
        assert_eq!(to(&[&any6]), "[::1]:80");
        assert_eq!(to(&[&lan]), "10.1.2.3:80");
    }

    /// The app, listening on loopback only.
    fn app(forward: SocketAddr) -> Verdict {
        Verdict::App {
            forward,
            exposed: None,
        }
    }

    /// The verdict of a full check, as a watch makes it once the tables are read.
    fn full_check(port: u16, pid: u32, group: u32) -> Verdict {
        let whole = verdict(port, pid, group, &socket_inodes(pid), Extent::Whole);
        let listeners = verdict(port, pid, group, &socket_inodes(pid), Extent::Listeners);
        assert_eq!(whole, listeners, "the listening sockets come first");
        whole
    }

    #[test]
    fn a_listener_of_this_process_is_ours_for_its_pid_and_foreign_for_another() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = std::process::id();
        let ours = app(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        assert_eq!(full_check(port, me, me), ours);
        let name = fs::read_to_string("/proc/self/comm").expect("comm");
        let expected = Holder {
            pid: me,
            name: Some(name.trim_end().to_owned()),
        };
        assert_eq!(
            full_check(port, NO_SUCH_PID, NO_SUCH_PID),
            Verdict::Foreign(Some(expected.clone()))
        );
        assert_eq!(holder_of(port), Some(Some(expected)));
        // Our process group counts as the app's.
        let group = process_group(me).expect("our process group");
        assert_eq!(full_check(port, NO_SUCH_PID, group), ours);
        drop(listener);
        assert_eq!(full_check(port, me, me), Verdict::Nobody);
        assert_eq!(holder_of(port), None);
    }

    #[test]
    fn a_watch_reads_the_tables_when_the_child_has_a_new_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = std::process::id();
        let mut watch = Watch::new(port, me, me);
        assert_eq!(
            watch.check(),
            app(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        );
        assert_eq!(watch.reads, 1);

        // A child with no socket and nothing on the port: no read until the full check is due.
        let mut idle = Watch::new(port, NO_SUCH_PID, NO_SUCH_PID);
        assert_eq!(idle.check(), Verdict::Nobody);
        assert_eq!(idle.reads, 0);
    }

    #[test]
    fn a_watch_reads_for_a_new_socket_twice_then_only_when_the_full_check_is_due() {
        let mut watch = Watch::new(1, NO_SUCH_PID, NO_SUCH_PID);
        let sockets = |inodes: &[u64]| inodes.iter().copied().collect::<HashSet<u64>>();
        watch.last_read = Instant::now();
        assert_eq!(watch.must_read(&sockets(&[7])), Some(Extent::Listeners));
        watch.last_read = Instant::now();
        assert_eq!(watch.must_read(&sockets(&[7])), Some(Extent::Listeners));
        watch.last_read = Instant::now();
        assert_eq!(watch.must_read(&sockets(&[7])), None);
        assert_eq!(watch.must_read(&sockets(&[7, 8])), Some(Extent::Listeners));
        watch.last_read = Instant::now()
            .checked_sub(FULL_CHECK_EVERY)
            .expect("uptime");
        assert_eq!(watch.must_read(&sockets(&[])), Some(Extent::Whole));
        assert_eq!(watch.reads, 4);
    }

    #[test]
    fn an_ipv6_only_listener_is_reached_over_ipv6_loopback() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let port = listener.local_addr().expect("addr").port();
        let me = std::process::id();
        assert_eq!(
            full_check(port, me, me),
            app(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
        );
    }

    #[test]
    fn a_listener_on_all_interfaces_is_exposed() {
        let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
        let local = listener.local_addr().expect("addr");
        let me = std::process::id();
        assert_eq!(
            full_check(local.port(), me, me),
            Verdict::App {
                forward: SocketAddr::from((Ipv4Addr::LOCALHOST, local.port())),
                exposed: Some(local),
            }
        );
    }

    #[test]
    fn lists_what_the_tree_listens_on_whatever_the_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("addr");
        let parent = process_parent(std::process::id());
        assert!(tree_listeners(parent).contains(&local));
        assert!(!tree_listeners(NO_SUCH_PID).contains(&local));
        drop(listener);
        assert!(!tree_listeners(parent).contains(&local));
    }

    /// The parent of `pid`, from `/proc/PID/stat`: this process is one of its descendants.
    fn process_parent(pid: u32) -> u32 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let (_, rest) = stat.rsplit_once(')').expect("stat fields");
        rest.split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("ppid")
    }

    #[test]
    fn names_the_holder() {
        let named = Holder {
            pid: 42,
            name: Some("nginx".to_owned()),
        };
        assert_eq!(named.to_string(), "PID 42 (nginx)");
        let unnamed = Holder {
            pid: 42,
            name: None,
        };
        assert_eq!(unnamed.to_string(), "PID 42");
    }
}
