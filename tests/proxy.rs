use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::{both_paths, client, echoed, fnv1a, Ancm, AppDir, FNV_OFFSET};

both_paths! {
    /// What the app receives (Host kept, the token set, a forged identity dropped,
    /// X-Forwarded-For/Proto joined, hop-by-hop headers dropped), its pairing environment, and
    /// what the client gets back. First with a Connection header the lean path takes (it lists
    /// only keep-alive), then one naming a header, which the lean path hands to hyper's.
    fn header_contract(path) {
        let app = AppDir::new("", &[("SAMPLE_VAR", "from web.config")]);
        let ancm = Ancm::run_app_on(path, &app, &["--env", "SAMPLE_VAR2=from flag"]);
        let (_, app_port) = ancm.wait_ready();
        for connection in ["keep-alive", "x-hop"] {
            let mut request = client()
                .get(format!("{}/echo?x=1", ancm.url))
                .header("MS-ASPNETCORE-TOKEN", "forged")
                .header("ms-aspnetcore-winauthtoken", "0x1234")
                .header("X-Forwarded-For", "1.2.3.4:99")
                .header("Connection", connection)
                .header("Keep-Alive", "timeout=5")
                .header("x-app-header", "kept");
            if connection != "keep-alive" {
                request = request.header(connection, "1");
            }
            let echo: serde_json::Value = request
                .send()
                .expect("request")
                .error_for_status()
                .expect("the app accepted the token ancm set")
                .json()
                .expect("json");
            check_echo(&echo, &ancm, &app, app_port, connection);
            if connection == "keep-alive" {
                check_response_headers(&ancm);
                ancm.assert_lean_served("the header contract");
            }
        }

        // Without the token the app refuses, so the 200 above proves ancm's token reached it.
        let direct = client()
            .get(format!("http://127.0.0.1:{app_port}/echo"))
            .send()
            .expect("direct request");
        assert_eq!(direct.status(), 400);
    }
}

/// The header contract as the app saw it in `echo`, for a request whose Connection header
/// named `connection`.
fn check_echo(
    echo: &serde_json::Value,
    ancm: &Ancm,
    app: &AppDir,
    app_port: u16,
    connection: &str,
) {
    let headers: Vec<(String, String)> = echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_owned(),
                pair[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let env = &echo["env"];
    assert_eq!(
        values("host"),
        [ancm.url.trim_start_matches("http://")],
        "Host is kept"
    );
    assert_eq!(
        values("ms-aspnetcore-token"),
        [env["ASPNETCORE_TOKEN"].as_str().expect("token")]
    );
    assert!(
        values("ms-aspnetcore-winauthtoken").is_empty(),
        "forged identity removed"
    );
    let xff = values("x-forwarded-for");
    assert_eq!(xff.len(), 1);
    let ours = xff[0]
        .strip_prefix("1.2.3.4:99, 127.0.0.1:")
        .expect("appended client ip:port");
    assert!(ours.parse::<u16>().is_ok(), "{}", xff[0]);
    assert_eq!(values("x-forwarded-proto"), ["http"]);
    for hop in ["connection", connection, "keep-alive"] {
        assert!(
            values(hop).is_empty(),
            "{hop} must not reach the app: {headers:?}"
        );
    }
    assert_eq!(values("x-app-header"), ["kept"]);
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["version"], "HTTP/1.1");

    // The pairing environment (spec §2).
    assert_eq!(env["ASPNETCORE_PORT"], app_port.to_string());
    assert_eq!(env["ASPNETCORE_APPL_PATH"], "/");
    assert_eq!(env["ASPNETCORE_IIS_HTTPAUTH"], "anonymous;");
    assert_eq!(env["ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED"], "true");
    assert_eq!(
        env["ASPNETCORE_HOSTINGSTARTUPASSEMBLIES"],
        "Microsoft.AspNetCore.Server.IISIntegration"
    );
    assert_eq!(env["SAMPLE_VAR"], "from web.config");
    assert_eq!(env["SAMPLE_VAR2"], "from flag");
    let cwd = std::fs::canonicalize(echo["cwd"].as_str().expect("cwd")).expect("cwd exists");
    assert_eq!(cwd, std::fs::canonicalize(app.path()).expect("app dir"));
}

