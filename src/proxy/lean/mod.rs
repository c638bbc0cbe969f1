//! The lean HTTP/1.1 path: plain-text client connections are served by one loop that reads a
//! request head with httparse, writes it for the app byte by byte into the app connection's
//! buffer (`parse.rs`), and passes the app's response back the same way (`response.rs`), with
//! no HeaderMap, no hyper dispatch and one timer per connection.
//!
//! It takes only requests it can read without doubt (see `parse.rs`). At the first request it
//! does not take (an upgrade, a chunked or large body, HTTP/1.0, HTTP/2's preface, anything
//! malformed) the connection goes to hyper with every byte read so far, at a request boundary,
//! so hyper's reading and ancm's other path apply to it unchanged from there on.

mod parse;
mod response;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{Response, Version};
use http_body::Body;
use http_body_util::Full;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::access_log::Entry;
use super::app_path::{AppBase, Target};
use super::exchange::{self, Connection, ExchangeError, Step};
use super::forward::{self, Addrs, Tally, Transport};
use super::outcome::{self, Broke, NoAnswer};
use super::pool::{self, Outcome, SendError};
use super::send_timeout::Stalls;
use super::stats::STATS;
use super::{error_chain, ClientInfo, Proxy};
use crate::supervisor::Backend;
pub use parse::framing;
use response::{Framing, Parsed, Rules};

/// Response bytes gathered before they are written to the client.
const FLUSH_AT: usize = 16 * 1024;

/// How a lean connection ended.
pub(super) enum Ended {
    Closed,
    /// A request the lean path does not take: the connection is hyper's, with these bytes
    /// read from it first.
    Hyper(TcpStream, BytesMut),
}

/// One connection's deadline, checked lazily: moving it later only notes the time, and the
/// timer, when it fires early, is set again to the real deadline. A request costs no timer
/// work unless a deadline is near.
struct Deadline {
    due: Instant,
    armed: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    fn new(due: Instant) -> Deadline {
        Deadline {
            due,
            armed: due,
            sleep: Box::pin(tokio::time::sleep_until(due)),
        }
    }

    fn set(&mut self, due: Instant) {
        self.due = due;
        if due < self.armed {
            self.sleep.as_mut().reset(due);
            self.armed = due;
        }
    }

    /// Resolves once the deadline has passed.
    async fn passed(&mut self) {
        loop {
            self.sleep.as_mut().await;
            if self.due <= Instant::now() {
                return;
            }
            self.sleep.as_mut().reset(self.due);
            self.armed = self.due;
        }
    }
}

/// A client connection on the lean path.
struct Lean<'p> {
    proxy: &'p Proxy,
    client: &'p ClientInfo,
    addrs: Addrs,
    shutdown: &'p CancellationToken,
    stream: TcpStream,
    /// Bytes from the client not yet taken.
    buf: BytesMut,
    /// Bytes for the client not yet written.
    out: Vec<u8>,
    deadline: Deadline,
    /// When the last request ended: the idle timeout counts from there.
    ended: std::time::Instant,
}

/// What became of one request.
enum Next {
    /// The connection may carry another request.
    KeepAlive,
    Close,
    Hyper,
}

/// Serves the client on `stream` until it closes, ancm stops, or a request goes to hyper.
/// `first` is when the first request's head must have come by.
/// `addrs` are the client's address and the one it connected to, for the access log.
pub(super) async fn serve(
    stream: TcpStream,
    client: &ClientInfo,
    addrs: Addrs,
    proxy: &Proxy,
    shutdown: &CancellationToken,
    first: Instant,
) -> Ended {
    let mut lean = Lean {
        proxy,
        client,
        addrs,
        shutdown,
        stream,
        buf: BytesMut::new(),
        out: Vec::new(),
        deadline: Deadline::new(first),
        ended: std::time::Instant::now(),
    };
    let mut head_due = first;
    loop {
        match lean.request(head_due).await {
            Next::KeepAlive => head_due = Instant::from_std(lean.ended) + proxy.idle_timeout,
            Next::Close => {
                let _ = lean.stream.shutdown().await;
                return Ended::Closed;
            }
            Next::Hyper => {
                tracing::trace!(read = lean.buf.len(), "the connection goes to hyper");
                return Ended::Hyper(lean.stream, lean.buf);
            }
        }
    }
}

