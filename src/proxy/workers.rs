//! The proxy's threads: one single-threaded runtime per core, each serving the client
//! connections dealt to it from start to end, as nginx's worker processes do. A
//! request, the app connection it goes out on and every wakeup between them stay on one
//! thread, with no hand-over between threads and no work stealing; the rest of ancm (the
//! supervisor, the watch, the helper) stays on the main runtime.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How many workers the proxy runs: one per core ancm may use.
pub(super) fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// The running workers; dropping this stops them, closing whatever they still serve.
pub(super) struct Workers {
    handles: Arc<[Handle]>,
    exited: Vec<oneshot::Receiver<()>>,
    _stop: DropGuard,
}

impl Workers {
    /// Starts [`count`] workers. Where threads cannot be made, the proxy is served from the
    /// calling runtime instead, slower but the same.
    pub(super) async fn start() -> Workers {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        let mut exited = Vec::new();
        for index in 0..count() {
            match start_one(index, stop.clone()).await {
                Ok((handle, exit)) => {
                    handles.push(handle);
                    exited.push(exit);
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot start a proxy thread; serving from the main runtime");
                    break;
                }
            }
        }
        if handles.is_empty() {
            handles.push(Handle::current());
        }
        Workers {
            handles: handles.into(),
            exited,
            _stop: stop.drop_guard(),
        }
    }

    /// The workers' runtimes, to spawn connections on.
    pub(super) fn handles(&self) -> Arc<[Handle]> {
        self.handles.clone()
    }

    /// Stops every worker and waits for its thread to let go of its runtime; connections to
    /// the apps still open close with it.
    pub(super) async fn stop(self) {
        let Workers {
            exited,
            _stop: stop,
            ..
        } = self;
        drop(stop);
        for exit in exited {
            let _ = exit.await;
        }
    }
}

async fn start_one(
    index: usize,
    stop: CancellationToken,
) -> std::io::Result<(Handle, oneshot::Receiver<()>)> {
    let (started, handle) = oneshot::channel();
    let (exited, exit) = oneshot::channel();
    // The runtime is made (and dropped) on its own thread: a runtime may not be dropped from
    // inside another one.
    std::thread::Builder::new()
        .name(format!("ancm-proxy-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = started.send(Err(err));
                    return;
                }
            };
            if started.send(Ok(runtime.handle().clone())).is_ok() {
                runtime.block_on(stop.cancelled());
            }
            // Dropping the runtime drops the tasks still on it: their connections close.
            drop(runtime);
            let _ = exited.send(());
        })?;
    let handle = handle
        .await
        .map_err(|_| std::io::Error::other("the proxy thread ended at once"))??;
    Ok((handle, exit))
}
