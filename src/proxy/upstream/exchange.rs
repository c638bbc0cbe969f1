//! One HTTP/1.1 exchange with the app, driven by the request's own task: the request head is
//! written from the request, its body is sent as the app takes it, the response head is read
//! with httparse and the response body is read from the app's socket only when the front asks
//! for more. Nothing reads ahead of a slow client, so the app meets back-pressure and a stalled
//! client costs one read buffer on this side.
//!
//! Framing follows RFC 9112 §6.3 strictly: a response with Transfer-Encoding is chunked if its
//! last coding is chunked (and any Content-Length is ignored), else read until the app closes;
//! differing Content-Length values are refused; HEAD, 1xx, 204 and 304 responses have no body.
//! Informational responses other than 101 are skipped, as the front sends its own 100 Continue.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::super::h1::{
    chunk_step, encode_head, last_chunk, parse_head, push_chunk_size, response_framing, Decode,
    ExchangeError, Head, Step, MAX_HEAD,
};
use super::connection::{self, Connection, Outcome};
use super::request_body::RequestBody;
/// A failed exchange, with the request itself when none of it was written: then the app never
/// saw it and it may be sent again elsewhere.
pub(in crate::proxy) struct Failure {
    pub(in crate::proxy) error: ExchangeError,
    pub(in crate::proxy) unsent: Option<Request<RequestBody>>,
}

/// The request body's first data when the client has already sent it (see
/// [`RequestBody::ready_data`]), to go to the app in the same write as the head: an app that
/// answers from the head alone finds the body there all the same, as on the lean path, rather
/// than answering before it comes (and a system call is saved). Taken before a pooled
/// connection is peeked, so that no wait comes between the peek and the write.
pub(in crate::proxy) async fn body_ahead(request: &mut Request<RequestBody>) -> Bytes {
    let Some(Upload::Length { left }) = Upload::new(request) else {
        return Bytes::new();
    };
    match request.body_mut().ready_data().await {
        Some(data) if data.len() as u64 <= left => data,
        // Longer than its Content-Length: the upload refuses it.
        Some(data) => {
            request.body_mut().give_back(data);
            Bytes::new()
        }
        None => Bytes::new(),
    }
}

/// Sends `request`, with `ahead` from [`body_ahead`], on `connection` and waits for the
/// response head. The body comes back with the connection inside it; once read in full,
/// [`AppBody::take_connection`] gives the connection back for another request.
pub(in crate::proxy) async fn send(
    mut connection: Connection,
    mut request: Request<RequestBody>,
    ahead: Bytes,
) -> Result<Response<AppBody>, Failure> {
    encode_head(
        &mut connection.head,
        request.method(),
        request.uri(),
        request.headers(),
    );
    let mut upload = Upload::new(&request);
    if let Some(Upload::Length { left }) = &mut upload {
        *left = left.saturating_sub(ahead.len() as u64);
    }
    let mut written = 0;
    let head_sent = std::future::poll_fn(|cx| {
        let Connection { stream, head, .. } = &mut connection;
        let mut stream = Pin::new(&mut *stream);
        while written < head.len() + ahead.len() {
            written += match head.get(written..) {
                Some(rest) if !rest.is_empty() && !ahead.is_empty() => {
                    let parts = [io::IoSlice::new(rest), io::IoSlice::new(&ahead)];
                    ready!(stream.as_mut().poll_write_vectored(cx, &parts))?
                }
                Some(rest) if !rest.is_empty() => ready!(stream.as_mut().poll_write(cx, rest))?,
                _ => ready!(stream
                    .as_mut()
                    .poll_write(cx, &ahead[written - head.len()..]))?,
            };
        }
        Poll::Ready(Ok::<_, io::Error>(()))
    })
    .await;
    if let Err(err) = head_sent {
        let unsent = (written == 0).then(|| {
            if !ahead.is_empty() {
                request.body_mut().give_back(ahead);
            }
            request
        });
        return Err(Failure {
            error: ExchangeError::Write(err),
            unsent,
        });
    }
    let head_request = request.method() == Method::HEAD;
    let mut exchange = Exchange {
        connection,
        upload: upload.map(|framing| (framing, request.into_body())),
        pending: Pending::default(),
        upload_failed: false,
    };
    let head = std::future::poll_fn(|cx| exchange.poll_head(cx)).await;
    let head = head.map_err(|error| Failure {
        error,
        unsent: None,
    })?;
    let decode = if head.status == StatusCode::SWITCHING_PROTOCOLS {
        Decode::Upgraded
    } else {
        response_framing(head.status, head_request, &head.headers).map_err(|error| Failure {
            error,
            unsent: None,
        })?
    };
    let outcome = Outcome {
        keep_alive: head.keep_alive && !matches!(decode, Decode::Close),
        // Settled now, before the body is read: a body that only finishes going while the
        // response comes back may lie unread in the app.
        body_sent_first: exchange.uploaded(),
        framing_anomaly: head.headers.contains_key(TRANSFER_ENCODING)
            && head.headers.contains_key(CONTENT_LENGTH),
        leftover: false,
    };
    Ok(for_front(head).map(|()| AppBody {
        outcome,
        decode,
        exchange: Some(exchange),
    }))
}