impl Lean<'_> {
    /// Reads from the client until a head is whole (or will not be), then forwards it.
    /// `idle_due` is when the connection closes if no request has begun.
    async fn request(&mut self, idle_due: Instant) -> Next {
        let mut head_due = None;
        loop {
            if self.buf.is_empty() {
                self.deadline.set(idle_due);
            } else {
                let mut slots = parse::slots();
                match parse::parse(&self.buf, &mut slots, self.proxy.max_request_head) {
                    parse::Verdict::Partial => {
                        // As on hyper's path, a head begun just before the idle timeout does
                        // not keep the connection past it.
                        let due = *head_due
                            .get_or_insert_with(|| Instant::now() + self.proxy.header_read_timeout);
                        self.deadline.set(due.min(idle_due));
                    }
                    parse::Verdict::Hyper(why) => {
                        tracing::trace!(why, "a request for hyper's path");
                        return Next::Hyper;
                    }
                    parse::Verdict::Request(request) => {
                        let split = Split {
                            proxy: self.proxy,
                            client: self.client,
                            addrs: self.addrs,
                            shutdown: self.shutdown,
                            stream: &mut self.stream,
                            out: &mut self.out,
                            deadline: &mut self.deadline,
                            ended: &mut self.ended,
                        };
                        let (next, taken) = split.forward(&request).await;
                        if taken > 0 {
                            self.buf.advance(taken);
                        }
                        return next;
                    }
                }
            }
            if self.buf.len() >= self.proxy.max_request_head {
                return Next::Hyper;
            }
            self.buf.reserve(4096);
            let idle = self.buf.is_empty();
            let read = tokio::select! {
                biased;
                read = tokio::io::AsyncReadExt::read_buf(&mut self.stream, &mut self.buf) => read,
                () = self.deadline.passed() => {
                    tracing::debug!(idle, "no request within the idle or header read timeout; closing");
                    return Next::Close;
                }
                () = self.shutdown.cancelled(), if idle => return Next::Close,
            };
            match read {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(%err, "client connection ended with an error");
                    return Next::Close;
                }
            }
        }
    }
}

/// A lean connection taken apart, so that the request parsed from its buffer can be held
/// while the rest is used.
struct Split<'a, 'p> {
    proxy: &'p Proxy,
    client: &'p ClientInfo,
    addrs: Addrs,
    shutdown: &'p CancellationToken,
    stream: &'a mut TcpStream,
    out: &'a mut Vec<u8>,
    deadline: &'a mut Deadline,
    ended: &'a mut std::time::Instant,
}

impl Split<'_, '_> {
    /// Forwards `request` and sends the answer. Returns what comes next and how many bytes of
    /// the buffer the request took (none when it goes to hyper).
    async fn forward(mut self, request: &parse::Request<'_>) -> (Next, usize) {
        // Under `--app-path`, a request outside the base gets its 404 on hyper's path, as
        // every refusal does.
        let strip = match &self.proxy.base {
            None => None,
            Some(base) => match base.target(request.target) {
                Target::Outside => {
                    tracing::trace!(why = "outside the app's path", "a request for hyper's path");
                    return (Next::Hyper, 0);
                }
                Target::AsItCame => None,
                Target::Stripped(rest) => Some((base, rest)),
            },
        };
        let backend = match forward::pick_backend(&self.proxy.supervisor).await {
            Ok(backend) => backend,
            Err(why) => {
                let mut tally = self.tally(request);
                return self.answer_page(why.answer(), request, &mut tally).await;
            }
        };
        let (path, query) = request.path_and_query_len();
        let declared = Some(request.body_len as u64);
        if forward::over_limits(&backend.config.request_limits, path, query, declared).is_some() {
            // hyper's path answers it, as for every request over a limit.
            return (Next::Hyper, 0);
        }
        // One clock read at the start of a request and one at its end serve every deadline,
        // the pool's ages and the metrics.
        let mut tally = self.tally(request);
        let body = &request.bytes[request.head_len..];
        STATS.received(body.len());
        let mut opener = Opener {
            request,
            body,
            client: self.client,
            now: tally.started(),
            strip,
        };
        let supervisor = &self.proxy.supervisor;
        let (app, in_flight) =
            match forward::send_with_one_retry(supervisor, backend, &mut opener, ()).await {
                Ok(sent) => sent,
                Err(why) => return self.answer_page(why.answer(), request, &mut tally).await,
            };
        let backend = in_flight.backend();
        let rules = Rules {
            head_request: request.is_head(),
            keep_connection: backend.config.forward_response_connection_header,
            close: request.close || self.shutdown.is_cancelled(),
        };
        let next = self
            .exchange(backend, app, rules, request, &mut tally)
            .await;
        drop(in_flight);
        (next, request.len())
    }

