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

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::contract::ConnectionOptions;
use super::pool::{self, Outcome};

/// The largest response head taken from the app, as WinHTTP takes 64 KB for ANCM (spec §4.1);
/// a larger one fails its request with a 502 and the reason in the log. Trailer sections have
/// the same bound.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// Header lines a response head may have. 1,024 lines fill a 64 KiB head at 64 bytes a line,
/// so the byte limit above is what bounds real heads (many Set-Cookie lines).
pub(super) const MAX_HEADERS: usize = 1024;

/// Header lines parsed without a heap buffer; a head with more is parsed again with one.
const USUAL_HEADERS: usize = 64;

/// The most read from the app at once: what one piece of body handed to the front holds.
const READ_PIECE: usize = 8 * 1024;

/// The longest chunk-size line (size and extensions) taken in a chunked response.
const MAX_CHUNK_LINE: usize = 4 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an exchange with the app failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("writing the request to the app failed")]
    Write(#[source] io::Error),
    #[error("reading the response from the app failed")]
    Read(#[source] io::Error),
    #[error("the app closed the connection before answering")]
    Closed,
    #[error("the app closed the connection in the middle of its response")]
    ClosedEarly,
    #[error("the app sent an invalid response: {0}")]
    Invalid(&'static str),
    #[error("the app sent an invalid response head")]
    Head(#[source] httparse::Error),
    #[error("the app's response head is too large (over {MAX_HEAD} bytes)")]
    HeadTooLarge,
    #[error("the app's response head has too many header lines (too large: over {MAX_HEADERS})")]
    TooManyHeaders,
    #[error("the request body could not be sent")]
    Upload(#[source] BoxError),
}

/// A failed exchange, with the request itself when none of it was written: then the app never
/// saw it and it may be sent again elsewhere.
pub(super) struct Failure {
    pub(super) error: ExchangeError,
    pub(super) unsent: Option<Request<RequestBody>>,
}

/// An open HTTP/1.1 connection to the app, between requests or lent to one.
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    /// Bytes read from the app and not yet taken; empty between requests.
    pub(super) buf: BytesMut,
    /// The request head being written; kept to be reused by the next request.
    pub(super) head: Vec<u8>,
}

impl Connection {
    pub(super) fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buf: BytesMut::new(),
            head: Vec::new(),
        }
    }

    /// Whether the connection is open with nothing to read, as far as the kernel knows now: a
    /// request written into one the app closed would fail with no way to tell it from one that
    /// crashed the app, and bytes the app sent unasked would be taken for the next answer. A
    /// peek that takes nothing.
    #[cfg(unix)]
    pub(super) fn quiet(&self) -> bool {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut byte = [0u8; 1];
        // Nothing to read: open and quiet, as an idle connection is. Anything else (end of
        // stream, bytes the app sent unasked, an error) is not one to send on.
        matches!(
            recv(
                self.stream.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ),
            Err(nix::errno::Errno::EAGAIN)
        )
    }

    /// As on Unix, through tokio's peek, which sees what its reactor has been told so far.
    #[cfg(not(unix))]
    pub(super) fn quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        let mut peek = tokio::io::ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(self.stream.poll_peek(&mut cx, &mut peek), Poll::Pending)
    }

    /// Reads at most [`READ_PIECE`] more bytes into the buffer; `Ok(0)` at the end of stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            self.buf.reserve(READ_PIECE);
            match self
                .stream
                .try_read_buf(&mut (&mut self.buf).limit(READ_PIECE))
            {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        }
    }
}

