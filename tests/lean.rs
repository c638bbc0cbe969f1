use crate::support::{both_paths, raw_exchange, Ancm, AppDir, ProxyPath};

/// The sample app's `/echo` answers (JSON bodies) in a raw exchange's text, in order.
fn echoes_in(answer: &str) -> Vec<serde_json::Value> {
    answer
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|response| {
            assert!(response.starts_with("200"), "{response}");
            let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            // A chunked body: the JSON is on the line after the chunk size.
            let json = body
                .lines()
                .find(|line| line.starts_with('{'))
                .unwrap_or_else(|| panic!("no JSON in {response}"));
            serde_json::from_str(json).expect("echo JSON")
        })
        .collect()
}

fn started() -> (AppDir, Ancm) {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    (app, ancm)
}

both_paths! {
    fn pipelined_requests_are_answered_in_order_with_the_header_contract(path) {
        let app = AppDir::new("", &[]);
        let ancm = Ancm::run_app_on(path, &app, &[]);
        ancm.wait_ready();
        let requests = "GET /echo?n=1 HTTP/1.1\r\nHost: site\r\nMS-ASPNETCORE-TOKEN: forged\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n\
                        POST /echo?n=2 HTTP/1.1\r\nHost: site\r\nContent-Length: 5\r\nConnection: keep-alive, Keep-Alive\r\nKeep-Alive: 5\r\n\r\nhello\
                        GET /echo?n=3 HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n";
        let answer = raw_exchange(ancm.addr(), requests.as_bytes());
        let echoes = echoes_in(&answer);
        let queries: Vec<_> = echoes.iter().map(|e| e["query"].clone()).collect();
        assert_eq!(queries, ["n=1", "n=2", "n=3"], "{answer}");
        assert_eq!(echoes[1]["bodyLength"], 5);
        for echo in &echoes {
            let headers = echo["headers"].as_array().expect("headers");
            let names: Vec<&str> = headers.iter().filter_map(|h| h[0].as_str()).collect();
            assert!(
                !names.contains(&"connection") && !names.contains(&"keep-alive"),
                "{names:?}"
            );
            let token: Vec<_> = headers
                .iter()
                .filter(|h| h[0] == "ms-aspnetcore-token")
                .collect();
            assert_eq!(token.len(), 1);
            assert_ne!(token[0][1], "forged");
            let host: Vec<_> = headers.iter().filter(|h| h[0] == "host").collect();
            assert_eq!(host.len(), 1);
            assert_eq!(host[0][1], "site");
        }
        let forwarded = |echo: &serde_json::Value| {
            echo["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .find(|h| h[0] == "x-forwarded-for")
                .and_then(|h| h[1].as_str())
                .map(str::to_owned)
                .expect("X-Forwarded-For")
        };
        let first = forwarded(&echoes[0]);
        assert!(first.starts_with("10.0.0.1, 127.0.0.1:"), "{first}");
        assert!(forwarded(&echoes[2]).starts_with("127.0.0.1:"));
        // The last request asked to close: the answer says so, and the connection ended.
        assert!(answer.trim_end().ends_with('}') || answer.ends_with("0\r\n\r\n"));
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
        ancm.assert_lean_served("pipelined requests");
    }
}

#[test]
fn a_connection_goes_to_hyper_at_the_first_request_the_lean_path_does_not_take() {
    let (_app, ancm) = started();
    // A plain GET, then a chunked POST (hyper's from there on), then HTTP/1.0 and a plain GET
    // again: all answered in order on one connection, bodies whole.
    let requests = "GET /echo?n=1 HTTP/1.1\r\nHost: site\r\n\r\n\
                    POST /echo?n=2 HTTP/1.1\r\nHost: site\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
                    GET /echo?n=3 HTTP/1.1\r\nHost: site\r\n\r\n\
                    GET /echo?n=4 HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(ancm.addr(), requests.as_bytes());
    let echoes = echoes_in(&answer);
    let queries: Vec<_> = echoes.iter().map(|e| e["query"].clone()).collect();
    assert_eq!(queries, ["n=1", "n=2", "n=3", "n=4"], "{answer}");
    assert_eq!(echoes[1]["bodyLength"], 5);

    // A head with bare LF line ends goes hyper's way too, and reaches the app mended.
    let answer = raw_exchange(
        ancm.addr(),
        b"GET /echo?n=5 HTTP/1.1\nHost: site\nX-Mark: lf\nConnection: close\n\n",
    );
    let mended = echoes_in(&answer);
    assert_eq!(mended[0]["query"], "n=5", "{answer}");
    assert!(mended[0]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|h| h[0] == "x-mark" && h[1] == "lf"));
}

