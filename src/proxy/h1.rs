//! HTTP/1.1 framing on bytes, for both paths and both directions: the bounds on a head, the
//! Content-Length and Transfer-Encoding rules (RFC 9112 §6.3), a chunked body's decoding and its
//! last chunk's encoding, a request head's encoding, and why an exchange with the app failed.
//! The lean path (`lean/`) and hyper's path's exchange (`upstream/`) both call these.
//!
//! A leaf of the proxy: it imports nothing of the crate.

use std::io;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::contract::ConnectionOptions;

/// The largest response head taken from the app, as WinHTTP takes 64 KB for ANCM (spec §4.1);
/// a larger one fails its request with a 502 and the reason in the log. Trailer sections have
/// the same bound.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// Header lines a response head may have. 1,024 lines fill a 64 KiB head at 64 bytes a line,
/// so the byte limit above is what bounds real heads (many Set-Cookie lines).
pub(super) const MAX_HEADERS: usize = 1024;

/// Header lines parsed without a heap buffer; a head with more is parsed again with one.
pub(super) const USUAL_HEADERS: usize = 64;

/// The longest chunk-size line (size and extensions) taken in a chunked response.
const MAX_CHUNK_LINE: usize = 4 * 1024;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// A chunk's size line: its length in hex, then CRLF.
pub(super) fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut size = [0u8; 16];
    let mut at = size.len();
    let mut n = len;
    loop {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
}

/// One chunk of a chunked body: its size line, its data and CRLF.
pub(super) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    push_chunk_size(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `0\r\n`, the trailer fields, and the blank line that ends a chunked body.
pub(super) fn last_chunk(trailers: Option<HeaderMap>) -> Bytes {
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

/// A response head as read from the app.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// A reason phrase other than the status's own, kept for the client.
    pub(super) reason: Option<hyper::ext::ReasonPhrase>,
    pub(super) keep_alive: bool,
}

/// The head at the start of `buf`, with its length; `None` while it is incomplete.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, ExchangeError> {
    with_header_slots(|slots| parse_head_with(buf, slots))
}

/// Runs `parse` with room for [`USUAL_HEADERS`] header lines on the stack and, for a head
/// with more, again with [`MAX_HEADERS`] on the heap; past that, the head is refused. Both
/// paths parse the app's response heads through it.
pub(super) fn with_header_slots<'b, T>(
    mut parse: impl FnMut(&mut [MaybeUninit<httparse::Header<'b>>]) -> Result<T, ExchangeError>,
) -> Result<T, ExchangeError> {
    let mut usual = [const { MaybeUninit::uninit() }; USUAL_HEADERS];
    match parse(&mut usual) {
        Err(ExchangeError::Head(httparse::Error::TooManyHeaders)) => {
            let mut many = vec![MaybeUninit::uninit(); MAX_HEADERS];
            match parse(&mut many) {
                Err(ExchangeError::Head(httparse::Error::TooManyHeaders)) => {
                    Err(ExchangeError::TooManyHeaders)
                }
                parsed => parsed,
            }
        }
        parsed => parsed,
    }
}

/// The app's response head at the start of `buf`, parsed into `slots`, with its length;
/// `None` while it is incomplete. Both paths read the app's heads with it.
pub(super) fn parse_response<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(httparse::Response<'h, 'b>, usize)>, ExchangeError> {
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, buf, slots)
        .map_err(ExchangeError::Head)?;
    Ok(match parsed {
        httparse::Status::Complete(len) => Some((response, len)),
        httparse::Status::Partial => None,
    })
}

fn parse_head_with<'h>(
    buf: &'h [u8],
    slots: &mut [MaybeUninit<httparse::Header<'h>>],
) -> Result<Option<(Head, usize)>, ExchangeError> {
    let Some((response, len)) = parse_response(buf, slots)? else {
        return Ok(None);
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
        .and_then(|reason| hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()).ok())
        // A status with no reason of its own and none given (or none httparse could read)
        // keeps an empty one, as the lean path writes it, rather than hyper's `<none>`.
        .or_else(|| {
            status
                .canonical_reason()
                .is_none()
                .then(|| hyper::ext::ReasonPhrase::from_static(b""))
        });
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

/// How the response body is delimited (RFC 9112 §6.3).
pub(super) enum Decode {
    Length(u64),
    Chunked(Chunk),
    /// Until the app closes the connection.
    Close,
    /// The connection switched protocols: it is the tunnel's now.
    Upgraded,
    Done,
}

pub(super) fn response_framing(
    status: StatusCode,
    head_request: bool,
    headers: &HeaderMap,
) -> Result<Decode, ExchangeError> {
    // A Content-Length that is not one number is an invalid response whatever else frames it
    // (RFC 9112 §6.3), on a bodiless answer too: the lean path reads it so, line by line.
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        take_content_length(value.as_bytes(), &mut length)?;
    }
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
    Ok(match length {
        Some(0) => Decode::Done,
        Some(n) => Decode::Length(n),
        None => Decode::Close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

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
    fn chunks_written_read_back() {
        let mut wire = Vec::new();
        for data in [&b"a"[..], &[b'x'; 26], &[b'y'; 4096]] {
            push_chunk(&mut wire, data);
        }
        assert!(wire.starts_with(b"1\r\na\r\n1a\r\n"));
        wire.extend_from_slice(&last_chunk(None));
        let (body, trailers) = decode_all(&wire).expect("valid");
        assert_eq!(body.len(), 1 + 26 + 4096);
        assert!(trailers.is_none());
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
