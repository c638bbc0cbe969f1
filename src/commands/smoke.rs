//! `ancm smoke`: start the app behind the proxy, wait until it is ready, request each path
//! through the proxy, print a line per check and a summary, stop everything. Bounded by
//! `--timeout` from start to finish, so a CI job never hangs.

use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::SmokeArgs;
use crate::config::{self, AppConfig};
use crate::serving::observe::Spinner;
use crate::serving::stop::KillNow;
use crate::serving::{host, Host, Serving, Stop};
use crate::supervisor::{FailureKind, Unavailable};

/// A line of the report on stdout. A reader that went away (`ancm smoke ... | head`) does not
/// stop the smoke run half-way: the app is still stopped and the exit status still says how
/// the checks went.
macro_rules! say {
    ($($line:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($line)*);
    }};
}

/// What to check, from the command line.
struct Checks {
    paths: Vec<String>,
    expect: u16,
    timeout: Duration,
}

impl Checks {
    fn from_args(args: &SmokeArgs) -> Checks {
        let paths = if args.paths.is_empty() {
            vec!["/".to_owned()]
        } else {
            args.paths
                .iter()
                .map(|p| {
                    if p.starts_with('/') {
                        p.clone()
                    } else {
                        format!("/{p}")
                    }
                })
                .collect()
        };
        Checks {
            paths,
            expect: args.expect,
            timeout: Duration::from_secs(args.timeout),
        }
    }
}

/// `ancm smoke`: the configuration loaded and the checks taken from the flags, then the run.
pub(crate) fn command(args: &SmokeArgs) -> anyhow::Result<ExitCode> {
    let config = config::load(&args.request())?;
    let checks = Checks::from_args(args);
    host::run(|host| run(host, config, checks))
}

async fn run(mut host: Host, config: AppConfig, checks: Checks) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let deadline = started + checks.timeout;
    let serving = Serving::start(&host, config, None).await?;
    let supervisor = serving.supervisor.clone();
    let spinner = Spinner::follow(&supervisor);

    // Shortly past the deadline, nothing is waited for any more: the app is killed. The grace
    // second lets the checks report the timeout themselves first.
    let kill_now = KillNow::at(deadline + Duration::from_secs(1), supervisor.clone());

    let outcome = tokio::select! {
        outcome = smoke(&serving, &checks, deadline, started) => outcome,
        // Any signal ends a smoke run, SIGHUP included: the run is short and has nothing to
        // reload.
        signal = host.signals.next() => {
            tracing::info!("{signal} received: stopping");
            say!("interrupted");
            Outcome::Failed
        }
    };
    if let Outcome::NotStarted(failure_output) = &outcome {
        let output = failure_output
            .clone()
            .unwrap_or_else(|| supervisor.recent_output());
        if !output.trim().is_empty() {
            eprintln!("the app's last output:\n{}", output.trim_end());
        }
    }
    spinner.stop();
    let stop = Stop::after(supervisor.config().shutdown_time_limit, kill_now);
    serving.stop(&stop).await;
    drop(stop);
    Ok(match outcome {
        Outcome::Passed => ExitCode::SUCCESS,
        Outcome::Failed | Outcome::NotStarted(_) => ExitCode::FAILURE,
    })
}

enum Outcome {
    Passed,
    Failed,
    /// With the failed start's output, when it has one (else the running process's is shown).
    NotStarted(Option<String>),
}

async fn smoke(serving: &Serving, checks: &Checks, deadline: Instant, started: Instant) -> Outcome {
    let ready = tokio::time::timeout_at(deadline, serving.supervisor.backend()).await;
    match ready {
        Ok(Ok(backend)) => say!(
            "ready  the app (pid {}) after {} ms",
            backend.pid,
            started.elapsed().as_millis()
        ),
        Ok(Err(unavailable)) => {
            say!("FAIL   the app did not start: {}", describe(&unavailable));
            say!("smoke: 0 passed, {} failed", checks.paths.len());
            let output = match &unavailable {
                Unavailable::Failed(failure)
                | Unavailable::Paused {
                    failure: Some(failure),
                    ..
                } => Some(failure.output.clone()),
                _ => None,
            };
            return Outcome::NotStarted(output);
        }
        Err(_) => {
            say!(
                "FAIL   the app did not start within --timeout ({} s)",
                checks.timeout.as_secs()
            );
            say!("smoke: 0 passed, {} failed", checks.paths.len());
            return Outcome::NotStarted(None);
        }
    }

    let Some(addr) = serving.addrs.first() else {
        return Outcome::Failed;
    };
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(client) => client,
        Err(err) => {
            say!("FAIL   cannot make an HTTP client: {err}");
            return Outcome::Failed;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for path in &checks.paths {
        let url = format!("http://{addr}{path}");
        let sent = Instant::now();
        let remaining = deadline.saturating_duration_since(sent);
        let result = client.get(&url).timeout(remaining).send().await;
        let ms = sent.elapsed().as_millis();
        match result {
            Ok(response) if response.status().as_u16() == checks.expect => {
                passed += 1;
                say!(
                    "ok     GET {path} -> {} ({ms} ms)",
                    response.status().as_u16()
                );
            }
            Ok(response) => {
                failed += 1;
                say!(
                    "FAIL   GET {path} -> {} ({ms} ms), expected {}",
                    response.status().as_u16(),
                    checks.expect
                );
            }
            Err(err) if err.is_timeout() => {
                failed += 1;
                say!(
                    "FAIL   GET {path} -> no answer within --timeout ({} s)",
                    checks.timeout.as_secs()
                );
            }
            Err(err) => {
                failed += 1;
                say!("FAIL   GET {path} -> {}", err.without_url());
            }
        }
    }
    say!("smoke: {passed} passed, {failed} failed");
    if failed == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}

fn describe(unavailable: &Unavailable) -> String {
    match unavailable {
        Unavailable::Failed(failure) => failure.kind.to_string(),
        Unavailable::Paused {
            failure: Some(failure),
            ..
        } => failure.kind.to_string(),
        Unavailable::Paused { .. } => "the rapid-fail limit was reached".to_owned(),
        Unavailable::Stopping => "ancm was stopping".to_owned(),
        Unavailable::Offline(_) => "app_offline.htm is there".to_owned(),
        Unavailable::TimedOut(limit) => FailureKind::StartTimeout {
            limit: *limit,
            listening_elsewhere: None,
        }
        .to_string(),
    }
}
