//! The header contract between the client, ancm and the app (spec §4.3, §4.5): keep Host (the
//! client's, whatever its Connection header names), refuse what no app can mean, drop
//! client-sent MS-ASPNETCORE-*, set the pairing token (and the client certificate), append
//! X-Forwarded-For/Proto, and strip hop-by-hop headers (RFC 9110 §7.6.1) both ways. Repeated
//! response headers are kept. Request trailers lose what headers lose.
//!
//! An upgrade (WebSocket) keeps `Connection: upgrade` and `Upgrade` on both hops, and its
//! `Sec-WebSocket-*` headers, `Sec-WebSocket-Extensions` included: ANCM deletes that one only
//! because WinHTTP cannot take server extensions (spec §4.3), while ancm splices the upgraded
//! bytes untouched, so client and app can negotiate permessage-deflate end to end.

use std::net::SocketAddr;

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, StatusCode, Version};

use super::contract::{self, ConnectionOptions, Field, Hop};
use crate::config::ForwardedFor;

/// Per-connection facts the request rewrite needs, computed once per connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's address as X-Forwarded-For gives it: see [`forwarded_for`].
    pub forwarded_for: HeaderValue,
    /// `http` or `https`.
    pub proto: HeaderValue,
    /// The client's TLS certificate (end-entity, DER, standard base64), sent as
    /// MS-ASPNETCORE-CLIENTCERT (spec §4.3); `None` without one.
    pub client_cert: Option<HeaderValue>,
    /// The address the client reached (`ip:port`, the listener's own): the Host an HTTP/1.0
    /// request that names none gets, rather than the app's private address.
    pub front: HeaderValue,
}

