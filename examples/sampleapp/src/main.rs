//! `sampleapp`: a small HTTP/1.1 server that behaves like an ASP.NET Core app
//! hosted out-of-process behind the ASP.NET Core Module, for integration tests.
//!
//! It keeps the same contract a real app with IIS integration keeps: it
//! listens on loopback at `ASPNETCORE_PORT`, rejects requests whose
//! `MS-ASPNETCORE-TOKEN` header does not match `ASPNETCORE_TOKEN`, serves
//! under the `ASPNETCORE_APPL_PATH` path base, and shuts down gracefully on
//! `POST /iisintegration` with `MS-ASPNETCORE-EVENT: shutdown` or on
//! SIGTERM/SIGINT. `SAMPLEAPP_*` environment variables switch on misbehaviour
//! (crash at start, never listen, ignore shutdown, ...) and a few endpoints
//! exercise streaming, headers and process output.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

type ResBody = BoxBody<Bytes, Infallible>;

/// Exit code for a missing or malformed configuration (BSD `EX_USAGE`).
const EXIT_USAGE: i32 = 64;
/// How long in-flight requests get to finish once shutdown starts; the same
/// default as .NET's `HostOptions.ShutdownTimeout`, so a stuck stream cannot
/// keep the process alive forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const PATTERN: &[u8; 16] = b"0123456789abcdef";
const DEFAULT_CHUNK: u64 = 64 * 1024;
/// Bounds the per-frame allocation of `/stream` whatever `chunk=` asks for.
const MAX_CHUNK: u64 = 16 * 1024 * 1024;

struct AppState {
    pid: u32,
    token: Option<String>,
    /// Normalised path base: "" for none, otherwise "/seg" with no trailing slash.
    path_base: String,
    ignore_shutdown: bool,
    /// Closes a keep-alive connection idle this long, as Kestrel's KeepAliveTimeout does
    /// (130 s there; short here so tests can see it), and says so on stdout.
    keep_alive: Option<Duration>,
    /// Flips to `true` once; everything that must stop watches it.
    shutdown: watch::Sender<bool>,
}

/// Writes one line to stdout and flushes it at once: stdout is usually a pipe
/// to the supervisor, which tests read line by line while we keep running.
/// Write errors (a closed pipe) are ignored rather than panicking like `println!`.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn say_err(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

fn usage_exit(msg: &str) -> ! {
    say_err(&format!("sampleapp: {msg}"));
    std::process::exit(EXIT_USAGE);
}

fn env_flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok("1") | Ok("true"))
}

/// Parses an optional numeric env var; a present but malformed value is a
/// usage error so a typo in a test does not silently change behaviour.
fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => usage_exit(&format!("{name}={raw:?} is not a valid number")),
    }
}

fn resolve_port() -> u16 {
    let (name, raw) = match std::env::var("ASPNETCORE_PORT") {
        Ok(v) => ("ASPNETCORE_PORT", v),
        Err(_) => match std::env::var("PORT") {
            Ok(v) => ("PORT", v),
            Err(_) => usage_exit("ASPNETCORE_PORT (or PORT) must be set to the port to listen on"),
        },
    };
    raw.trim()
        .parse()
        .unwrap_or_else(|_| usage_exit(&format!("{name}={raw:?} is not a valid port")))
}

/// "/" and "" mean no path base; "/base/" is treated as "/base".
fn normalise_path_base(raw: &str) -> String {
    let trimmed = raw.trim().trim_end_matches('/');
    match trimmed {
        "" => String::new(),
        t if t.starts_with('/') => t.to_string(),
        t => format!("/{t}"),
    }
}