/// The response side of the contract: repeated headers kept, hop-by-hop ones stripped.
fn check_response_headers(ancm: &Ancm) {
    let response = ancm.get("/headers");
    assert_eq!(response.status(), 200);
    let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        ["a=1; Path=/", "b=2; Path=/"],
        "repeated Set-Cookie kept"
    );
    let vary: Vec<_> = response.headers().get_all("vary").iter().collect();
    assert_eq!(vary, ["Accept", "Cookie"], "repeated Vary kept");
    assert!(
        response.headers().get("x-custom-hop").is_none(),
        "header named in Connection stripped"
    );
    assert!(
        response.headers().get("keep-alive").is_none(),
        "Keep-Alive stripped"
    );
}

#[test]
fn streams_20_mb_up_and_down() {
    const SIZE: u64 = 20 * 1024 * 1024;
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();

    // Upload without a length, so it is chunked all the way to the app.
    let upload = Pattern { pos: 0, len: SIZE };
    let mut expected = FNV_OFFSET;
    let mut check = Pattern { pos: 0, len: SIZE };
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = check.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        expected = fnv1a(expected, &buf[..n]);
    }
    let answer: serde_json::Value = client()
        .post(format!("{}/upload", ancm.url))
        .body(reqwest::blocking::Body::new(upload))
        .send()
        .expect("upload")
        .json()
        .expect("json");
    assert_eq!(answer["bytes"], SIZE);
    assert_eq!(answer["fnv1a"], format!("{expected:016x}"));

    let mut response = ancm.get(&format!("/stream?bytes={SIZE}"));
    assert_eq!(response.status(), 200);
    let mut total = 0u64;
    let mut hash = FNV_OFFSET;
    loop {
        let n = response.read(&mut buf).expect("download");
        if n == 0 {
            break;
        }
        hash = fnv1a(hash, &buf[..n]);
        total += n as u64;
    }
    assert_eq!(total, SIZE);
    assert_eq!(hash, expected, "the same pattern came back byte for byte");
}

/// The sample app's byte pattern, as a reader.
struct Pattern {
    pos: u64,
    len: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const PATTERN: &[u8; 16] = b"0123456789abcdef";
        let n = usize::try_from((self.len - self.pos).min(buf.len() as u64)).unwrap_or(0);
        for (i, byte) in buf[..n].iter_mut().enumerate() {
            *byte = PATTERN[usize::try_from((self.pos + i as u64) % 16).unwrap_or(0)];
        }
        self.pos += n as u64;
        Ok(n)
    }
}

both_paths! {
    fn request_timeout_gives_502_before_headers_and_cuts_idle_bodies(path) {
        let app = AppDir::new(r#"requestTimeout="00:02:00""#, &[]);
        let ancm = Ancm::run_app_on(path, &app, &["--request-timeout", "1"]);
        ancm.wait_ready();

        let started = Instant::now();
        let response = ancm.get("/sleep?ms=6000");
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 502);
        // A generous regression guard, not a measurement (timings are measured in bench/): the
        // app would answer after 6 s, ancm must answer well before, after the 1 s limit.
        assert!(
            elapsed < Duration::from_secs(5),
            "answered after {elapsed:?}"
        );
        let body = response.text().expect("body");
        assert!(
            body.contains("502.3") && body.contains("requestTimeout"),
            "{body}"
        );

        // Headers come at once, then the app goes quiet for longer than the limit.
        let mut response = ancm.get("/slow-body?chunks=2&gap_ms=3000");
        assert_eq!(response.status(), 200);
        let mut body = Vec::new();
        let read = response.read_to_end(&mut body);
        assert!(
            read.is_err(),
            "an idle gap over requestTimeout must cut the body, got {body:?}"
        );

        // A body whose gaps stay under the limit streams whole.
        let body = ancm
            .get("/slow-body?chunks=3&gap_ms=200")
            .text()
            .expect("body");
        assert_eq!(body, "chunk 1\nchunk 2\nchunk 3\n");
        ancm.assert_lean_served("requestTimeout");
    }
}

#[test]
fn requests_wait_for_a_starting_app() {
    let app = AppDir::new("", &[("SAMPLEAPP_START_DELAY_MS", "800")]);
    let ancm = Ancm::run_app(&app, &[]);
    // Sent before the app listens: it waits instead of failing.
    let response = ancm.get("/");
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .expect("body")
        .starts_with("hello from sampleapp"));
}

