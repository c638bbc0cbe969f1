use std::convert::Infallible;

use crate::support::{client, raw_exchange, Ancm, AppDir};

fn sample() -> (AppDir, Ancm) {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    (app, ancm)
}

fn raw(ancm: &Ancm, request: &str) -> String {
    raw_exchange(ancm.addr(), request.as_bytes())
}

/// The JSON body of an answer from the sample app's /echo.
fn echo_of(answer: &str) -> serde_json::Value {
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("echo JSON ({e}): {answer}"))
}

fn fields(echo: &serde_json::Value, key: &str, name: &str) -> Vec<String> {
    echo[key]
        .as_array()
        .expect("pairs")
        .iter()
        .filter(|pair| pair[0] == name)
        .filter_map(|pair| pair[1].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn client_trailers_lose_what_headers_lose_over_http1_and_http2() {
    let (_app, ancm) = sample();
    let answer = raw(
        &ancm,
        "POST /echo HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\
         Trailer: MS-ASPNETCORE-TOKEN, X-Forwarded-For, Forwarded, Host, X-Checksum\r\n\r\n\
         5\r\nhello\r\n0\r\n\
         MS-ASPNETCORE-TOKEN: forged\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\
         Host: evil.test\r\nX-Checksum: 42\r\n\r\n",
    );
    let echo = echo_of(&answer);
    assert_eq!(echo["bodyLength"], 5, "{echo}");
    assert_eq!(fields(&echo, "trailers", "x-checksum"), ["42"], "{echo}");
    for gone in [
        "ms-aspnetcore-token",
        "x-forwarded-for",
        "forwarded",
        "host",
    ] {
        assert!(fields(&echo, "trailers", gone).is_empty(), "{gone}: {echo}");
    }

    // HTTP/2: the same trailers in a HEADERS frame after the data.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let echo = runtime.block_on(async {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(ancm.addr())
            .await
            .expect("connect");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(connection);
        let mut trailers = http::HeaderMap::new();
        trailers.insert(
            "ms-aspnetcore-token",
            http::HeaderValue::from_static("forged"),
        );
        trailers.insert("x-forwarded-for", http::HeaderValue::from_static("6.6.6.6"));
        trailers.insert("x-checksum", http::HeaderValue::from_static("42"));
        let frames = vec![
            Ok::<_, Infallible>(http_body::Frame::data(bytes::Bytes::from_static(b"hello"))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let request = http::Request::post(format!("{}/echo", ancm.url))
            .header(
                "trailer",
                "ms-aspnetcore-token, x-forwarded-for, x-checksum",
            )
            .body(body)
            .expect("request");
        let response = sender.send_request(request).await.expect("h2 response");
        assert_eq!(response.status(), 200);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("echo JSON")
    });
    assert_eq!(echo["bodyLength"], 5, "{echo}");
    assert_eq!(fields(&echo, "trailers", "x-checksum"), ["42"], "{echo}");
    for gone in ["ms-aspnetcore-token", "x-forwarded-for"] {
        assert!(fields(&echo, "trailers", gone).is_empty(), "{gone}: {echo}");
    }
}

#[test]
fn the_app_sees_the_host_the_client_asked_for() {
    let (_app, ancm) = sample();
    // HTTP/1.0 may name no site: the app gets the address the client connected to.
    let echo =
        echo_of(&raw(&ancm, "GET /echo HTTP/1.0\r\n\r\n").replacen("HTTP/1.0", "HTTP/1.1", 1));
    assert_eq!(fields(&echo, "headers", "host"), [ancm.addr()], "{echo}");
    // An absolute target naming the site Host names goes to the app as origin-form, with the
    // client's Host as it came.
    let echo = echo_of(&raw(
        &ancm,
        "GET http://SITE.test:80/echo?q=1 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(fields(&echo, "headers", "host"), ["site.test"], "{echo}");
    assert_eq!(echo["path"], "/echo", "{echo}");
    assert_eq!(echo["query"], "q=1", "{echo}");
    // With no Host, an HTTP/1.0 absolute target's authority is the only site named.
    let echo = echo_of(
        &raw(&ancm, "GET http://other.test/echo HTTP/1.0\r\n\r\n")
            .replacen("HTTP/1.0", "HTTP/1.1", 1),
    );
    assert_eq!(fields(&echo, "headers", "host"), ["other.test"], "{echo}");
}

/// ancm on the lean path (the default), and on hyper's alone (`ANCM_LEAN=off`).
fn on_both_paths() -> Vec<(&'static str, AppDir, Ancm)> {
    ["lean", "hyper"]
        .into_iter()
        .map(|path| {
            let app = AppDir::new("", &[]);
            let mut command = std::process::Command::new(crate::support::ancm_bin());
            command.env("ANCM_LOG", "info");
            if path == "hyper" {
                command.env("ANCM_LEAN", "off");
            }
            let ancm = Ancm::run_with(command, &[app.path().to_str().expect("utf-8")]);
            ancm.wait_ready();
            (path, app, ancm)
        })
        .collect()
}

/// How many requests the sample app has had, this question included.
fn requests_seen(ancm: &Ancm) -> String {
    client()
        .get(format!("{}/requests", ancm.url))
        .send()
        .and_then(|r| r.text())
        .expect("request count")
        .trim()
        .to_owned()
}

#[test]
fn a_host_or_target_naming_another_site_and_connection_naming_framing_get_400_on_both_paths() {
    let cases = [
        // The target's authority would otherwise win over Host.
        "GET http://evil/echo HTTP/1.1\r\nHost: good\r\nConnection: close\r\n\r\n",
        "GET http://good:8080/echo HTTP/1.1\r\nHost: good\r\nConnection: close\r\n\r\n",
        "GET http://user@good/echo HTTP/1.1\r\nHost: good\r\nConnection: close\r\n\r\n",
        // Hosts that are not host[:port].
        "GET /echo HTTP/1.1\r\nHost: good@evil/x\r\nConnection: close\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: evil/x\r\nConnection: close\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: good:x\r\nConnection: close\r\n\r\n",
        // Framing or the site named as a Connection option: the body, or Host, would be
        // dropped on the way to the app.
        "POST /echo HTTP/1.1\r\nHost: good\r\nContent-Length: 5\r\nConnection: content-length, close\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: good\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding, close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: good\r\nConnection: host, close\r\n\r\n",
    ];
    for (path, _app, ancm) in on_both_paths() {
        for request in cases {
            let answer = raw(&ancm, request);
            assert!(
                answer.starts_with("HTTP/1.1 400"),
                "{path}: {request:?} got: {answer}"
            );
        }
        // Only the count itself reached the app.
        assert_eq!(
            requests_seen(&ancm),
            "1",
            "{path}: refused requests reached the app"
        );
    }
}

#[test]
fn a_malformed_request_after_a_good_one_gets_400_on_both_paths() {
    for (path, _app, ancm) in on_both_paths() {
        for second in [
            "GARBAGE\r\n\r\n",
            "GET /echo HTTP/1.1\r\nHost: good\r\nBad Header\r\n\r\n",
            "GET /echo HTTP/1.1\r\nHost: good\r\nContent-Length: x\r\n\r\n",
            "GET /echo HTTP/1.1\r\nHost: good@evil/x\r\n\r\n",
        ] {
            let answer = raw(
                &ancm,
                &format!("GET /echo HTTP/1.1\r\nHost: good\r\n\r\n{second}"),
            );
            let statuses: Vec<&str> = answer
                .match_indices("HTTP/1.1 ")
                .map(|(at, _)| &answer[at + 9..at + 12])
                .collect();
            assert_eq!(statuses, ["200", "400"], "{path}: {second:?} got: {answer}");
        }
    }
}

/// --max-request-head holds for a head that arrives whole behind a pipelined request too (hyper
/// parses what is already in its buffer whatever its size), on both paths.
#[test]
fn a_pipelined_head_over_the_limit_gets_431_on_both_paths() {
    let big = "a".repeat(20_000);
    for (path, _app, ancm) in on_both_paths() {
        let answer = raw(
            &ancm,
            &format!(
                "GET /echo HTTP/1.1\r\nHost: good\r\n\r\n\
                 GET /echo HTTP/1.1\r\nHost: good\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
            ),
        );
        let statuses: Vec<&str> = answer
            .match_indices("HTTP/1.1 ")
            .map(|(at, _)| &answer[at + 9..at + 12])
            .collect();
        assert_eq!(statuses, ["200", "431"], "{path}");
    }
}

#[test]
fn requests_no_app_can_mean_are_refused_before_the_app() {
    let (_app, ancm) = sample();
    let cases = [
        ("GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n", "400"),
        (
            "GET /echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
            "400",
        ),
        ("GET * HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n", "400"),
        (
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
            "405",
        ),
        ("TRACE /echo HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n", "405"),
    ];
    for (request, status) in cases {
        let answer = raw(&ancm, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?} got: {answer}"
        );
    }
    let before = client()
        .get(format!("{}/requests", ancm.url))
        .send()
        .and_then(|r| r.text())
        .expect("request count");
    // Only the count itself reached the app.
    assert_eq!(before.trim(), "1", "refused requests reached the app");
    // OPTIONS * is meaningful: it goes to the app.
    let answer = raw(
        &ancm,
        "OPTIONS * HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    assert!(!answer.contains("HTTP Error 400"), "{answer}");
}

#[test]
fn a_get_with_a_chunked_body_forwards_the_body() {
    let (_app, ancm) = sample();
    let echo = echo_of(&raw(
        &ancm,
        "GET /echo HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ));
    assert_eq!(echo["bodyLength"], 11, "{echo}");
}

#[test]
fn a_client_body_broken_part_way_gets_400_as_the_clients_fault() {
    let (_app, ancm) = sample();
    let answer = raw(
        &ancm,
        "POST /upload HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz-not-a-size\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    ancm.wait_stderr("the client's fault in the log", |l| {
        l.contains("the client's request body broke off or was malformed")
    });
    assert_eq!(
        ancm.count_stderr(|l| l.contains("forwarding to the app failed")),
        0,
        "{:?}",
        ancm.stderr()
    );
}

/// ancm in front of tests/apps/framing.py, ready.
fn framing_app() -> (AppDir, Ancm) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/framing.py");
    let app = AppDir::new(
        &format!(r#"processPath="python3" arguments="-u {script}""#),
        &[],
    );
    let ancm = Ancm::run(&[app.path().to_str().expect("utf-8")]);
    ancm.wait_ready();
    (app, ancm)
}

#[test]
fn a_response_framed_two_ways_is_read_as_chunked_and_sent_whole() {
    let (_app, ancm) = framing_app();
    let answer = raw(
        &ancm,
        "GET /both HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length: 5"),
        "{answer}"
    );
    // Chunked on the client's hop too: the body between the chunk sizes is the alphabet.
    let decoded: String = body
        .split("\r\n")
        .filter(|part| part.chars().all(|c| c.is_ascii_lowercase()) && part.len() > 2)
        .collect();
    assert_eq!(decoded, "abcdefghijklmnopqrstuvwxyz", "{answer}");
    // Over a client that reads the framing itself; the next request goes on a fresh app
    // connection, as one after ambiguous framing is not reused.
    for _ in 0..2 {
        assert_eq!(
            ancm.get("/both").text().expect("body"),
            "abcdefghijklmnopqrstuvwxyz"
        );
    }
    assert_eq!(ancm.get("/after").text().expect("body"), "ok /after");
    ancm.wait_stderr("the warning", |l| {
        l.contains("both Transfer-Encoding and Content-Length")
    });
}

/// The app's responses as HTTP/1.1 frames them, read the way RFC 9112 says: informational
/// responses skipped, chunk extensions passed over, a body without framing read until the app
/// closes, a reason phrase kept; a chunked body that turns malformed aborts the client's
/// response instead of ending it as if complete. The app connection is reused after each
/// response that ended cleanly.
#[test]
fn app_responses_are_read_as_http_1_1_frames_them() {
    let (_app, ancm) = framing_app();

    let hinted = ancm.get("/early-hints");
    assert_eq!(hinted.status(), 200);
    assert_eq!(hinted.text().expect("body"), "ok");
    assert_eq!(ancm.get("/extensions").text().expect("body"), "hello");
    assert_eq!(
        ancm.get("/until-close").text().expect("body"),
        "all of this, until the app closes"
    );
    let reason = raw(
        &ancm,
        "GET /reason HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        reason.starts_with("HTTP/1.1 200 Fine Thanks\r\n"),
        "{reason}"
    );

    let broken = raw(
        &ancm,
        "GET /bad-chunk HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    );
    // Whatever of it had gone out, the client sees the connection close without the last chunk.
    assert!(
        !broken.ends_with("0\r\n\r\n"),
        "a broken body must not look complete: {broken}"
    );
    ancm.wait_stderr("the reason in the log", |l| {
        l.contains("malformed chunked body")
    });
    assert_eq!(ancm.get("/after").text().expect("body"), "ok /after");
}
