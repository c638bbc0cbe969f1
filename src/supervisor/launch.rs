//! What a slot needs of an app process, as two small traits: [`Launcher`] starts one,
//! [`Process`] waits for it and stops it. The slot's state machine is generic over them, so
//! that it runs in tests with a scripted process and paused time; [`Spawner`] and
//! [`AppProcess`] are the real ones.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::process::AppProcess;
use super::readiness::Readiness;
use crate::config::AppConfig;
use crate::logs::Tail;

/// Starts app processes; one per slot start, shared by every slot.
pub(crate) trait Launcher: Send + Sync + 'static {
    type Process: Process;

    /// Starts the app on `port` with the pairing `token`; its output goes to `tail`.
    fn spawn(
        &self,
        ctx: &Arc<Context>,
        cfg: &Arc<AppConfig>,
        slot: usize,
        port: u16,
        token: Arc<str>,
        tail: &Tail,
    ) -> impl Future<Output = std::io::Result<Self::Process>> + Send;
}

/// One started app process, as the slot drives it.
pub(crate) trait Process: Send + 'static {
    fn pid(&self) -> u32;

    /// Waits until it listens on its port, exits, outlives `limit`, or `cancel` fires.
    fn wait_ready(
        &mut self,
        limit: Duration,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Readiness> + Send;

    /// Waits for it to exit by itself.
    fn wait(&mut self) -> impl Future<Output = std::io::Result<ExitStatus>> + Send;

    /// Stops it gracefully (the shutdown message when it `listening`, else a signal), killing
    /// it after shutdownTimeLimit or once `kill_now` fires; the exit status if it exited.
    fn stop(
        &mut self,
        listening: Option<SocketAddr>,
        kill_now: &CancellationToken,
    ) -> impl Future<Output = Option<ExitStatus>> + Send;

    /// Kills what is left of it and waits until it and its output are gone.
    fn reap(&mut self) -> impl Future<Output = ()> + Send;
}

/// Starts real processes.
pub(crate) struct Spawner;

impl Launcher for Spawner {
    type Process = AppProcess;

    async fn spawn(
        &self,
        ctx: &Arc<Context>,
        cfg: &Arc<AppConfig>,
        slot: usize,
        port: u16,
        token: Arc<str>,
        tail: &Tail,
    ) -> std::io::Result<AppProcess> {
        AppProcess::spawn(ctx, cfg, slot, port, token, tail).await
    }
}

// Inherent methods win over trait methods of the same name, so each of these calls the real
// one in process.rs.
impl Process for AppProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    async fn wait_ready(&mut self, limit: Duration, cancel: &CancellationToken) -> Readiness {
        AppProcess::wait_ready(self, limit, cancel).await
    }

    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        AppProcess::wait(self).await
    }

    async fn stop(
        &mut self,
        listening: Option<SocketAddr>,
        kill_now: &CancellationToken,
    ) -> Option<ExitStatus> {
        AppProcess::stop(self, listening, kill_now).await
    }

    async fn reap(&mut self) {
        AppProcess::reap(self).await;
    }
}
