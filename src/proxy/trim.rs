//! Gives memory back after a peak of connections. glibc keeps what the proxy threads freed in
//! their own heaps, so after 500 clients that never read have gone, ancm would stay at ten
//! times its idle size; `malloc_trim` returns the free pages of every heap to the system.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the number of open connections is looked at.
const EVERY: Duration = Duration::from_secs(5);

/// A peak worth giving memory back after: a few dozen connections hold little.
const PEAK: usize = 64;

/// Trims once the connections open have fallen to a quarter of a peak of at least [`PEAK`].
pub(super) async fn after_peaks(connections: TaskTracker, shutdown: CancellationToken) {
    let mut peak = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.cancelled() => return,
        }
        let open = connections.len();
        peak = peak.max(open);
        if peak >= PEAK && open <= peak / 4 {
            tracing::debug!(
                peak,
                open,
                "connections fell from a peak; giving free memory back"
            );
            let _ = tokio::task::spawn_blocking(trim).await;
            peak = open;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own heaps under their locks; it takes no pointer
    // and leaves every allocation in place.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Other allocators give memory back by themselves, or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