/// The address a client connected to, as a Host value: see [`ClientInfo::front`].
pub(super) fn front_authority(local: SocketAddr) -> HeaderValue {
    // A dual-stack listener sees IPv4 clients on ::ffff:a.b.c.d; they asked for a.b.c.d.
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    HeaderValue::from_str(&local.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// The client's address for X-Forwarded-For: `ip:port` or `[v6]:port`, as ANCM always writes
/// it (spec §4.3); or the bare IP (`1.2.3.4`, `::1`), the only form most other frameworks
/// parse (a port makes Express's proxy-addr and uvicorn take the whole value as the host).
pub(super) fn forwarded_for(remote: SocketAddr, form: ForwardedFor) -> HeaderValue {
    let text = match form {
        ForwardedFor::IpPort => remote.to_string(),
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; their own address is the
        // IPv4 one.
        ForwardedFor::Ip => remote.ip().to_canonical().to_string(),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

pub(super) const MS_ASPNETCORE_TOKEN: HeaderName = HeaderName::from_static("ms-aspnetcore-token");
const MS_ASPNETCORE_CLIENTCERT: HeaderName = HeaderName::from_static("ms-aspnetcore-clientcert");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED: &str = "x-forwarded-";

const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// The protocol a request asks to switch to, if it asks: an HTTP/1.1 request with Upgrade and
/// `upgrade` among its Connection options (RFC 9110 §7.8). HTTP/2 has no Upgrade (its extended
/// CONNECT is not forwarded), and HTTP/1.0 predates it.
pub(super) fn requested_upgrade(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let protocol = headers.get(header::UPGRADE)?;
    connection_options(headers)
        .upgrade
        .then(|| protocol.clone())
}

/// Whether the client's connection ends after this request, by its version and Connection
/// header (see [`super::contract::ConnectionOptions::closes`]).
pub(super) fn closes(version: Version, headers: &HeaderMap) -> bool {
    if version >= Version::HTTP_2 {
        return false;
    }
    connection_options(headers).closes(version == Version::HTTP_10)
}

/// Why a request is answered by ancm instead of going to the app: its status and the reason
/// shown to the client.
pub(super) type Refusal = (StatusCode, &'static str);

/// The size of an HTTP/1.x request head as the client wrote it, give or take the blanks around
/// header values, from its parsed parts: hyper bounds the head it reads in pieces by
/// `--max-request-head`, but one that came whole in a read (behind a pipelined request) is
/// parsed whatever its size, so the bound is checked again here, as the lean path checks the
/// bytes.
pub(super) fn head_size(method: &Method, uri: &http::Uri, headers: &HeaderMap) -> usize {
    // "METHOD TARGET HTTP/1.1\r\n", each "name: value\r\n", and the blank line.
    let target = uri.scheme_str().map_or(0, |scheme| scheme.len() + 3)
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    method.as_str().len() + 1 + target + 11 + fields + 2
}

/// Requests no app behind ancm can be meant to get. CONNECT asks for a tunnel to somewhere
/// else, which is a forward proxy's job (405, as nginx answers). TRACE would echo the request,
/// credentials and cookies included, back to a script (cross-site tracing): refused with 405 as
/// IIS and Kestrel refuse it. The asterisk form (`*`) means the server itself, which only
/// OPTIONS can ask about (RFC 9112 §3.2.4). A request's Host names the site, so an HTTP/1.1
/// request without one, with two, or with one that is not `host[:port]` (`good@evil/x`) is
/// ambiguous: 400, as nginx and Kestrel answer (RFC 9112 §3.2). So is an absolute target
/// (`GET http://evil/`, or HTTP/2's `:authority`) naming another site than Host: RFC 9112
/// §3.2.2 would let the target win, but the app, its logs and any cache in front would then
/// disagree on the site (RFC 9113 §8.3.1 calls it malformed). Connection may name hop-by-hop
/// headers only: naming Content-Length, Transfer-Encoding or Host would drop how the body is
/// framed or which site is asked for.
pub(super) fn refusal(
    method: &Method,
    uri: &http::Uri,
    version: Version,
    headers: &HeaderMap,
) -> Option<Refusal> {
    if *method == Method::CONNECT {
        return Some((
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not served here: this is not a forward proxy.",
        ));
    }
    if *method == Method::TRACE {
        return Some((StatusCode::METHOD_NOT_ALLOWED, "TRACE is not allowed."));
    }
    if uri == "*" && *method != Method::OPTIONS {
        return Some((
            StatusCode::BAD_REQUEST,
            "Only OPTIONS may ask for the server as a whole (*).",
        ));
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => {
            return Some((
                StatusCode::BAD_REQUEST,
                "The request has more than one Host.",
            ))
        }
        (None, None) if version == Version::HTTP_11 => {
            return Some((StatusCode::BAD_REQUEST, "The request has no Host."))
        }
        (host, None) => host,
    };
    if host.is_some_and(|host| !valid_host(host.as_bytes())) {
        return Some((
            StatusCode::BAD_REQUEST,
            "The request's Host is not a host name or address with an optional port.",
        ));
    }
    if let Some(authority) = uri.authority() {
        if !valid_host(authority.as_str().as_bytes()) {
            return Some((
                StatusCode::BAD_REQUEST,
                "The request target's authority is not a host name or address with an optional port.",
            ));
        }
        if host.is_some_and(|host| !same_site(authority, uri.scheme(), host.as_bytes())) {
            return Some((
                StatusCode::BAD_REQUEST,
                "The request target names another site than Host.",
            ));
        }
    }
    if names_framing(headers) {
        return Some((
            StatusCode::BAD_REQUEST,
            "Connection may not name Host, Content-Length or Transfer-Encoding.",
        ));
    }
    None
}

/// Whether `value` is a Host value as RFC 9110 §7.2 has it: `uri-host [":" port]`, where the
/// host is a name or IPv4 address (unreserved characters, sub-delims and %-escapes), or an
/// IP literal in brackets. Empty is allowed (RFC 9112 §3.2: a target without authority).
/// Userinfo (`@`), paths, spaces and anything else make it something else. Both paths use
/// it: the lean path hands a request whose Host fails it to hyper's, which refuses it here.
pub(super) fn valid_host(value: &[u8]) -> bool {
    let port = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                if literal.is_empty() || !literal.iter().all(|&b| b == b':' || host_byte(b)) {
                    return false;
                }
                &value[end + 1..]
            }
            None => return false,
        },
        _ => match reg_name(value) {
            Some(rest) => rest,
            None => return false,
        },
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// RFC 3986's reg-name (which IPv4 addresses also match) at the start of `value`, up to its
/// first `:`, read in one pass: what follows it, or `None` when it holds a byte no host has.
fn reg_name(value: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if host_byte(b) {
            i += 1;
        } else if b == b':' {
            return value.get(i..);
        } else if b == b'%'
            && value
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
        {
            i += 3;
        } else {
            return None;
        }
    }
    Some(&[])
}

/// RFC 3986's unreserved and sub-delims bytes, of which a host name is made: a table, since
/// every request's Host is checked (the chain of comparisons cost ~260 instructions a request).
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        i += 1;
    }
    table
};

/// An unreserved or sub-delims byte (RFC 3986).
pub(super) fn host_byte(b: u8) -> bool {
    HOST_BYTES[usize::from(b)]
}

/// Whether a target's authority and a (valid) Host name the same site: the same host, in any
/// case, and the same port, a missing one being the scheme's default.
fn same_site(authority: &Authority, scheme: Option<&http::uri::Scheme>, host: &[u8]) -> bool {
    let default = if scheme == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    let (name, port) = match host.iter().rposition(|&b| b == b':') {
        Some(colon) if !host[colon..].contains(&b']') => (&host[..colon], &host[colon + 1..]),
        _ => (host, &b""[..]),
    };
    let port = if port.is_empty() {
        Some(default)
    } else {
        std::str::from_utf8(port).ok().and_then(|p| p.parse().ok())
    };
    name.eq_ignore_ascii_case(authority.host().as_bytes())
        && port == Some(authority.port_u16().unwrap_or(default))
}

/// Whether a Connection header names a field that frames the message or names the site.
fn names_framing(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter(|value| {
            let mut options = ConnectionOptions::default();
            options.read(value.as_bytes());
            options.names_fields
        })
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|option| {
            [&b"content-length"[..], b"transfer-encoding", b"host"]
                .iter()
                .any(|name| option.eq_ignore_ascii_case(name))
        })
}