/// `ANCM_LEAN=off` is the operator's switch for the lean path: every request then takes
/// hyper's path. The two are told apart by the response head: the lean path passes the app's
/// header names on as written, hyper's writes them in lower case.
#[test]
fn ancm_lean_off_sends_every_request_through_hyper_path() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/framing.py");
    let app = AppDir::new(
        &format!(r#"processPath="python3" arguments="-u {script}""#),
        &[],
    );
    for (switch, header) in [
        (None, "\r\nX-Written-As: This\r\n"),
        (Some("on"), "\r\nX-Written-As: This\r\n"),
        (Some("off"), "\r\nx-written-as: This\r\n"),
        (Some("OFF"), "\r\nx-written-as: This\r\n"),
    ] {
        let mut command = std::process::Command::new(crate::support::ancm_bin());
        command.env("ANCM_LOG", "info").env_remove("ANCM_LEAN");
        if let Some(value) = switch {
            command.env("ANCM_LEAN", value);
        }
        let ancm = Ancm::run_app_with(command, &app, &[]);
        ancm.wait_ready();
        let answer = raw_exchange(
            ancm.addr(),
            b"GET /case HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.contains(header), "ANCM_LEAN={switch:?}: {answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    }
}

/// A value other than on or off is named in a warning and leaves the lean path on.
#[test]
fn an_unknown_ancm_lean_value_is_warned_about_and_ignored() {
    let app = AppDir::new("", &[]);
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("ANCM_LEAN", "sometimes");
    let ancm = Ancm::run_app_with(command, &app, &[]);
    ancm.wait_ready();
    let line = ancm.wait_stderr("the warning", |l| l.contains("ANCM_LEAN"));
    assert!(
        line.contains("sometimes") && line.contains("on and off"),
        "{line}"
    );
}

/// The check the two-path specs make, that the lean path served them, is not vacuous: a request
/// the lean path hands to hyper's (its Connection header names another header) fails it.
#[test]
#[should_panic(expected = "the lean path handed 1 connection(s) to hyper's")]
fn the_lean_served_check_sees_a_request_handed_to_hyper() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app_on(ProxyPath::Lean, &app, &[]);
    ancm.wait_ready();
    let answer = raw_exchange(
        ancm.addr(),
        b"GET /echo HTTP/1.1\r\nHost: site\r\nX-Hop: 1\r\nConnection: x-hop, close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    ancm.assert_lean_served("a request naming a header in Connection");
}

/// ancm in front of tests/apps/framing.py with `args`, the lean path on or (`ANCM_LEAN=off`)
/// off, ready; and the app's pid.
fn framing_app(lean: bool, args: &[&str]) -> (AppDir, Ancm, u32) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/framing.py");
    let app = AppDir::new(
        &format!(r#"processPath="python3" arguments="-u {script}""#),
        &[],
    );
    let mut command = std::process::Command::new(crate::support::ancm_bin());
    command.env("ANCM_LOG", "info").env_remove("ANCM_LEAN");
    if !lean {
        command.env("ANCM_LEAN", "off");
    }
    let mut all = vec![app.path().to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let ancm = Ancm::run_with(command, &all);
    let (pid, _) = ancm.wait_ready();
    (app, ancm, pid)
}

/// `--app-path` (with `--strip-app-path`) is applied on the lean path: a request under the base
/// is forwarded there, without the base (the app's `/case` answers it, its header name as the app
/// wrote it); a request outside gets ancm's 404 (from hyper's path, as every refusal).
#[test]
fn the_lean_path_serves_requests_under_the_app_path() {
    for (lean, header) in [
        (true, "\r\nX-Written-As: This\r\n"),
        (false, "\r\nx-written-as: This\r\n"),
    ] {
        let (_app, ancm, _) = framing_app(lean, &["--app-path", "/shop", "--strip-app-path"]);
        let answer = raw_exchange(
            ancm.addr(),
            b"GET /Shop/case HTTP/1.1\r\nHost: site\r\n\r\n\
              GET /case HTTP/1.1\r\nHost: site\r\n\r\n\
              GET /shop/x?q=1 HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n",
        );
        let answers: Vec<&str> = answer.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 3, "{answer}");
        assert!(answers[0].contains(header), "lean {lean}: {answer}");
        assert!(answers[0].ends_with("\r\n\r\nok"), "{answer}");
        assert!(answers[1].starts_with("404"), "{answer}");
        assert!(answers[1].contains("only paths under /shop"), "{answer}");
        assert!(answers[2].ends_with("ok /x?q=1"), "{answer}");
    }
}

/// `--access-log` is written on the lean path (which keeps serving: the app's header name
/// arrives as written), its lines the same as hyper's path writes for the same requests but for
/// the time, the port and the time taken.
#[test]
fn access_log_lines_are_the_same_on_both_paths() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut lines = Vec::new();
    for (lean, header) in [
        (true, "\r\nX-Written-As: This\r\n"),
        (false, "\r\nx-written-as: This\r\n"),
    ] {
        let log = logs.path().join(format!("access-{lean}.log"));
        let (_app, ancm, pid) = framing_app(lean, &["--access-log", log.to_str().expect("utf-8")]);
        let answer = raw_exchange(
            ancm.addr(),
            b"GET /case HTTP/1.1\r\nHost: site\r\nUser-Agent: test agent/1.0\r\n\r\n\
              POST /upload HTTP/1.1\r\nHost: site\r\nContent-Length: 3\r\n\r\nabc\
              GET /none?x=1&y=two HTTP/1.1\r\nHost: site\r\nUser-Agent: a\r\nUser-Agent: b\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.contains(header), "lean {lean}: {answer}");
        let text = crate::support::wait_file(&log, "three request lines", |text| {
            text.lines().filter(|l| !l.starts_with('#')).count() >= 3
        });
        let masked: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|line| {
                let mut fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields.len(), 12, "{line}");
                assert!(fields[10].parse::<u64>().is_ok(), "{line}");
                assert_eq!(fields[11], pid.to_string(), "{line}");
                for at in [0, 1, 6, 10, 11] {
                    fields[at] = "*";
                }
                fields.join(" ")
            })
            .collect();
        lines.push(masked);
    }
    assert_eq!(
        lines[0],
        [
            "* * 127.0.0.1 GET /case - * 127.0.0.1 test+agent/1.0 200 * *",
            "* * 127.0.0.1 POST /upload - * 127.0.0.1 - 200 * *",
            "* * 127.0.0.1 GET /none x=1&y=two * 127.0.0.1 a 200 * *",
        ],
        "lean path"
    );
    assert_eq!(lines[0], lines[1], "lean path, then hyper's");
}
