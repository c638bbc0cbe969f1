//! The app's response head, read with httparse and rewritten for the client byte by byte
//! (spec §4.5): hop-by-hop fields dropped (Connection kept with forwardResponseConnectionHeader),
//! the body framed for the client (Content-Length when the app gave one, else chunked), and a
//! Date when the app sent none, as hyper's server adds one on the other path.

// Clippy 1.96 (Debian's, which lints the Windows build) asks for a const initializer for
// DATE, which has one: a false positive of that version on that target.
#![cfg_attr(windows, allow(clippy::missing_const_for_thread_local))]

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use super::super::contract::{self, ConnectionOptions, Field, Hop};
use super::super::h1::{self, ends_chunked, take_content_length, Chunk, ExchangeError};

/// How the app delimits the response body (RFC 9112 §6.3).
pub(super) enum Framing {
    Done,
    Length(u64),
    Chunked(Chunk),
    /// Until the app closes the connection.
    Close,
}

/// What the start of the app's buffer holds.
pub(super) enum Parsed {
    Partial,
    /// An informational response (not 101) of this many bytes, to pass over: ancm sends no
    /// 1xx of its own on this path.
    Interim(usize),
    /// 101 to a request that asked for no upgrade.
    Switched,
    Head(Head),
}

pub(super) struct Head {
    pub(super) status: StatusCode,
    /// Bytes of the head in the buffer.
    pub(super) len: usize,
    pub(super) framing: Framing,
    /// The app will take another request on this connection after this response.
    pub(super) reusable: bool,
    /// Both Transfer-Encoding and Content-Length: the latter was dropped.
    pub(super) conflicting: bool,
}

/// What the client is told of the exchange beside the app's head.
#[derive(Clone, Copy)]
pub(super) struct Rules {
    pub(super) head_request: bool,
    /// forwardResponseConnectionHeader: the app's Connection header goes through.
    pub(super) keep_connection: bool,
    /// This is the connection's last response: `Connection: close`.
    pub(super) close: bool,
}

/// The head the lean path writes for the client from the app's final response head at the
/// start of `app`: for tests/framing_check, which holds it equal to hyper's path's
/// (`hyper_response_for_client`, written by hyper's server). `close`: the client's request
/// ends its connection.
pub fn response_for_client(
    app: &[u8],
    head_request: bool,
    keep_connection: bool,
    close: bool,
) -> Option<Vec<u8>> {
    let rules = Rules {
        head_request,
        keep_connection,
        close,
    };
    let mut out = Vec::new();
    match rewrite(app, rules, &mut out) {
        Ok(Parsed::Head(_)) => Some(out),
        _ => None,
    }
}

/// Parses the app's response head at the start of `buf` and, when it is a final one, writes
/// it into `out` as the client gets it.
pub(super) fn rewrite(
    buf: &[u8],
    rules: Rules,
    out: &mut Vec<u8>,
) -> Result<Parsed, ExchangeError> {
    let mark = out.len();
    let parsed = rewrite_any(buf, rules, out, mark);
    if !matches!(parsed, Ok(Parsed::Head(_))) {
        out.truncate(mark);
    }
    parsed
}

fn rewrite_any(
    buf: &[u8],
    rules: Rules,
    out: &mut Vec<u8>,
    mark: usize,
) -> Result<Parsed, ExchangeError> {
    h1::with_header_slots(|slots| {
        out.truncate(mark);
        rewrite_with(buf, slots, rules, out)
    })
}