/// Makes the Host the app gets the one the client asked for. A Host the client sent is kept
/// as it came ([`refusal`] has made sure an absolute target agrees with it); an HTTP/1.0
/// request without one gets its absolute target's authority, or else the address the client
/// connected to, not the app's private one.
pub(super) fn settle_host(headers: &mut HeaderMap, uri: &http::Uri, front: &HeaderValue) {
    if let Entry::Vacant(host) = headers.entry(header::HOST) {
        host.insert(
            uri.authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| front.clone()),
        );
    }
}

/// Removes from a client's request trailers what it may not say there: the same fields its
/// headers lose (MS-ASPNETCORE-*, hop-by-hop, X-Forwarded-* and Forwarded, which only ancm
/// writes), and the framing and routing fields a trailer must not carry (RFC 9110 §6.5.1):
/// Host and Content-Length. The rest, such as gRPC's status fields, go to the app.
pub(super) fn strip_trailers(trailers: &mut HeaderMap) {
    let banned: Vec<HeaderName> = trailers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            matches!(contract::field(name.as_bytes()), Field::Hop(_))
                || contract::forged(name.as_bytes())
                || name.starts_with(X_FORWARDED)
        })
        .chain(
            [FORWARDED, header::HOST, header::CONTENT_LENGTH]
                .iter()
                .filter(|name| trailers.contains_key(*name)),
        )
        .cloned()
        .collect();
    for name in banned {
        trailers.remove(name);
    }
}

