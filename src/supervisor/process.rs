//! One run of the app: spawn it with the pairing environment (its port, picked or fixed by the
//! user, and its token), wait until it listens (what listens is told by `readiness.rs`), and
//! stop it the way ANCM does (shutdown message, then a signal, then a kill of the whole tree).
//!
//! Must not import the slot, which drives it through `launch.rs`.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::platform::Containment;
use super::readiness::{Probe, Readiness};
use crate::config::AppConfig;
use crate::logs::{self, Tail};

/// What ASP.NET Core's IIS integration must see to load (spec §2); an app that did not call
/// UseIISIntegration still gets it through this hosting startup assembly.
const IIS_HOSTING_STARTUP: &str = "Microsoft.AspNetCore.Server.IISIntegration";

/// A started app process, not necessarily listening yet.
pub(crate) struct AppProcess {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) port: u16,
    pub(crate) token: Arc<str>,
    containment: Containment,
    capture: Option<JoinHandle<()>>,
    ctx: Arc<Context>,
    /// The configuration this process was started with (a reload does not change it).
    config: Arc<AppConfig>,
}

impl AppProcess {
    /// Starts the app on `port`; output capture starts at once.
    pub(crate) async fn spawn(
        ctx: &Arc<Context>,
        cfg: &Arc<AppConfig>,
        slot: usize,
        port: u16,
        token: Arc<str>,
        tail: &Tail,
    ) -> Result<AppProcess, std::io::Error> {
        let (program, args) = cfg.command.with_port(port);
        let mut command = Command::new(&program);
        #[cfg(unix)]
        if let Some(user) = &cfg.run_as {
            // Before the app's own environment, which may set them otherwise.
            command
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
            // ancm's own settings are for ancm: an app of another user has no business with
            // them. What the app's configuration sets is set again below.
            for (name, _) in std::env::vars_os() {
                if name.as_encoded_bytes().starts_with(b"ANCM_") {
                    command.env_remove(name);
                }
            }
            super::platform::run_as(&mut command, user);
        }
        command
            .args(&args)
            .current_dir(&cfg.app_dir)
            .envs(environment(cfg, port, &token, ctx.https_port))
            .stdin(Stdio::null())
            // A backstop only: the direct child dies with its handle; the tree is killed
            // through `Containment`.
            .kill_on_drop(true);
        for name in crate::systemd::SERVICE_VARIABLES {
            command.env_remove(name);
        }
        // `--admin-token`'s variable: the secret guards the operator's view of the app, and the
        // app is the party it keeps out.
        command.env_remove("ANCM_ADMIN_TOKEN");
        // enableOutOfProcessConsoleRedirection=false: the app's output goes nowhere, as in ANCM.
        let output = if cfg.capture_output {
            Some(OutputPipe::attach(&mut command)?)
        } else {
            command.stdout(Stdio::null()).stderr(Stdio::null());
            None
        };
        let prepared = super::platform::contain(&mut command);

        let log_file = match &cfg.stdout_log {
            Some(prefix) => {
                let path = logs::stdout_log_path(
                    prefix,
                    time::OffsetDateTime::now_utc(),
                    std::process::id(),
                );
                match logs::open_stdout_log(&path, cfg.run_as.as_ref()).await {
                    Ok(file) => Some(logs::StdoutLog {
                        path,
                        file,
                        prefix: prefix.clone(),
                        rotation: cfg.stdout_log_rotation,
                        user: cfg.run_as.clone(),
                    }),
                    Err(err) => {
                        tracing::warn!(path = %path.display(), %err, "could not create the stdout log; the app's output still shows here");
                        None
                    }
                }
            }
            None => None,
        };

        #[cfg(target_os = "linux")]
        let spawning = crate::children::Spawning::begin();
        let mut child = command.spawn()?;
        // The command holds ancm's copies of the pipe's write end: the app's output reaches
        // end of file only once they are closed too.
        drop(command);
        let pid = child.id().unwrap_or_default();
        // tokio waits for this one: the orphan reaper must leave it alone.
        #[cfg(target_os = "linux")]
        {
            crate::children::owned(pid);
            drop(spawning);
        }
        let containment = match Containment::new(pid, &child, prepared) {
            Ok(c) => c,
            Err(err) => {
                let _ = child.start_kill();
                return Err(err);
            }
        };
        #[cfg(unix)]
        if let Some(guard) = &ctx.guard {
            guard.watch(&containment, &token);
        }
        let capture = match output.map(|pipe| pipe.readers(&mut child)).transpose() {
            Ok(readers) => readers.map(|readers| {
                logs::capture(
                    pid,
                    slot,
                    readers,
                    ctx.console.clone(),
                    log_file,
                    tail.clone(),
                )
            }),
            Err(err) => {
                tracing::warn!(pid, %err, "cannot read the app's output; it goes nowhere");
                None
            }
        };
        tracing::info!(pid, port, program = %program.display(), "started the app");
        Ok(AppProcess {
            child,
            pid,
            port,
            token,
            containment,
            capture,
            ctx: ctx.clone(),
            config: cfg.clone(),
        })
    }

