//! The send timeout (`--send-timeout`, nginx's send_timeout): a client that takes nothing of
//! what ancm writes to it for that long has its connection closed, or on HTTP/2 the stream it
//! does not read reset, and the app's request is aborted with it (its connection to the app is
//! dropped, not pooled), so a client that stops reading cannot hold an app process for ever.
//!
//! One rule, measured in two places: at the client's socket ([`Stalls`], for HTTP/1.1 on both
//! paths, TLS, and an HTTP/2 connection the client stops reading altogether), and per HTTP/2
//! stream ([`Streams`]), since one stream can be stuck on its flow-control window while the
//! connection goes on.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A client took nothing of what was written to it for the send timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client took nothing for {0:?} (the send timeout)")]
pub(super) struct Stalled(pub(super) Duration);

impl Stalled {
    fn io(limit: Duration) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, Stalled(limit))
    }
}

/// Whether `err` came of the send timeout.
pub(super) fn stalled(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<Stalled>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<Stalled>()) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

/// Logs the one line for a client the send timeout cut off, on either path, when `err` came of
/// it; says whether it did.
pub(super) fn report(
    err: &(dyn std::error::Error + 'static),
    remote: Option<std::net::SocketAddr>,
) -> bool {
    if !stalled(err) {
        return false;
    }
    tracing::info!(
        remote = remote.map(tracing::field::display),
        err = %super::error_chain(err),
        "closed a client connection that took nothing of its response; its request to the app was aborted"
    );
    true
}

pin_project_lite::pin_project! {
    /// A client connection whose writes fail once one has made no progress for `limit`: from
    /// the first write that finds the socket (or TLS's bounded buffer) full, to the next one
    /// that takes a byte. The timer is only touched when a write has to wait.
    pub(super) struct Stalls<I> {
        #[pin]
        io: I,
        limit: Option<Duration>,
        // Armed when a write first waits; `stalled` says whether it counts from then.
        sleep: Option<Pin<Box<Sleep>>>,
        stalled: bool,
    }
}

impl<I> Stalls<I> {
    /// `limit` of `None` never times out.
    pub(super) fn new(io: I, limit: Option<Duration>) -> Stalls<I> {
        Stalls {
            io,
            limit,
            sleep: None,
            stalled: false,
        }
    }
}

/// Passes a write's outcome on, noting progress, or failing it once its wait has lasted
/// `limit`.
fn watch<T>(
    limit: Option<Duration>,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    stalled: &mut bool,
    cx: &mut Context<'_>,
    polled: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    let Some(limit) = limit else { return polled };
    if polled.is_ready() {
        *stalled = false;
        return polled;
    }
    let due = || Instant::now() + limit;
    let sleep = match sleep {
        Some(sleep) if *stalled => sleep,
        Some(sleep) => {
            sleep.as_mut().reset(due());
            sleep
        }
        None => sleep.insert(Box::pin(tokio::time::sleep_until(due()))),
    };
    *stalled = true;
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(Stalled::io(limit))),
        Poll::Pending => Poll::Pending,
    }
}

impl<I: AsyncRead> AsyncRead for Stalls<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for Stalls<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write(cx, buf);
        watch(*this.limit, this.sleep, this.stalled, cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write_vectored(cx, bufs);
        watch(*this.limit, this.sleep, this.stalled, cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let polled = this.io.poll_flush(cx);
        watch(*this.limit, this.sleep, this.stalled, cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let polled = this.io.poll_shutdown(cx);
        watch(*this.limit, this.sleep, this.stalled, cx, polled)
    }
}

tokio::task_local! {
    /// The HTTP/2 stream whose task this is: its response body notes here when it has handed
    /// hyper a frame to send.
    static STREAM: Arc<Handed>;
}

/// Milliseconds (from the stream's start, plus one) since the response body last handed hyper a
/// frame and was not asked for the next; 0 while it is asked, or has handed nothing yet.
#[derive(Debug)]
pub(super) struct Handed {
    start: Instant,
    at: AtomicU64,
}

impl Handed {
    fn millis(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }
}

/// Called by a response body as hyper asks it for a frame (`handed` false) and as it hands
/// one (`handed` true). hyper's HTTP/2 server asks for the next frame only once the client's
/// flow-control window and the send buffer have room for it, so a body not asked for long
/// after handing a frame is a stream the client does not read. Outside an HTTP/2 stream's
/// task (HTTP/1.1, where [`Stalls`] sees the socket), nothing.
pub(super) fn note(handed: bool) {
    let _ = STREAM.try_with(|stream| {
        let at = if handed { stream.millis() } else { 0 };
        stream.at.store(at, Ordering::Relaxed);
    });
}

/// hyper's executor for HTTP/2 streams: each stream's task is dropped, which resets the stream
/// (RST_STREAM) and drops its request to the app, once its response has waited on the client
/// for the send timeout.
#[derive(Clone, Copy)]
pub(super) struct Streams {
    pub(super) limit: Option<Duration>,
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        let Some(limit) = self.limit else {
            tokio::spawn(task);
            return;
        };
        let handed = Arc::new(Handed {
            start: Instant::now(),
            at: AtomicU64::new(0),
        });
        let task = STREAM.scope(handed.clone(), task);
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                () = waited_on_client(&handed, limit) => {
                    tracing::info!("an HTTP/2 client read nothing of a response for {limit:?} (the send timeout); its stream is reset and its request to the app aborted");
                }
            }
        });
    }
}

/// Resolves once the stream's response has waited on the client for `limit`. Checked lazily:
/// the timer fires at most once per `limit` while frames flow.
async fn waited_on_client(handed: &Handed, limit: Duration) {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    let mut due = Instant::now() + limit;
    loop {
        tokio::time::sleep_until(due).await;
        match handed.at.load(Ordering::Relaxed) {
            0 => due = Instant::now() + limit,
            at => {
                let waited = handed.millis().saturating_sub(at);
                if waited >= limit_ms {
                    return;
                }
                due = Instant::now() + Duration::from_millis(limit_ms - waited);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_that_waits_for_the_limit_fails_but_a_slow_reader_does_not() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut stalls = Stalls::new(client, Some(Duration::from_secs(2)));
        // A reader that takes 64 bytes every second keeps the writer going.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tokio::io::AsyncReadExt::read(&mut server, &mut buf).await;
            }
            server
        });
        stalls.write_all(&[0u8; 64 * 5]).await.expect("progress");
        let _server = reader.await.expect("reader");
        // Now nobody reads.
        let err = stalls.write_all(&[0u8; 256]).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("send timeout"), "{err}");
    }
}
