//! Regression tests for the fuzz targets in fuzz/: every input a fuzzer found to fail, plus
//! hand-made hostile inputs, fed to the same public functions with the same checks.
//!
//! Self-contained (no `mod support`), so it can be its own test target:
//! `[[test]] name = "fuzz_regressions" path = "tests/fuzz_regressions.rs"`. The lean reader's
//! differential check is the fuzz target's own code, in framing_check/.

mod framing_check;

use std::path::Path;

use ancm::config::{parse_web_config, split_command_line, ConfigError};

/// The pretend web.config the fuzz target uses: its folder does not exist, so resolving
/// `processPath` and arguments against the app folder finds nothing.
const WEB_CONFIG: &str = "/nonexistent-fuzz-app/web.config";

/// What fuzz/fuzz_targets/web_config.rs checks: no panic (the test fails if there is one),
/// and an error says something and, when it is about the file's content, names the file.
fn check_web_config(bytes: &[u8]) -> Result<ancm::config::AppConfig, String> {
    match parse_web_config(Path::new(WEB_CONFIG), bytes) {
        Ok(config) => Ok(config),
        Err(err) => {
            let text = err.to_string();
            assert!(!text.is_empty(), "empty message for {err:?}");
            if matches!(err, ConfigError::Xml { .. } | ConfigError::Invalid { .. }) {
                assert!(
                    text.contains(WEB_CONFIG),
                    "message does not name the file: {text:?}"
                );
            }
            Err(text)
        }
    }
}

/// What fuzz/fuzz_targets/command_line.rs checks.
fn check_split(line: &str) -> Vec<String> {
    let args = split_command_line(line);
    let chars = line.chars().count();
    assert!(
        args.len() <= chars + 1,
        "{} args from {chars} chars: {line:?}",
        args.len()
    );
    if !line.contains(['"', '\\']) {
        let words: Vec<&str> = line
            .split([' ', '\t', '\n', '\r'])
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(args, words, "plain words split differently: {line:?}");
    }
    let special = |c: &char| matches!(c, ' ' | '\t' | '\n' | '\r' | '"' | '\\');
    let plain_in = line.chars().filter(|c| !special(c)).count();
    let plain_out = args
        .iter()
        .flat_map(|a| a.chars())
        .filter(|c| !special(c))
        .count();
    assert_eq!(plain_in, plain_out, "plain characters changed: {line:?}");
    args
}

/// `text` inside the elements a web.config needs, with `<aspNetCore>`'s attributes given.
fn web_config_with(attributes: &str, inner: &str) -> String {
    format!(
        "<configuration><system.webServer><aspNetCore {attributes}>{inner}</aspNetCore>\
         </system.webServer></configuration>"
    )
}