/// The request body's first data when the client has already sent it (see
/// [`RequestBody::ready_data`]), to go to the app in the same write as the head: an app that
/// answers from the head alone finds the body there all the same, as on the lean path, rather
/// than answering before it comes (and a system call is saved). Taken before a pooled
/// connection is peeked, so that no wait comes between the peek and the write.
pub(super) async fn body_ahead(request: &mut Request<RequestBody>) -> Bytes {
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
pub(super) async fn send(
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

/// The request head as HTTP/1.1 bytes: request line, header lines as they are, blank line.
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) {
    // A rare huge head is not kept for the connection's life.
    if out.capacity() > MAX_HEAD {
        *out = Vec::new();
    }
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
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
                    Bytes::from(format!("{:x}\r\n", data.len())),
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
                    tracing::debug!(err = %super::error_chain(&err), "the app stopped taking the request body; reading the rest from the client");
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

/// `0\r\n`, the trailer fields, and the blank line that ends a chunked body.
fn last_chunk(trailers: Option<HeaderMap>) -> Bytes {
    let mut out = b"0\r\n".to_vec();
    for (name, value) in trailers.iter().flatten() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// A response head as read from the app.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    /// A reason phrase other than the status's own, kept for the client.
    reason: Option<hyper::ext::ReasonPhrase>,
    keep_alive: bool,
}

/// The head at the start of `buf`, with its length; `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, ExchangeError> {
    let mut usual = [httparse::EMPTY_HEADER; USUAL_HEADERS];
    match parse_head_with(buf, &mut usual) {
        Err(ExchangeError::Head(httparse::Error::TooManyHeaders)) => {
            let mut many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_head_with(buf, &mut many) {
                Err(ExchangeError::Head(httparse::Error::TooManyHeaders)) => {
                    Err(ExchangeError::TooManyHeaders)
                }
                parsed => parsed,
            }
        }
        parsed => parsed,
    }
}

fn parse_head_with<'h>(
    buf: &'h [u8],
    slots: &mut [httparse::Header<'h>],
) -> Result<Option<(Head, usize)>, ExchangeError> {
    let mut response = httparse::Response::new(slots);
    let len = match response.parse(buf).map_err(ExchangeError::Head)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let code = response
        .code
        .ok_or(ExchangeError::Invalid("no status code"))?;
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::Invalid("a status code out of range"))?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut options = ConnectionOptions::default();
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| ExchangeError::Invalid("a header name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| ExchangeError::Invalid("a header value"))?;
        if name == CONNECTION {
            options.read(field.value);
        }
        headers.append(name, value);
    }
    let close = options.closes(response.version == Some(0));
    let reason = response
        .reason
        .filter(|reason| Some(*reason) != status.canonical_reason() && !reason.is_empty())
        .and_then(|reason| hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()).ok());
    Ok(Some((
        Head {
            status,
            headers,
            reason,
            keep_alive: !close,
        },
        len,
    )))
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
pub(super) fn response_for_front(
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

/// How the response body is delimited (RFC 9112 §6.3).
enum Decode {
    Length(u64),
    Chunked(Chunk),
    /// Until the app closes the connection.
    Close,
    /// The connection switched protocols: it is the tunnel's now.
    Upgraded,
    Done,
}

fn response_framing(
    status: StatusCode,
    head_request: bool,
    headers: &HeaderMap,
) -> Result<Decode, ExchangeError> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Decode::Done);
    }
    if let Some(last) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        return Ok(if ends_chunked(last.as_bytes()) {
            Decode::Chunked(Chunk::Size)
        } else {
            Decode::Close
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        take_content_length(value.as_bytes(), &mut length)?;
    }
    Ok(match length {
        Some(0) => Decode::Done,
        Some(n) => Decode::Length(n),
        None => Decode::Close,
    })
}

/// Whether a Transfer-Encoding value's last coding is chunked (RFC 9112 §6.3).
pub(super) fn ends_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Takes one Content-Length field value into `length`. A list of equal numbers is one length;
/// anything not a number, or a number other than one seen before, is refused.
pub(super) fn take_content_length(
    value: &[u8],
    length: &mut Option<u64>,
) -> Result<(), ExchangeError> {
    const NOT_A_NUMBER: ExchangeError =
        ExchangeError::Invalid("a Content-Length that is not a number");
    for item in value.split(|&b| b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(NOT_A_NUMBER);
        }
        let n = item
            .iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(NOT_A_NUMBER)?;
        if length.is_some_and(|l| l != n) {
            return Err(ExchangeError::Invalid("Content-Length values that differ"));
        }
        *length = Some(n);
    }
    Ok(())
}