/// Segment-wise path-base match, case-insensitive like ASP.NET Core's
/// `PathString.StartsWithSegments`: "/base" and "/base/x" match, "/basement"
/// does not. Returns the remaining route ("/" when nothing is left).
fn strip_path_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if base.is_empty() {
        return Some(path);
    }
    let head = path.get(..base.len())?;
    if !head.eq_ignore_ascii_case(base) {
        return None;
    }
    match &path[base.len()..] {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

fn query_num(uri: &Uri, name: &str, default: u64) -> u64 {
    query_param(uri, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn full(body: impl Into<Bytes>) -> ResBody {
    Full::new(body.into()).boxed()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<ResBody> {
    let mut res = Response::new(full(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn json(value: serde_json::Value) -> Response<ResBody> {
    let mut res = Response::new(full(value.to_string()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn fnv1a_update(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Reads a request body frame by frame, handing each data chunk to `on_data`,
/// so uploads of any size are never held in memory.
async fn consume_body(mut body: Incoming, mut on_data: impl FnMut(&[u8])) -> hyper::Result<u64> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            total += data.len() as u64;
            on_data(data);
        }
    }
    Ok(total)
}

/// `/stream` body: yields `total` bytes of the repeating pattern lazily,
/// one frame per poll, as zero-copy slices of a buffer built once.
struct PatternBody {
    sent: u64,
    total: u64,
    chunk: u64,
    /// `chunk + 16` pattern bytes, so any frame is a slice starting at `sent % 16`.
    buf: Bytes,
    /// Say so when dropped before the end (the client's request was aborted).
    report: bool,
}

impl Drop for PatternBody {
    fn drop(&mut self) {
        if self.report && self.sent < self.total {
            say(&format!(
                "sampleapp stream aborted after {} bytes",
                self.sent
            ));
        }
    }
}

impl PatternBody {
    fn new(total: u64, chunk: u64) -> Self {
        let chunk = chunk.clamp(1, MAX_CHUNK);
        let len = (chunk.min(total.max(1)) + 16) as usize;
        let buf: Vec<u8> = PATTERN.iter().copied().cycle().take(len).collect();
        Self {
            sent: 0,
            total,
            chunk,
            buf: Bytes::from(buf),
            report: false,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.total {
            return Poll::Ready(None);
        }
        let len = (self.total - self.sent).min(self.chunk) as usize;
        let start = (self.sent % 16) as usize;
        let data = self.buf.slice(start..start + len);
        self.sent += len as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.total
    }
    // No exact size_hint on purpose: hyper then uses chunked encoding.
}

/// A body that trickles: `total` frames, the first after `first` and then one every `gap`,
/// each made by `frame(i)` (i from 0) and written as a frame of its own, so a proxy that
/// buffers shows. Serves `/slow-body` and `/sse`.
struct TickBody {
    sent: u64,
    total: u64,
    gap: Duration,
    sleep: Pin<Box<Sleep>>,
    frame: fn(u64) -> String,
}

impl TickBody {
    fn new(total: u64, first: Duration, gap: Duration, frame: fn(u64) -> String) -> TickBody {
        TickBody {
            sent: 0,
            total,
            gap,
            sleep: Box::pin(tokio::time::sleep(first)),
            frame,
        }
    }
}

impl Body for TickBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.total {
            return Poll::Ready(None);
        }
        ready!(self.sleep.as_mut().poll(cx));
        let data = (self.frame)(self.sent);
        self.sent += 1;
        let next = Instant::now() + self.gap;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.total
    }
}

fn env_snapshot() -> serde_json::Value {
    const NAMES: [&str; 15] = [
        "ASPNETCORE_PORT",
        "ASPNETCORE_APPL_PATH",
        "ASPNETCORE_TOKEN",
        "ASPNETCORE_IIS_HTTPAUTH",
        "ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED",
        "ASPNETCORE_IIS_PHYSICAL_PATH",
        "ASPNETCORE_HOSTINGSTARTUPASSEMBLIES",
        "ASPNETCORE_ANCM_HTTPS_PORT",
        "ASPNETCORE_ENVIRONMENT",
        "PORT",
        "SAMPLE_VAR",
        "SAMPLE_VAR2",
        // systemd's, for ancm alone: the app must never see them.
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "WATCHDOG_USEC",
    ];
    let map = NAMES
        .iter()
        .map(|&name| {
            let value = std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
            (name.to_string(), value.into())
        })
        .collect();
    serde_json::Value::Object(map)
}

/// Every request the app has received, for tests that check what reached it.
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `/warmup` requests so far: it answers 503 to the first `SAMPLEAPP_WARM_AFTER` of them.
static WARMUPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Set by `/hang`: `/health` no longer answers, as in a deadlocked app.
static HUNG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// What `/alloc` allocated, kept for the life of the process.
static HELD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

async fn handle(
    req: Request<Incoming>,
    state: Arc<AppState>,
) -> Result<Response<ResBody>, Infallible> {
    let seen = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    // Kestrel refuses a POST or PUT that declares no length before any middleware runs.
    if matches!(*req.method(), Method::POST | Method::PUT)
        && req.version() == http::Version::HTTP_11
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && !req.headers().contains_key(http::header::TRANSFER_ENCODING)
    {
        return Ok(text(StatusCode::LENGTH_REQUIRED, "length required"));
    }
    // The token proves the request came through the module, so it is checked
    // before anything else, exactly like ASP.NET Core's IISMiddleware does.
    if let Some(token) = &state.token {
        let sent = req
            .headers()
            .get("ms-aspnetcore-token")
            .map(HeaderValue::as_bytes);
        if sent != Some(token.as_bytes()) {
            return Ok(text(StatusCode::BAD_REQUEST, "token mismatch"));
        }
    }
    let Some(route) = strip_path_base(req.uri().path(), &state.path_base) else {
        return Ok(text(StatusCode::NOT_FOUND, "not found"));
    };
    let route = route.to_string();
    let uri = req.uri().clone();
    let method = req.method().clone();

    let res = match (&method, route.as_str()) {
        (&Method::POST, "/iisintegration") if is_shutdown_event(&req) => {
            say("sampleapp shutdown message received");
            if !state.ignore_shutdown {
                // Connections see this and shut down gracefully, so this very
                // response is still written before the process exits.
                state.shutdown.send_replace(true);
            }
            text(StatusCode::ACCEPTED, "")
        }
        (&Method::GET, "/") => text(
            StatusCode::OK,
            format!("hello from sampleapp pid={}", state.pid),
        ),
        (&Method::GET, "/pid") => text(StatusCode::OK, state.pid.to_string()),
        (&Method::GET, "/warmup") => {
            let n = WARMUPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let needed = env_num::<u64>("SAMPLEAPP_WARM_AFTER").unwrap_or(0);
            // Tests count these lines to see the warm-up happen.
            say(&format!("sampleapp warmup request {n}"));
            if n > needed {
                text(StatusCode::OK, "warm")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "warming up")
            }
        }
        (&Method::GET, "/health") => {
            if HUNG.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            text(StatusCode::OK, "healthy")
        }
        (&Method::GET, "/hang") => {
            HUNG.store(true, std::sync::atomic::Ordering::SeqCst);
            say("sampleapp hanging: /health no longer answers");
            text(StatusCode::OK, "hanging")
        }
        (&Method::GET, "/alloc") => {
            let mib = usize::try_from(query_num(&uri, "mb", 0)).unwrap_or(0);
            // Non-zero bytes, so that every page is really resident.
            let block = vec![1u8; mib * 1024 * 1024];
            if let Ok(mut held) = HELD.lock() {
                held.push(block);
            }
            say(&format!("sampleapp allocated {mib} MiB"));
            text(StatusCode::OK, format!("allocated {mib} MiB"))
        }
        // How many requests have arrived, this one included.
        (&Method::GET, "/requests") => text(StatusCode::OK, seen.to_string()),
        (_, "/echo") => echo(req).await,
        (&Method::POST, "/upload") => {
            let mut hash = FNV_OFFSET;
            match consume_body(req.into_body(), |d| hash = fnv1a_update(hash, d)).await {
                Ok(bytes) => {
                    json(serde_json::json!({ "bytes": bytes, "fnv1a": format!("{hash:016x}") }))
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("body error: {e}")),
            }
        }
        (&Method::GET, "/stream") => {
            let mut body = PatternBody::new(
                query_num(&uri, "bytes", 0),
                query_num(&uri, "chunk", DEFAULT_CHUNK),
            );
            // Tests of aborted downloads wait for the line this asks for.
            body.report = query_num(&uri, "report", 0) != 0;
            Response::new(body.boxed())
        }
        (&Method::GET, "/sleep") => {
            let ms = query_num(&uri, "ms", 0);
            // Tests wait for this line to know the request is in flight.
            say(&format!("sampleapp sleeping {ms} ms"));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, format!("slept {ms}"))
        }
        (&Method::GET, "/slow-body") => {
            let gap = Duration::from_millis(query_num(&uri, "gap_ms", 0));
            // Headers at once, then a chunk after every gap.
            let body = TickBody::new(query_num(&uri, "chunks", 0), gap, gap, |i| {
                format!("chunk {}\n", i + 1)
            });
            Response::new(body.boxed())
        }
        (&Method::GET, "/crash") => {
            // Simulates an app dying mid-request: no response at all.
            say_err("sampleapp crashing");
            let code = query_param(&uri, "code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(3);
            std::process::exit(code);
        }
        (&Method::GET, "/print") => print_lines(&uri).await,
        (&Method::GET, "/headers") => headers_response(),
        (&Method::GET, "/many-headers") => {
            // As apps that set many cookies or policy headers answer.
            let mut res = text(StatusCode::OK, "many headers");
            let size = usize::try_from(query_num(&uri, "size", 16)).unwrap_or(16);
            for i in 0..query_num(&uri, "n", 120) {
                let value = format!("c{i}={}", "v".repeat(size));
                if let Ok(value) = HeaderValue::from_str(&value) {
                    res.headers_mut().append(http::header::SET_COOKIE, value);
                }
            }
            res
        }
        (&Method::GET, "/ws") => websocket(req),
        (&Method::GET, "/sse") => {
            let mut res = Response::new(
                // The first event at once, then one every gap.
                TickBody::new(
                    query_num(&uri, "events", 0),
                    Duration::ZERO,
                    Duration::from_millis(query_num(&uri, "gap_ms", 0)),
                    |i| format!("data: {i}\n\n"),
                )
                .boxed(),
            );
            let h = res.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            res
        }
        (&Method::GET, "/abort-watch") => {
            let ms = query_num(&uri, "ms", 0);
            // hyper drops this handler's future when the connection closes mid-request, and
            // the guard with it; a request that runs its course disarms the guard first.
            let mut watch = AbortWatch { finished: false };
            // Tests wait for this line to know the request is in flight.
            say(&format!("sampleapp abort-watch waiting {ms} ms"));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            watch.finished = true;
            text(StatusCode::OK, format!("waited {ms}"))
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(res)
}

fn is_shutdown_event(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("ms-aspnetcore-event")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"shutdown"))
}

/// `/echo`: the request as the app got it, as JSON: its headers in order and, after reading
/// the body, its length and the trailers that came after it.
async fn echo(req: Request<Incoming>) -> Response<ResBody> {
    let (parts, body) = req.into_parts();
    // HeaderMap keeps first-seen name order and each name's values in order,
    // with repeated headers reported as separate pairs.
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            [
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let mut body = body;
    let mut body_length = 0u64;
    let mut trailers: Vec<[String; 2]> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("body error: {e}")),
        };
        match frame.into_data() {
            Ok(data) => body_length += data.len() as u64,
            Err(frame) => {
                if let Some(fields) = frame.trailers_ref() {
                    trailers.extend(fields.iter().map(|(name, value)| {
                        [
                            name.as_str().to_string(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        ]
                    }));
                }
            }
        }
    }
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .ok();
    json(serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "bodyLength": body_length,
        "trailers": trailers,
        "env": env_snapshot(),
        "cwd": cwd,
        "pid": std::process::id(),
    }))
}

async fn print_lines(uri: &Uri) -> Response<ResBody> {
    let n = query_num(uri, "n", 0);
    let to_stderr = query_param(uri, "stream") == Some("stderr");
    // Blocking writes of many lines belong off the async worker threads.
    let written = tokio::task::spawn_blocking(move || {
        let write = |out: &mut dyn Write| -> std::io::Result<()> {
            let mut out = BufWriter::with_capacity(64 * 1024, out);
            for i in 1..=n {
                writeln!(out, "print {i} of {n}")?;
            }
            out.flush()
        };
        if to_stderr {
            write(&mut std::io::stderr().lock())
        } else {
            write(&mut std::io::stdout().lock())
        }
    })
    .await;
    match written {
        Ok(Ok(())) => text(StatusCode::OK, format!("printed {n}")),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("print failed: {e}"),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("print task failed: {e}"),
        ),
    }
}

/// Repeated and hop-by-hop response headers, to check what the proxy forwards
/// as separate lines and what it strips.
fn headers_response() -> Response<ResBody> {
    let mut res = text(StatusCode::OK, "headers");
    let h = res.headers_mut();
    for (name, value) in [
        ("set-cookie", "a=1; Path=/"),
        ("set-cookie", "b=2; Path=/"),
        ("vary", "Accept"),
        ("vary", "Cookie"),
        ("x-custom-hop", "1"),
        ("connection", "x-custom-hop"),
        ("keep-alive", "timeout=5"),
    ] {
        h.append(name, HeaderValue::from_static(value));
    }
    res
}

/// Says so when dropped before `finished` is set: `/abort-watch`'s request was aborted.
struct AbortWatch {
    finished: bool,
}

impl Drop for AbortWatch {
    fn drop(&mut self) {
        if !self.finished {
            say("sampleapp request aborted");
        }
    }
}

/// `/ws`: a WebSocket echo server (RFC 6455): text and binary messages come back as they
/// came. The 101 also carries `x-seen-extensions`, the Sec-WebSocket-Extensions the request
/// arrived with, so tests can see what the proxy passed on; no extension is accepted.
fn websocket(mut req: Request<Incoming>) -> Response<ResBody> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};

    let asks_websocket = req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .filter(|_| asks_websocket)
    else {
        return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return text(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key");
    };
    let seen_extensions = req.headers().get("sec-websocket-extensions").cloned();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return say_err(&format!("sampleapp: WebSocket upgrade failed: {e}")),
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        // Pings are answered and closes completed by tungstenite itself.
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Text(_) | Message::Binary(_))
                && ws.send(message).await.is_err()
            {
                break;
            }
        }
    });
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("sec-websocket-accept", accept);
    if let Some(extensions) = seen_extensions {
        h.insert("x-seen-extensions", extensions);
    }
    res
}

