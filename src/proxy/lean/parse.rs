//! Which HTTP/1.1 requests the lean path takes, and their head rewritten for the app byte by
//! byte. The lean path takes only requests whose reading leaves no room for doubt: one
//! `Content-Length` of plain digits (or none), no `Transfer-Encoding`, no upgrade, no `Expect`,
//! exactly one `Host` of the form `host[:port]`, an origin-form target of plain URI characters, and the whole body
//! already read. Everything else, malformed requests included, is handed with the
//! connection to hyper, whose reading (and refusal) then applies unchanged.

use std::mem::MaybeUninit;

use super::super::contract::{self, ConnectionOptions, Field, Forwarded};
use super::super::headers::{host_byte, valid_host, ClientInfo};

/// Header slots for [`parse`], left uninitialised: httparse fills those it uses.
pub(crate) type Slots<'b> = [MaybeUninit<httparse::Header<'b>>; HEADER_SLOTS];

/// Fresh slots for [`parse`].
pub(crate) const fn slots<'b>() -> Slots<'b> {
    [const { MaybeUninit::uninit() }; HEADER_SLOTS]
}

/// Header lines the lean path parses; a request with more goes to hyper (which takes 100).
pub(crate) const HEADER_SLOTS: usize = 64;

/// What the bytes read so far from a client are.
#[derive(Debug)]
pub(crate) enum Verdict<'b> {
    /// The head is not complete yet.
    Partial,
    /// Not for the lean path: the connection goes to hyper, these bytes included.
    Hyper(&'static str),
    Request(Request<'b>),
}

/// A request the lean path forwards.
#[derive(Debug)]
pub(crate) struct Request<'b> {
    /// The request as read, head and body.
    pub(crate) bytes: &'b [u8],
    pub(crate) method: &'b str,
    pub(crate) target: &'b str,
    pub(crate) headers: &'b [httparse::Header<'b>],
    /// Bytes of the head, request line to blank line.
    pub(crate) head_len: usize,
    /// Bytes of body after the head; all of them are in the buffer.
    pub(crate) body_len: usize,
    /// The client said `Connection: close`.
    pub(crate) close: bool,
    /// Declared no length: a method meant to carry content gets `Content-Length: 0`.
    pub(crate) no_length: bool,
}

impl Request<'_> {
    /// Path and query string lengths, for the request limits.
    pub(crate) fn path_and_query_len(&self) -> (usize, usize) {
        match self.target.split_once('?') {
            Some((path, query)) => (path.len(), query.len()),
            None => (self.target.len(), 0),
        }
    }

    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The whole request, head and body, as bytes of the buffer it was parsed from.
    pub(crate) fn len(&self) -> usize {
        self.head_len + self.body_len
    }
}

