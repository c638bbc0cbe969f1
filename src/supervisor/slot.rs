//! One slot's life: start, wait until listening, serve, and on exit start again, pausing when
//! the rapid-fail limit is reached. Runs as one task until the supervisor is stopped.

use std::process::ExitStatus;
use std::sync::Arc;

use http::uri::Authority;
use http::HeaderValue;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::process::{free_port, port_taken, AppProcess, Readiness};
use super::rapid_fail::RapidFailWindow;
use super::{Backend, Context, Failure, FailureKind, Phase, Status};
use crate::logs::Tail;

/// How many times in a row a start may lose its port to another process before that counts
/// as a failure.
const MAX_PORT_COLLISIONS: u32 = 3;

pub(super) async fn run(
    ctx: Arc<Context>,
    status: watch::Sender<Status>,
    cancel: CancellationToken,
    kill_now: CancellationToken,
    tail: Tail,
) {
    let cfg = ctx.config.clone();
    let mut window = RapidFailWindow::new(cfg.rapid_fails_per_minute);
    let mut attempt = 0;
    let mut collisions = 0;
    let fixed_port = user_value(&ctx, "ASPNETCORE_PORT").and_then(|p| p.parse::<u16>().ok());

    while !cancel.is_cancelled() {
        if let Some(until) = window.paused_until(Instant::now()) {
            let wait = until.saturating_duration_since(Instant::now());
            tracing::warn!(
                failures = window.failures(),
                "the app failed more than rapidFailsPerMinute ({}) times within a minute; \
                 not starting it again for {} s",
                cfg.rapid_fails_per_minute,
                wait.as_secs() + 1
            );
            status.send_modify(|s| s.phase = Phase::Paused { until });
            tokio::select! {
                () = tokio::time::sleep_until(until) => {
                    tracing::info!("the rapid-fail minute has passed; starting the app again");
                }
                () = cancel.cancelled() => break,
            }
        }

        attempt += 1;
        status.send_modify(|s| {
            s.phase = Phase::Starting;
            s.attempt = attempt;
        });
        tail.clear();
        let fail = |kind: FailureKind, window: &mut RapidFailWindow| {
            let failure = Arc::new(Failure {
                attempt,
                kind,
                output: tail.text(),
            });
            report(&failure);
            window.record(Instant::now());
            status.send_modify(|s| s.last_failure = Some(failure));
        };

        let port = match fixed_port.map_or_else(free_port, Ok) {
            Ok(port) => port,
            Err(err) => {
                let kind = FailureKind::Spawn {
                    program: cfg.command.program.display().to_string(),
                    error: format!("no free loopback port: {err}"),
                };
                fail(kind, &mut window);
                continue;
            }
        };
        let token = new_token(&ctx);
        let mut process = match AppProcess::spawn(&ctx, port, token.0.clone(), &tail).await {
            Ok(process) => process,
            Err(err) => {
                let kind = FailureKind::Spawn {
                    program: cfg.command.program.display().to_string(),
                    error: spawn_error_text(&err),
                };
                fail(kind, &mut window);
                continue;
            }
        };

        match process.wait_ready(cfg.startup_time_limit, &cancel).await {
            Readiness::Listening(addr) => {
                collisions = 0;
                let backend = Arc::new(Backend {
                    addr,
                    authority: Authority::try_from(addr.to_string().as_str())
                        .unwrap_or_else(|_| Authority::from_static("127.0.0.1")),
                    token: token.1,
                    pid: process.pid,
                });
                status.send_modify(|s| s.phase = Phase::Ready(backend));
                tokio::select! {
                    exit = process.wait() => {
                        // New requests wait for the next start, not for this one's report.
                        status.send_modify(|s| {
                            s.phase = Phase::Starting;
                            s.attempt = attempt + 1;
                        });
                        process.reap().await;
                        let status = exit.map_or_else(|e| format!("was lost ({e})"), describe_exit);
                        fail(FailureKind::Exited { status, before_ready: false }, &mut window);
                    }
                    () = cancel.cancelled() => {
                        status.send_modify(|s| s.phase = Phase::Stopping);
                        let exit = process.stop(Some(addr), &kill_now).await;
                        log_stopped(process.pid, exit);
                        break;
                    }
                }
            }
            Readiness::Exited(exit) => {
                process.reap().await;
                if fixed_port.is_none() && collisions < MAX_PORT_COLLISIONS && port_taken(port) {
                    collisions += 1;
                    tracing::warn!(port, "another process took the app's port as it started; starting again on another port");
                    continue;
                }
                let status = describe_exit(exit);
                fail(
                    FailureKind::Exited {
                        status,
                        before_ready: true,
                    },
                    &mut window,
                );
            }
            Readiness::TimedOut => {
                process.reap().await;
                fail(
                    FailureKind::StartTimeout {
                        limit: cfg.startup_time_limit,
                    },
                    &mut window,
                );
            }
            Readiness::Cancelled => {
                status.send_modify(|s| s.phase = Phase::Stopping);
                let exit = process.stop(None, &kill_now).await;
                log_stopped(process.pid, exit);
                break;
            }
        }
    }
    status.send_modify(|s| s.phase = Phase::Stopped);
}

/// A value the user gave the app in `<environmentVariables>` or `--env`, if not empty.
fn user_value<'a>(ctx: &'a Context, name: &str) -> Option<&'a str> {
    ctx.config
        .environment
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The pairing token: the user's ASPNETCORE_TOKEN if set (as in ANCM), else a fresh UUID.
fn new_token(ctx: &Context) -> (Arc<str>, HeaderValue) {
    if let Some(user) = user_value(ctx, "ASPNETCORE_TOKEN") {
        if let Ok(header) = HeaderValue::from_str(user) {
            return (Arc::from(user), header);
        }
        tracing::warn!(
            "ASPNETCORE_TOKEN holds characters a header cannot carry; using a generated token"
        );
    }
    let token = uuid::Uuid::new_v4().hyphenated().to_string();
    let header = HeaderValue::from_str(&token).unwrap_or_else(|_| HeaderValue::from_static("0"));
    (Arc::from(token), header)
}

fn spawn_error_text(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            "not found (check processPath: a relative path is looked up in the app folder, a bare name on PATH)".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_owned(),
        _ => err.to_string(),
    }
}

/// "exited with code 3", "was killed by signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            return format!("was killed by signal {signal}{name}");
        }
    }
    format!("exited ({status})")
}

fn report(failure: &Failure) {
    let output = last_lines(&failure.output, 20);
    if output.is_empty() {
        tracing::warn!(attempt = failure.attempt, "{}", failure.kind);
    } else {
        tracing::warn!(
            attempt = failure.attempt,
            "{}; its last output:\n{output}",
            failure.kind
        );
    }
}

fn last_lines(text: &str, n: usize) -> &str {
    let text = text.trim_end();
    let start = text
        .rmatch_indices('\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

fn log_stopped(pid: u32, exit: Option<ExitStatus>) {
    match exit {
        Some(status) => tracing::info!(pid, "the app stopped: it {}", describe_exit(status)),
        None => tracing::info!(pid, "the app was killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 5), "");
    }
}