/// Serves one connection; on shutdown it asks hyper to finish the in-flight
/// request (if any) and close, rather than dropping the socket.
/// `_drain` is held until the connection is done so `main` can wait for all.
async fn serve_connection(
    stream: TcpStream,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
    _drain: mpsc::Sender<()>,
) {
    let keep_alive = state.keep_alive;
    // Which connection a request came on, for tests of the proxy's connection reuse.
    let peer_addr = stream
        .peer_addr()
        .map_or_else(|_| "unknown".to_owned(), |peer| peer.to_string());
    let peer = HeaderValue::from_str(&peer_addr).ok();
    let service = service_fn(move |req| {
        let answer = handle(req, state.clone());
        let peer = peer.clone();
        async move {
            let mut response = answer.await?;
            if let Some(peer) = peer {
                response.headers_mut().insert("x-sampleapp-peer", peer);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    if let Some(idle) = keep_alive {
        // hyper's header read timeout also runs while a kept-alive connection waits for its
        // next request: the closest it has to Kestrel's KeepAliveTimeout.
        builder.timer(TokioTimer::new()).header_read_timeout(idle);
    }
    // Boxed, so it can be dropped (closing the socket) before the close is announced.
    let mut conn = Box::pin(
        builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades(),
    );
    tokio::select! {
        _ = conn.as_mut() => {
            drop(conn);
            if keep_alive.is_some() {
                say(&format!("sampleapp closed the connection from {peer_addr}"));
            }
            return;
        }
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Prints each SIGTERM/SIGINT (CTRL_BREAK/CTRL_C on Windows) and, unless told to ignore them, starts the
/// graceful shutdown. Keeps listening so a repeated signal is logged too.
fn spawn_signal_watcher(state: Arc<AppState>) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                say(&format!("sampleapp got {name}"));
                if !state.ignore_shutdown {
                    state.shutdown.send_replace(true);
                }
            }
        });
    }
    #[cfg(windows)]
    {
        // ANCM stops an out-of-process app with CTRL_BREAK (to its process group); a console
        // Ctrl+C comes as CTRL_C. Kestrel stops gracefully on either.
        use tokio::signal::windows::{ctrl_break, ctrl_c};
        let mut brk = ctrl_break()?;
        let mut int = ctrl_c()?;
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = brk.recv() => "CTRL_BREAK",
                    _ = int.recv() => "CTRL_C",
                };
                say(&format!("sampleapp got {name}"));
                if !state.ignore_shutdown {
                    state.shutdown.send_replace(true);
                }
            }
        });
    }
    Ok(())
}

