//! The differential check of the lean HTTP/1.1 path against hyper's, shared by
//! fuzz/fuzz_targets/request_framing.rs and tests/fuzz_regressions.rs: every request the lean
//! path takes from a connection's bytes, hyper's HTTP/1.1 server (as ancm configures it) reads
//! the same way, with the same end, and what hyper reads after the last one is what it reads
//! from those bytes alone. And the head each path writes for the app from that request is the
//! same: the same request line, the same header names, each name's values in the same order.
//!
//! Hyper runs on an in-memory connection polled by hand, without a runtime: the input is all
//! there is, and reading past it is pending (an open connection that sends nothing more), so a
//! partial request is waited for rather than cut short by an end of stream.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::service::service_fn;
use hyper::{Request, Response};

/// ancm's default --max-request-head, which is also its hyper `max_buf_size`.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// Hyper's default limit on header lines; httparse is given as many slots.
const HEADER_SLOTS: usize = 100;

/// Polls of hyper's connection before giving up: far more than the requests that fit in an
/// input, as each poll serves at least one of them.
const MAX_POLLS: usize = 1 << 16;

/// One request as a reader sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    method: String,
    target: String,
    version: &'static str,
    /// Lowercase names with their values, sorted: hyper's header map keeps no order across
    /// names.
    headers: Vec<(String, Vec<u8>)>,
    /// The body read, or why reading it failed.
    body: Result<Vec<u8>, String>,
    /// The head this path writes for the app.
    for_app: AppHead,
}

/// A request head as the app reads it: the request line, then each header name (lowercase,
/// sorted) with its values in the order they were written. The order across names carries no
/// meaning (hyper's header map keeps none); the order of one name's values does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AppHead {
    line: String,
    headers: Vec<(String, Vec<String>)>,
}

impl AppHead {
    fn of(head: &[u8]) -> AppHead {
        let mut slots = [httparse::EMPTY_HEADER; 256];
        let mut request = httparse::Request::new(&mut slots);
        let parsed = request.parse(head);
        assert!(
            matches!(parsed, Ok(httparse::Status::Complete(len)) if len == head.len()),
            "a head for the app that strict httparse does not read whole ({parsed:?}): {:?}",
            head.escape_ascii().to_string()
        );
        let line = format!(
            "{} {} HTTP/1.{}",
            request.method.unwrap_or_default(),
            request.path.unwrap_or_default(),
            request.version.unwrap_or(9)
        );
        let mut headers: Vec<(String, Vec<String>)> = Vec::new();
        for header in request.headers.iter() {
            let name = header.name.to_ascii_lowercase();
            let value = header.value.escape_ascii().to_string();
            match headers.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => headers.push((name, vec![value])),
            }
        }
        headers.sort();
        AppHead { line, headers }
    }
}

/// The pairing token and the client both paths rewrite for.
const TOKEN: &str = "7d2e0c4a-test-token";

fn client() -> ancm::proxy::ClientInfo {
    ancm::proxy::ClientInfo {
        forwarded_for: HeaderValue::from_static("192.0.2.7:51000"),
        proto: HeaderValue::from_static("http"),
        client_cert: None,
        front: HeaderValue::from_static("127.0.0.1:8080"),
    }
}

/// What `bytes` hold as the lean path reads them: its requests in order, then the offset where
/// it stops taking them (where hyper gets the connection) and whether the last one closes the
/// connection. Panics if a head's length differs from strict httparse's.
pub(crate) fn lean_readings(bytes: &[u8]) -> (Vec<Reading>, usize, bool) {
    let mut readings = Vec::new();
    let mut offset = 0;
    while let Some((head, body)) = ancm::proxy::lean_request_framing(&bytes[offset..]) {
        let rest = &bytes[offset..];
        assert!(
            head > 0 && head + body <= rest.len(),
            "lean framing {head}+{body} out of the {} bytes at {offset} of {:?}",
            rest.len(),
            bytes.escape_ascii().to_string()
        );
        let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
        let mut request = httparse::Request::new(&mut slots);
        let strict = request.parse(rest);
        assert!(
            matches!(strict, Ok(httparse::Status::Complete(len)) if len == head),
            "lean head {head} at {offset}, strict httparse {strict:?}, of {:?}",
            bytes.escape_ascii().to_string()
        );
        let mut headers: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        headers.sort();
        let close = headers.iter().any(|(name, value)| {
            name == "connection"
                && value
                    .split(|&b| b == b',')
                    .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
        });
        let for_app = ancm::proxy::lean_head_for_app(rest, TOKEN.as_bytes(), &client())
            .expect("the lean path writes a head for a request it takes");
        readings.push(Reading {
            for_app: AppHead::of(&for_app),
            method: request.method.unwrap_or_default().to_owned(),
            target: request.path.unwrap_or_default().to_owned(),
            version: match request.version {
                Some(0) => "HTTP/1.0",
                Some(1) => "HTTP/1.1",
                _ => "other",
            },
            headers,
            body: Ok(rest[head..head + body].to_vec()),
        });
        offset += head + body;
        if close {
            return (readings, offset, true);
        }
    }
    (readings, offset, false)
}