    /// Waits until a process of the app's tree listens on its port, over IPv4 or IPv6. Polls
    /// fast at first, so the first request does not wait long once the app is up. Another
    /// process listening there ends the wait: requests must never go to it.
    pub(crate) async fn wait_ready(
        &mut self,
        limit: Duration,
        cancel: &CancellationToken,
    ) -> Readiness {
        let started = Instant::now();
        let deadline = started + limit;
        let mut probe = Probe::new(self.pid, self.port, &self.containment, &self.config);
        let mut pause = Duration::from_millis(2);
        loop {
            match probe.next().await {
                Some(Readiness::Listening(addr)) => {
                    tracing::debug!(pid = self.pid, %addr, after = ?started.elapsed(), "the app listens");
                    return Readiness::Listening(addr);
                }
                Some(readiness) => return readiness,
                None => {}
            }
            probe.look_elsewhere(started).await;
            if Instant::now() >= deadline {
                return Readiness::TimedOut(probe.elsewhere);
            }
            tokio::select! {
                status = self.child.wait() => {
                    return match status {
                        Ok(status) => Readiness::Exited(status),
                        Err(err) => {
                            tracing::warn!(pid = self.pid, %err, "lost track of the app");
                            Readiness::TimedOut(None)
                        }
                    };
                }
                () = cancel.cancelled() => return Readiness::Cancelled,
                () = tokio::time::sleep_until(deadline.min(Instant::now() + pause)) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Waits for the app to exit by itself.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stops the app as ANCM does (spec §3.5): if it listens, POST the shutdown message; if
    /// that is not answered 202, SIGTERM (CTRL_BREAK) its process group; after `limit`, or at
    /// once when `kill_now` fires or the signal cannot be sent, kill the whole tree. An app that is not ASP.NET Core
    /// (`-- COMMAND` without `--shutdown-message`) gets the signal at once. Returns the exit
    /// status if it exited by itself.
    pub(crate) async fn stop(
        &mut self,
        listening: Option<SocketAddr>,
        kill_now: &CancellationToken,
    ) -> Option<ExitStatus> {
        let limit = self.config.shutdown_time_limit;
        let deadline = Instant::now() + limit;
        let stragglers = descendants(self.pid).await;
        let graceful = async {
            let accepted = match listening {
                Some(addr) if !limit.is_zero() && self.config.shutdown_message => {
                    self.send_shutdown_message(addr, limit).await
                }
                _ => false,
            };
            if !accepted && !self.containment.terminate() {
                return None;
            }
            self.child.wait().await.ok()
        };
        let status = tokio::select! {
            status = graceful => status,
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(pid = self.pid, limit_secs = limit.as_secs(), "the app did not stop within shutdownTimeLimit; killing it");
                None
            }
            () = kill_now.cancelled() => None,
        };
        self.reap().await;
        super::platform::tree::kill_stragglers(stragglers).await;
        status
    }

    /// Kills whatever is left of the app's tree, reaps the direct child and waits for its
    /// output to be written out.
    pub(crate) async fn reap(&mut self) {
        self.containment.kill();
        let _ = self.child.wait().await;
        #[cfg(target_os = "linux")]
        {
            crate::children::released(self.pid);
            // Without a cgroup, what left the tree is found among ancm's orphans.
            if !self.containment.holds_all() {
                let token = self.token.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    super::platform::orphans::kill_orphans_of(&token)
                })
                .await;
            }
        }
        #[cfg(unix)]
        if let Some(guard) = &self.ctx.guard {
            guard.forget(&self.containment, &self.token);
        }
        self.containment.release().await;
        if let Some(capture) = self.capture.take() {
            // The tree is dead, so the pipes close; the bound covers a descendant that left
            // the process group and still holds them open.
            if timeout(Duration::from_secs(5), capture).await.is_err() {
                tracing::warn!(
                    pid = self.pid,
                    "a process outside the app's group still holds its output open"
                );
            }
        }
    }