    /// Counts a request begun now, with its access log line when requests are logged.
    fn tally(&self, request: &parse::Request<'_>) -> Tally {
        let (client, server) = self.addrs;
        Tally::start(forward::log_entry(|| {
            let (path, query) = match request.target.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (request.target, None),
            };
            let user_agent = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("user-agent"))
                .map(|h| h.value);
            Entry::from_head(request.method, path, query, user_agent, client, server)
        }))
    }

    /// Sends the request written in `app.connection.head` and passes the response on.
    async fn exchange(
        &mut self,
        backend: &Arc<Backend>,
        mut app: App,
        rules: Rules,
        request: &parse::Request<'_>,
        tally: &mut Tally,
    ) -> Next {
        let limit = backend.config.request_timeout;
        // Without requestTimeout the app may take as long as it likes: a year stands for that.
        let wait = limit.unwrap_or(Duration::from_secs(86_400 * 365));
        self.deadline.set(Instant::from_std(tally.started()) + wait);
        if let Err(err) = self.send_head(&mut app, backend).await {
            let why = NoAnswer::closed_or_invalid(backend.pid, &err);
            return self.answer_page(why.answer(), request, tally).await.0;
        }
        let conn = &mut app.connection;
        let head = loop {
            if !conn.buf.is_empty() {
                let invalid = match response::rewrite(&conn.buf, rules, self.out) {
                    Ok(Parsed::Head(head)) => {
                        conn.buf.advance(head.len);
                        break head;
                    }
                    Ok(Parsed::Interim(len)) => {
                        conn.buf.advance(len);
                        continue;
                    }
                    Ok(Parsed::Switched) => {
                        let why = NoAnswer::SwitchedUnasked { pid: backend.pid };
                        return self.answer_page(why.answer(), request, tally).await.0;
                    }
                    Ok(Parsed::Partial) if conn.buf.len() > exchange::MAX_HEAD => {
                        Some(ExchangeError::HeadTooLarge)
                    }
                    Ok(Parsed::Partial) => None,
                    Err(err) => Some(err),
                };
                if let Some(err) = invalid {
                    let why = NoAnswer::closed_or_invalid(backend.pid, &err);
                    return self.answer_page(why.answer(), request, tally).await.0;
                }
            }
            let had = conn.buf.len();
            let broke = match wait_app(conn, self.stream, self.deadline).await {
                Ok(0) if had == 0 => Broke::App(ExchangeError::Closed),
                Ok(0) => Broke::App(ExchangeError::Invalid("the head ended early")),
                Ok(_) => continue,
                Err(broke) => broke,
            };
            return match broke.before_head(backend.pid, limit) {
                Some(why) => self.answer_page(why.answer(), request, tally).await.0,
                None => {
                    // As on hyper's path: a request abandoned by its client got no answer.
                    self.end(tally);
                    Next::Close
                }
            };
        };
        if head.conflicting {
            outcome::conflicting_framing(backend.pid);
        }
        tally.answered(Version::HTTP_11, head.status, Some(backend.pid));
        let body = self.body(&mut app.connection, head.framing, limit).await;
        let ended = self.end(tally);
        match body {
            Ok(sent) => {
                STATS.sent(sent.bytes);
                let outcome = Outcome {
                    keep_alive: head.reusable && sent.reusable,
                    // The body went with the head, whole, before any of the response was read.
                    body_sent_first: true,
                    framing_anomaly: head.conflicting,
                    leftover: !app.connection.buf.is_empty(),
                };
                if pool::reusable(outcome) {
                    pool::put_at(backend, app.connection, ended);
                }
                if rules.close {
                    Next::Close
                } else {
                    Next::KeepAlive
                }
            }
            Err(Broke::Client) => Next::Close,
            Err(Broke::App(err)) => {
                tracing::warn!(pid = backend.pid, err = %error_chain(&err), "the app's response broke off; closing the client's connection");
                Next::Close
            }
            // `fill` tells a silent app as an invalid response.
            Err(Broke::TimedOut) => Next::Close,
        }
    }

    /// Writes the request head (and body) to the app. A reused connection that takes none of it
    /// was closed by the app meanwhile: the request goes on a fresh one.
    async fn send_head(&mut self, app: &mut App, backend: &Backend) -> Result<(), SendError> {
        loop {
            let conn = &mut app.connection;
            let written = match conn.stream.try_write(&conn.head) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
                Err(err) if app.reused => {
                    tracing::debug!(%err, "a pooled connection to the app was closed; opening another");
                    app.reopen(backend).await?;
                    continue;
                }
                Err(err) => return Err(SendError::Exchange(ExchangeError::Write(err))),
            };
            if written < conn.head.len() {
                conn.stream
                    .write_all(&conn.head[written..])
                    .await
                    .map_err(|err| SendError::Exchange(ExchangeError::Write(err)))?;
            }
            return Ok(());
        }
    }

    /// Passes the response body on, framed for the client.
    async fn body(
        &mut self,
        conn: &mut Connection,
        framing: Framing,
        limit: Option<Duration>,
    ) -> Result<Sent, Broke> {
        let mut sent = 0;
        let mut reusable = true;
        match framing {
            Framing::Done => {}
            Framing::Length(mut left) => loop {
                let take = usize::try_from(left).map_or(conn.buf.len(), |l| l.min(conn.buf.len()));
                if take > 0 {
                    if self.out.len() + take <= FLUSH_AT {
                        self.out.extend_from_slice(&conn.buf[..take]);
                    } else {
                        flush(self.stream, self.out, self.proxy.send_timeout).await?;
                        send(self.stream, &conn.buf[..take], self.proxy.send_timeout).await?;
                    }
                    conn.buf.advance(take);
                    sent += take;
                    left -= take as u64;
                }
                if left == 0 {
                    break;
                }
                flush(self.stream, self.out, self.proxy.send_timeout).await?;
                self.fill(conn, limit).await?;
            },
            Framing::Chunked(mut state) => loop {
                match exchange::chunk_step(&mut state, &mut conn.buf).map_err(Broke::App)? {
                    Step::Data(data) => {
                        sent += data.len();
                        chunk(self.out, &data);
                        if self.out.len() >= FLUSH_AT {
                            flush(self.stream, self.out, self.proxy.send_timeout).await?;
                        }
                    }
                    // Trailers go to a client that asked for them (TE), and such requests go
                    // hyper's way.
                    Step::Trailers(_) | Step::End => {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                        break;
                    }
                    Step::More => {
                        flush(self.stream, self.out, self.proxy.send_timeout).await?;
                        self.fill(conn, limit).await?;
                    }
                }
            },
            Framing::Close => loop {
                if !conn.buf.is_empty() {
                    sent += conn.buf.len();
                    chunk(self.out, &conn.buf);
                    conn.buf.clear();
                }
                flush(self.stream, self.out, self.proxy.send_timeout).await?;
                match self.fill(conn, limit).await {
                    Ok(()) => {}
                    Err(Broke::App(ExchangeError::ClosedEarly)) => {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                        reusable = false;
                        break;
                    }
                    Err(err) => return Err(err),
                }
            },
        }
        flush(self.stream, self.out, self.proxy.send_timeout).await?;
        Ok(Sent {
            bytes: sent,
            reusable,
        })
    }

    /// Reads more of the response body; requestTimeout bounds each wait on the app.
    async fn fill(&mut self, conn: &mut Connection, limit: Option<Duration>) -> Result<(), Broke> {
        if let Some(limit) = limit {
            self.deadline.set(Instant::now() + limit);
        }
        match wait_app(conn, self.stream, self.deadline).await {
            Ok(0) => Err(Broke::App(ExchangeError::ClosedEarly)),
            Ok(_) => {
                gather(conn);
                Ok(())
            }
            Err(Broke::TimedOut) => Err(Broke::App(ExchangeError::Invalid(
                "no body data within requestTimeout",
            ))),
            Err(broke) => Err(broke),
        }
    }

    /// One of ancm's pages as the answer to a request counted in the metrics.
    async fn answer_page(
        &mut self,
        page: Response<Full<Bytes>>,
        request: &parse::Request<'_>,
        tally: &mut Tally,
    ) -> (Next, usize) {
        tally.answered(Version::HTTP_11, page.status(), None);
        let next = self.page(page, request).await;
        self.end(tally);
        (next, request.len())
    }

    /// Notes the end of a request.
    fn end(&mut self, tally: &Tally) -> std::time::Instant {
        let ended = tally.end();
        *self.ended = ended;
        ended
    }

    /// Writes one of ancm's pages.
    async fn page(&mut self, page: Response<Full<Bytes>>, request: &parse::Request<'_>) -> Next {
        let close = request.close || self.shutdown.is_cancelled();
        let (parts, body) = page.into_parts();
        let body = full_bytes(body);
        self.out.extend_from_slice(b"HTTP/1.1 ");
        self.out.extend_from_slice(parts.status.as_str().as_bytes());
        self.out.push(b' ');
        self.out
            .extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
        self.out.extend_from_slice(b"\r\n");
        for (name, value) in &parts.headers {
            self.out.extend_from_slice(name.as_str().as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"content-length: ");
        self.out
            .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        self.out.extend_from_slice(b"\r\ndate: ");
        response::push_date(self.out);
        if close {
            self.out.extend_from_slice(b"\r\nconnection: close");
        }
        self.out.extend_from_slice(b"\r\n\r\n");
        if !request.is_head() {
            self.out.extend_from_slice(&body);
        }
        if flush(self.stream, self.out, self.proxy.send_timeout)
            .await
            .is_err()
            || close
        {
            return Next::Close;
        }
        Next::KeepAlive
    }
}

