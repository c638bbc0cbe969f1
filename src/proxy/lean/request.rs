//! One request on the lean path: the steps of `forward.rs` (backend, limits, send with one
//! retry, tally) with the lean transport ([`Opener`]), the exchange up to the app's response
//! head, and ancm's pages written as bytes. The body after the head is `relay.rs`'s.
//!
//! Must not import hyper's path (`hyper_path/`, `front.rs`), nor `conn.rs`, which calls
//! this.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Response, Version};
use http_body::Body;
use http_body_util::Full;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::access_log::Entry;
use super::super::app_path::{AppBase, Target};
use super::super::forward::{self, Addrs, Tally, Transport};
use super::super::h1::{self, ExchangeError};
use super::super::outcome::{self, Broke, NoAnswer};
use super::super::stats::STATS;
use super::super::upstream::connection::{self, Connection, Outcome};
use super::super::upstream::pool::{self, SendError};
use super::super::{error_chain, ClientInfo, Proxy};
use super::deadline::Deadline;
use super::parse;
use super::relay::{flush, wait_app, Relay};
use super::response::{self, Parsed, Rules};
use crate::supervisor::Backend;

/// What became of one request.
pub(super) enum Next {
    /// The connection may carry another request.
    KeepAlive,
    Close,
    Hyper,
}

/// A lean connection taken apart, so that the request parsed from its buffer can be held
/// while the rest is used.
pub(super) struct Split<'a, 'p> {
    pub(super) proxy: &'p Proxy,
    pub(super) client: &'p ClientInfo,
    pub(super) addrs: Addrs,
    pub(super) shutdown: &'p CancellationToken,
    pub(super) stream: &'a mut TcpStream,
    pub(super) out: &'a mut Vec<u8>,
    pub(super) deadline: &'a mut Deadline,
    pub(super) ended: &'a mut std::time::Instant,
}

impl Split<'_, '_> {
    /// Forwards `request` and sends the answer. Returns what comes next and how many bytes of
    /// the buffer the request took (none when it goes to hyper).
    pub(super) async fn forward(mut self, request: &parse::Request<'_>) -> (Next, usize) {
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
                    Ok(Parsed::Partial) if conn.buf.len() > h1::MAX_HEAD => {
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
        let body = self
            .relay()
            .body(&mut app.connection, head.framing, limit)
            .await;
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
                if connection::reusable(outcome) {
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

    /// The connection's parts the response body is relayed with.
    fn relay(&mut self) -> Relay<'_> {
        Relay {
            stream: self.stream,
            out: self.out,
            deadline: self.deadline,
            send_timeout: self.proxy.send_timeout,
        }
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