/// The requests hyper's HTTP/1.1 server hands its service from a connection that sends
/// `bytes` and then waits, in order.
pub(crate) fn hyper_readings(bytes: &[u8]) -> Vec<Reading> {
    let readings = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&readings);
    let service = service_fn(move |request: Request<Incoming>| {
        let recorder = Arc::clone(&recorder);
        async move {
            let (parts, body) = request.into_parts();
            let bodiless = hyper::body::Body::is_end_stream(&body);
            let token = HeaderValue::from_static(TOKEN);
            let for_app = AppHead::of(&ancm::proxy::hyper_head_for_app(
                &parts,
                bodiless,
                &token,
                &client(),
            ));
            let body = match body.collect().await {
                Ok(collected) => Ok(collected.to_bytes().to_vec()),
                Err(err) => Err(err.to_string()),
            };
            let mut headers: Vec<(String, Vec<u8>)> = parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect();
            headers.sort();
            let reading = Reading {
                method: parts.method.as_str().to_owned(),
                target: parts.uri.to_string(),
                version: match parts.version {
                    hyper::Version::HTTP_10 => "HTTP/1.0",
                    hyper::Version::HTTP_11 => "HTTP/1.1",
                    _ => "other",
                },
                headers,
                body,
                for_app,
            };
            if let Ok(mut readings) = recorder.lock() {
                readings.push(reading);
            }
            Ok::<_, Infallible>(Response::new(HintBody::empty()))
        }
    });
    serve(bytes, service);
    let taken = readings
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    taken
}

/// Serves the connection that sends `bytes` with hyper's HTTP/1.1 server as ancm configures
/// it, until it waits for more input; returns what it wrote.
fn serve<S>(bytes: &[u8], service: S) -> Vec<u8>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<HintBody>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let written = Arc::new(Mutex::new(Vec::new()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_HEAD);
    let mut connection = pin!(builder.serve_connection(
        Wire {
            input: bytes.to_vec(),
            read: 0,
            written: Arc::clone(&written),
        },
        service
    ));
    let woken = Arc::new(Woken(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&woken));
    let mut cx = Context::from_waker(&waker);
    // Nothing outside wakes the connection: it is polled again only while something inside it
    // (the body channel, hyper yielding) asks to be, and stops when it waits for more input.
    for _ in 0..MAX_POLLS {
        woken.0.store(false, Ordering::Relaxed);
        if connection.as_mut().poll(&mut cx).is_ready() || !woken.0.load(Ordering::Relaxed) {
            break;
        }
    }
    let out = written.lock().map(|w| w.clone()).unwrap_or_default();
    out
}

/// A response body of one frame with the size hint hyper's path gives the front: an exact
/// size is a frame of that many bytes, an unknown one a frame of one byte.
pub(crate) struct HintBody {
    hint: SizeHint,
    sent: bool,
}

impl HintBody {
    fn empty() -> HintBody {
        HintBody {
            hint: SizeHint::with_exact(0),
            sent: false,
        }
    }
}

impl hyper::body::Body for HintBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            return Poll::Ready(None);
        }
        self.sent = true;
        let len = self.hint.exact().unwrap_or(1);
        if len == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(len).unwrap_or(1).min(1 << 16);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent || self.hint.exact() == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// The client's head from a response as written: status line, then each header name with its