/// Where a chunked body's reading is.
pub(super) enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}

/// What one step of reading a chunked body gave.
pub(super) enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    More,
}

const MALFORMED: ExchangeError = ExchangeError::Invalid("a malformed chunked body");

pub(super) fn chunk_step(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, ExchangeError> {
    loop {
        match state {
            Chunk::Size => {
                let Some(lf) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
                    if buf.len() >= MAX_CHUNK_LINE {
                        return Err(ExchangeError::Invalid("a chunk-size line too long"));
                    }
                    return Ok(Step::More);
                };
                let size = chunk_size(&buf[..lf])?;
                buf.advance(lf + 1);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
                *left -= n as u64;
                if *left == 0 {
                    *state = Chunk::DataEnd;
                }
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(MALFORMED);
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    return Ok(Step::End);
                }
                return trailers(buf);
            }
        }
    }
}

/// The size on a chunk-size line (without its LF): hex digits, then optional whitespace and
/// extensions, which are passed over.
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let line = line.strip_suffix(b"\r").ok_or(MALFORMED)?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(MALFORMED);
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";"))
        || rest.iter().any(|&b| b.is_ascii_control() && b != b'\t')
    {
        return Err(MALFORMED);
    }
    let digits = std::str::from_utf8(&line[..digits]).map_err(|_| MALFORMED)?;
    u64::from_str_radix(digits, 16).map_err(|_| MALFORMED)
}