/// Makes an HTTP/2 request's headers what the app expects over HTTP/1.1 (RFC 9113 §8.3.1,
/// §8.2.3): Host from `:authority` when the client sent no Host, so the app sees the Host it
/// sees over HTTP/1.1, and the Cookie crumbs HTTP/2 may send one per field joined into one line.
pub(super) fn from_http2(headers: &mut HeaderMap, authority: Option<&Authority>) {
    if let (Entry::Vacant(host), Some(authority)) = (headers.entry(header::HOST), authority) {
        if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
            host.insert(value);
        }
    }
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if let (Some(first), Some(_)) = (cookies.next(), cookies.next()) {
        let mut joined = first.as_bytes().to_vec();
        for crumb in headers.get_all(header::COOKIE).iter().skip(1) {
            joined.extend_from_slice(b"; ");
            joined.extend_from_slice(crumb.as_bytes());
        }
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// Rewrites a client's request headers for the app. `upgrade` is the protocol the client asks
/// for (from [`requested_upgrade`]): that request keeps `Connection: upgrade` and `Upgrade`.
pub(super) fn rewrite_request(
    headers: &mut HeaderMap,
    token: &HeaderValue,
    client: &ClientInfo,
    upgrade: Option<&HeaderValue>,
) {
    strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, UPGRADE_TOKEN);
        headers.insert(header::UPGRADE, protocol.clone());
    }

    // Only ancm may speak for the module: a client cannot forge the token or a Windows
    // identity, whatever the case of the name. (Collecting allocates only when one is found.)
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| contract::forged(name.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    headers.insert(MS_ASPNETCORE_TOKEN, token.clone());
    if let Some(cert) = &client.client_cert {
        headers.insert(MS_ASPNETCORE_CLIENTCERT, cert.clone());
    }

    append_list(headers, X_FORWARDED_FOR, &client.forwarded_for);
    append_list(headers, X_FORWARDED_PROTO, &client.proto);
}