    /// `POST {APPL_PATH}/iisintegration` with `MS-ASPNETCORE-EVENT: shutdown`; true when the
    /// app accepts it (ANCM expects 202; any 2xx means the app took it).
    async fn send_shutdown_message(&self, addr: SocketAddr, limit: Duration) -> bool {
        let base = self.config.appl_path.trim_end_matches('/');
        let url = format!("http://{addr}{base}/iisintegration");
        let result = self
            .ctx
            .http
            .post(&url)
            .header("MS-ASPNETCORE-EVENT", "shutdown")
            .header("MS-ASPNETCORE-TOKEN", &*self.token)
            // Kestrel answers 411 Length Required to a POST that declares no length; WinHTTP
            // sends this header for ANCM.
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .timeout(limit)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                let status = response.status();
                tracing::info!(pid = self.pid, %status, "the app accepted the shutdown message");
                true
            }
            Ok(response) => {
                let status = response.status();
                tracing::warn!(pid = self.pid, %status, "the app refused the shutdown message; signalling it");
                false
            }
            Err(err) => {
                tracing::info!(pid = self.pid, err = %err.without_url(), "the app did not take the shutdown message; signalling it");
                false
            }
        }
    }
}

/// The app's stdout and stderr: one pipe for both where the platform allows (so lines keep
/// the order the app wrote them in, as ANCM gives it one pipe, spec §3.8), else one each.
#[cfg(unix)]
struct OutputPipe {
    read: std::os::fd::OwnedFd,
}

#[cfg(unix)]
impl OutputPipe {
    /// Makes the pipe and gives its write end to the command as both stdout and stderr.
    fn attach(command: &mut Command) -> std::io::Result<OutputPipe> {
        let (read, write) = cloexec_pipe()?;
        command
            .stdout(Stdio::from(write.try_clone()?))
            .stderr(Stdio::from(write));
        Ok(OutputPipe { read })
    }

    fn readers(self, _child: &mut Child) -> std::io::Result<Vec<tokio::net::unix::pipe::Receiver>> {
        Ok(vec![tokio::net::unix::pipe::Receiver::from_owned_fd(
            self.read,
        )?])
    }
}

/// A pipe whose ends no other program ancm starts inherits: only the dups made as the app's
/// stdout and stderr cross into it.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn cloexec_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// No pipe2 on macOS: the flag is set right after, so only a program started in that instant
/// could inherit the ends.
#[cfg(target_vendor = "apple")]
fn cloexec_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let (read, write) = nix::unistd::pipe()?;
    for end in [&read, &write] {
        fcntl(end, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((read, write))
}

/// Windows: the two pipes that tokio makes; sharing one would take an overlapped pipe of our
/// own.
#[cfg(not(unix))]
struct OutputPipe;

#[cfg(not(unix))]
impl OutputPipe {
    fn attach(command: &mut Command) -> std::io::Result<OutputPipe> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        Ok(OutputPipe)
    }

    fn readers(
        self,
        child: &mut Child,
    ) -> std::io::Result<Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>>> {
        let mut readers: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(Box::new(out));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(Box::new(err));
        }
        Ok(readers)
    }
}

