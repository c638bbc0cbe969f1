//! What ancm asks of an app process itself, apart from forwarding requests: the warm-up GET
//! a new process must answer before it takes traffic, and, once it serves, the watch that
//! decides to replace it (failed liveness probes, too much memory, its age).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::backend::Backend;
use crate::config::{AppConfig, HealthCheck};

/// How often the warm-up path is asked again while it answers 500 and above, or not at all.
const WARM_UP_EVERY: Duration = Duration::from_millis(200);
/// How often the memory of a process tree is measured under `--max-memory`.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

/// GETs `path` from `backend` as the proxy sends requests (its address, the pairing token),
/// waiting at most `limit`: the status, or why there was none.
pub(super) async fn get(
    http: &reqwest::Client,
    backend: &Backend,
    path: &str,
    limit: Duration,
) -> Result<u16, String> {
    let response = http
        .get(format!("http://{}{path}", backend.addr))
        .header("MS-ASPNETCORE-TOKEN", backend.token.clone())
        .timeout(limit)
        .send()
        .await
        .map_err(|err| {
            if err.is_timeout() {
                format!("no answer within {limit:?}")
            } else if err.is_connect() {
                "connection refused".to_owned()
            } else {
                "the connection failed".to_owned()
            }
        })?;
    Ok(response.status().as_u16())
}

/// Asks `path` until it answers below 500 (`Ok`), or until `deadline`: then the last answer,
/// in words. The caller watches the process meanwhile.
pub(super) async fn warm_up(
    http: &reqwest::Client,
    backend: &Backend,
    path: &str,
    deadline: Instant,
) -> Result<u16, String> {
    let mut last = "no answer yet".to_owned();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        match get(http, backend, path, left).await {
            Ok(status) if status < 500 => return Ok(status),
            Ok(status) => last = format!("status {status}"),
            Err(why) => last = why,
        }
        let next = Instant::now() + WARM_UP_EVERY;
        if next >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(last);
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Why a serving process is to be replaced.
#[derive(Debug)]
pub(super) enum Verdict {
    Unhealthy {
        path: String,
        failures: u32,
        last: String,
    },
    Memory {
        used: u64,
        limit: u64,
    },
    Age(Duration),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Unhealthy {
                path,
                failures,
                last,
            } => write!(
                f,
                "the app failed {failures} health probes in a row (GET {path}: {last}, \
                 --health-failures {failures})"
            ),
            Verdict::Memory { used, limit } => write!(
                f,
                "the app's processes use {} MiB of resident memory, over --max-memory ({} MiB)",
                used / (1024 * 1024),
                limit / (1024 * 1024)
            ),
            Verdict::Age(every) => write!(
                f,
                "the app has served for {}, as --recycle-every says",
                short(*every)
            ),
        }
    }
}

/// 24h, 90m, 45s, 1500ms: a duration as it would be written.
fn short(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 {
        format!("{}ms", duration.as_millis())
    } else if secs >= 3600 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Watches a serving process (ready since `ready_at`) and returns once it is to be replaced;
/// never, when no limit is set.
pub(super) async fn watch(
    http: reqwest::Client,
    config: Arc<AppConfig>,
    backend: Arc<Backend>,
    ready_at: Instant,
) -> Verdict {
    let liveness = async {
        match &config.health {
            Some(health) => liveness(&http, &backend, health).await,
            None => std::future::pending().await,
        }
    };
    let memory = async {
        match config.max_memory {
            Some(limit) => memory(backend.pid, limit).await,
            None => std::future::pending().await,
        }
    };
    let age = async {
        match config.recycle_every {
            Some(every) => {
                tokio::time::sleep_until(ready_at + every).await;
                Verdict::Age(every)
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        verdict = liveness => verdict,
        verdict = memory => verdict,
        verdict = age => verdict,
    }
}

/// Probes every interval; returns after `failures` failed probes in a row.
async fn liveness(http: &reqwest::Client, backend: &Backend, health: &HealthCheck) -> Verdict {
    let mut failed = 0;
    let mut next = Instant::now() + health.interval;
    loop {
        tokio::time::sleep_until(next).await;
        next += health.interval;
        let outcome = match get(http, backend, &health.path, health.interval).await {
            Ok(status) if status < 500 => Ok(()),
            Ok(status) => Err(format!("status {status}")),
            Err(why) => Err(why),
        };
        match outcome {
            Ok(()) => failed = 0,
            Err(last) => {
                failed += 1;
                tracing::warn!(
                    pid = backend.pid,
                    "health probe GET {} failed ({last}): {failed} of {} in a row",
                    health.path,
                    health.failures
                );
                if failed >= health.failures {
                    return Verdict::Unhealthy {
                        path: health.path.clone(),
                        failures: failed,
                        last,
                    };
                }
            }
        }
        // A probe that took the whole interval starts the next one at once, not a beat late.
        next = next.max(Instant::now());
    }
}

/// Measures the process tree every second; returns once it uses more than `limit` bytes.
async fn memory(pid: u32, limit: u64) -> Verdict {
    loop {
        tokio::time::sleep(MEMORY_EVERY).await;
        let used = tokio::task::spawn_blocking(move || super::platform::tree::tree_memory(pid))
            .await
            .ok()
            .flatten();
        if let Some(used) = used.filter(|&used| used > limit) {
            return Verdict::Memory { used, limit };
        }
    }
}