/// values in order, Date's value left out (it is the time of writing).
fn client_head(written: &[u8]) -> Option<AppHead> {
    let end = written.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(&written[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        other => panic!(
            "a head for the client that httparse does not read ({other:?}): {:?}",
            written.escape_ascii().to_string()
        ),
    }
    let line = format!(
        "HTTP/1.{} {} {}",
        response.version.unwrap_or(9),
        response.code.unwrap_or_default(),
        response.reason.unwrap_or_default()
    );
    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    for header in response.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = if name == "date" {
            "<date>".to_owned()
        } else {
            header.value.escape_ascii().to_string()
        };
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => headers.push((name, vec![value])),
        }
    }
    // Connection is a list (RFC 9110 §7.6.1): hyper's server writes its lines as one, joined
    // with commas, which says the same as the lean path's lines as the app wrote them. Its
    // items are compared, empty ones aside (RFC 9110 §5.6.1).
    for (name, values) in &mut headers {
        if name == "connection" {
            *values = values
                .iter()
                .flat_map(|value| value.split(','))
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect();
        }
    }
    headers.sort();
    Some(AppHead { line, headers })
}

/// Panics, with both heads, if the client would get a different response head from the two
/// paths for the app's response head at the start of `app`: for a GET and a HEAD, with the
/// client's connection kept or closed, with and without forwardResponseConnectionHeader.
pub(crate) fn check_response(app: &[u8]) {
    for (request, head_request, close) in [
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", false, false),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
            true,
        ),
        ("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", true, false),
    ] {
        for keep_connection in [false, true] {
            let lean =
                ancm::proxy::lean_response_for_client(app, head_request, keep_connection, close);
            let hyper =
                ancm::proxy::hyper_response_for_client(app, head_request, keep_connection, close);
            let (lean, hyper) = match (lean, hyper) {
                (None, None) => continue,
                (Some(lean), Some((response, hint))) => {
                    let (parts, ()) = response.into_parts();
                    let body = std::sync::Mutex::new(Some(Response::from_parts(
                        parts,
                        HintBody { hint, sent: false },
                    )));
                    let service = service_fn(move |_request: Request<Incoming>| {
                        let response = body
                            .lock()
                            .ok()
                            .and_then(|mut r| r.take())
                            .unwrap_or_else(|| Response::new(HintBody::empty()));
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let written = serve(request.as_bytes(), service);
                    (client_head(&lean), client_head(&written))
                }
                (lean, hyper) => panic!(
                    "only one path answers the app's {:?} (HEAD {head_request}, close {close}, \
                     keep {keep_connection}): lean {:?}, hyper {:?}",
                    app.escape_ascii().to_string(),
                    lean.map(|l| l.escape_ascii().to_string()),
                    hyper.map(|(r, _)| r)
                ),
            };
            assert_eq!(
                lean,
                hyper,
                "the client gets different heads for the app's {:?} (HEAD {head_request}, \
                 close {close}, keep {keep_connection})",
                app.escape_ascii().to_string()
            );
        }
    }
}

/// Panics, with both readings, if the lean path reads `bytes` differently from hyper.
pub(crate) fn check(bytes: &[u8]) {
    let (lean, offset, closed) = lean_readings(bytes);
    if lean.is_empty() {
        // Hyper gets the connection from its first byte: nothing read two ways.
        return;
    }
    let hyper = hyper_readings(bytes);
    let agree = hyper.len() >= lean.len() && hyper[..lean.len()] == lean[..];
    assert!(
        agree,
        "the lean path and hyper read {:?} differently\nlean: {lean:#?}\nhyper: {hyper:#?}",
        bytes.escape_ascii().to_string()
    );
    let rest = &bytes[offset..];
    // What hyper then reads must be what it reads from the rest alone. Only for a rest shorter
    // than hyper's buffer limit: a longer one meets the limit at points that depend on how
    // the bytes were read, which differ between the two runs as they do between two networks.
    if !closed && !rest.is_empty() && rest.len() < MAX_HEAD {
        let after = hyper_readings(rest);
        assert!(
            hyper[lean.len()..] == after[..],
            "hyper reads the {} bytes after the lean path's {} requests in {:?} differently \
             alone\nlean: {lean:#?}\nhyper, whole: {hyper:#?}\nhyper, rest alone: {after:#?}",
            rest.len(),
            lean.len(),
            bytes.escape_ascii().to_string()
        );
    }
}

/// Sets its flag when woken.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A client connection that sends `input`, then nothing, and keeps whatever is written.
struct Wire {
    input: Vec<u8>,
    read: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Read for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = &self.input[self.read..];
        if rest.is_empty() {
            return Poll::Pending;
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.read += n;
        Poll::Ready(Ok(()))
    }
}

impl Write for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Ok(mut written) = self.written.lock() {
            written.extend_from_slice(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
