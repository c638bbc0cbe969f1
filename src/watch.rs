//! Watches the app folder: app_offline.htm takes the app offline while it is there (spec §3.7);
//! a change to web.config's settings, or to a file matching a `--watch` glob, recycles the app
//! without downtime. Events come from the OS (inotify and the like) through the notify crate,
//! with a polling fallback where the OS has none. Only writes count, never reads: ancm reads
//! these files itself, and so do the app, editors and backup tools.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{AppConfig, ConfigError};
use crate::supervisor::{RecycleError, Supervisor};

/// The file whose presence takes the app offline, matched ignoring case as IIS does.
const APP_OFFLINE: &str = "app_offline.htm";

/// Changes that recycle are gathered until none has come for this long, so that a deploy
/// copying many files recycles once.
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
    let (tx, rx) = mpsc::unbounded_channel::<Touch>();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            let Some(content) = content_change(&event.kind) else {
                return;
            };
            for path in event.paths {
                // The receiver is gone only when the watch is being dropped.
                let _ = tx.send(Touch { path, content });
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

/// A path an event was about.
#[derive(Debug)]
struct Touch {
    path: PathBuf,
    /// Whether its content may have changed; if not, only its metadata did.
    content: bool,
}

/// Whether an event can mean new content (`Some(true)`: created, written, renamed, removed),
/// only new metadata (`Some(false)`: `touch`, chmod), or is a read (`None`). inotify reports
/// every open and close, so without this each read of web.config (ancm's own included) or of a
/// watched file would recycle the app, and each read of app_offline.htm start the next read.
fn content_change(kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::Access(_) | EventKind::Other => None,
        // How the polling watcher reports a write: the file's mtime moved on.
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)) => Some(true),
        EventKind::Modify(ModifyKind::Metadata(_)) => Some(false),
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => {
            Some(true)
        }
    }
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
    mut rx: mpsc::UnboundedReceiver<Touch>,
    supervisor: Supervisor,
    reload: Reload,
) {
    // Start from what the supervisor acts on, read before the watch began, and look again now
    // that it watches: a change in between, or one whose event comes before this first look,
    // would otherwise match the look and never reach the supervisor.
    let mut offline = supervisor.offline();
    let now = read_app_offline(&dir).await;
    if now != offline {
        offline = now;
        supervisor.set_offline(offline.clone());
    }
    let classify = |touch: &Touch| {
        let change = classify(&dir, web_config.as_deref(), &globs, &touch.path);
        if touch.content {
            return change;
        }
        if change != Change::Other {
            tracing::debug!(
                "{}: only its metadata changed (a touch, a chmod): nothing to do",
                touch.path.display()
            );
        }
        Change::Other
    };
    loop {
        let Some(touch) = rx.recv().await else { return };
        let mut pending = Pending::default();
        pending.note(classify(&touch));
        // app_offline.htm acts at once; recycles wait for the burst of changes to settle.
        // Changes to other files (the app's logs, say) do not hold them back.
        if pending.config || pending.watched {
            let mut quiet_at = Instant::now() + SETTLE;
            loop {
                match tokio::time::timeout_at(quiet_at, rx.recv()).await {
                    Ok(Some(touch)) => {
                        let change = classify(&touch);
                        if change != Change::Other {
                            pending.note(change);
                            quiet_at = Instant::now() + SETTLE;
                        }
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

/// Reads web.config again: when valid and its settings changed, the app is recycled with it
/// (if `recycle`); when not valid, the app keeps running with what it had. With
/// disallowRotationOnConfigChange on in the running configuration, as in ANCM, a change does
/// not recycle: the app keeps running as it was.
async fn apply_config(supervisor: &Supervisor, reload: &Reload, recycle: bool) {
    let disallowed = recycle && supervisor.config().disallow_rotation_on_config_change;
    let config = match read_config(reload).await {
        Ok(config) => config,
        Err(_) if disallowed => {
            tracing::info!(
                "web.config changed; not recycling: disallowRotationOnConfigChange is true"
            );
            return;
        }
        Err(err) => {
            tracing::error!(
                "web.config changed but is not valid, so the app keeps running as it was: {err}"
            );
            return;
        }
    };
    if same_settings(&supervisor.config(), &config) {
        tracing::debug!("web.config was written but its settings are the same: nothing to do");
        return;
    }
    if disallowed {
        tracing::info!("web.config changed; not recycling: disallowRotationOnConfigChange is true");
        return;
    }
    announce(&supervisor.config(), &config);
    if recycle {
        tracing::info!("web.config changed: recycling the app with it");
        report(keep_for_next_start(supervisor, config).await);
    } else {
        supervisor.replace_config(config);
    }
}

/// Reads the configuration again and recycles the app with it, changed or not: what an
/// operator asks for with a reload signal. If it is not valid, the app keeps running as it was.
pub(crate) async fn reload_now(supervisor: &Supervisor, reload: &Reload) {
    let config = match read_config(reload).await {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("not reloading: the configuration is not valid, so the app keeps running as it was: {err}");
            return;
        }
    };
    announce(&supervisor.config(), &config);
    report(keep_for_next_start(supervisor, config).await);
}

/// Why reading the configuration again gave none.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("reading it failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs `reload` off the async runtime: it reads files.
async fn read_config(reload: &Reload) -> Result<AppConfig, ReadError> {
    let reload = reload.clone();
    Ok(tokio::task::spawn_blocking(move || reload()).await??)
}

/// Whether two configurations run the app the same way: all but their warnings (which the
/// configuration in force has already shown).
fn same_settings(current: &AppConfig, new: &AppConfig) -> bool {
    AppConfig {
        warnings: Vec::new(),
        ..current.clone()
    } == AppConfig {
        warnings: Vec::new(),
        ..new.clone()
    }
}

/// Says what of a new configuration waits for ancm's restart, and its warnings.
fn announce(current: &AppConfig, new: &AppConfig) {
    let fixed = fixed_until_restart(current, new);
    if !fixed.is_empty() {
        tracing::warn!(
            "web.config changed {}: {} only when ancm restarts; everything else applies to the new processes",
            fixed.join(", "),
            if fixed.len() == 1 { "that takes effect" } else { "those take effect" }
        );
    }
    for warning in &new.warnings {
        tracing::warn!("{warning}");
    }
}

/// Recycles the app with `config`. If nothing runs to recycle (app_offline.htm is there, the
/// app is starting or paused), `config` is still the one the next start uses.
async fn keep_for_next_start(
    supervisor: &Supervisor,
    config: AppConfig,
) -> Result<(), RecycleError> {
    let result = supervisor.reload(config.clone()).await;
    if let Err(RecycleError::NotRunning) = result {
        supervisor.replace_config(config);
    }
    result
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
    fn reads_and_metadata_are_no_content_change() {
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, RenameMode};
        let read = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let touched = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        let polled = EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime));
        let written = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(content_change(&read), None);
        assert_eq!(content_change(&closed), None);
        assert_eq!(content_change(&touched), Some(false));
        for kind in [polled, written, renamed, created] {
            assert_eq!(content_change(&kind), Some(true), "{kind:?}");
        }
    }

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