#[test]
fn reuses_app_connections_and_opens_new_ones_when_the_app_closes_them() {
    // The app closes connections idle for 300 ms, as Kestrel does after its KeepAliveTimeout.
    let app = AppDir::new("", &[("SAMPLEAPP_KEEPALIVE_MS", "300")]);
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    let peer = |response: &reqwest::blocking::Response| -> String {
        assert_eq!(response.status(), 200);
        response
            .headers()
            .get("x-sampleapp-peer")
            .and_then(|v| v.to_str().ok())
            .expect("the app names the connection")
            .to_owned()
    };
    // One client connection: ancm's pools are per proxy thread, and a client connection stays
    // on one thread.
    let http = client();
    let get = || {
        http.get(format!("{}/pid", ancm.url))
            .send()
            .expect("request through ancm")
    };
    let first = peer(&get());
    let second = peer(&get());
    assert_eq!(
        first, second,
        "one request after another reuse one connection"
    );

    ancm.wait_stdout("the app to close the idle connection", |line| {
        line.contains(&format!("sampleapp closed the connection from {first}"))
    });
    let third = peer(&get());
    assert_ne!(third, first, "a new connection replaces the closed one");
    assert_eq!(
        ancm.count_stderr(|line| line.contains("answering 502")),
        0,
        "{:?}",
        ancm.stderr()
    );
}

/// `--app-path /shop`: only /shop and what is below it reach the app, as IIS serves only its
/// virtual path to it; the rest gets ancm's 404.
#[test]
fn requests_outside_the_app_path_get_404_from_ancm() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &["--app-path", "/shop"]);
    ancm.wait_ready();
    let requests = || -> u64 {
        ancm.get("/shop/requests")
            .text()
            .expect("body")
            .parse()
            .expect("count")
    };
    let before = requests();
    for outside in ["/", "/elsewhere", "/shopping", "/sho"] {
        let response = ancm.get(outside);
        assert_eq!(response.status(), 404, "{outside}");
        let page = response.text().expect("page");
        assert!(page.contains("only paths under /shop"), "{outside}: {page}");
    }
    assert_eq!(requests(), before + 1, "no 404 reached the app");

    let echo: serde_json::Value = ancm.get("/SHOP/echo?x=1").json().expect("echo");
    assert_eq!(echo["path"], "/SHOP/echo", "forwarded as it came");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(
        ancm.get("/shop").status(),
        200,
        "the base itself is the app's"
    );
}

/// `--strip-app-path`: an app that does not know its base sees `/x` for `/shop/x`, and the
/// base in X-Forwarded-Prefix (a client's own value is replaced).
#[test]
fn strip_app_path_forwards_without_the_base_and_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/plain.py");
    let ancm = Ancm::run_app(
        &dir,
        &[
            "--app-path",
            "/shop",
            "--strip-app-path",
            "--port-env",
            "PORT",
            "--",
            "python3",
            "-u",
            script,
        ],
    );
    ancm.wait_ready();
    let seen = |path: &str| -> (String, Vec<String>) {
        let answer: serde_json::Value = client()
            .get(format!("{}{path}", ancm.url))
            .header("X-Forwarded-Prefix", "/forged")
            .send()
            .expect("request")
            .json()
            .expect("json");
        let prefixes = echoed(&answer, "x-forwarded-prefix")
            .into_iter()
            .map(str::to_owned)
            .collect();
        (answer["path"].as_str().expect("path").to_owned(), prefixes)
    };
    for (asked, forwarded) in [
        ("/shop/cart/1?x=2", "/cart/1?x=2"),
        ("/Shop/a", "/a"),
        ("/shop", "/"),
        ("/shop/", "/"),
        ("/shop?q", "/?q"),
    ] {
        let (path, prefixes) = seen(asked);
        assert_eq!(path, forwarded, "{asked}");
        assert_eq!(prefixes, ["/shop"], "{asked}");
    }
    assert_eq!(ancm.get("/cart/1").status(), 404);
    assert!(
        !ancm
            .stdout()
            .iter()
            .any(|l| l.ends_with("GET /cart/1 HTTP/1.1")),
        "{:?}",
        ancm.stdout()
    );
}