/// The headers hyper's path sends the app for a client's request (`parts` is the request as
/// read, its headers taken out into `headers`): Host settled, the contract applied
/// ([`rewrite_request`]), and the framing of the body as it will go. `bodiless`: the client
/// sent no body. The lean path writes the same head from bytes (`lean/parse.rs`
/// `write_for_app`); tests/framing_check holds the two equal.
pub(super) fn for_app(
    headers: &mut HeaderMap,
    parts: &http::request::Parts,
    bodiless: bool,
    upgrade: Option<&HeaderValue>,
    token: &HeaderValue,
    client: &ClientInfo,
) {
    let declared_length = headers.contains_key(header::CONTENT_LENGTH);
    if bodiless
        && upgrade.is_none()
        && super::expects_content(parts.method.as_str())
        && !declared_length
    {
        headers.remove(header::TRANSFER_ENCODING);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    settle_host(headers, &parts.uri, &client.front);
    rewrite_request(headers, token, client, upgrade);
    // hyper sends no body with a GET or HEAD whose length it does not know; the client sent
    // one, so the app gets it, chunked as it came.
    if !bodiless && !declared_length {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// Rewrites the app's response headers for the client. With forwardResponseConnectionHeader,
/// the app's Connection header itself goes through (spec §4.5).
///
/// A response with both Transfer-Encoding and Content-Length was read as chunked (the transfer
/// coding wins, RFC 9112 §6.3), so its Content-Length is wrong: it goes, lest the client take a
/// cut-off body for the whole. Returns whether that happened.
pub(super) fn rewrite_response(headers: &mut HeaderMap, keep_connection: bool) -> bool {
    let conflicting = headers.contains_key(header::TRANSFER_ENCODING)
        && headers.remove(header::CONTENT_LENGTH).is_some();
    single_length(headers);
    // The app's Connection lines go through as they are, and still take the fields they name
    // off (they describe the app's connection, not the message).
    let connection: Vec<HeaderValue> = if keep_connection {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    strip_hop_by_hop(headers);
    for value in connection {
        headers.append(header::CONNECTION, value);
    }
    conflicting
}

/// A length the app wrote as a list of equal numbers, on several lines (`5, 5`) or with
/// leading zeros, which the response was read by, goes to the client as the one number it is:
/// a client may refuse a list (RFC 9110 §8.6), and the lean path writes the number alone too.
fn single_length(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let (Some(first), more) = (values.next(), values.next().is_some()) else {
        return;
    };
    let value = first.as_bytes();
    if !more && !value.contains(&b',') && (value.len() <= 1 || value[0] != b'0') {
        return;
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        if super::h1::take_content_length(value.as_bytes(), &mut length).is_err() {
            return;
        }
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
}

/// Rewrites the app's 101 answer to an upgrade for the client: hop-by-hop headers go except the
/// switch itself (`Connection: upgrade` and the app's `Upgrade`); `Sec-WebSocket-*` stay.
pub(super) fn rewrite_switching(headers: &mut HeaderMap) {
    let protocol = headers.remove(header::UPGRADE);
    strip_hop_by_hop(headers);
    headers.insert(header::CONNECTION, UPGRADE_TOKEN);
    if let Some(protocol) = protocol {
        headers.insert(header::UPGRADE, protocol);
    }
}

/// `existing, ours` in one header line, as ANCM writes it; all existing lines are joined.
fn append_list(headers: &mut HeaderMap, name: HeaderName, ours: &HeaderValue) {
    let mut existing = match headers.entry(name) {
        Entry::Vacant(vacant) => {
            vacant.insert(ours.clone());
            return;
        }
        Entry::Occupied(existing) => existing,
    };
    let mut joined = Vec::new();
    contract::join_list(
        &mut joined,
        existing.iter().map(HeaderValue::as_bytes),
        ours.as_bytes(),
    );
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        existing.insert(value);
    }
}

/// The hop-by-hop headers every message loses, besides those its Connection header names.
/// The contract's list, as names a `HeaderMap` removes.
static HOP_BY_HOP: [HeaderName; 6] = [
    HeaderName::from_static(contract::HOP_NAMES[0]),
    HeaderName::from_static(contract::HOP_NAMES[1]),
    HeaderName::from_static(contract::HOP_NAMES[2]),
    HeaderName::from_static(contract::HOP_NAMES[3]),
    HeaderName::from_static(contract::HOP_NAMES[4]),
    HeaderName::from_static(contract::HOP_NAMES[5]),
];

/// Removes the headers that describe one connection, not the message: those named in
/// Connection, and Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding and Upgrade.
/// hyper sets the framing of each hop itself.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The per-message hot path. One pass over the names finds what is there to strip: most
    // messages carry none of these or only `Connection: keep-alive`, and removing a name
    // hashes it whether it is there or not.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present[i] = true;
        }
    }
    // `Connection: keep-alive` or `close`, as most messages say, names no header to remove
    // beyond the fixed list (Keep-Alive is on it; no header is called Close).
    if present[Hop::Connection as usize] && connection_options(headers).names_fields {
        // Options that name a header the message does not carry (`close`, `keep-alive` without
        // a Keep-Alive header) need no removal, nor a HeaderName made for them.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            // As bytes: a value with other bytes beside its options still names them, as the
            // lean path reads it.
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|option| {
                // Host names the site, not the connection: a client cannot have it dropped.
                !option.eq_ignore_ascii_case(b"host")
                    && !matches!(contract::field(option), Field::Hop(_))
                    && headers
                        .keys()
                        .any(|name| name.as_str().as_bytes().eq_ignore_ascii_case(option))
            })
            .filter_map(|option| HeaderName::from_bytes(option).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// Where `name` is in [`HOP_BY_HOP`], by the contract's classifier.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    match contract::field(name.as_str().as_bytes()) {
        Field::Hop(hop) => Some(hop as usize),
        _ => None,
    }
}

/// What the message's Connection fields say, all of them read.
fn connection_options(headers: &HeaderMap) -> ConnectionOptions {
    let mut options = ConnectionOptions::default();
    for value in headers.get_all(header::CONNECTION) {
        options.read(value.as_bytes());
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_index_matches_the_list() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index(&header::HOST), None);
    }

    fn client() -> ClientInfo {
        ClientInfo {
            forwarded_for: HeaderValue::from_static("[::1]:5017"),
            proto: HeaderValue::from_static("http"),
            client_cert: None,
            front: HeaderValue::from_static("127.0.0.1:8080"),
        }
    }

    #[test]
    fn host_values() {
        for good in [
            "",
            "a",
            "site.test:8080",
            "10.0.0.1",
            "[::1]",
            "[::1]:443",
            "xn--bcher-kva.example",
            "a%41b",
            "a:",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "good@evil/x",
            "good@evil",
            "evil/x",
            "a b",
            "a:b",
            "a:123456",
            "[::1",
            "[]",
            "[::1]x",
            "a%4",
            "a\\b",
            "a:80:80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    fn refused(target: &str, version: Version, headers: &[(&str, &str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let uri: http::Uri = target.parse().expect("target");
        refusal(&Method::GET, &uri, version, &map).is_some()
    }

    #[test]
    fn an_absolute_target_must_name_the_site_host_names() {
        let v11 = Version::HTTP_11;
        assert!(refused("http://evil/", v11, &[("host", "good")]));
        assert!(refused("http://good:8080/", v11, &[("host", "good")]));
        assert!(refused("http://u@good/", v11, &[("host", "good")]));
        assert!(!refused("http://good/", v11, &[("host", "good")]));
        assert!(!refused("http://GOOD:80/x", v11, &[("host", "good")]));
        assert!(!refused("https://good/", v11, &[("host", "good:443")]));
        assert!(!refused(
            "http://[::1]:8080/",
            v11,
            &[("host", "[::1]:8080")]
        ));
        assert!(!refused("http://good/", Version::HTTP_10, &[]));
        assert!(refused("/", v11, &[("host", "good@evil/x")]));
    }

    #[test]
    fn connection_may_not_name_framing_or_the_site() {
        let v11 = Version::HTTP_11;
        for named in [
            "content-length",
            "Transfer-Encoding",
            "host",
            "x, Content-Length",
        ] {
            assert!(
                refused("/", v11, &[("host", "a"), ("connection", named)]),
                "{named}"
            );
        }
        for plain in ["close", "keep-alive, x-hop", "te", "upgrade"] {
            assert!(
                !refused("/", v11, &[("host", "a"), ("connection", plain)]),
                "{plain}"
            );
        }
    }

    #[test]
    fn forwarded_for_forms() {
        let cases = [
            ("1.2.3.4:5678", "1.2.3.4:5678", "1.2.3.4"),
            ("[::1]:5017", "[::1]:5017", "::1"),
            ("[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.1]:80", "10.0.0.1"),
            ("[fe80::1%2]:80", "[fe80::1%2]:80", "fe80::1"),
        ];
        for (remote, with_port, bare) in cases {
            let remote: SocketAddr = remote.parse().expect("address");
            assert_eq!(forwarded_for(remote, ForwardedFor::IpPort), with_port);
            assert_eq!(forwarded_for(remote, ForwardedFor::Ip), bare);
        }
    }

    #[test]
    fn request_contract() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("example.test"));
        headers.insert("MS-ASPNETCORE-TOKEN", HeaderValue::from_static("forged"));
        headers.insert(
            "ms-aspnetcore-winauthtoken",
            HeaderValue::from_static("0x1"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("1.2.3.4:1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("5.6.7.8:2"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-app", HeaderValue::from_static("kept"));

        assert_eq!(requested_upgrade(Version::HTTP_11, &headers), None);
        rewrite_request(
            &mut headers,
            &HeaderValue::from_static("tok"),
            &client(),
            None,
        );

        assert_eq!(headers[header::HOST], "example.test");
        assert_eq!(
            headers
                .get_all("ms-aspnetcore-token")
                .iter()
                .collect::<Vec<_>>(),
            ["tok"]
        );
        assert!(!headers.contains_key("ms-aspnetcore-winauthtoken"));
        assert_eq!(
            headers["x-forwarded-for"],
            "1.2.3.4:1, 5.6.7.8:2, [::1]:5017"
        );
        assert_eq!(headers["x-forwarded-proto"], "http");
        for gone in ["connection", "x-hop", "keep-alive", "te"] {
            assert!(!headers.contains_key(gone), "{gone} should be stripped");
        }
        assert_eq!(headers["x-app"], "kept");
    }

    #[test]
    fn trailers_lose_what_headers_lose() {
        let mut trailers = HeaderMap::new();
        for name in [
            "ms-aspnetcore-token",
            "x-forwarded-for",
            "x-forwarded-proto",
            "forwarded",
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "grpc-status",
        ] {
            trailers.insert(HeaderName::from_static(name), HeaderValue::from_static("1"));
        }
        strip_trailers(&mut trailers);
        assert_eq!(
            trailers.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["grpc-status"]
        );
    }

    #[test]
    fn client_certificate_is_ours_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "ms-aspnetcore-clientcert",
            HeaderValue::from_static("forged"),
        );
        let mut plain = headers.clone();
        let mut with_cert = client();
        with_cert.client_cert = Some(HeaderValue::from_static("MIIB"));
        rewrite_request(
            &mut headers,
            &HeaderValue::from_static("tok"),
            &with_cert,
            None,
        );
        assert_eq!(
            headers
                .get_all("ms-aspnetcore-clientcert")
                .iter()
                .collect::<Vec<_>>(),
            ["MIIB"]
        );

        rewrite_request(
            &mut plain,
            &HeaderValue::from_static("tok"),
            &client(),
            None,
        );
        assert!(!plain.contains_key("ms-aspnetcore-clientcert"));
    }

    #[test]
    fn response_keeps_repeated_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append(header::VARY, HeaderValue::from_static("Accept"));
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("x-custom-hop"));
        headers.insert("x-custom-hop", HeaderValue::from_static("1"));
        let mut kept = headers.clone();
        rewrite_response(&mut headers, false);
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(headers.get_all(header::VARY).iter().count(), 2);
        assert!(!headers.contains_key("x-custom-hop"));
        assert!(!headers.contains_key(header::CONNECTION));

        rewrite_response(&mut kept, true);
        assert_eq!(kept[header::CONNECTION], "x-custom-hop");
    }

    fn websocket_request() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("example.test"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            "sec-websocket-key",
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
        headers.insert(
            "sec-websocket-extensions",
            HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
        );
        headers
    }

    #[test]
    fn upgrade_keeps_the_switch_and_the_websocket_headers() {
        let mut headers = websocket_request();
        let upgrade = requested_upgrade(Version::HTTP_11, &headers);
        assert_eq!(upgrade, Some(HeaderValue::from_static("websocket")));
        rewrite_request(
            &mut headers,
            &HeaderValue::from_static("tok"),
            &client(),
            upgrade.as_ref(),
        );
        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert!(
            !headers.contains_key("x-hop"),
            "other Connection options still go"
        );
        assert_eq!(headers["sec-websocket-version"], "13");
        assert_eq!(
            headers["sec-websocket-extensions"],
            "permessage-deflate; client_max_window_bits"
        );

        let mut answer = HeaderMap::new();
        answer.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, x-hop"),
        );
        answer.insert("x-hop", HeaderValue::from_static("1"));
        answer.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        answer.insert(
            "sec-websocket-accept",
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        answer.insert(
            "sec-websocket-extensions",
            HeaderValue::from_static("permessage-deflate"),
        );
        rewrite_switching(&mut answer);
        assert_eq!(answer[header::CONNECTION], "upgrade");
        assert_eq!(answer[header::UPGRADE], "websocket");
        assert!(!answer.contains_key("x-hop"));
        assert_eq!(
            answer["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(answer["sec-websocket-extensions"], "permessage-deflate");
    }

    #[test]
    fn only_http_1_1_with_the_connection_option_upgrades() {
        let headers = websocket_request();
        assert_eq!(requested_upgrade(Version::HTTP_10, &headers), None);
        assert_eq!(requested_upgrade(Version::HTTP_2, &headers), None);
        let mut no_option = headers.clone();
        no_option.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(requested_upgrade(Version::HTTP_11, &no_option), None);
        let mut no_protocol = headers;
        no_protocol.remove(header::UPGRADE);
        assert_eq!(requested_upgrade(Version::HTTP_11, &no_protocol), None);
    }

    #[test]
    fn http2_gets_host_and_one_cookie_line() {
        let authority = Authority::from_static("example.test:8443");
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        from_http2(&mut headers, Some(&authority));
        assert_eq!(headers[header::HOST], "example.test:8443");
        assert_eq!(
            headers.get_all(header::COOKIE).iter().collect::<Vec<_>>(),
            ["a=1; b=2"]
        );

        let mut kept = HeaderMap::new();
        kept.insert(header::HOST, HeaderValue::from_static("sent.test"));
        kept.insert(header::COOKIE, HeaderValue::from_static("a=1"));
        from_http2(&mut kept, Some(&authority));
        assert_eq!(kept[header::HOST], "sent.test");
        assert_eq!(kept[header::COOKIE], "a=1");
    }
}