/// The app's response head as the front gets it: status, reason and headers as read,
/// but the Content-Length of a 204 or 304, which come with no content (RFC 9110 §8.6, §15.4.5)
/// and which hyper's server sends without one (for a GET) whatever it is given.
fn for_front(head: Head) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    // The version is the hop's: an HTTP/1.0 app's answer goes to an HTTP/1.1 client as one.
    *response.version_mut() = Version::HTTP_11;
    *response.headers_mut() = head.headers;
    if head.status == StatusCode::NO_CONTENT || head.status == StatusCode::NOT_MODIFIED {
        response.headers_mut().remove(CONTENT_LENGTH);
    }
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(reason);
    }
    response
}

/// How the request body goes to the app, from the headers the proxy settled on.
enum Upload {
    Length { left: u64 },
    Chunked { trailers: Option<HeaderMap> },
}

impl Upload {
    /// `None`: the request has no body.
    fn new(request: &Request<RequestBody>) -> Option<Upload> {
        if request.headers().contains_key(TRANSFER_ENCODING) {
            return Some(Upload::Chunked { trailers: None });
        }
        let length = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        (length > 0 || !request.body().is_end_stream()).then_some(Upload::Length { left: length })
    }
}

/// The connection lent to one request, and the request body while it is still being sent.
struct Exchange {
    connection: Connection,
    /// The request body still to send, and how.
    upload: Option<(Upload, RequestBody)>,
    /// Bytes of framing and body taken from the client and not yet written.
    pending: Pending,
    /// The body could not be sent in full: the app's side of the exchange is unknown. The rest
    /// of the client's body is then read and dropped (see [`Exchange::poll_upload_end`]).
    upload_failed: bool,
}

/// Bytes queued for the app, in order: a chunk's size line, its data, its end.
#[derive(Default)]
struct Pending {
    parts: [Bytes; 3],
    next: usize,
}

impl Pending {
    fn of(parts: [Bytes; 3]) -> Pending {
        Pending { parts, next: 0 }
    }

    fn is_empty(&self) -> bool {
        self.parts.iter().all(Bytes::is_empty)
    }
}