/// Parses the start of `buf`. `max_head` is --max-request-head: a longer head goes to hyper,
/// which answers 431.
pub(crate) fn parse<'b>(buf: &'b [u8], slots: &'b mut Slots<'b>, max_head: usize) -> Verdict<'b> {
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Verdict::Hyper("a long head")
        }
        Ok(httparse::Status::Partial) => return Verdict::Partial,
        Err(_) => return Verdict::Hyper("a head httparse refuses"),
    };
    if head_len > max_head {
        return Verdict::Hyper("a long head");
    }
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Verdict::Hyper("not HTTP/1.1");
    };
    if method == "CONNECT" || method == "TRACE" {
        return Verdict::Hyper("CONNECT or TRACE");
    }
    if !target.starts_with('/') || !target.bytes().all(plain_target_byte) {
        return Verdict::Hyper("a target not plainly origin-form");
    }
    let headers: &'b [httparse::Header<'b>] = request.headers;
    let mut length: Option<usize> = None;
    let mut hosts = 0;
    let mut close = false;
    // Each line is copied to the app as it came (`write_for_app`), so each must be
    // `name:value` ending in CRLF right after its value, one after the other from the end of
    // the request line: no bare LF, no trailing whitespace (hyper's path rewrites those).
    let base = buf.as_ptr() as usize;
    let mut line = match headers.first() {
        Some(first) => first.name.as_ptr() as usize - base,
        None => return Verdict::Hyper("no header"),
    };
    if line < 2 || &buf[line - 2..line] != b"\r\n" {
        return Verdict::Hyper("a request line not ending in CRLF");
    }
    for header in headers {
        // An empty value need not point into the buffer: then its line is not taken as plain.
        let value = (header.value.as_ptr() as usize).wrapping_sub(base);
        let end = value
            .checked_add(header.value.len())
            .filter(|&end| value >= line && end <= head_len.saturating_sub(2));
        let Some(end) = end.filter(|&end| {
            header.name.as_ptr() as usize - base == line && &buf[end..end + 2] == b"\r\n"
        }) else {
            return Verdict::Hyper("a header line not plainly CRLF-ended");
        };
        line = end + 2;
        let name = header.name.as_bytes();
        match name.len() {
            2 if name.eq_ignore_ascii_case(b"te") => return Verdict::Hyper("TE"),
            4 if name.eq_ignore_ascii_case(b"host") => {
                if !valid_host(header.value) {
                    return Verdict::Hyper("a Host not plainly host[:port]");
                }
                hosts += 1;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => return Verdict::Hyper("Expect"),
            7 if name.eq_ignore_ascii_case(b"upgrade") => return Verdict::Hyper("Upgrade"),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                let mut options = ConnectionOptions::default();
                options.read(header.value);
                if options.upgrade || options.names_fields {
                    return Verdict::Hyper("Connection names headers");
                }
                close |= options.close;
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let value = header.value;
                if length.is_some()
                    || value.is_empty()
                    || value.len() > 15
                    || !value.iter().all(u8::is_ascii_digit)
                {
                    return Verdict::Hyper("a Content-Length not plain");
                }
                length = Some(value.iter().fold(0, |n, &d| n * 10 + usize::from(d - b'0')));
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                return Verdict::Hyper("Transfer-Encoding")
            }
            _ => {}
        }
    }
    if hosts != 1 {
        return Verdict::Hyper("not exactly one Host");
    }
    if line + 2 != head_len {
        return Verdict::Hyper("a head not ending in CRLF");
    }
    let body_len = length.unwrap_or(0);
    if buf.len() - head_len < body_len {
        return Verdict::Hyper("a body not read whole");
    }
    Verdict::Request(Request {
        bytes: &buf[..head_len + body_len],
        method,
        target,
        headers,
        head_len,
        body_len,
        close,
        no_length: length.is_none(),
    })
}

/// Bytes taken in a target as they are: RFC 3986's unreserved, sub-delims, `:@/?%`. Others
/// (quotes, braces, non-ASCII) go the hyper way, which has its own view of them.
fn plain_target_byte(b: u8) -> bool {
    host_byte(b) || matches!(b, b':' | b'@' | b'/' | b'?' | b'%')
}

