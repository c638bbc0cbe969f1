//! Regression tests for the fuzz targets in fuzz/: every input a fuzzer found to fail, plus
//! hand-made hostile inputs, fed to the same public functions with the same checks.
//!
//! Self-contained (no `mod support`), so it can be its own test target:
//! `[[test]] name = "fuzz_regressions" path = "tests/fuzz_regressions.rs"`.

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