/// The child's environment on top of ancm's own (spec §2): `<environmentVariables>` and
/// `--env`, then the pairing variables. A user-set ASPNETCORE_TOKEN is the token, as in ANCM.
fn environment(
    cfg: &AppConfig,
    port: u16,
    token: &str,
    https_port: Option<u16>,
) -> Vec<(String, String)> {
    let mut env = cfg.environment.to_vec();
    let mut set = |name: &str, value: String| {
        env.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        env.push((name.to_owned(), value));
    };
    set("ASPNETCORE_PORT", port.to_string());
    set("ASPNETCORE_APPL_PATH", cfg.appl_path.clone());
    set("ASPNETCORE_TOKEN", token.to_owned());
    // No Windows authentication outside IIS: the app must not expect a Windows identity.
    set("ASPNETCORE_IIS_HTTPAUTH", "anonymous;".to_owned());
    // Upgrades (WebSockets) are tunnelled through the proxy.
    set("ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED", "true".to_owned());
    // ANCM means the app's folder here (out-of-process it passes the IIS app id instead).
    set(
        "ASPNETCORE_IIS_PHYSICAL_PATH",
        cfg.app_dir.display().to_string(),
    );
    for name in &cfg.port_env {
        set(name, port.to_string());
    }
    let user_set_startup = cfg
        .environment
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("ASPNETCORE_HOSTINGSTARTUPASSEMBLIES"));
    if !user_set_startup {
        let value = match std::env::var("ASPNETCORE_HOSTINGSTARTUPASSEMBLIES") {
            Ok(own) if !own.is_empty() => format!("{own};{IIS_HOSTING_STARTUP}"),
            _ => IIS_HOSTING_STARTUP.to_owned(),
        };
        set("ASPNETCORE_HOSTINGSTARTUPASSEMBLIES", value);
    }
    // For app.UseHttpsRedirection(), which reads it when HTTPS_PORT is not set; the app's own
    // value wins, as in ANCM.
    let user_set_https_port = cfg
        .environment
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("ASPNETCORE_ANCM_HTTPS_PORT"));
    if let Some(https_port) = https_port.filter(|_| !user_set_https_port) {
        env.push((
            "ASPNETCORE_ANCM_HTTPS_PORT".to_owned(),
            https_port.to_string(),
        ));
    }
    env
}

/// A user-set ASPNETCORE_PORT, which fixes the port (one process only).
pub(super) fn fixed_port(config: &AppConfig) -> Option<u16> {
    user_value(config, "ASPNETCORE_PORT").and_then(|p| p.parse::<u16>().ok())
}

/// A value the user gave the app in `<environmentVariables>` or `--env`, if not empty.
fn user_value<'a>(config: &'a AppConfig, name: &str) -> Option<&'a str> {
    config
        .environment
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The pairing token: the user's ASPNETCORE_TOKEN if set (as in ANCM), else a fresh UUID.
pub(super) fn new_token(config: &AppConfig) -> (Arc<str>, HeaderValue) {
    if let Some(user) = user_value(config, "ASPNETCORE_TOKEN") {
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

/// The app's descendants now, found through the process table: the last resort for those that
/// left its process group, and so would escape the group kill.
async fn descendants(pid: u32) -> Vec<u32> {
    tokio::task::spawn_blocking(move || super::platform::tree::descendants(pid))
        .await
        .unwrap_or_default()
}

/// A free loopback port for the app (see [`super::ports`]).
pub(crate) async fn pick_port() -> std::io::Result<u16> {
    tokio::task::spawn_blocking(super::ports::pick)
        .await
        .map_err(std::io::Error::other)?
}