/// The trailer section at the start of `buf`, once whole.
fn trailers(buf: &mut BytesMut) -> Result<Step, ExchangeError> {
    let mut usual = [httparse::EMPTY_HEADER; USUAL_HEADERS];
    let parsed = match httparse::parse_headers(buf, &mut usual) {
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ExchangeError::Invalid("too many trailer fields"));
        }
        Err(_) => return Err(ExchangeError::Invalid("malformed trailer fields")),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(ExchangeError::Invalid("trailer fields too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(Step::More),
        Ok(httparse::Status::Complete((len, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for field in fields {
                let name = HeaderName::from_bytes(field.name.as_bytes())
                    .map_err(|_| ExchangeError::Invalid("a trailer field name"))?;
                let value = HeaderValue::from_bytes(field.value)
                    .map_err(|_| ExchangeError::Invalid("a trailer field value"))?;
                map.append(name, value);
            }
            (len, map)
        }
    };
    let (len, map) = parsed;
    buf.advance(len);
    Ok(Step::Trailers(map))
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
    pub(super) fn take_connection(&mut self) -> Option<Connection> {
        if !matches!(self.decode, Decode::Done) {
            return None;
        }
        let exchange = self.exchange.as_ref()?;
        let outcome = Outcome {
            leftover: !exchange.connection.buf.is_empty(),
            ..self.outcome
        };
        if !pool::reusable(outcome) {
            return None;
        }
        self.exchange.take().map(|exchange| exchange.connection)
    }

    /// The app's side of a switched connection, with what it sent after its 101.
    pub(super) fn into_upgraded(mut self) -> Option<(TcpStream, BytesMut)> {
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
                    tracing::debug!(err = %super::error_chain(&err), "the rest of a request body answered early broke off");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a\r").ok(), Some(26));
        assert_eq!(chunk_size(b"5;name=value\r").ok(), Some(5));
        assert_eq!(chunk_size(b"5 ; quoted=\"a b\"\r").ok(), Some(5));
        assert_eq!(chunk_size(b"ffffffffffffffff\r").ok(), Some(u64::MAX));
        for bad in [
            &b"5"[..],
            b"\r",
            b"zz\r",
            b"-5\r",
            b"5x\r",
            b"10000000000000000\r",
            b"5;\x01\r",
        ] {
            assert!(
                chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn decode_all(wire: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), ExchangeError> {
        let mut state = Chunk::Size;
        let mut buf = BytesMut::new();
        let (mut body, mut trailers) = (Vec::new(), None);
        // A byte at a time: every state must wait for more where the wire is cut.
        for &byte in wire {
            buf.put_u8(byte);
            loop {
                match chunk_step(&mut state, &mut buf)? {
                    Step::Data(data) => body.extend_from_slice(&data),
                    Step::Trailers(fields) => trailers = Some(fields),
                    Step::End => return Ok((body, trailers)),
                    Step::More => break,
                }
                if trailers.is_some() {
                    return Ok((body, trailers));
                }
            }
        }
        Err(ExchangeError::ClosedEarly)
    }

    #[test]
    fn chunked_bodies_read_a_byte_at_a_time() {
        let (body, trailers) = decode_all(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").expect("valid");
        assert_eq!(body, b"abcde");
        assert!(trailers.is_none());
        let (body, trailers) = decode_all(b"1\r\nz\r\n0\r\nX-Sum: 1\r\n\r\n").expect("valid");
        assert_eq!(body, b"z");
        assert_eq!(trailers.expect("trailers")["x-sum"], "1");
        // Data not followed by CRLF, and a body cut short, are errors, never a complete body.
        assert!(decode_all(b"3\r\nabcX\r\n0\r\n\r\n").is_err());
        assert!(decode_all(b"3\r\nab").is_err());
    }

    fn head(text: &str) -> HeaderMap {
        let (parsed, _) = parse_head(text.as_bytes())
            .expect("valid")
            .expect("complete");
        parsed.headers
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let ok = StatusCode::OK;
        let framing =
            |h: &HeaderMap, status, head_request| response_framing(status, head_request, h);
        let chunked_and_length =
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(
            framing(&chunked_and_length, ok, false),
            Ok(Decode::Chunked(_))
        ));
        let gzip_only = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert!(matches!(framing(&gzip_only, ok, false), Ok(Decode::Close)));
        let same_twice =
            head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
        assert!(matches!(
            framing(&same_twice, ok, false),
            Ok(Decode::Length(7))
        ));
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6",
            "Content-Length: +5",
            "Content-Length: 0x5",
            "Content-Length:",
        ] {
            let h = head(&format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\n"));
            assert!(framing(&h, ok, false).is_err(), "{bad}");
        }
        let length = head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
        assert!(
            matches!(framing(&length, ok, true), Ok(Decode::Done)),
            "HEAD"
        );
        assert!(matches!(
            framing(&length, StatusCode::NOT_MODIFIED, false),
            Ok(Decode::Done)
        ));
        assert!(matches!(
            framing(&HeaderMap::new(), ok, false),
            Ok(Decode::Close)
        ));
    }

    #[test]
    fn response_heads() {
        let text = "HTTP/1.0 200 Fine Thanks\r\nConnection: keep-alive\r\nA: 1\r\nA: 2\r\n\r\nbody";
        let (parsed, len) = parse_head(text.as_bytes())
            .expect("valid")
            .expect("complete");
        assert_eq!(len, text.len() - 4);
        assert!(parsed.keep_alive);
        assert_eq!(parsed.headers.get_all("a").iter().count(), 2);
        assert_eq!(parsed.reason.expect("reason").as_bytes(), b"Fine Thanks");
        let (closing, _) = parse_head(b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert!(!closing.keep_alive && closing.reason.is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA: 1\r\n")
            .expect("valid")
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA : 1\r\n\r\n").is_err());
        // Past 64 lines the head is parsed again with room for 1,024; past that, refused.
        let many: String = (0..500).map(|i| format!("X-{i}: v\r\n")).collect();
        let (parsed, _) = parse_head(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes())
            .expect("valid")
            .expect("complete");
        assert_eq!(parsed.headers.len(), 500);
        let too_many: String = (0..1100).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(matches!(
            parse_head(format!("HTTP/1.1 200 OK\r\n{too_many}\r\n").as_bytes()),
            Err(ExchangeError::TooManyHeaders)
        ));
    }
}