fn utf16le(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

#[test]
fn web_config_survives_hostile_input() {
    let valid = web_config_with(r#"processPath="dotnet" arguments=".\App.dll""#, "");

    // Empty, binary and truncated files.
    check_web_config(b"").expect_err("empty file");
    check_web_config(&[0xFF]).expect_err("one byte");
    check_web_config(&[0xEF, 0xBB, 0xBF]).expect_err("BOM only");
    check_web_config(&[0xEF, 0xBB, 0xBF, 0xC3]).expect_err("BOM then half a character");
    check_web_config(&[0x00; 64]).expect_err("NULs");
    check_web_config(&valid.as_bytes()[..valid.len() / 2]).expect_err("cut in half");
    check_web_config(valid.as_bytes()).expect("the valid file parses");

    // UTF-16: BOM only, odd length (half a code unit at the end), lone surrogates, big-endian.
    check_web_config(&[0xFF, 0xFE]).expect_err("UTF-16 BOM only");
    check_web_config(&[0xFE, 0xFF, 0x00]).expect_err("UTF-16 BE, odd length");
    let mut odd = utf16le(&valid);
    odd.push(b'<');
    // Either answer is fine here, so long as it is one: the point is no panic.
    let _ = check_web_config(&odd);
    let mut high_alone = utf16le("<configuration>");
    high_alone.extend([0x00, 0xD8]);
    high_alone.extend(&utf16le("</configuration>")[2..]);
    check_web_config(&high_alone).expect_err("lone high surrogate");
    let mut low_alone = vec![0xFF, 0xFE, 0x00, 0xDC];
    low_alone.extend(&utf16le(&valid)[2..]);
    check_web_config(&low_alone).expect_err("lone low surrogate");
    let mut big_endian = vec![0xFE, 0xFF];
    big_endian.extend(valid.encode_utf16().flat_map(u16::to_be_bytes));
    check_web_config(&big_endian).expect("UTF-16 BE parses");

    // Deep nesting, inside and outside the element ancm reads.
    let depth = 20_000;
    let deep = format!("{}{}", "<x>".repeat(depth), "</x>".repeat(depth));
    let _ = check_web_config(web_config_with(r#"processPath="app""#, &deep).as_bytes());
    let deep_root = format!(
        "<configuration>{}{}</configuration>",
        "<system.webServer>".repeat(depth),
        "</system.webServer>".repeat(depth)
    );
    check_web_config(deep_root.as_bytes()).expect_err("no <aspNetCore> at the right depth");
    let unclosed = "<a>".repeat(depth);
    check_web_config(unclosed.as_bytes()).expect_err("unclosed");

    // Huge attribute values, of every kind the config interprets.
    let huge = "9".repeat(1 << 20);
    for attribute in [
        "processPath",
        "arguments",
        "startupTimeLimit",
        "shutdownTimeLimit",
        "rapidFailsPerMinute",
        "requestTimeout",
        "stdoutLogFile",
        "processesPerApplication",
        "hostingModel",
    ] {
        let attributes = if attribute == "processPath" {
            format!(r#"processPath="{huge}""#)
        } else {
            format!(r#"processPath="app" {attribute}="{huge}""#)
        };
        let _ = check_web_config(web_config_with(&attributes, "").as_bytes());
    }
    let quotes = format!(
        r#"processPath="app" arguments="{}""#,
        "&quot;\\".repeat(100_000)
    );
    check_web_config(web_config_with(&quotes, "").as_bytes()).expect("quotes and backslashes");
    let percents = format!(r#"processPath="%{}%""#, "%".repeat(100_000));
    let _ = check_web_config(web_config_with(&percents, "").as_bytes());

    // Odd numbers: signs, spaces, overflow, TimeSpans at and past their limits.
    for timeout in [
        "-0",
        "+5",
        " 5 ",
        "00:00:00.",
        ".00:00:00",
        "1.",
        "99999999999999999999:00:00",
        "18446744073709551615:59:59",
        "0.18446744073709551615:00:00",
        "00:00:59.9999999",
        "00:00:59.99999999",
        "14.23:59:59.9999999",
        "15.00:00:00.0000001",
        "-00:00:00",
        "\u{0660}0:00:00",
        "٠٠:٠٠:٠٠",
    ] {
        let attributes = format!(r#"processPath="app" requestTimeout="{timeout}""#);
        let _ = check_web_config(web_config_with(&attributes, "").as_bytes());
    }

    // `<location>` with paths that do and do not name this app; none may panic.
    for path in [
        ".", "", " ", "./", ".\\", "..", "/", "\\", "~", "&#x2E;", "%2E", ".\u{0}", "💥",
    ] {
        let text = format!(
            r#"<configuration><location path="{path}"><system.webServer><aspNetCore processPath="app"/></system.webServer></location></configuration>"#
        );
        let _ = check_web_config(text.as_bytes());
    }

    // Environment variables and handler settings: empty, duplicate, odd names, ASPNETCORE_PORT.
    for inner in [
        r#"<environmentVariables><environmentVariable name="" value="x"/></environmentVariables>"#,
        r#"<environmentVariables><environmentVariable name=" "/></environmentVariables>"#,
        r#"<environmentVariables><environmentVariable name="A=B" value="x"/></environmentVariables>"#,
        r#"<environmentVariables><environmentVariable name="ASPNETCORE_PORT" value="99999999999999999999"/></environmentVariables>"#,
        r#"<environmentVariables><environmentVariable name="ASPNETCORE_PORT" value="-1"/></environmentVariables>"#,
        r#"<environmentVariables><clear/><clear/><environmentVariable/></environmentVariables>"#,
        r#"<handlerSettings><handlerSetting name="debugLevel" value="ééé,,,FILE,ÉRROR,tr"/></handlerSettings>"#,
        r#"<handlerSettings><handlerSetting name="debugFile" value="\\?\%%%"/></handlerSettings>"#,
        r#"<handlerSettings><handlerSetting/></handlerSettings>"#,
    ] {
        let _ = check_web_config(web_config_with(r#"processPath="app""#, inner).as_bytes());
    }

    // Entities: a reference loop, and a small expansion.
    let entities = r#"<!DOCTYPE configuration [<!ENTITY a "&b;"><!ENTITY b "&a;">]>
<configuration><system.webServer><aspNetCore processPath="&a;"/></system.webServer></configuration>"#;
    check_web_config(entities.as_bytes()).expect_err("entity loop");
    let laughs = r#"<!DOCTYPE configuration [<!ENTITY l "lol"><!ENTITY l1 "&l;&l;&l;&l;&l;&l;&l;&l;">
<!ENTITY l2 "&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;"><!ENTITY l3 "&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;">]>
<configuration><system.webServer><aspNetCore processPath="&l3;"/></system.webServer></configuration>"#;
    let _ = check_web_config(laughs.as_bytes());

    // Two elements, and XDT transform files.
    let two = r#"<configuration><system.webServer><aspNetCore processPath="a"/><aspNetCore processPath="b"/></system.webServer></configuration>"#;
    check_web_config(two.as_bytes()).expect_err("two elements");
    let xdt = r#"<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"><system.webServer><aspNetCore xdt:Transform="SetAttributes"/></system.webServer></configuration>"#;
    check_web_config(xdt.as_bytes()).expect_err("a transform is not a web.config");
}

#[test]
fn command_line_splitter_survives_hostile_input() {
    assert!(check_split("").is_empty());
    assert!(check_split(" \t\r\n").is_empty());

    // Unbalanced quotes run to the end of the line.
    assert_eq!(check_split(r#"a "b c"#), ["a", "b c"]);
    assert_eq!(check_split(r#"""#), [""]);
    assert_eq!(check_split(r#"""""#), [r#"""#]);
    check_split(&"\"".repeat(1001));
    check_split(&"\" ".repeat(1001));

    // 1000 backslashes: literal alone; before a quote, halved (then an odd one escapes it).
    let slashes = "\\".repeat(1000);
    assert_eq!(check_split(&slashes), [slashes.as_str()]);
    assert_eq!(check_split(&format!("{slashes}\"")), ["\\".repeat(500)]);
    assert_eq!(
        check_split(&format!("{slashes}\\\"")),
        [format!("{}\"", "\\".repeat(500))]
    );
    assert_eq!(
        check_split(&format!("\"{slashes}\" x")),
        ["\\".repeat(500), "x".to_owned()]
    );
    check_split(&"\\\" ".repeat(1000));

    // Unicode: multi-byte characters next to the syntax, and spaces the C runtime keeps.
    assert_eq!(check_split("é\"ü ö\"\\ß"), ["éü ö\\ß"]);
    assert_eq!(check_split("a\u{3000}b\u{a0}c"), ["a\u{3000}b\u{a0}c"]);
    check_split("\u{0}\"\u{0}\\\u{0}");

    // Long input of everything mixed.
    check_split(&"a\\\\\"b \"\" \\\"c\t".repeat(10_000));
}

/// What fuzz/fuzz_targets/request_headers.rs checks, for hand-made hostile header sets.
#[test]
fn request_header_rewrite_holds_for_hostile_headers() {
    use ancm::proxy::{rewrite_request_headers, ClientInfo};
    use http::header::{HeaderMap, HeaderName, HeaderValue};

    let token = HeaderValue::from_static("0f8fad5b-d9cb-469f-a165-70867728950e");
    let client = ClientInfo {
        forwarded_for: HeaderValue::from_static("127.0.0.1:5017"),
        proto: HeaderValue::from_static("http"),
        client_cert: None,
        front: HeaderValue::from_static("127.0.0.1:8080"),
    };
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("MS-ASPNETCORE-TOKEN", "forged"),
            ("ms-aspnetcore-token", "again"),
            ("Ms-AspNetCore-WinAuthToken", "0x1"),
        ],
        &[
            ("connection", "ms-aspnetcore-token, x-forwarded-for, host"),
            ("x-forwarded-for", "1.1.1.1:1"),
            ("host", "example.test"),
        ],
        &[
            ("connection", ",,, ,"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
        ],
        &[
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "close"),
        ],
        &[
            ("x-forwarded-for", "a"),
            ("x-forwarded-for", "b"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http"),
        ],
        &[
            ("ms-aspnetcore", "bare prefix"),
            ("ms-aspnetcorex", "longer"),
            ("host", "example.test"),
        ],
    ];
    for (i, case) in cases.iter().enumerate() {
        for upgrade in [None, Some(HeaderValue::from_static("websocket"))] {
            let mut headers = HeaderMap::new();
            for (name, value) in *case {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    HeaderValue::from_str(value).expect("value"),
                );
            }
            let host = headers.get("host").cloned();
            rewrite_request_headers(&mut headers, &token, &client, upgrade.as_ref());
            let tokens: Vec<_> = headers.get_all("ms-aspnetcore-token").iter().collect();
            assert_eq!(tokens, [&token], "case {i}");
            for name in headers.keys() {
                let name = name.as_str();
                assert!(
                    !name.starts_with("ms-aspnetcore") || name == "ms-aspnetcore-token",
                    "case {i}: {name}"
                );
                assert!(
                    !["keep-alive", "proxy-connection", "te", "transfer-encoding"].contains(&name),
                    "case {i}: {name}"
                );
                if upgrade.is_none() {
                    assert!(
                        name != "connection" && name != "upgrade",
                        "case {i}: {name}"
                    );
                }
            }
            let forwarded_for: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
            assert_eq!(forwarded_for.len(), 1, "case {i}");
            assert!(
                forwarded_for[0].as_bytes().ends_with(b"127.0.0.1:5017"),
                "case {i}"
            );
            assert_eq!(headers.get("host").cloned(), host, "case {i}: Host is kept");
        }
    }
}

/// A request the lean path takes, to put before and after hostile ones.
const PLAIN_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const PLAIN_POST: &[u8] = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";

/// Each alone, after requests the lean path takes (so the hostile bytes are where it stops
/// and hands the connection to hyper) and before one.
fn check_framing_around(shape: &[u8]) {
    framing_check::check(shape);
    for before in [PLAIN_GET, PLAIN_POST] {
        framing_check::check(&[before, shape].concat());
        framing_check::check(&[before, before, shape, PLAIN_GET].concat());
    }
    framing_check::check(&[shape, PLAIN_GET].concat());
}

#[test]
fn lean_reader_and_hyper_agree_on_plain_requests() {
    let pipelined = [PLAIN_GET, PLAIN_POST, PLAIN_GET].concat();
    // The check is not vacuous: the lean path takes all three, and hyper reads them.
    let (lean, end, closed) = framing_check::lean_readings(&pipelined);
    assert_eq!((lean.len(), end, closed), (3, pipelined.len(), false));
    assert_eq!(framing_check::hyper_readings(&pipelined).len(), 3);
    framing_check::check(&pipelined);
    // The last request's body not all there yet: taken up to it, the rest waits for hyper.
    let partial = [PLAIN_GET, &PLAIN_POST[..PLAIN_POST.len() - 1]].concat();
    let (lean, end, _) = framing_check::lean_readings(&partial);
    assert_eq!((lean.len(), end), (1, PLAIN_GET.len()));
    check_framing_around(&partial);
    let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n";
    let (lean, _, closed) = framing_check::lean_readings(&[close, PLAIN_GET].concat());
    assert_eq!((lean.len(), closed), (1, true));
    check_framing_around(close);
}

/// Requests the lean path takes that exercise each rule of the header contract: what the app
/// gets from each must be the same on both paths (framing_check compares the heads written).
const CONTRACT_SHAPES: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: keep-alive\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nCONNECTION: Keep-Alive\r\nkeep-alive: 5\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nMS-ASPNETCORE-TOKEN: forged\r\nms-aspnetcore-user: x\r\nMs-AspNetCore-ClientCert: y\r\nMS-ASPNETCOREX: z\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-Proto: https\r\n\r\n",
    "GET / HTTP/1.1\r\nX-Forwarded-Proto: a\r\nHost: a\r\nx-forwarded-proto: b\r\nForwarded: for=192.0.2.1\r\nX-Forwarded-Host: evil\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: a\r\n\r\n",
    "PUT /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "PATCH /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "DELETE /p HTTP/1.1\r\nHost: a\r\n\r\n",
    "OPTIONS /p HTTP/1.1\r\nHost: a\r\n\r\n",
    "PURGE /p HTTP/1.1\r\nHost: a\r\n\r\n",
    "HEAD /p?q=1&r=%20 HTTP/1.1\r\nHost: a:8080\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nAccept: text/html\r\ncookie: b=2\r\nACCEPT: */*\r\nCookie: c=3\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX-Tab:\tv\r\nX-Spaces:   v w\r\nX-Text: \u{e9}t\u{e9}\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive\r\nX-App: 1\r\n\r\nabc",
];

#[test]
fn lean_and_hyper_give_the_app_the_same_head() {
    for shape in CONTRACT_SHAPES {
        let bytes: Vec<u8> = shape.chars().map(|c| c as u8).collect();
        // Not vacuous: the lean path takes each of them.
        let (lean, _, _) = framing_check::lean_readings(&bytes);
        assert_eq!(lean.len(), 1, "the lean path leaves {shape:?} to hyper");
        check_framing_around(&bytes);
    }
}

/// App response heads exercising each rule of the response contract: framing, hop-by-hop
/// fields, Connection and its options, reason phrases, bodiless statuses, repeated fields.
const RESPONSE_SHAPES: &[&str] = &[
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n",
    // Found by fuzzing: a Date the app's Connection names.
    "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nConnection: date\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: x-hop, close\r\nX-Hop: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
    "HTTP/1.1 204 No Content\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 7\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
    "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\nVary: Accept\r\nset-cookie: c=3\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Tab:\tv\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 500 Internal Server Error\r\nServer: Kestrel\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    // Found by the response_heads fuzz target: Content-Lengths that differ were refused on the
    // lean path but passed on hyper's when nothing else read them (a HEAD, a chunked body).
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nContent-Length: 1, 2\r\n\r\n",
];

#[test]
fn lean_and_hyper_give_the_client_the_same_response_head() {
    for shape in RESPONSE_SHAPES {
        framing_check::check_response(shape.as_bytes());
    }
    // Found by fuzzing: a status with no reason of its own, and a reason httparse cannot read
    // (obs-text) or none.
    for shape in [
        &b"HTTP/1.1 299 Custom \xd2eason\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 \xd2K\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 299 Custom Reason\r\nContent-Length: 0\r\n\r\n",
        // Two Connection lines kept by forwardResponseConnectionHeader: hyper's server joins
        // them into one, a list that says the same.
        b"HTTP/1.1 204 No Content\r\nConnection: a\r\nConnection: b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: a\r\nConnection: \r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: connection\nX-Hop: 1\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: x-hop, close\xff\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n",
    ] {
        framing_check::check_response(shape);
    }
}

#[test]
fn lean_reader_and_hyper_agree_on_smuggling_shapes() {
    let te = |value: &str| {
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {value}\r\n\r\n0\r\n\r\n")
    };
    let cl =
        |value: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\nabc");
    let mut shapes: Vec<Vec<u8>> = [
        // CL and TE together, either order.
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        // Two Content-Lengths, equal and not.
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 0\r\n\r\nabc",
        // Space before the colon, and folded onto the line before.
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n 0\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Content-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc",
        // Line ends: bare CR, bare LF, mixed.
        "GET / HTTP/1.1\r\nHost: a\rContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\nHost: a\n\n",
        "POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc",
        "POST / HTTP/1.1\r\nHost: a\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\n\r\nabc",
        // Chunked bodies hyper has to refuse or read whole.
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"\r\nx\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;\nx\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX: y\r\n\r\n",
        // Versions and target forms the lean path leaves to hyper.
        "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "get / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        // Host missing or twice, Expect, Upgrade, an extension method with a body.
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "PURGE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for value in [
        "chunked",
        "CHUNKED",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        "xchunked",
        "\tchunked",
        "chunked\r\nTransfer-Encoding: identity",
    ] {
        shapes.push(te(value).into_bytes());
    }
    // Content-Length: signed, listed, spaced, hex, zero-padded, longer than 15 digits, and
    // more than a u64 holds.
    for value in [
        "+3",
        "-1",
        "3, 3",
        "3,3",
        "1 0",
        "3 ",
        "0x3",
        "0003",
        "000000000000003",
        "0000000000000003",
        "18446744073709551619",
        "",
    ] {
        shapes.push(cl(value).into_bytes());
    }
    shapes.push(b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n".to_vec());
    shapes.push(b"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe\r\n\r\n".to_vec());
    shapes.push(b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n".to_vec());
    // Heads about hyper's buffer limit, and more header lines than the lean path parses.
    for len in [16_300, 16_360, 16_400] {
        let value = "v".repeat(len - 30);
        shapes.push(format!("GET / HTTP/1.1\r\nHost: a\r\nX: {value}\r\n\r\n").into_bytes());
    }
    let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    shapes.push(format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes());
    for shape in &shapes {
        check_framing_around(shape);
    }
}

/// The fuzz target's committed seed corpus, every file of it.
#[test]
fn lean_reader_and_hyper_agree_on_the_seed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/request_framing");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed folder") {
        let path = entry.expect("a seed").path();
        let bytes = std::fs::read(&path).expect("a seed's bytes");
        framing_check::check(&bytes);
        seen += 1;
    }
    assert!(seen > 0, "no seeds in {}", dir.display());
}
