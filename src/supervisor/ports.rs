//! The app's port when the user fixed none, picked as ANCM picks it (spec §2): at random from
//! [10000, 48000], checked free. Unlike ANCM, the OS's ephemeral range is left out too.
//!
//! Why not port 0: the OS then hands out a port from its ephemeral range, the one outgoing
//! connections draw from, so any of them can take the port between this pick and the app's
//! bind. Why not from 1025: the low ports are where static services listen (spec §5, #46431).
//! Blocking (it reads /proc): call it off the runtime.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::ops::RangeInclusive;

/// ANCM's random range since it stopped taking static service ports.
const RANGE: RangeInclusive<u16> = 10000..=48000;
/// How many random candidates before leaving the choice to the OS, as ANCM tries 10.
const CANDIDATES: usize = 10;
/// Linux's default ip_local_port_range, for when it cannot be read.
#[cfg(target_os = "linux")]
const LINUX_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// A free loopback port for the app: a random free one of [`RANGE`] outside the ephemeral
/// range, else (10 taken in a row, or no port left in the range) one the OS picks.
pub(crate) fn pick() -> io::Result<u16> {
    let pool = Pool::new(RANGE, ephemeral_range());
    if pool.len() > 0 {
        let listening = listening_ports();
        for _ in 0..CANDIDATES {
            if let Some(port) = pool.nth(random() % pool.len()) {
                if !listening.contains(&port) && binds(port) {
                    return Ok(port);
                }
            }
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Whether nothing holds `port` now, as far as readiness would see: no IPv4 listener (the
/// bind on 127.0.0.1 fails for one on it or on 0.0.0.0; the IPv4 table shows one on any other
/// address) and none on IPv6 loopback. The IPv6 table is not read for it: with no IPv6
/// connection there, a read walks the kernel's whole connection hash, milliseconds on a big
/// host, for each start; a bind on [::1] answers in microseconds.
pub(crate) fn is_free(port: u16) -> bool {
    binds(port) && !listening_ports().contains(&port)
}

fn binds(port: u16) -> bool {
    if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
        return false;
    }
    // Any other error means no IPv6 loopback here, so nothing can listen there either.
    !matches!(
        TcpListener::bind((Ipv6Addr::LOCALHOST, port)),
        Err(err) if err.kind() == io::ErrorKind::AddrInUse
    )
}

/// The ports something listens on over IPv4, where the OS shows them (Linux).
fn listening_ports() -> HashSet<u16> {
    #[cfg(target_os = "linux")]
    return super::listeners::listening_ports_v4();
    #[cfg(not(target_os = "linux"))]
    HashSet::new()
}

/// The ephemeral range on Linux. Elsewhere none is left out: macOS and Windows use
/// 49152–65535 by default, above [`RANGE`] already.
fn ephemeral_range() -> Option<RangeInclusive<u16>> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
        Some(
            text.ok()
                .and_then(|t| parse_range(&t))
                .unwrap_or(LINUX_EPHEMERAL),
        )
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// `32768\t60999`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let (low, high) = (numbers.next()?.ok()?, numbers.next()?.ok()?);
    (low <= high).then_some(low..=high)
}

/// The ports of a range minus an excluded one: at most two runs.
#[derive(Debug)]
struct Pool {
    runs: Vec<RangeInclusive<u16>>,
}

impl Pool {
    fn new(range: RangeInclusive<u16>, excluded: Option<RangeInclusive<u16>>) -> Pool {
        let (start, end) = (*range.start(), *range.end());
        let runs = match excluded {
            Some(ex) if *ex.start() <= end && *ex.end() >= start => {
                let mut runs = Vec::with_capacity(2);
                if *ex.start() > start {
                    runs.push(start..=*ex.start() - 1);
                }
                if *ex.end() < end {
                    runs.push(*ex.end() + 1..=end);
                }
                runs
            }
            _ => vec![range],
        };
        Pool { runs }
    }

    fn len(&self) -> usize {
        self.runs
            .iter()
            .map(|r| usize::from(*r.end() - *r.start()) + 1)
            .sum()
    }

    /// The `n`th port of the pool, counting from its lowest.
    fn nth(&self, mut n: usize) -> Option<u16> {
        for run in &self.runs {
            let len = usize::from(*run.end() - *run.start()) + 1;
            if n < len {
                return u16::try_from(n).ok().map(|n| *run.start() + n);
            }
            n -= len;
        }
        None
    }
}

/// A random number from the OS, through a v4 UUID (122 random bits): the two halves XORed
/// cover each other's fixed version and variant bits.
fn random() -> usize {
    let bits = uuid::Uuid::new_v4().as_u128();
    let mixed = (bits >> 64) as u64 ^ bits as u64;
    // Truncation on 32-bit targets keeps it uniform.
    mixed as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_leaves_the_ephemeral_range_out() {
        let pool = Pool::new(RANGE, Some(32768..=60999));
        assert_eq!(pool.len(), 32767 - 10000 + 1);
        assert_eq!(pool.nth(0), Some(10000));
        assert_eq!(pool.nth(pool.len() - 1), Some(32767));
        assert_eq!(pool.nth(pool.len()), None);

        // An ephemeral range inside it splits it in two.
        let pool = Pool::new(RANGE, Some(20000..=29999));
        assert_eq!(pool.len(), 38001 - 10000);
        assert_eq!(pool.nth(9999), Some(19999));
        assert_eq!(pool.nth(10000), Some(30000));
        assert_eq!(pool.nth(pool.len() - 1), Some(48000));

        // Outside it (macOS, Windows): the whole range.
        let pool = Pool::new(RANGE, Some(49152..=65535));
        assert_eq!(pool.len(), 38001);
        assert_eq!(Pool::new(RANGE, None).len(), 38001);

        // All of it ephemeral: nothing left, so the OS picks.
        assert_eq!(Pool::new(RANGE, Some(1024..=65535)).len(), 0);
    }

    #[test]
    fn reads_the_ephemeral_range() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_range("1024 65535"), Some(1024..=65535));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("32768"), None);
        assert_eq!(parse_range(""), None);
    }

    #[test]
    fn picks_free_ports_in_the_range_outside_the_ephemeral_range() {
        let ephemeral = ephemeral_range();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let port = pick().expect("a port");
            assert!(RANGE.contains(&port), "{port}");
            assert!(
                !ephemeral.as_ref().is_some_and(|e| e.contains(&port)),
                "{port} is in the ephemeral range {ephemeral:?}"
            );
            seen.insert(port);
        }
        assert!(seen.len() > 40, "not random: {seen:?}");
    }

    #[test]
    fn a_port_something_listens_on_is_not_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(!is_free(port));
        drop(listener);
        assert!(is_free(port));

        if let Ok(v6) = TcpListener::bind("[::1]:0") {
            let port = v6.local_addr().expect("addr").port();
            assert!(!is_free(port), "an IPv6-only listener holds it too");
        }

        // Another address, which the bind on 127.0.0.1 does not see: the table does.
        #[cfg(target_os = "linux")]
        {
            let other = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
            let port = other.local_addr().expect("addr").port();
            assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
            assert!(!is_free(port), "a listener on 127.0.0.2 holds it too");
        }
    }
}
