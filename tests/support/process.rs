//! What the tests read about processes from /proc, and the load they put on ancm. Shared by
//! the test modules; imports nothing from a test module.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::client;

/// User plus system CPU time of a process, from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .collect();
    // Fields after the command: state is [0], utime [11], stime [12] (in clock ticks).
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // USER_HZ: 100 ticks a second on Linux.
    Duration::from_millis(ticks * 10)
}

/// Requests in a loop until `stop`: how many failed, and which pids answered.
pub fn load(
    url: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize, BTreeSet<String>)> {
    std::thread::spawn(move || {
        let client = client();
        let (mut ok, mut failed, mut pids) = (0, 0, BTreeSet::new());
        while !stop.load(Ordering::SeqCst) {
            match client.get(&url).send() {
                Ok(response) if response.status() == 200 => {
                    ok += 1;
                    if let Ok(body) = response.text() {
                        pids.insert(body);
                    }
                }
                _ => failed += 1,
            }
        }
        (ok, failed, pids)
    })
}
