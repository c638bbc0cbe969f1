//! The request body on its way to the app: the client's, with its first frame possibly read
//! ahead, reporting how the app takes it (for requestTimeout and maxAllowedContentLength),
//! losing the trailer fields a client may not send the app, and marking the client's own
//! failures so that they are not taken for the app's.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::super::h1::BoxError;

/// What the proxy learns from a request body as the app takes it: when the app last took a
/// frame, so that requestTimeout bounds the gaps the app leaves and never the client's own
/// pace (WinHTTP's send timeout bounds each write, spec §4.7); and whether the body ran past
/// the request limit (maxAllowedContentLength).
#[derive(Debug)]
pub(in crate::proxy) struct Progress {
    /// [`millis`] when the app last took a frame, or [`WAITING_ON_CLIENT`].
    last: AtomicU64,
    too_large: AtomicBool,
}

const WAITING_ON_CLIENT: u64 = u64::MAX;

/// Milliseconds since the first call: a clock an atomic can hold.
fn millis() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
}

impl Progress {
    pub(in crate::proxy) fn new() -> Arc<Progress> {
        Arc::new(Progress {
            last: AtomicU64::new(millis()),
            too_large: AtomicBool::new(false),
        })
    }

    /// When the app will have been idle for `limit`; `None` while the wait is on the client.
    pub(in crate::proxy) fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        match self.last.load(Ordering::Relaxed) {
            WAITING_ON_CLIENT => None,
            last => {
                let since = Duration::from_millis(millis().saturating_sub(last));
                Some(Instant::now() + limit.saturating_sub(since))
            }
        }
    }

    /// Whether the body was cut off for passing the request limit.
    pub(in crate::proxy) fn too_large(&self) -> bool {
        self.too_large.load(Ordering::Relaxed)
    }
}

/// The client's body ran past maxAllowedContentLength: the app's request is aborted.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than maxAllowedContentLength ({0} bytes)")]
pub(in crate::proxy) struct TooLarge(u64);

/// The client's request body broke off or was malformed after it had started: the client's
/// fault, told apart from the app's when forwarding fails with it.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body failed")]
pub(in crate::proxy) struct ClientBodyFailed(#[source] hyper::Error);

/// A request body on its way to the app: the client's (with its first frame possibly read
/// ahead, see [`RequestBody::checked`]), or none.
#[derive(Debug)]
pub(in crate::proxy) struct RequestBody {
    /// What [`RequestBody::ready_data`] took and did not use, handed out first as it was
    /// (counted already).
    held: Option<Result<Frame<Bytes>, BoxError>>,
    first: Option<Frame<Bytes>>,
    rest: Option<Incoming>,
    /// Present when a limit or a timeout needs to know how the body goes.
    progress: Option<Arc<Progress>>,
    /// maxAllowedContentLength, and the bytes passed on so far.
    limit: Option<u64>,
    sent: u64,
}

/// The client's chunked body was malformed from its very first chunk.
#[derive(Debug, thiserror::Error)]
pub(in crate::proxy) enum BadBody {
    #[error("the request body is not valid: {0}")]
    Invalid(hyper::Error),
    #[error("the request body did not start within {0:?}")]
    Slow(Duration),
}

impl RequestBody {
    pub(in crate::proxy) fn streamed(body: Incoming) -> Self {
        RequestBody {
            held: None,
            first: None,
            rest: Some(body),
            progress: None,
            limit: None,
            sent: 0,
        }
    }

    /// Reads the first frame of a chunked body before anything goes to the app, so that a body
    /// whose framing is broken from the start is refused (400) without reaching the app. Waits
    /// at most `limit` for it.
    pub(in crate::proxy) async fn checked(
        mut body: Incoming,
        limit: Duration,
    ) -> Result<Self, BadBody> {
        use http_body_util::BodyExt;
        let first = match tokio::time::timeout(limit, body.frame()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(None) => None,
            Ok(Some(Err(err))) => return Err(BadBody::Invalid(err)),
            Err(_) => return Err(BadBody::Slow(limit)),
        };
        let mut checked = RequestBody::streamed(body);
        checked.first = first;
        Ok(checked)
    }

    /// The body's first data if the client has sent it by now: polled, and polled once more
    /// after the connection's task has had a turn to read it, never waited for. A small body
    /// then goes to the app in the same write as the head.
    pub(in crate::proxy) async fn ready_data(&mut self) -> Option<Bytes> {
        let mut turned = false;
        std::future::poll_fn(|cx| match Pin::new(&mut *self).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(data)),
                Err(frame) => {
                    self.held = Some(Ok(frame));
                    Poll::Ready(None)
                }
            },
            Poll::Ready(Some(Err(err))) => {
                self.held = Some(Err(err));
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if !turned => {
                turned = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// Data from [`RequestBody::ready_data`] that did not go to the app, to go first.
    pub(in crate::proxy) fn give_back(&mut self, data: Bytes) {
        self.held = Some(Ok(Frame::data(data)));
    }

    /// Cuts the body off past `limit` bytes and reports how it goes through `progress`.
    pub(in crate::proxy) fn watched(mut self, limit: Option<u64>, progress: Arc<Progress>) -> Self {
        self.limit = limit;
        self.progress = Some(progress);
        self
    }
}

/// A client's frame as the app may get it: trailers lose what the headers would lose.
fn for_the_app(frame: Frame<Bytes>) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            super::super::headers::strip_trailers(&mut trailers);
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(held));
        }
        let polled = match (this.first.take(), this.rest.as_mut()) {
            (Some(frame), _) => Poll::Ready(Some(Ok(frame))),
            (None, Some(rest)) => Pin::new(rest).poll_frame(cx),
            (None, None) => Poll::Ready(None),
        };
        let polled = polled.map(|frame| {
            frame.map(|frame| match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        super::super::stats::STATS.received(data.len());
                    }
                    Ok(for_the_app(frame))
                }
                Err(err) => Err(ClientBodyFailed(err)),
            })
        });
        let Some(progress) = &this.progress else {
            return polled.map_err(Into::into);
        };
        match &polled {
            Poll::Pending => {
                progress.last.store(WAITING_ON_CLIENT, Ordering::Relaxed);
                return Poll::Pending;
            }
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                this.sent = this.sent.saturating_add(len);
                if let Some(limit) = this.limit.filter(|&limit| this.sent > limit) {
                    progress.too_large.store(true, Ordering::Relaxed);
                    this.rest = None;
                    return Poll::Ready(Some(Err(Box::new(TooLarge(limit)))));
                }
            }
            Poll::Ready(_) => {}
        }
        progress.last.store(millis(), Ordering::Relaxed);
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none()
            && self.first.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let held = match &self.held {
            Some(Ok(frame)) => frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => 0,
        };
        let first = self
            .first
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64)
            + held;
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        hint.set_lower(hint.lower().saturating_add(first));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(first));
        }
        hint
    }
}
