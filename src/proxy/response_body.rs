//! The app's response body as hyper's path hands it to the front: it fails when the app leaves
//! it idle for longer than requestTimeout, bounding each gap as WinHTTP's receive timeout does
//! for ANCM (spec §4.7), not the total; and it gives the app connection back to its pool once
//! read in full. (The request body going the other way is `upstream/request_body.rs`.)

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::upstream::connection::Connection;
use super::upstream::exchange::AppBody;
use crate::supervisor::InFlight;

/// A response body that holds the app connection it is read from.
pub(super) trait HoldsConnection {
    /// The connection, once the body has been read in full and it can serve another request.
    fn take_connection(&mut self) -> Option<Connection>;
}

impl HoldsConnection for AppBody {
    fn take_connection(&mut self) -> Option<Connection> {
        AppBody::take_connection(self)
    }
}

pin_project_lite::pin_project! {
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        // Re-armed lazily: each frame only notes the time, so a fast stream does not touch
        // the timer wheel per frame.
        #[pin]
        sleep: Option<Sleep>,
        limit: Duration,
        last_activity: Instant,
        // Counts the request as in flight until the whole body has been read (or failed).
        request: Option<InFlight>,
    }
}

impl<B> IdleTimeout<B> {
    /// `limit` of `None` never times out.
    pub(super) fn new(inner: B, limit: Option<Duration>, request: Option<InFlight>) -> Self
    where
        B: Body + HoldsConnection,
    {
        let now = Instant::now();
        let mut body = IdleTimeout {
            inner,
            sleep: limit.map(|l| tokio::time::sleep_until(now + l)),
            limit: limit.unwrap_or(Duration::MAX),
            last_activity: now,
            request,
        };
        // Nothing to read (HEAD, 204, 304, an empty body): the front will not poll it.
        if body.inner.is_end_stream() {
            finish(&mut body.request, &mut body.inner);
        }
        body
    }
}

/// The response has been read in full: the request is over and its connection can serve another.
fn finish<B: HoldsConnection>(request: &mut Option<InFlight>, body: &mut B) {
    if let Some(in_flight) = request.take() {
        if let Some(connection) = body.take_connection() {
            super::upstream::pool::put(in_flight.backend(), connection);
        }
    }
}

/// The app sent nothing for requestTimeout in the middle of a response.
#[derive(Debug, thiserror::Error)]
#[error("the app sent no data for {0:?} (requestTimeout) in the middle of its response")]
pub(super) struct BodyIdle(Duration);

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + HoldsConnection + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.as_mut().poll_frame(cx) {
            *this.last_activity = Instant::now();
            let frame = frame.map(|r| r.map_err(Into::into));
            match &frame {
                // The front stops polling once the body says it has ended.
                Some(Ok(_)) if this.inner.is_end_stream() => {
                    finish(this.request, this.inner.get_mut());
                }
                Some(Ok(_)) => {}
                None => finish(this.request, this.inner.get_mut()),
                // Dropped, the connection closes: what is left of the response is unknown.
                Some(Err(err)) => {
                    let err = super::error_chain(&**err);
                    match this.request.take() {
                        Some(request) => tracing::warn!(pid = request.backend().pid, err, "the app's response broke off part way; the client's response is cut off"),
                        None => tracing::warn!(err, "the app's response broke off part way; the client's response is cut off"),
                    }
                }
            }
            return Poll::Ready(frame);
        }
        let Some(mut sleep) = this.sleep.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            let due = *this.last_activity + *this.limit;
            if Instant::now() >= due {
                return Poll::Ready(Some(Err(Box::new(BodyIdle(*this.limit)))));
            }
            sleep.as_mut().reset(due);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    impl<S> HoldsConnection for StreamBody<S> {
        fn take_connection(&mut self) -> Option<Connection> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fails_after_an_idle_gap_but_not_on_a_slow_steady_stream() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let stream = tokio_stream_shim(rx);
        let mut body = std::pin::pin!(IdleTimeout::new(
            StreamBody::new(stream),
            Some(Duration::from_secs(2)),
            None,
        ));
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tx);
        });
        for _ in 0..3 {
            let frame = body
                .as_mut()
                .frame()
                .await
                .expect("a frame")
                .expect("not idle");
            assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"x")));
        }
        let err = body
            .as_mut()
            .frame()
            .await
            .expect("an error")
            .expect_err("idle");
        assert!(err.to_string().contains("requestTimeout"), "{err}");
        sender.abort();
    }

    /// An mpsc receiver as a `Stream`, without pulling in tokio-stream.
    fn tokio_stream_shim<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
