//! The proxy's counters for `/metrics`: requests by front protocol and status class, their
//! durations, requests in flight, body bytes each way, failed connects and timeouts to the
//! app. Process-wide, as the process's own metrics are, and fixed in shape: a request pays a
//! few relaxed atomic additions and nothing else (no lookup by label, no lock, no allocation).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use http::{StatusCode, Version};

/// The front protocols requests are counted by, as their `protocol` label says them.
pub const PROTOCOLS: [&str; 3] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2"];

/// The status classes requests are counted by, as their `class` label says them.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the request-duration buckets, in seconds (the `+Inf` bucket follows), as
/// Prometheus' client libraries choose them for request latencies, plus a finer low end for a
/// loopback proxy.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, for the hot path's integer comparison.
const BUCKET_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Every counter of the proxy.
#[derive(Debug)]
pub struct Stats {
    requests: [[AtomicU64; CLASSES.len()]; PROTOCOLS.len()],
    in_flight: AtomicI64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connect_failures: AtomicU64,
    timeouts: AtomicU64,
    /// Per bucket (not cumulative; the last is `+Inf`), and the sum of every duration.
    duration_buckets: [AtomicU64; BUCKET_MICROS.len() + 1],
    duration_micros: AtomicU64,
}

/// The proxy's counters, for the whole process.
pub static STATS: Stats = Stats::new();

/// What the counters held at one moment, for a scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Indexed as [`PROTOCOLS`] and [`CLASSES`].
    pub requests: [[u64; CLASSES.len()]; PROTOCOLS.len()],
    pub in_flight: i64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_failures: u64,
    pub timeouts: u64,
    /// The count in each bucket (not cumulative) by its upper bound: [`DURATION_BUCKETS`],
    /// then `+Inf`.
    pub duration_buckets: Vec<(f64, u64)>,
    pub duration_count: u64,
    pub duration_sum: f64,
}

// A const, not a value: each use is a new counter (how arrays of atomics start in a const).
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZEROS: [AtomicU64; CLASSES.len()] = [ZERO; CLASSES.len()];

impl Stats {
    const fn new() -> Stats {
        Stats {
            requests: [ZEROS; PROTOCOLS.len()],
            in_flight: AtomicI64::new(0),
            bytes_in: ZERO,
            bytes_out: ZERO,
            connect_failures: ZERO,
            timeouts: ZERO,
            duration_buckets: [ZERO; BUCKET_MICROS.len() + 1],
            duration_micros: ZERO,
        }
    }

    /// A request came in; [`Stats::ended`] says when it is over.
    pub(super) fn began(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered with `status` (the head; its body may still be on its way).
    pub(super) fn answered(&self, version: Version, status: StatusCode) {
        let protocol = match version {
            Version::HTTP_2 => 2,
            Version::HTTP_10 | Version::HTTP_09 => 0,
            _ => 1,
        };
        let class = usize::from(status.as_u16() / 100)
            .saturating_sub(1)
            .min(CLASSES.len() - 1);
        self.requests[protocol][class].fetch_add(1, Ordering::Relaxed);
    }

    /// A request is over (its response sent, or the client gone) after `took`.
    pub(super) fn ended(&self, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKET_MICROS.len());
        self.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(super) fn received(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(super) fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// ancm could not connect to the app.
    pub(super) fn connect_failed(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The app did not answer within requestTimeout.
    pub(super) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut requests = [[0; CLASSES.len()]; PROTOCOLS.len()];
        for (row, counters) in requests.iter_mut().zip(&self.requests) {
            for (value, counter) in row.iter_mut().zip(counters) {
                *value = load(counter);
            }
        }
        let duration_buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.duration_buckets)
            .map(|(bound, counter)| (bound, load(counter)))
            .collect();
        let duration_count = duration_buckets.iter().map(|(_, n)| n).sum();
        Snapshot {
            requests,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            connect_failures: load(&self.connect_failures),
            timeouts: load(&self.timeouts),
            duration_buckets,
            duration_count,
            duration_sum: Duration::from_micros(load(&self.duration_micros)).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_their_buckets() {
        let stats = Stats::new();
        stats.began();
        stats.ended(Duration::from_micros(300));
        stats.began();
        stats.ended(Duration::from_millis(3));
        stats.began();
        stats.ended(Duration::from_secs(60));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.in_flight, 0);
        assert_eq!(snapshot.duration_count, 3);
        assert_eq!(snapshot.duration_buckets[0], (0.000_5, 1));
        assert_eq!(snapshot.duration_buckets[3], (0.005, 1));
        assert_eq!(snapshot.duration_buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((snapshot.duration_sum - 60.003_3).abs() < 1e-9);
    }

    #[test]
    fn requests_by_protocol_and_class() {
        let stats = Stats::new();
        stats.answered(Version::HTTP_11, StatusCode::OK);
        stats.answered(Version::HTTP_2, StatusCode::BAD_GATEWAY);
        stats.answered(Version::HTTP_10, StatusCode::SWITCHING_PROTOCOLS);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.requests[1][1], 1);
        assert_eq!(snapshot.requests[2][4], 1);
        assert_eq!(snapshot.requests[0][0], 1);
    }
}