impl Exchange {
    /// Sends as much of the request body as the client and the app allow. `Ready(Ok)` once all
    /// of it has gone (or there is none).
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        loop {
            while let Some(part) = self.pending.parts.get_mut(self.pending.next) {
                if part.is_empty() {
                    self.pending.next += 1;
                    continue;
                }
                let n = ready!(Pin::new(&mut self.connection.stream).poll_write(cx, part))
                    .map_err(ExchangeError::Write)?;
                part.advance(n);
            }
            let Some((framing, body)) = self.upload.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let frame = match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(err)) => return Poll::Ready(Err(ExchangeError::Upload(err))),
                None => {
                    let end = match framing {
                        Upload::Length { left: 0 } => Bytes::new(),
                        Upload::Length { .. } => {
                            return Poll::Ready(Err(ExchangeError::Upload(
                                "the request body is shorter than its Content-Length".into(),
                            )))
                        }
                        Upload::Chunked { trailers } => last_chunk(trailers.take()),
                    };
                    self.upload = None;
                    self.pending = Pending::of([end, Bytes::new(), Bytes::new()]);
                    continue;
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let (Upload::Chunked { trailers }, Ok(fields)) =
                        (framing, frame.into_trailers())
                    {
                        trailers.get_or_insert_with(HeaderMap::new).extend(fields);
                    }
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            self.pending = match framing {
                Upload::Length { left } => {
                    let len = data.len() as u64;
                    if len > *left {
                        return Poll::Ready(Err(ExchangeError::Upload(
                            "the request body is longer than its Content-Length".into(),
                        )));
                    }
                    *left -= len;
                    Pending::of([data, Bytes::new(), Bytes::new()])
                }
                Upload::Chunked { .. } => Pending::of([
                    {
                        let mut line = Vec::with_capacity(18);
                        push_chunk_size(&mut line, data.len());
                        Bytes::from(line)
                    },
                    data,
                    Bytes::from_static(b"\r\n"),
                ]),
            };
        }
    }

    /// Whether the request body has gone in full: every byte of it written, though the end of
    /// the client's body may not have been seen yet.
    fn uploaded(&self) -> bool {
        let written = match &self.upload {
            None => true,
            Some((Upload::Length { left }, _)) => *left == 0,
            Some((Upload::Chunked { .. }, _)) => false,
        };
        written && self.pending.is_empty() && !self.upload_failed
    }

    /// Moves the upload on beside the response. A write that fails does not fail the response:
    /// an app may answer, and close, before it has read the whole body; the connection is then
    /// not reused. A client body that fails is returned: the exchange is broken.
    fn poll_upload_beside(&mut self, cx: &mut Context<'_>) -> Result<(), ExchangeError> {
        match self.poll_upload_end(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }

    /// Whether the request body is done with: sent in full, or read and dropped.
    fn upload_settled(&self) -> bool {
        self.upload.is_none() && self.pending.is_empty()
    }

    /// Sends the rest of the request body; once the app stops taking it, reads the rest from
    /// the client and drops it. An app may answer before it has read the body (an early 200,
    /// 401 or 413): the client then finishes sending, as it would to the app itself, instead
    /// of meeting a closed connection in the middle of its upload.
    fn poll_upload_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        loop {
            if self.upload_settled() {
                return Poll::Ready(Ok(()));
            }
            if self.upload_failed {
                let Some((_, body)) = self.upload.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                match ready!(Pin::new(body).poll_frame(cx)) {
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => {
                        self.upload = None;
                        return Poll::Ready(Err(ExchangeError::Upload(err)));
                    }
                    None => {
                        self.upload = None;
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            match ready!(self.poll_upload(cx)) {
                Err(err @ ExchangeError::Upload(_)) => return Poll::Ready(Err(err)),
                Err(err) => {
                    tracing::debug!(err = %super::super::error_chain(&err), "the app stopped taking the request body; reading the rest from the client");
                    self.pending = Pending::default();
                    self.upload_failed = true;
                }
                Ok(()) => return Poll::Ready(Ok(())),
            }
        }
    }

    /// Reads the response head, skipping informational responses but 101.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Head, ExchangeError>> {
        loop {
            if let Err(err) = self.poll_upload_beside(cx) {
                return Poll::Ready(Err(err));
            }
            let buf = &mut self.connection.buf;
            if !buf.is_empty() {
                if let Some((head, len)) = parse_head(buf)? {
                    buf.advance(len);
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS
                    {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
                if buf.len() > MAX_HEAD {
                    return Poll::Ready(Err(ExchangeError::HeadTooLarge));
                }
            }
            let had = buf.len();
            match ready!(self.connection.poll_fill(cx)) {
                Ok(0) if had == 0 => return Poll::Ready(Err(ExchangeError::Closed)),
                Ok(0) => return Poll::Ready(Err(ExchangeError::Invalid("the head ended early"))),
                Ok(_) => {}
                Err(err) => return Poll::Ready(Err(ExchangeError::Read(err))),
            }
        }
    }
}

/// What the front learns of a body's size before it comes, and so how hyper frames it for
/// the client: an exact size is sent with Content-Length, any other chunked.
fn size_hint(decode: &Decode) -> SizeHint {
    match decode {
        Decode::Length(left) => SizeHint::with_exact(*left),
        Decode::Done | Decode::Upgraded => SizeHint::with_exact(0),
        Decode::Chunked(_) | Decode::Close => SizeHint::default(),
    }
}

/// The final response head at the start of `buf` as hyper's path hands it to the front:
/// status, reason, headers as read, and its body's size as the front learns it. `None` for a
/// head that is incomplete, refused, informational or a 101. For tests/framing_check, which
/// holds the response the client gets equal on both paths.
pub(in crate::proxy) fn response_for_front(
    buf: &[u8],
    head_request: bool,
) -> Option<(Response<()>, SizeHint)> {
    let (head, _) = parse_head(buf).ok()??;
    if head.status.is_informational() {
        return None;
    }
    let decode = response_framing(head.status, head_request, &head.headers).ok()?;
    Some((for_front(head), size_hint(&decode)))
}

/// The app's response body, read from its connection as the front asks for it.
pub struct AppBody {
    decode: Decode,
    /// The connection, while the body is being read (or the tunnel has not taken it).
    exchange: Option<Exchange>,
    /// What the exchange says of the connection so far; `leftover` is looked at when it ends.
    outcome: Outcome,
}

impl AppBody {
    /// The connection, once the response has been read in full and [`pool::reusable`] lets it
    /// serve another request.
    pub(in crate::proxy) fn take_connection(&mut self) -> Option<Connection> {
        if !matches!(self.decode, Decode::Done) {
            return None;
        }
        let exchange = self.exchange.as_ref()?;
        let outcome = Outcome {
            leftover: !exchange.connection.buf.is_empty(),
            ..self.outcome
        };
        if !connection::reusable(outcome) {
            return None;
        }
        self.exchange.take().map(|exchange| exchange.connection)
    }

    /// The app's side of a switched connection, with what it sent after its 101.
    pub(in crate::proxy) fn into_upgraded(mut self) -> Option<(TcpStream, BytesMut)> {
        if !matches!(self.decode, Decode::Upgraded) {
            return None;
        }
        let exchange = self.exchange.take()?;
        Some((exchange.connection.stream, exchange.connection.buf))
    }

    fn step(&mut self) -> Result<Step, ExchangeError> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Ok(Step::End);
        };
        let buf = &mut exchange.connection.buf;
        match &mut self.decode {
            Decode::Done | Decode::Upgraded => Ok(Step::End),
            Decode::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
                *left -= n as u64;
                if *left == 0 {
                    self.decode = Decode::Done;
                }
                Ok(Step::Data(buf.split_to(n).freeze()))
            }
            Decode::Close if buf.is_empty() => Ok(Step::More),
            Decode::Close => Ok(Step::Data(buf.split().freeze())),
            Decode::Chunked(state) => {
                let step = chunk_step(state, buf)?;
                if matches!(step, Step::End) {
                    self.decode = Decode::Done;
                }
                Ok(step)
            }
        }
    }
}