/// Writes `request` as the app gets it (spec §4.3): Host and the other fields as the client
/// sent them, hop-by-hop fields and client-sent MS-ASPNETCORE-* dropped, the token set, and
/// X-Forwarded-For/Proto appended to what the client sent, each in one line. Then the body.
pub(crate) fn write_for_app(
    request: &Request<'_>,
    body: &[u8],
    token: &[u8],
    client: &ClientInfo,
    out: &mut Vec<u8>,
) {
    let bytes = request.bytes;
    let base = bytes.as_ptr() as usize;
    // The request line and every kept header line go as they came, in runs of whole lines
    // (`parse` checked the lines are contiguous and CRLF-ended).
    // Empty lines before the request line are not passed on.
    let mut run = request.method.as_ptr() as usize - base;
    let (mut forwarded_for, mut forwarded_proto) = (false, false);
    for header in request.headers {
        // `parse` left TE, Transfer-Encoding and Upgrade to hyper, and Content-Length stays.
        let drop = match contract::field(header.name.as_bytes()) {
            Field::Hop(_) => true,
            Field::Forwarded(Forwarded::For) => {
                forwarded_for = true;
                true
            }
            Field::Forwarded(Forwarded::Proto) => {
                forwarded_proto = true;
                true
            }
            Field::ContentLength => false,
            Field::Keep => contract::forged(header.name.as_bytes()),
        };
        if drop {
            let start = header.name.as_ptr() as usize - base;
            out.extend_from_slice(&bytes[run..start]);
            run = header.value.as_ptr() as usize - base + header.value.len() + 2;
        }
    }
    out.extend_from_slice(&bytes[run..request.head_len - 2]);
    out.extend_from_slice(b"ms-aspnetcore-token: ");
    out.extend_from_slice(token);
    append_list(
        out,
        b"\r\nx-forwarded-for: ",
        forwarded_for.then_some(b"x-forwarded-for".as_slice()),
        request.headers,
        client.forwarded_for.as_bytes(),
    );
    append_list(
        out,
        b"\r\nx-forwarded-proto: ",
        forwarded_proto.then_some(b"x-forwarded-proto".as_slice()),
        request.headers,
        client.proto.as_bytes(),
    );
    if request.no_length && super::super::expects_content(request.method) {
        out.extend_from_slice(b"\r\ncontent-length: 0");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// `line` then the values of every `existing` field (when the client sent one), and ours last,
/// joined as the contract joins them.
fn append_list(
    out: &mut Vec<u8>,
    line: &[u8],
    existing: Option<&[u8]>,
    headers: &[httparse::Header<'_>],
    ours: &[u8],
) {
    out.extend_from_slice(line);
    let values = existing.into_iter().flat_map(|name| {
        headers
            .iter()
            .filter(move |h| h.name.as_bytes().eq_ignore_ascii_case(name))
            .map(|h| h.value)
    });
    contract::join_list(out, values, ours);
}

/// Where the first request in `bytes` ends, as the lean path reads it: `Some((head, body))`
/// lengths when it takes the request, `None` when it would hand the connection to hyper or
/// needs more bytes. For the differential fuzz target.
pub fn framing(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut slots = slots();
    match parse(bytes, &mut slots, 16 * 1024) {
        Verdict::Request(request) => Some((request.head_len, request.body_len)),
        Verdict::Partial | Verdict::Hyper(_) => None,
    }
}

/// The head the lean path writes for the app from the first request in `bytes`, when it takes
/// that request: for tests/framing_check, which holds it equal to hyper's path's
/// (`hyper_head_for_app`) from the same bytes.
pub fn head_for_app(bytes: &[u8], token: &[u8], client: &ClientInfo) -> Option<Vec<u8>> {
    let mut slots = slots();
    match parse(bytes, &mut slots, 16 * 1024) {
        Verdict::Request(request) => {
            let mut out = Vec::new();
            write_for_app(&request, b"", token, client, &mut out);
            Some(out)
        }
        Verdict::Partial | Verdict::Hyper(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn verdict(text: &str) -> String {
        let mut slots = slots();
        match parse(text.as_bytes(), &mut slots, 16 * 1024) {
            Verdict::Partial => "partial".to_owned(),
            Verdict::Hyper(why) => format!("hyper: {why}"),
            Verdict::Request(r) => format!("request {}+{}", r.head_len, r.body_len),
        }
    }

    #[test]
    fn plain_requests_are_taken() {
        assert_eq!(verdict("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "request 27+0");
        assert_eq!(
            verdict("POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET"),
            "request 52+3"
        );
        assert_eq!(verdict("GET / HTTP/1.1\r\nHost: a\r\n"), "partial");
        // Empty lines before a request are passed over, as hyper does.
        assert_eq!(
            verdict("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            "request 29+0"
        );
    }

    #[test]
    fn anything_doubtful_goes_to_hyper() {
        for text in [
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: good@evil/x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /\"x HTTP/1.1\r\nHost: a\r\n\r\n",
            "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-hop\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\n",
        ] {
            assert!(
                verdict(text).starts_with("hyper"),
                "{text:?}: {}",
                verdict(text)
            );
        }
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "v".repeat(20_000));
        assert!(verdict(&long).starts_with("hyper"));
    }

    #[test]
    fn the_head_the_app_gets() {
        let text = "POST /p HTTP/1.1\r\nHost: site\r\nConnection: keep-alive\r\nMS-ASPNETCORE-TOKEN: forged\r\nX-Forwarded-For: 1.2.3.4\r\nKeep-Alive: 5\r\nX-App: v\r\n\r\n";
        let mut slots = slots();
        let Verdict::Request(request) = parse(text.as_bytes(), &mut slots, 16 * 1024) else {
            panic!("taken");
        };
        let client = ClientInfo {
            forwarded_for: HeaderValue::from_static("127.0.0.1:5000"),
            proto: HeaderValue::from_static("http"),
            client_cert: None,
            front: HeaderValue::from_static("127.0.0.1:80"),
        };
        let mut out = Vec::new();
        write_for_app(&request, b"", b"tok", &client, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("text"),
            "POST /p HTTP/1.1\r\nHost: site\r\nX-App: v\r\nms-aspnetcore-token: tok\r\nx-forwarded-for: 1.2.3.4, 127.0.0.1:5000\r\nx-forwarded-proto: http\r\ncontent-length: 0\r\n\r\n"
        );
    }
}