/// What the body loop takes from the app at once, reading what is already there: a long body
/// goes on in pieces this large (fewer system calls each way), and a client that stops reading
/// holds at most this much here.
const GATHER: usize = 32 * 1024;

/// Reads, without waiting, what the app has already sent, up to [`GATHER`] in the buffer.
/// An end of stream or error is left for the next wait to find.
fn gather(conn: &mut Connection) {
    while conn.buf.len() < GATHER {
        let room = GATHER - conn.buf.len();
        conn.buf.reserve(room);
        match conn.stream.try_read_buf(&mut (&mut conn.buf).limit(room)) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// A response body passed on in full.
struct Sent {
    bytes: usize,
    /// The body did not end with the app closing the connection.
    reusable: bool,
}

/// The app connection a request goes out on.
struct App {
    connection: Connection,
    /// Taken from the pool rather than opened for this request.
    reused: bool,
}

impl App {
    /// Moves the request onto a fresh connection.
    async fn reopen(&mut self, backend: &Backend) -> Result<(), SendError> {
        let mut fresh = pool::connect(backend).await?;
        std::mem::swap(&mut fresh.head, &mut self.connection.head);
        self.connection = fresh;
        self.reused = false;
        Ok(())
    }
}

/// The lean path's transport: an app connection (pooled or new) with the request written into
/// its head buffer for the process it goes to.
struct Opener<'r, 'b> {
    request: &'r parse::Request<'b>,
    body: &'r [u8],
    client: &'r ClientInfo,
    now: std::time::Instant,
    /// Under `--strip-app-path`, the base and the rest of the target, forwarded without it.
    strip: Option<(&'r AppBase, &'r str)>,
}

impl Transport for Opener<'_, '_> {
    /// The request is written anew for each try, with the token of the process it goes to.
    type Request = ();
    type Response = App;

    async fn send(
        &mut self,
        backend: &Arc<Backend>,
        (): (),
    ) -> Result<App, (NoAnswer, Option<()>)> {
        self.open(backend)
            .await
            .map_err(|err| (NoAnswer::cannot_connect(backend.pid, &err), Some(())))
    }
}

impl Opener<'_, '_> {
    async fn open(&self, backend: &Backend) -> Result<App, SendError> {
        let (mut connection, reused) = match pool::checkout_at(backend, self.now) {
            Some(connection) => (connection, true),
            None => (pool::connect(backend).await?, false),
        };
        connection.head.clear();
        parse::write_for_app(
            self.request,
            self.body,
            backend.token.as_bytes(),
            self.client,
            &mut connection.head,
        );
        if let Some((base, rest)) = self.strip {
            base.strip_head(
                &mut connection.head,
                self.request.method.len(),
                self.request.target.len(),
                rest,
                self.body.len(),
            );
        }
        Ok(App { connection, reused })
    }
}

/// Waits for the app to send more (how much; none when it closed), for the deadline, or for the
/// client to go away (which aborts the request: the app sees its connection close). Bytes the client sends meanwhile
/// (a pipelined request) are left in the socket.
async fn wait_app(
    conn: &mut Connection,
    client: &TcpStream,
    deadline: &mut Deadline,
) -> Result<usize, Broke> {
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            read = std::future::poll_fn(|cx| conn.poll_fill(cx)) => {
                return read.map_err(|err| Broke::App(ExchangeError::Read(err)));
            }
            () = deadline.passed() => return Err(Broke::TimedOut),
            ready = client.readable(), if watching => {
                if ready.is_err() || client_gone(client) {
                    return Err(Broke::Client);
                }
                // A pipelined request: the client is there; stop watching for this wait.
                watching = false;
            }
        }
    }
}

