//! Upgraded connections (WebSockets and any other `Upgrade`): once the app has answered 101,
//! the client's connection and the app's are spliced byte for byte until either side closes.
//! No requestTimeout applies: a WebSocket may rightly stay quiet for a long while; but a tunnel
//! with no byte either way for the idle timeout is closed, as an idle connection is (a
//! WebSocket that means to stay open pings within it). The request counts as in flight for as
//! long as the tunnel is open, so a recycle waits for it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body_util::{Either, Full};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::upstream::exchange::AppBody;
use super::{error_chain, headers, page, pages, Proxy, ProxyBody};
use crate::supervisor::InFlight;

impl Proxy {
    /// Answers the client's upgrade with the app's 101 and splices the two connections in a
    /// tracked task once hyper has handed the client's over.
    pub(super) fn tunnel(
        &self,
        response: Response<AppBody>,
        client_side: OnUpgrade,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        let Some(app_side) = body.into_upgraded() else {
            return page(pages::bad_gateway(
                "The app's connection closed as it switched protocols.",
            ));
        };
        headers::rewrite_switching(&mut parts.headers);
        if super::access_log::enabled() {
            parts
                .extensions
                .insert(super::access_log::AppPid(in_flight.backend().pid));
        }
        let close = self.close_tunnels.clone();
        self.tunnels.spawn(splice(
            client_side,
            app_side,
            self.idle_timeout,
            close,
            in_flight,
        ));
        Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
    }
}

async fn splice(
    client_side: OnUpgrade,
    (mut app, early): (TcpStream, BytesMut),
    idle_timeout: Duration,
    close: CancellationToken,
    // Held, not read: the request stays in flight until the tunnel closes.
    _in_flight: InFlight,
) {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let spliced = async {
        // Resolves once hyper has written our 101; fails if the client's connection closed
        // first.
        let client = match client_side.await {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(err = %error_chain(&err), "an upgraded connection closed before the switch");
                return;
            }
        };
        let mut client = Active {
            io: TokioIo::new(client),
            start,
            last: &last,
        };
        // What the app sent right behind its 101 was read with the head.
        if !early.is_empty() {
            if let Err(err) = client.write_all(&early).await {
                tracing::debug!(%err, "upgraded connection ended");
                return;
            }
        }
        match tokio::io::copy_bidirectional(&mut client, &mut app).await {
            Ok((up, down)) => {
                tracing::debug!(up, down, "upgraded connection closed");
            }
            // A reset from either side is how many of these end.
            Err(err) => tracing::debug!(%err, "upgraded connection ended"),
        }
    };
    tokio::select! {
        () = spliced => {}
        () = idle(start, &last, idle_timeout) => {
            tracing::debug!("closing an upgraded connection with no traffic for {idle_timeout:?} (the idle timeout)");
        }
        // Dropping both ends closes them: ancm is stopping and the grace is over.
        () = close.cancelled() => tracing::debug!("closing an upgraded connection: ancm is stopping"),
    }
}

/// Resolves once no byte has gone either way for `limit`; the timer fires at most once per
/// `limit` while bytes flow.
async fn idle(start: Instant, last: &AtomicU64, limit: Duration) {
    let mut due = Instant::now() + limit;
    loop {
        tokio::time::sleep_until(due).await;
        let last = start + Duration::from_millis(last.load(Ordering::Relaxed));
        if last + limit <= Instant::now() {
            return;
        }
        due = last + limit;
    }
}

/// The client's side of a tunnel, noting when a byte last went either way (milliseconds from
/// `start`): everything the app sends is written here, everything it gets is read here.
struct Active<'a, I> {
    io: I,
    start: Instant,
    last: &'a AtomicU64,
}

impl<I> Active<'_, I> {
    fn moved(&self) {
        let since = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(since, Ordering::Relaxed);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Active<'_, I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Active<'_, I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
