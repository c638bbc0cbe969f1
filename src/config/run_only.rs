//! What only `ancm run` sets (the front's timeouts and head size, the shutdown delay's flag,
//! TLS, `--watch`, the warm-up and health probes, the memory and age limits, `--logs-keep`,
//! `--user`), checked and applied over a built configuration, and the defaults the other
//! commands run with.
//!
//! Must not import `build` or a section but `handler`'s bound on the shutdown delay.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, Origin};
use super::handler::MAX_SHUTDOWN_DELAY_MS;
use super::input::RunOnly;
use super::values;
use super::AppConfig;

/// As nginx's client_header_timeout is 60 s, but a loopback sidecar can be stricter.
/// Bytes of the app's output kept for `ancm logs` and the admin listener by default
/// (`--logs-keep`): a thousand lines of a usual length, or 64 of the longest (lines are cut at
/// `logs::LINE_LIMIT`).
pub const DEFAULT_LOGS_KEEP: usize = 1024 * 1024;

pub(super) const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// nginx's keepalive_timeout, which also closes its idle HTTP/2 connections.
pub(super) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// nginx's send_timeout.
pub(super) const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// http.sys's MaxRequestBytes: what IIS takes of a request line and headers by default.
pub(super) const DEFAULT_MAX_REQUEST_HEAD: usize = 16 * 1024;
/// hyper's least read buffer, and a bound well past any real request head.
const MIN_REQUEST_HEAD: usize = 1024;
const MAX_REQUEST_HEAD: usize = 1024 * 1024;

/// The most `--logs-keep` may keep: memory for the app's output is bounded whatever is asked.
const MAX_LOGS_KEEP: usize = 1 << 30;

/// A user of this machine, resolved when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups, as its login would have them.
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

/// The liveness probe: `path` is sent every `interval`; `failures` failed probes in a row
/// (no answer within the interval, or 500 and above) replace the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub failures: u32,
}

/// Checks `run`'s settings and sets them in `config`; the first bad one is the error.
pub(super) fn apply(config: &mut AppConfig, run: &RunOnly) -> Result<(), ConfigError> {
    for glob in &run.watch {
        globset::Glob::new(glob).map_err(|err| {
            ConfigError::invalid(
                Origin::Flag("--watch"),
                "value",
                glob,
                format!("a glob such as bin/*.dll or **/*.json ({})", err.kind()),
            )
        })?;
    }
    config.watch.clone_from(&run.watch);
    config.header_read_timeout = values::human_duration(&run.header_read_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::invalid(
                Origin::Flag("--header-read-timeout"),
                "value",
                &run.header_read_timeout,
                "a duration above zero, such as 30s or 500ms",
            )
        })?;
    config.idle_timeout = values::human_duration(&run.idle_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::invalid(
                Origin::Flag("--idle-timeout"),
                "value",
                &run.idle_timeout,
                "a duration above zero, such as 75s or 500ms",
            )
        })?;
    config.send_timeout = values::human_duration(&run.send_timeout)
        .map_err(|_| {
            ConfigError::invalid(
                Origin::Flag("--send-timeout"),
                "value",
                &run.send_timeout,
                "a duration such as 60s or 500ms (at most 360 hours), or 0 for none",
            )
        })
        .map(|d| (!d.is_zero()).then_some(d))?;
    config.max_request_head = values::human_size(&run.max_request_head)
        .ok()
        .filter(|size| (MIN_REQUEST_HEAD..=MAX_REQUEST_HEAD).contains(size))
        .ok_or_else(|| {
            ConfigError::invalid(
                Origin::Flag("--max-request-head"),
                "value",
                &run.max_request_head,
                "a size from 1KiB to 1MiB, such as 16KiB, 64KiB or 32768",
            )
        })?;
    if let Some(delay) = &run.shutdown_delay {
        config.shutdown_delay = values::human_duration(delay)
            .ok()
            .filter(|d| d.as_millis() <= u128::from(MAX_SHUTDOWN_DELAY_MS))
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--shutdown-delay"),
                    "value",
                    delay,
                    "a duration up to 10 minutes, such as 5s or 500ms",
                )
            })?;
    }
    config.tls.clone_from(&run.tls);
    if let Some(path) = &run.ready_path {
        config.ready_path = Some(probe_path(Origin::Flag("--ready-path"), "value", path)?);
    }
    if let Some(path) = &run.health_path {
        let path = probe_path(Origin::Flag("--health-path"), "value", path)?;
        let interval = values::human_duration(&run.health_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--health-interval"),
                    "value",
                    &run.health_interval,
                    "a duration above zero, such as 10s or 500ms",
                )
            })?;
        let failures = run
            .health_failures
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--health-failures"),
                    "value",
                    &run.health_failures,
                    "a number from 1 to 100",
                )
            })?;
        config.health = Some(HealthCheck {
            path,
            interval,
            failures,
        });
    }
    if let Some(size) = &run.max_memory {
        config.max_memory = Some(
            values::human_size(size)
                .ok()
                .filter(|&size| size >= 1024 * 1024)
                .and_then(|size| u64::try_from(size).ok())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        Origin::Flag("--max-memory"),
                        "value",
                        size,
                        "a size of at least 1MiB, such as 512MiB or 2G",
                    )
                })?,
        );
    }
    if let Some(size) = &run.logs_keep {
        config.logs_keep = values::human_size(size)
            .ok()
            .filter(|&size| size <= MAX_LOGS_KEEP)
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--logs-keep"),
                    "value",
                    size,
                    "a size from 1KiB to 1GiB, such as 1MiB or 256K",
                )
            })?;
    }
    if let Some(every) = &run.recycle_every {
        config.recycle_every = Some(
            values::human_duration(every)
                .ok()
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        Origin::Flag("--recycle-every"),
                        "value",
                        every,
                        "a duration of at least 1s, such as 24h or 90m",
                    )
                })?,
        );
    }
    if let Some(name) = &run.user {
        config.run_as = run_as(name)?;
    }
    Ok(())
}