/// Whether the client closed or reset its connection: a peek that takes nothing.
fn client_gone(client: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let mut peek = ReadBuf::new(&mut byte);
    match client.poll_peek(&mut Context::from_waker(Waker::noop()), &mut peek) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => true,
        Poll::Ready(Ok(_)) | Poll::Pending => false,
    }
}

/// Writes `out` to the client, and empties it.
async fn flush(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    send_timeout: Option<Duration>,
) -> Result<(), Broke> {
    if out.is_empty() {
        return Ok(());
    }
    let written = send(stream, out, send_timeout).await;
    out.clear();
    written
}

/// Writes `bytes` to the client; a write that makes no progress for the send timeout fails.
async fn send(
    stream: &mut TcpStream,
    bytes: &[u8],
    send_timeout: Option<Duration>,
) -> Result<(), Broke> {
    let mut stream = Stalls::new(stream, send_timeout);
    stream.write_all(bytes).await.map_err(|err| {
        super::send_timeout::report(&err, None);
        Broke::Client
    })
}

/// `data` as one chunk of a chunked body.
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    let mut size = [0u8; 16];
    let mut at = size.len();
    let mut n = data.len();
    loop {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The whole of a page's body, which is in memory.
fn full_bytes(body: Full<Bytes>) -> Bytes {
    let mut body = std::pin::pin!(body);
    match body
        .as_mut()
        .poll_frame(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// A connection handed to hyper: what the lean path read from it comes first.
pub(super) struct Prefixed {
    prefix: BytesMut,
    stream: TcpStream,
}

impl Prefixed {
    pub(super) fn new(stream: TcpStream, prefix: BytesMut) -> Prefixed {
        Prefixed { prefix, stream }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
