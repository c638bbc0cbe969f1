//! The header contract as rules on bytes, one copy for both paths: which fields are hop-by-hop,
//! which a client may not send (MS-ASPNETCORE-*), which ancm joins its own value to
//! (X-Forwarded-For/Proto), which frame the body, and what a Connection header's options say.
//! hyper's path applies them to a `HeaderMap` (`headers.rs`), the lean path to the bytes it
//! read (`lean/parse.rs`, `lean/response.rs`); tests/framing_check holds the results equal.
//!
//! It owns no state and imports nothing of the crate: both paths depend on it, never the
//! other way.

/// What the contract does with a header field, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    /// Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade: they describe
    /// one connection, not the message, and go on no other hop (RFC 9110 §7.6.1).
    Hop(Hop),
    /// X-Forwarded-For and X-Forwarded-Proto: ancm's value is joined after the client's.
    Forwarded(Forwarded),
    /// Content-Length: the body's framing, settled per hop.
    ContentLength,
    /// Any other field: it goes through (but see [`forged`] on a request).
    Keep,
}

/// The hop-by-hop fields every message loses, besides those its Connection header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hop {
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    TransferEncoding,
    Upgrade,
}

/// The X-Forwarded-* fields ancm appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forwarded {
    For,
    Proto,
}

/// The hop-by-hop names, lowercase, in [`Hop`]'s order.
pub(super) const HOP_NAMES: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The prefix of the fields only ancm may send the app.
pub(super) const MS_ASPNETCORE: &[u8] = b"ms-aspnetcore";

/// What the contract does with the field named `name` (any case). One length match, then at
/// most two comparisons: the lean path calls it for every header line, so it is inlined.
#[inline(always)]
pub(super) fn field(name: &[u8]) -> Field {
    let is = |lower: &str| name.eq_ignore_ascii_case(lower.as_bytes());
    match name.len() {
        2 if is("te") => Field::Hop(Hop::Te),
        7 if is("upgrade") => Field::Hop(Hop::Upgrade),
        10 if is("connection") => Field::Hop(Hop::Connection),
        10 if is("keep-alive") => Field::Hop(Hop::KeepAlive),
        14 if is("content-length") => Field::ContentLength,
        15 if is("x-forwarded-for") => Field::Forwarded(Forwarded::For),
        16 if is("proxy-connection") => Field::Hop(Hop::ProxyConnection),
        17 if is("transfer-encoding") => Field::Hop(Hop::TransferEncoding),
        17 if is("x-forwarded-proto") => Field::Forwarded(Forwarded::Proto),
        _ => Field::Keep,
    }
}

/// Whether a request field is one only ancm may send the app (MS-ASPNETCORE-*, any case):
/// a client's is dropped. Asked of a request's [`Field::Keep`] fields only.
#[inline(always)]
pub(super) fn forged(name: &[u8]) -> bool {
    name.len() >= MS_ASPNETCORE.len()
        && name[..MS_ASPNETCORE.len()].eq_ignore_ascii_case(MS_ASPNETCORE)
}

/// What a message's Connection header fields say, all of them read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConnectionOptions {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
    /// An option other than those: the name of a field that is hop-by-hop for this message.
    pub(super) names_fields: bool,
}

impl ConnectionOptions {
    /// Adds the options of one Connection field value (a comma-separated list, RFC 9110 §7.6.1).
    #[inline]
    pub(super) fn read(&mut self, value: &[u8]) {
        // Most messages say one plain option.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep_alive = true;
            return;
        }
        if value.eq_ignore_ascii_case(b"close") {
            self.close = true;
            return;
        }
        for option in value.split(|&b| b == b',') {
            let option = option.trim_ascii();
            if option.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if option.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !option.is_empty() {
                self.names_fields = true;
            }
        }
    }

    /// Whether the connection ends after this message: HTTP/1.0 unless it asks to be kept,
    /// HTTP/1.1 when it says close.
    pub(super) fn closes(&self, http10: bool) -> bool {
        self.close || (http10 && !self.keep_alive)
    }
}

/// Whether the app's own Connection header goes to the client (forwardResponseConnectionHeader,
/// spec §4.5): only when configured, on HTTP/1.x, and not on a response that closes the
/// client's connection, which says `close` itself and nothing else.
pub(super) fn forwards_app_connection(configured: bool, http2: bool, closes: bool) -> bool {
    configured && !http2 && !closes
}

/// Writes `existing` values then `ours`, joined with `, `, as ANCM joins X-Forwarded-For and
/// X-Forwarded-Proto: one field, the client's values first and ancm's last.
pub(super) fn join_list<'v>(
    out: &mut Vec<u8>,
    existing: impl IntoIterator<Item = &'v [u8]>,
    ours: &[u8],
) {
    for value in existing {
        out.extend_from_slice(value);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ours);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_name_in_any_case() {
        for (i, name) in HOP_NAMES.iter().enumerate() {
            let hop = [
                Hop::Connection,
                Hop::KeepAlive,
                Hop::ProxyConnection,
                Hop::Te,
                Hop::TransferEncoding,
                Hop::Upgrade,
            ][i];
            assert_eq!(field(name.as_bytes()), Field::Hop(hop));
            assert_eq!(field(name.to_ascii_uppercase().as_bytes()), Field::Hop(hop));
        }
        for name in ["MS-ASPNETCORE-TOKEN", "ms-aspnetcore", "MS-ASPNETCOREX"] {
            assert_eq!(field(name.as_bytes()), Field::Keep);
            assert!(forged(name.as_bytes()), "{name}");
        }
        assert!(!forged(b"ms-aspnetcor"));
        assert!(!forged(b"x-ms-aspnetcore"));
        assert_eq!(field(b"X-Forwarded-For"), Field::Forwarded(Forwarded::For));
        assert_eq!(
            field(b"x-forwarded-proto"),
            Field::Forwarded(Forwarded::Proto)
        );
        assert_eq!(field(b"Content-Length"), Field::ContentLength);
        for keep in [
            "host",
            "x-forwarded-host",
            "forwarded",
            "tea",
            "connections",
            "",
        ] {
            assert_eq!(field(keep.as_bytes()), Field::Keep, "{keep}");
        }
    }

    #[test]
    fn connection_options() {
        let read = |values: &[&str]| {
            let mut options = ConnectionOptions::default();
            for value in values {
                options.read(value.as_bytes());
            }
            options
        };
        assert!(read(&["close"]).close);
        assert!(read(&["Keep-Alive"]).keep_alive);
        let mixed = read(&["keep-alive, Upgrade", " close ,x-hop"]);
        assert!(mixed.close && mixed.keep_alive && mixed.upgrade && mixed.names_fields);
        assert_eq!(read(&[" , ,"]), ConnectionOptions::default());
        assert!(read(&[]).closes(true));
        assert!(!read(&["keep-alive"]).closes(true));
        assert!(!read(&[]).closes(false));
        assert!(read(&["keep-alive, close"]).closes(false));
    }

    #[test]
    fn lists_are_joined_with_ours_last() {
        let mut out = Vec::new();
        join_list(&mut out, [b"a".as_slice(), b"b, c"], b"me");
        assert_eq!(out, b"a, b, c, me");
        out.clear();
        join_list(&mut out, [], b"me");
        assert_eq!(out, b"me");
    }
}