/// How long the rest of a request body answered early is still taken from the client, as
/// nginx's lingering_time.
const FINISH_UPLOAD_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Drop for AppBody {
    /// An app may answer before it has read the request body (an early 200, 401 or 413). The
    /// response is then whole while the client is still sending: the rest of its body goes on
    /// to the app (or, once the app stops taking it, is read and dropped) in a task of its own,
    /// so the client finishes its upload and keeps its connection, as it would with the app
    /// itself, instead of meeting a connection closed under it.
    fn drop(&mut self) {
        if !matches!(self.decode, Decode::Done) {
            return;
        }
        let Some(mut exchange) = self.exchange.take() else {
            return;
        };
        if exchange.upload_settled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let finished = std::future::poll_fn(|cx| exchange.poll_upload_end(cx));
            match tokio::time::timeout(FINISH_UPLOAD_FOR, finished).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::debug!(err = %super::super::error_chain(&err), "the rest of a request body answered early broke off");
                }
                Err(_) => tracing::debug!(
                    "the rest of a request body answered early took longer than {FINISH_UPLOAD_FOR:?}; closing"
                ),
            }
        });
    }
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(exchange) = this.exchange.as_mut() {
                if let Err(err) = exchange.poll_upload_beside(cx) {
                    this.exchange = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
            let step = match this.step() {
                Ok(step) => step,
                Err(err) => {
                    this.exchange = None;
                    return Poll::Ready(Some(Err(err)));
                }
            };
            match step {
                Step::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Step::Trailers(fields) => {
                    // A trailer section is the body's last frame.
                    this.decode = Decode::Done;
                    return Poll::Ready(Some(Ok(Frame::trailers(fields))));
                }
                Step::End => return Poll::Ready(None),
                Step::More => {}
            }
            let Some(exchange) = this.exchange.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(exchange.connection.poll_fill(cx)) {
                Ok(0) if matches!(this.decode, Decode::Close) => {
                    this.decode = Decode::Done;
                    this.outcome.keep_alive = false;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.exchange = None;
                    return Poll::Ready(Some(Err(ExchangeError::ClosedEarly)));
                }
                Ok(_) => {}
                Err(err) => {
                    this.exchange = None;
                    return Poll::Ready(Some(Err(ExchangeError::Read(err))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decode, Decode::Done | Decode::Upgraded)
    }

    fn size_hint(&self) -> SizeHint {
        size_hint(&self.decode)
    }
}