/// `--user`: the user to become, or `None` when ancm already runs as that user.
#[cfg(unix)]
fn run_as(name: &str) -> Result<Option<RunAs>, ConfigError> {
    use nix::unistd::{geteuid, Uid, User};
    let bad =
        |allowed: String| ConfigError::invalid(Origin::Flag("--user"), "value", name, allowed);
    let by_id = || {
        name.parse::<u32>()
            .ok()
            .and_then(|id| User::from_uid(Uid::from_raw(id)).ok().flatten())
    };
    let user = User::from_name(name)
        .ok()
        .flatten()
        .or_else(by_id)
        .ok_or_else(|| bad("the name (or uid) of a user of this machine".to_owned()))?;
    let me = geteuid();
    if me == user.uid {
        return Ok(None);
    }
    if !me.is_root() {
        return Err(bad(format!(
            "ancm itself (uid {me}), or any user when ancm runs as root"
        )));
    }
    #[cfg(target_os = "linux")]
    let groups = std::ffi::CString::new(user.name.clone())
        .ok()
        .and_then(|login| nix::unistd::getgrouplist(&login, user.gid).ok())
        .map_or_else(
            || vec![user.gid.as_raw()],
            |groups| groups.iter().map(|g| g.as_raw()).collect(),
        );
    #[cfg(not(target_os = "linux"))]
    let groups = vec![user.gid.as_raw()];
    Ok(Some(RunAs {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
    }))
}

#[cfg(not(unix))]
fn run_as(name: &str) -> Result<Option<RunAs>, ConfigError> {
    Err(ConfigError::invalid(
        Origin::Flag("--user"),
        "value",
        name,
        "nothing here: --user is for Unix (on Windows, run ancm as the service account)",
    ))
}

/// A path probed on the app's port: absolute, and fit for a request line.
pub(super) fn probe_path(origin: Origin, what: &str, path: &str) -> Result<String, ConfigError> {
    if path.starts_with('/') && path.parse::<http::uri::PathAndQuery>().is_ok() {
        Ok(path.to_owned())
    } else {
        Err(ConfigError::invalid(
            origin,
            what,
            path,
            "a path starting with /, such as /warmup or /health?full=1",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config_for;
    use crate::config::Overrides;

    #[test]
    fn probe_and_limit_flags_are_checked() {
        let base = || RunOnly {
            header_read_timeout: "30s".into(),
            idle_timeout: "75s".into(),
            send_timeout: "60s".into(),
            max_request_head: "16KiB".into(),
            shutdown_delay: None,
            watch: Vec::new(),
            tls: None,
            ready_path: None,
            health_path: None,
            health_interval: "10s".into(),
            health_failures: "3".into(),
            max_memory: None,
            logs_keep: None,
            recycle_every: None,
            user: None,
        };
        let apply = |run: RunOnly| {
            let mut config = config_for(
                r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#,
                Overrides::default(),
            )
            .expect("valid");
            apply(&mut config, &run).map(|()| config)
        };
        let config = apply(RunOnly {
            ready_path: Some("/ready".into()),
            health_path: Some("/health".into()),
            health_interval: "500ms".into(),
            max_memory: Some("512MiB".into()),
            recycle_every: Some("24h".into()),
            ..base()
        })
        .expect("valid");
        assert_eq!(config.ready_path.as_deref(), Some("/ready"));
        assert_eq!(
            config.health,
            Some(HealthCheck {
                path: "/health".into(),
                interval: Duration::from_millis(500),
                failures: 3
            })
        );
        assert_eq!(config.max_memory, Some(512 * 1024 * 1024));
        assert_eq!(config.recycle_every, Some(Duration::from_secs(86_400)));
        assert_eq!(config.send_timeout, Some(Duration::from_secs(60)));
        let config = apply(RunOnly {
            send_timeout: "0".into(),
            ..base()
        })
        .expect("valid");
        assert_eq!(config.send_timeout, None, "0 turns the send timeout off");

        for (run, message) in [
            (
                RunOnly {
                    ready_path: Some("ready".into()),
                    ..base()
                },
                "--ready-path: value \"ready\" is not valid: a path starting with /",
            ),
            (
                RunOnly {
                    health_path: Some("/h".into()),
                    health_interval: "0".into(),
                    ..base()
                },
                "--health-interval: value \"0\" is not valid: a duration above zero",
            ),
            (
                RunOnly {
                    health_path: Some("/h".into()),
                    health_failures: "0".into(),
                    ..base()
                },
                "--health-failures: value \"0\" is not valid: a number from 1 to 100",
            ),
            (
                RunOnly {
                    max_memory: Some("12".into()),
                    ..base()
                },
                "--max-memory: value \"12\" is not valid: a size of at least 1MiB",
            ),
            (
                RunOnly {
                    user: Some("no-such-user-of-ancm".into()),
                    ..base()
                },
                "--user: value \"no-such-user-of-ancm\" is not valid: the name (or uid) of a user",
            ),
            (
                RunOnly {
                    send_timeout: "soon".into(),
                    ..base()
                },
                "--send-timeout: value \"soon\" is not valid: a duration such as 60s or 500ms (at most 360 hours), or 0 for none",
            ),
            (
                RunOnly {
                    recycle_every: Some("10ms".into()),
                    ..base()
                },
                "--recycle-every: value \"10ms\" is not valid: a duration of at least 1s",
            ),
        ] {
            let text = apply(run).expect_err(message).to_string();
            assert!(text.starts_with(message), "{text}");
        }
    }
}
