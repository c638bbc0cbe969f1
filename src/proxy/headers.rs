//! The header contract between the client, ancm and the app (spec §4.3, §4.5): keep Host, drop
//! client-sent MS-ASPNETCORE-*, set the pairing token, append X-Forwarded-For/Proto, and strip
//! hop-by-hop headers (RFC 9110 §7.6.1) both ways. Repeated response headers are kept.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Per-connection facts the request rewrite needs, computed once per connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// `ip:port`, `[v6]:port`: ANCM always includes the port (spec §4.3).
    pub forwarded_for: HeaderValue,
    /// `http` or `https`.
    pub proto: HeaderValue,
}

const MS_ASPNETCORE: &str = "ms-aspnetcore";
pub(super) const MS_ASPNETCORE_TOKEN: HeaderName = HeaderName::from_static("ms-aspnetcore-token");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Rewrites a client's request headers for the app.
pub(super) fn rewrite_request(headers: &mut HeaderMap, token: &HeaderValue, client: &ClientInfo) {
    strip_hop_by_hop(headers);

    // Only ancm may speak for the module: a client cannot forge the token or a Windows
    // identity, whatever the case of the name.
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(MS_ASPNETCORE))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    headers.insert(MS_ASPNETCORE_TOKEN, token.clone());

    append_list(headers, X_FORWARDED_FOR, &client.forwarded_for);
    append_list(headers, X_FORWARDED_PROTO, &client.proto);
}

/// Rewrites the app's response headers for the client. With forwardResponseConnectionHeader,
/// the app's Connection header itself goes through (spec §4.5).
pub(super) fn rewrite_response(headers: &mut HeaderMap, keep_connection: bool) {
    let connection = if keep_connection {
        headers.remove(header::CONNECTION)
    } else {
        None
    };
    strip_hop_by_hop(headers);
    if let Some(value) = connection {
        headers.insert(header::CONNECTION, value);
    }
}

/// `existing, ours` in one header line, as ANCM writes it; all existing lines are joined.
fn append_list(headers: &mut HeaderMap, name: HeaderName, ours: &HeaderValue) {
    let mut values = headers.get_all(&name).iter();
    let Some(first) = values.next() else {
        headers.insert(name, ours.clone());
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for value in values.chain(std::iter::once(ours)) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(name, value);
    }
}

/// Removes the headers that describe one connection, not the message: those named in
/// Connection, and Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding and Upgrade.
/// hyper sets the framing of each hop itself.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientInfo {
        ClientInfo {
            forwarded_for: HeaderValue::from_static("[::1]:5017"),
            proto: HeaderValue::from_static("http"),
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

        rewrite_request(&mut headers, &HeaderValue::from_static("tok"), &client());

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
}