fn stopped() -> ! {
    say("sampleapp stopped");
    // Exit explicitly so lingering tasks (e.g. a blocking print) cannot delay it.
    std::process::exit(0);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    say(&format!("sampleapp starting pid={pid}"));

    let port = resolve_port();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        pid,
        token: std::env::var("ASPNETCORE_TOKEN").ok(),
        path_base: normalise_path_base(&std::env::var("ASPNETCORE_APPL_PATH").unwrap_or_default()),
        ignore_shutdown: env_flag("SAMPLEAPP_IGNORE_SHUTDOWN"),
        keep_alive: env_num::<u64>("SAMPLEAPP_KEEPALIVE_MS").map(Duration::from_millis),
        shutdown: shutdown_tx,
    });
    // Installed first so a SIGTERM during any start-up stage is honoured.
    spawn_signal_watcher(state.clone())?;

    if let Some(n) = env_num::<u64>("SAMPLEAPP_PRINT_AT_START") {
        let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        for i in 1..=n {
            writeln!(out, "line {i} of {n}")?;
        }
        out.flush()?;
    }
    if let Ok(msg) = std::env::var("SAMPLEAPP_STDERR_AT_START") {
        say_err(&msg);
    }
    // Reads a file at start, as an app reads its assemblies and settings.
    if let Ok(path) = std::env::var("SAMPLEAPP_READ_FILE") {
        match std::fs::read(&path) {
            Ok(bytes) => say(&format!("sampleapp read {} bytes of {path}", bytes.len())),
            Err(err) => usage_exit(&format!("SAMPLEAPP_READ_FILE={path:?}: {err}")),
        }
    }
    if let Some(code) = env_num::<i32>("SAMPLEAPP_EXIT_AT_START") {
        std::process::exit(code);
    }
    // Lets a test make later starts fail while the running process keeps serving.
    if let Ok(marker) = std::env::var("SAMPLEAPP_EXIT_IF_FILE") {
        if std::path::Path::new(&marker).exists() {
            say_err(&format!("sampleapp: {marker} exists; exiting"));
            std::process::exit(4);
        }
    }
    // Spawned before the delay / never-listen stages so those can be combined
    // with it (e.g. to check the supervisor also reaps a stuck app's children).
    if env_flag("SAMPLEAPP_SPAWN_CHILD") {
        spawn_grandchild()?;
    }
    if env_flag("SAMPLEAPP_SPAWN_DAEMON") {
        spawn_daemon()?;
    }

    let mut stop = shutdown_rx.clone();
    if let Some(ms) = env_num::<u64>("SAMPLEAPP_START_DELAY_MS") {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = stop.wait_for(|s| *s) => stopped(),
        }
    }
    if env_flag("SAMPLEAPP_NEVER_LISTEN") {
        let _ = stop.wait_for(|s| *s).await;
        stopped();
    }
    if *stop.borrow() {
        stopped();
    }

    let addr: SocketAddr = if env_flag("SAMPLEAPP_IPV6") {
        (Ipv6Addr::LOCALHOST, port).into()
    } else {
        (Ipv4Addr::LOCALHOST, port).into()
    };
    let listener = TcpListener::bind(addr).await?;
    say(&format!(
        "sampleapp listening on {}",
        listener.local_addr()?
    ));

    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, state.clone(), shutdown_rx.clone(), drain_tx.clone()));
                }
                Err(e) => {
                    // Usually fd exhaustion; back off instead of spinning.
                    say_err(&format!("sampleapp accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }

    // Stop accepting, then wait until every connection task has dropped its
    // drain sender (recv yields None), bounded by the drain timeout.
    drop(listener);
    drop(drain_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain_rx.recv()).await;
    stopped()
}

/// A child that does nothing for a long time: `sleep` on Unix, on Windows another sampleapp
/// that never listens.
fn spawn_grandchild() -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    #[cfg(unix)]
    let mut command = {
        let mut command = Command::new("sleep");
        command.arg("300");
        command
    };
    #[cfg(not(unix))]
    let mut command = {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env_remove("SAMPLEAPP_SPAWN_CHILD")
            .env("SAMPLEAPP_NEVER_LISTEN", "1");
        command
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    say(&format!("sampleapp spawned child pid={}", child.id()));
    // Deliberately not waited on: it must outlive us unless the supervisor
    // cleans up the whole process tree.
    drop(child);
    Ok(())
}

/// A daemon as the careless write them: forked twice, in a session of its own (so outside our
/// process group) and deaf to SIGTERM. It prints its pid, then lets go of our output.
#[cfg(unix)]
fn spawn_daemon() -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    // setsid -f forks, the fork calls setsid() and execs the shell; setsid itself exits at
    // once, so the daemon is nobody's child of ours.
    let status = Command::new("setsid")
        .args([
            "-f",
            "sh",
            "-c",
            "trap '' TERM; echo \"sampleapp daemon pid=$$\"; exec sleep 300 </dev/null >/dev/null 2>&1",
        ])
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        say_err(&format!("sampleapp: setsid failed: {status}"));
    }
    Ok(())
}

#[cfg(not(unix))]
fn spawn_daemon() -> std::io::Result<()> {
    say_err("sampleapp: SAMPLEAPP_SPAWN_DAEMON is only supported on unix");
    Ok(())
}
