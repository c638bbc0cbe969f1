//! Watches the app folder: app_offline.htm takes the app offline while it is there (spec §3.7);
//! a change to web.config, or to a file matching a `--watch` glob, recycles the app without
//! downtime. Events come from the OS (inotify and the like) through the notify crate, with a
//! polling fallback where the OS has none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{AppConfig, ConfigError};
use crate::supervisor::{RecycleError, Supervisor};

/// The file whose presence takes the app offline, matched ignoring case as IIS does.
const APP_OFFLINE: &str = "app_offline.htm";

/// Changes that recycle are gathered for this long, so that a deploy copying many files
/// recycles once.
const SETTLE: Duration = Duration::from_millis(300);

/// Reads the configuration again, as the command line first gave it.
pub(crate) type Reload = Arc<dyn Fn() -> Result<AppConfig, ConfigError> + Send + Sync>;

/// Keeps watching until dropped.
pub(crate) struct Watch {
    _watcher: Box<dyn Watcher + Send>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// app_offline.htm's content, if it is in `dir` now.
pub(crate) fn app_offline(dir: &Path) -> Option<Bytes> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .eq_ignore_ascii_case(APP_OFFLINE)
        {
            // A file being written is still "there" (ANCM counts a sharing violation as there).
            return Some(
                std::fs::read(entry.path())
                    .map(Bytes::from)
                    .unwrap_or_default(),
            );
        }
    }
    None
}

/// [`app_offline`] off the async runtime: it reads the file system.
async fn read_app_offline(dir: &Path) -> Option<Bytes> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || app_offline(&dir))
        .await
        .unwrap_or_default()
}

/// Starts watching the app folder for `supervisor`.
pub(crate) fn start(
    config: &AppConfig,
    supervisor: Supervisor,
    reload: Reload,
) -> anyhow::Result<Watch> {
    let dir = config.app_dir.clone();
    let globs = glob_set(&config.watch)?;
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            for path in event.paths {
                // The receiver is gone only when the watch is being dropped.
                let _ = tx.send(path);
            }
        }
        Err(err) => tracing::warn!(%err, "watching the app folder failed"),
    };
    // The app folder itself for app_offline.htm and web.config; all below it for globs.
    let mode = if config.watch.is_empty() {
        RecursiveMode::NonRecursive
    } else {
        RecursiveMode::Recursive
    };
    let mut watcher: Box<dyn Watcher + Send> = match notify::recommended_watcher(handler.clone()) {
        Ok(watcher) => Box::new(watcher),
        Err(err) => {
            tracing::info!(%err, "no file-change notifications here; polling the app folder instead");
            let poll = notify::Config::default().with_poll_interval(Duration::from_millis(500));
            Box::new(notify::PollWatcher::new(handler, poll)?)
        }
    };
    watcher
        .watch(&dir, mode)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    let web_config = config.web_config.clone();
    let task = tokio::spawn(follow(dir, web_config, globs, rx, supervisor, reload));
    Ok(Watch {
        _watcher: watcher,
        task,
    })
}

fn glob_set(patterns: &[String]) -> anyhow::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        // Validated with the configuration; an error here would be a bug, not bad input.
        builder.add(Glob::new(pattern).with_context(|| format!("--watch {pattern}"))?);
    }
    Ok(builder.build()?)
}

/// What a changed path means.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Offline,
    Config,
    Watched,
    Other,
}

fn classify(dir: &Path, web_config: Option<&Path>, globs: &GlobSet, path: &Path) -> Change {
    let in_dir = path.parent() == Some(dir);
    let name = path.file_name().map(|n| n.to_string_lossy());
    if in_dir
        && name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(APP_OFFLINE))
    {
        return Change::Offline;
    }
    if web_config == Some(path) {
        return Change::Config;
    }
    match path.strip_prefix(dir) {
        Ok(relative) if globs.is_match(relative) => Change::Watched,
        _ => Change::Other,
    }
}