fn rewrite_with<'b>(
    buf: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    rules: Rules,
    out: &mut Vec<u8>,
) -> Result<Parsed, ExchangeError> {
    let Some((response, len)) = h1::parse_response(buf, slots)? else {
        return Ok(Parsed::Partial);
    };
    let code = response
        .code
        .ok_or(ExchangeError::Invalid("no status code"))?;
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::Invalid("a status code out of range"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Parsed::Switched);
    }
    if status.is_informational() {
        return Ok(Parsed::Interim(len));
    }
    let headers: &[httparse::Header<'_>] = response.headers;
    let (mut chunked, mut coded, mut length, mut date) = (None, false, None::<u64>, false);
    let mut options = ConnectionOptions::default();
    let mark = out.len();
    status_line(out, status, response.reason);
    // Kept lines go as they came, in runs of whole lines, while they are contiguous and
    // CRLF-ended (else, or when Connection names fields to drop, they are written one by one).
    let base = buf.as_ptr() as usize;
    let first = headers.first().map(|h| h.name.as_ptr() as usize - base);
    let (mut run, mut next, mut plain) = (first.unwrap_or(0), first.unwrap_or(0), true);
    for header in headers {
        let name = header.name.as_bytes();
        let at = name.as_ptr() as usize - base;
        let end = (header.value.as_ptr() as usize)
            .wrapping_sub(base)
            .wrapping_add(header.value.len());
        plain = plain
            && at == next
            && end > at
            && end < len.saturating_sub(1)
            && buf[end] == b'\r'
            && buf[end + 1] == b'\n';
        next = end.wrapping_add(2);
        let skip = match contract::field(name) {
            Field::Hop(Hop::Connection) => {
                options.read(header.value);
                !contract::forwards_app_connection(rules.keep_connection, false, rules.close)
            }
            Field::ContentLength => {
                take_content_length(header.value, &mut length)?;
                true
            }
            Field::Hop(Hop::TransferEncoding) => {
                coded = true;
                chunked = Some(ends_chunked(header.value));
                true
            }
            Field::Hop(_) => true,
            Field::Keep => {
                date |= name.len() == 4 && name.eq_ignore_ascii_case(b"date");
                false
            }
            Field::Forwarded(_) => false,
        };
        if skip && plain {
            out.extend_from_slice(&buf[run..at]);
            run = next;
        }
    }
    let close = options.closes(response.version == Some(0));
    let named_hops = options.names_fields;
    // An app's Date that its Connection names goes with the other named fields: ours replaces
    // it, as hyper's server adds one on the other path.
    let date = date && !(named_hops && named_by_connection(headers, b"date"));
    if plain && !named_hops {
        if first.is_some() {
            out.extend_from_slice(&buf[run..next]);
        }
    } else {
        out.truncate(mark);
        status_line(out, status, response.reason);
        for header in headers {
            if !kept(header, headers, rules, named_hops) {
                continue;
            }
            out.extend_from_slice(header.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    let bodiless = rules.head_request
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (bodiless, chunked, length) {
        (true, _, _) => Framing::Done,
        (false, Some(true), _) => Framing::Chunked(Chunk::Size),
        (false, Some(false), _) | (false, None, None) => Framing::Close,
        (false, None, Some(0)) => Framing::Done,
        (false, None, Some(n)) => Framing::Length(n),
    };
    let conflicting = coded && length.is_some();
    match (&framing, length.as_ref()) {
        // A 204 or 304 comes with no content (RFC 9110 §8.6, §15.4.5): its length goes, as on
        // hyper's path (`exchange::for_front`).
        (Framing::Length(n), _) | (Framing::Done, Some(n))
            if !conflicting
                && status != StatusCode::NO_CONTENT
                && status != StatusCode::NOT_MODIFIED =>
        {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (Framing::Chunked(_) | Framing::Close, _) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        _ => {}
    }
    if !date {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    if rules.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Parsed::Head(Head {
        status,
        len,
        framing,
        reusable: !close,
        conflicting,
    }))
}

fn status_line(out: &mut Vec<u8>, status: StatusCode, reason: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match reason.filter(|reason| !reason.is_empty()) {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether `header` goes to the client, written one by one.
fn kept(
    header: &httparse::Header<'_>,
    headers: &[httparse::Header<'_>],
    rules: Rules,
    named_hops: bool,
) -> bool {
    let name = header.name.as_bytes();
    // Content-Length is written again from the framing decided.
    let field = contract::field(name);
    let hop = match field {
        Field::Hop(Hop::Connection) => {
            !contract::forwards_app_connection(rules.keep_connection, false, rules.close)
        }
        Field::Hop(_) | Field::ContentLength => true,
        Field::Forwarded(_) | Field::Keep => false,
    };
    // The fixed hop-by-hop fields follow their own rule above, whatever Connection names
    // (a kept Connection that names itself stays), as on hyper's path.
    let named = named_hops && !matches!(field, Field::Hop(_)) && named_by_connection(headers, name);
    !(hop || named)
}

/// Whether the app's Connection header names `name` as one for this hop only. Host names the
/// site and stays.
fn named_by_connection(headers: &[httparse::Header<'_>], name: &[u8]) -> bool {
    !name.eq_ignore_ascii_case(b"host")
        && headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|option| option.trim_ascii().eq_ignore_ascii_case(name))
}

/// Today's HTTP date, made once a second per thread.
pub(super) fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != second {
            *date = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(date.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_head(app: &str, rules: Rules) -> (String, Head) {
        let mut out = Vec::new();
        match rewrite(app.as_bytes(), rules, &mut out).expect("valid") {
            Parsed::Head(head) => (String::from_utf8(out).expect("text"), head),
            _ => panic!("a final head"),
        }
    }

    const PLAIN: Rules = Rules {
        head_request: false,
        keep_connection: false,
        close: false,
    };

    #[test]
    fn hop_by_hop_fields_go_and_framing_is_ours() {
        let (text, head) = client_head(
            "HTTP/1.1 200 Fine\r\nDate: d\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nContent-Length: 3, 3\r\nX-App: v\r\n\r\nabc",
            PLAIN,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 Fine\r\nDate: d\r\nX-App: v\r\ncontent-length: 3\r\n\r\n"
        );
        assert!(head.reusable && matches!(head.framing, Framing::Length(3)));
        let (text, head) = client_head(
            "HTTP/1.1 404 \r\nDate: d\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
            Rules {
                close: true,
                ..PLAIN
            },
        );
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nDate: d\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        assert!(head.conflicting && matches!(head.framing, Framing::Chunked(_)));
        let (text, head) = client_head("HTTP/1.0 200 OK\r\n\r\n", PLAIN);
        assert!(
            text.contains("transfer-encoding: chunked\r\ndate: "),
            "{text}"
        );
        assert!(!head.reusable && matches!(head.framing, Framing::Close));
    }

    #[test]
    fn kept_lines_are_copied_in_runs_and_bare_lf_is_mended() {
        let (text, _) = client_head(
            "HTTP/1.1 200 OK\r\nA: 1\r\nKeep-Alive: 5\r\nB:2\r\nContent-Length: 2\r\nC: 3\r\nDate: d\r\n\r\nok",
            PLAIN,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC: 3\r\nDate: d\r\ncontent-length: 2\r\n\r\n"
        );
        let (text, _) = client_head(
            "HTTP/1.1 200 OK\nA: 1\nE:\nContent-Length: 0\nDate: d\n\n",
            PLAIN,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nA: 1\r\nE: \r\nDate: d\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn interim_and_switching_heads() {
        let mut out = Vec::new();
        assert!(matches!(
            rewrite(
                b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n",
                PLAIN,
                &mut out
            ),
            Ok(Parsed::Interim(37))
        ));
        assert!(matches!(
            rewrite(b"HTTP/1.1 101 Switching\r\n\r\n", PLAIN, &mut out),
            Ok(Parsed::Switched)
        ));
        assert!(matches!(
            rewrite(b"HTTP/1.1 200 OK\r\n", PLAIN, &mut out),
            Ok(Parsed::Partial)
        ));
        assert!(rewrite(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            PLAIN,
            &mut out
        )
        .is_err());
        assert!(out.is_empty());
    }
}
