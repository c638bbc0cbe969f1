//! Fuzzes the proxy's request-header rewrite: whatever headers a client sends, the app gets
//! exactly one MS-ASPNETCORE-TOKEN (ours), no other MS-ASPNETCORE-* header, no hop-by-hop
//! header (but Connection/Upgrade on an upgrade), and X-Forwarded-For/Proto ending with ours.

#![no_main]

use ancm::proxy::{rewrite_request_headers, ClientInfo};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks an upgrade or not; the rest are `name: value` lines.
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value.trim_ascii())) else {
            continue;
        };
        headers.append(name, value);
    }
    let host = headers.get(http::header::HOST).cloned();
    let token = HeaderValue::from_static("0f8fad5b-d9cb-469f-a165-70867728950e");
    let client = ClientInfo {
        forwarded_for: HeaderValue::from_static("127.0.0.1:5017"),
        proto: HeaderValue::from_static("http"),
        client_cert: None,
        front: HeaderValue::from_static("127.0.0.1:8080"),
    };
    let upgrade = (mode & 1 == 1).then(|| HeaderValue::from_static("websocket"));
    rewrite_request_headers(&mut headers, &token, &client, upgrade.as_ref());

    let tokens: Vec<_> = headers.get_all("ms-aspnetcore-token").iter().collect();
    assert_eq!(tokens, [&token]);
    for name in headers.keys() {
        let name = name.as_str();
        assert!(!name.starts_with("ms-aspnetcore") || name == "ms-aspnetcore-token", "{name}");
        assert!(!["keep-alive", "proxy-connection", "te", "transfer-encoding"].contains(&name), "{name}");
        if upgrade.is_none() {
            assert!(name != "connection" && name != "upgrade", "{name}");
        }
    }
    let forwarded_for = headers.get_all("x-forwarded-for").iter().collect::<Vec<_>>();
    assert_eq!(forwarded_for.len(), 1);
    assert!(forwarded_for[0].as_bytes().ends_with(b"127.0.0.1:5017"));
    let proto = headers.get_all("x-forwarded-proto").iter().collect::<Vec<_>>();
    assert_eq!(proto.len(), 1);
    assert!(proto[0].as_bytes().ends_with(b"http"));
    assert_eq!(headers.get(http::header::HOST).cloned(), host);
});