async fn follow(
    dir: PathBuf,
    web_config: Option<PathBuf>,
    globs: GlobSet,
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
    supervisor: Supervisor,
    reload: Reload,
) {
    let mut offline = read_app_offline(&dir).await;
    loop {
        let Some(path) = rx.recv().await else { return };
        let mut pending = Pending::default();
        pending.note(classify(&dir, web_config.as_deref(), &globs, &path));
        // app_offline.htm acts at once; recycles wait for the burst of changes to settle.
        if pending.config || pending.watched {
            loop {
                match tokio::time::timeout(SETTLE, rx.recv()).await {
                    Ok(Some(path)) => {
                        pending.note(classify(&dir, web_config.as_deref(), &globs, &path));
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
        }
        if pending.offline {
            let now = read_app_offline(&dir).await;
            if now != offline {
                offline = now;
                supervisor.set_offline(offline.clone());
            }
        }
        if offline.is_some() {
            // Offline, the next start reads the configuration afresh anyway.
            if pending.config {
                apply_config(&supervisor, &reload, false).await;
            }
            continue;
        }
        if pending.config {
            apply_config(&supervisor, &reload, true).await;
        } else if pending.watched {
            tracing::info!("a watched file changed: recycling the app");
            report(supervisor.recycle().await);
        }
    }
}

/// What a burst of changes asks for.
#[derive(Debug, Default)]
struct Pending {
    offline: bool,
    config: bool,
    watched: bool,
}

impl Pending {
    fn note(&mut self, change: Change) {
        match change {
            Change::Offline => self.offline = true,
            Change::Config => self.config = true,
            Change::Watched => self.watched = true,
            Change::Other => {}
        }
    }
}

/// Reads web.config again: when valid, the app is recycled with it (if `recycle`); when not,
/// the app keeps running with what it had. With disallowRotationOnConfigChange on in the
/// running configuration, as in ANCM, the change is not even read: the app keeps running as it
/// was.
async fn apply_config(supervisor: &Supervisor, reload: &Reload, recycle: bool) {
    if recycle && supervisor.config().disallow_rotation_on_config_change {
        tracing::info!("web.config changed; not recycling: disallowRotationOnConfigChange is true");
        return;
    }
    let reload = reload.clone();
    let config = match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(config)) => config,
        Ok(Err(err)) => {
            tracing::error!(
                "web.config changed but is not valid, so the app keeps running as it was: {err}"
            );
            return;
        }
        Err(err) => {
            tracing::error!(%err, "reading the changed web.config failed");
            return;
        }
    };
    let current = supervisor.config();
    let fixed = fixed_until_restart(&current, &config);
    if !fixed.is_empty() {
        tracing::warn!(
            "web.config changed {}: {} only when ancm restarts; everything else applies to the new processes",
            fixed.join(", "),
            if fixed.len() == 1 { "that takes effect" } else { "those take effect" }
        );
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if recycle {
        tracing::info!("web.config changed: recycling the app with it");
        report(supervisor.reload(config).await);
    } else {
        supervisor.replace_config(config);
    }
}

/// The settings a reload cannot change: what ancm set up once, at its start.
fn fixed_until_restart(current: &AppConfig, new: &AppConfig) -> Vec<&'static str> {
    let mut fixed = Vec::new();
    if new.listen != current.listen {
        fixed.push("the listen addresses");
    }
    if new.processes_per_application != current.processes_per_application {
        fixed.push("processesPerApplication");
    }
    if new.rapid_fails_per_minute != current.rapid_fails_per_minute {
        fixed.push("rapidFailsPerMinute");
    }
    if new.debug_log != current.debug_log {
        fixed.push("the diagnostic log (debugFile, debugLevel)");
    }
    fixed
}

fn report(result: Result<(), RecycleError>) {
    match result {
        Ok(()) => tracing::info!("recycled: the new process serves, the old one has drained"),
        Err(RecycleError::Failed(failure)) => tracing::warn!(
            "recycle failed, so the old process keeps serving: {}",
            failure.kind
        ),
        Err(RecycleError::NotRunning) => {
            tracing::info!("nothing to recycle: the app is not running now");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_changes() {
        let dir = Path::new("/app");
        let config = Path::new("/app/web.config");
        let globs = glob_set(&["bin/*.dll".to_owned(), "**/*.json".to_owned()]).expect("globs");
        let kind = |p: &str| classify(dir, Some(config), &globs, Path::new(p));
        assert_eq!(kind("/app/App_Offline.htm"), Change::Offline);
        assert_eq!(kind("/app/sub/app_offline.htm"), Change::Other);
        assert_eq!(kind("/app/web.config"), Change::Config);
        assert_eq!(kind("/app/bin/App.dll"), Change::Watched);
        assert_eq!(kind("/app/x/y/settings.json"), Change::Watched);
        assert_eq!(kind("/app/logs/stdout.log"), Change::Other);
    }
}
