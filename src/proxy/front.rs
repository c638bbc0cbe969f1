//! The front listeners: accept loops, TLS handshakes, and one HTTP/1.1-or-HTTP/2 server
//! connection per client (HTTP/2 by ALPN over TLS, or by its preface in plain text, i.e. h2c
//! with prior knowledge). On shutdown they stop accepting, let requests in flight finish, and
//! give upgraded connections a short grace before closing them.
//!
//! What one client can make ancm hold is bounded, so that a client that stops reading pushes
//! back on the app instead of filling ancm's memory: HTTP/1.1 buffers, HTTP/2 flow-control
//! windows and send buffers, TLS buffers (`tls.rs`) and the app connection (`pool.rs`). A
//! connection with no request in progress for the idle timeout is closed (HTTP/2 with GOAWAY).
//! A client that takes nothing of a response for the send timeout is cut off (`send_timeout.rs`),
//! and one HTTP/2 connection holds at most [`H2_APP_CONNECTIONS`] requests to the app at once.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access_log;
use super::forward::{self, Tally};
use super::lean::{Ended, Prefixed};
use super::send_timeout::{self, Stalls, Streams};
use super::stats::STATS;
use super::workers::Workers;
use super::{error_chain, ClientInfo, Proxy};

/// How long upgraded connections (WebSockets) may stay open once ancm is stopping. They have
/// no end a shutdown could wait for, and the app is only told to stop after the proxy has
/// drained, so this is a moment for frames already on their way, then both ends are closed.
const TUNNEL_GRACE: Duration = Duration::from_secs(2);

type Server = auto::Builder<Streams>;

/// Serves on every listener until `shutdown` fires, then stops accepting and lets each
/// connection finish its request in flight. Returns when every connection has closed.
pub async fn serve(proxy: Arc<Proxy>, listeners: Vec<TcpListener>, shutdown: CancellationToken) {
    // Also when the caller gives up on the drain and drops this future: tunnels close with it,
    // and with the workers everything they still serve.
    let _close_tunnels = proxy.close_tunnels.clone().drop_guard();
    let workers = Workers::start().await;
    let server = Arc::new(server(
        proxy.header_read_timeout,
        proxy.max_request_head,
        proxy.send_timeout,
    ));
    let connections = TaskTracker::new();
    // One accept loop per listener, here; each connection goes to the next worker in turn, so
    // the workers share clients evenly (one that raced the others to accept would not).
    let handles = workers.handles();
    let next = Arc::new(AtomicUsize::new(0));
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept(
                listener,
                Deal {
                    workers: handles.clone(),
                    next: next.clone(),
                    connections: connections.clone(),
                },
                proxy.clone(),
                server.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    let trimming = tokio::spawn(super::trim::after_peaks(
        connections.clone(),
        shutdown.clone(),
    ));
    for task in accepting {
        let _ = task.await;
    }
    trimming.abort();
    connections.close();
    proxy.tunnels.close();
    let tunnels = async {
        if tokio::time::timeout(TUNNEL_GRACE, proxy.tunnels.wait())
            .await
            .is_err()
        {
            tracing::info!(
                open = proxy.tunnels.len(),
                "closing upgraded connections (WebSockets) still open"
            );
            proxy.close_tunnels.cancel();
            proxy.tunnels.wait().await;
        }
    };
    tokio::join!(connections.wait(), tunnels);
    workers.stop().await;
}

/// HTTP/2 flow control: what a client may send ahead on one stream, and on all of its streams,
/// before the app has taken it. HTTP/2's own default stream window is 64 KiB.
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;

/// Response data queued for one HTTP/2 stream the client is not reading: one 16 KiB frame.
const H2_SEND_BUFFER: usize = 16 * 1024;

/// Streams at once on one HTTP/2 connection, as nginx's http2_max_concurrent_streams.
const H2_MAX_STREAMS: u32 = 128;

/// Requests of one HTTP/2 connection forwarded to the app at once; the connection's other
/// streams wait for one of these to end. A browser opens six HTTP/1.1 connections to a site,
/// each with one request at a time; this lets its one HTTP/2 connection do a few times that,
/// but not hold an app connection for each of its 128 streams.
const H2_APP_CONNECTIONS: usize = 32;

/// An HTTP/2 client that does not answer a PING within this is gone: its connection closes
/// even in the middle of a long response.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a connection closed for being idle may take to go: an HTTP/2 client is sent a
/// GOAWAY and a PING, and one that does not answer the PING is not waited for longer.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// One server for every connection: HTTP/1.1 with a deadline for each request's headers, and
/// HTTP/2, told apart per connection by the HTTP/2 preface. `max_head` bounds an HTTP/1.1
/// request head (larger ones get 431) and, as hyper's write buffer shares the bound, how much
/// of a response waits in ancm for a client that does not read. HTTP/2 streams run in tasks
/// that end when the client reads nothing of them for `send_timeout`.
fn server(
    header_read_timeout: Duration,
    max_head: usize,
    send_timeout: Option<Duration>,
) -> Server {
    let mut server = auto::Builder::new(Streams {
        limit: send_timeout,
    });
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(max_head);
    server
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_send_buf_size(H2_SEND_BUFFER)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    server
}

/// Where accepted connections go: to each worker in turn, tracked until they close.
struct Deal {
    workers: Arc<[Handle]>,
    next: Arc<AtomicUsize>,
    connections: TaskTracker,
}

impl Deal {
    fn worker(&self) -> &Handle {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.workers[turn % self.workers.len()]
    }
}

async fn accept(
    listener: TcpListener,
    deal: Deal,
    proxy: Arc<Proxy>,
    server: Arc<Server>,
    shutdown: CancellationToken,
) {
    let mut shortage = Shortage::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => {
                shortage.over();
                accepted
            }
            Err(err) if out_of_descriptors(&err) => {
                shortage.hit(&err);
                // The connection waits in the backlog until a descriptor is free.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(err) => {
                // A connection reset before it was accepted, and the like: that client's
                // loss, not the listener's.
                tracing::debug!(%err, "accepting a connection failed");
                continue;
            }
        };
        // Handed over unregistered: the worker's own runtime watches it from there on.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, %remote, "cannot hand a connection to a proxy thread");
                continue;
            }
        };
        let serve = connection(
            stream,
            remote,
            proxy.clone(),
            server.clone(),
            shutdown.clone(),
        );
        deal.worker().spawn(deal.connections.track_future(serve));
    }
}

async fn connection(
    stream: std::net::TcpStream,
    remote: SocketAddr,
    proxy: Arc<Proxy>,
    server: Arc<Server>,
    shutdown: CancellationToken,
) {
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(%err, %remote, "a proxy thread cannot take a connection");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    // The TLS handshake and the first request share one deadline, so a client that connects
    // and says nothing (or only part of a handshake or preface) cannot hold the connection.
    let deadline = Instant::now() + proxy.header_read_timeout;
    let forwarded_for = super::headers::forwarded_for(remote, proxy.forwarded_for);
    let (front, local) = match stream.local_addr() {
        Ok(local) => (super::headers::front_authority(local), local),
        Err(err) => {
            tracing::debug!(%err, %remote, "the connection closed before it could be served");
            return;
        }
    };
    let Some(acceptor) = proxy.tls.clone() else {
        let client = ClientInfo {
            forwarded_for,
            proto: HeaderValue::from_static("http"),
            client_cert: None,
            front,
        };
        let addrs = (remote, local);
        if !proxy.lean {
            return serve_connection(stream, client, addrs, proxy, &server, shutdown, deadline)
                .await;
        }
        let lean = super::lean::serve(stream, &client, addrs, &proxy, &shutdown, deadline);
        let (stream, read) = match lean.await {
            Ended::Closed => return,
            Ended::Hyper(stream, read) => (stream, read),
        };
        // hyper takes over at a request boundary, as if the connection were new; the head it
        // starts with has the header read timeout a new head gets.
        let deadline = Instant::now() + proxy.header_read_timeout;
        let stream = Prefixed::new(stream, read);
        return serve_connection(stream, client, addrs, proxy, &server, shutdown, deadline).await;
    };
    let handshake = tokio::select! {
        handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => handshake,
        () = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(Ok(mut stream)) => {
            super::tls::limit_buffers(stream.get_mut().1);
            let client = ClientInfo {
                forwarded_for,
                proto: HeaderValue::from_static("https"),
                client_cert: super::tls::client_cert_header(stream.get_ref().1),
                front,
            };
            let addrs = (remote, local);
            serve_connection(stream, client, addrs, proxy, &server, shutdown, deadline).await;
        }
        Ok(Err(err)) => tracing::debug!(%remote, %err, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "no TLS handshake within the header read timeout"),
    }
}

/// `addrs`: the client's address and the one it connected to.
async fn serve_connection<I>(
    io: I,
    client: ClientInfo,
    (remote, local): (SocketAddr, SocketAddr),
    proxy: Arc<Proxy>,
    server: &Server,
    shutdown: CancellationToken,
    deadline: Instant,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(client);
    // Set by the first request; hyper's header_read_timeout covers HTTP/1.1 requests from there
    // on, and an HTTP/2 client past its preface is a real one.
    let started = Arc::new(AtomicBool::new(false));
    let activity = Arc::new(Activity::new());
    let idle_timeout = proxy.idle_timeout;
    let proxy_send_timeout = proxy.send_timeout;
    // One permit per request (HTTP/1.1 has one at a time), held until its response is over.
    let app_connections = Arc::new(Semaphore::new(H2_APP_CONNECTIONS));
    let service = service_fn({
        let started = started.clone();
        let activity = activity.clone();
        move |request: http::Request<hyper::body::Incoming>| {
            started.store(true, Ordering::Relaxed);
            let in_progress = activity.begin();
            let proxy = proxy.clone();
            let client = client.clone();
            let app_connections = app_connections.clone();
            async move {
                // Never closed, so this cannot fail; without a permit, the request goes on.
                let permit = app_connections.acquire_owned().await.ok();
                let version = request.version();
                let entry = forward::log_entry(|| access_log::Entry::new(&request, remote, local));
                let mut timed = Timed(Tally::start(entry));
                let response = proxy.handle(request, &client).await;
                let pid = response
                    .extensions()
                    .get::<access_log::AppPid>()
                    .map(|p| p.0);
                timed.0.answered(version, response.status(), pid);
                Ok::<_, Infallible>(response.map(|body| Counted {
                    body,
                    _in_progress: in_progress,
                    _timed: timed,
                    _permit: permit,
                }))
            }
        }
    });
    let io = Stalls::new(io, proxy_send_timeout);
    let conn = server.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let first_request = tokio::time::sleep_until(deadline);
    tokio::pin!(first_request);
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let (mut waiting, mut draining, mut closing_idle) = (true, false, false);
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = first_request.as_mut(), if waiting => {
                if !started.load(Ordering::Relaxed) {
                    tracing::debug!(%remote, "no request within the header read timeout; closing");
                    return;
                }
                waiting = false;
            }
            () = idle.as_mut(), if !draining || closing_idle => {
                if closing_idle {
                    // A request that raced the GOAWAY is let finish.
                    if activity.idle_until(Duration::ZERO).is_none() {
                        idle.as_mut().reset(Instant::now() + IDLE_CLOSE_GRACE);
                        continue;
                    }
                    tracing::debug!(%remote, "an idle connection did not close when asked; dropping it");
                    return;
                }
                let now = Instant::now();
                match activity.idle_until(idle_timeout) {
                    Some(due) if due <= now => {
                        tracing::debug!(%remote, "no request for {idle_timeout:?} (the idle timeout); closing");
                        draining = true;
                        closing_idle = true;
                        conn.as_mut().graceful_shutdown();
                        idle.as_mut().reset(now + IDLE_CLOSE_GRACE);
                    }
                    Some(due) => idle.as_mut().reset(due),
                    // A request in progress: the connection is not idle, look again later.
                    None => idle.as_mut().reset(now + idle_timeout),
                }
            }
        }
    };
    match result {
        Err(err) if send_timeout::report(&*err, Some(remote)) => {}
        Err(err) => {
            tracing::debug!(%remote, err = %error_chain(&*err), "client connection ended with an error");
        }
        Ok(()) => {}
    }
}

/// The requests in progress on one client connection, and when the last of them ended; a
/// request is in progress from its head until its response has been sent (or abandoned).
struct Activity {
    start: Instant,
    open: AtomicUsize,
    /// Milliseconds from `start` to when the last request ended.
    last_end: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            open: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.open.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// When the connection will have been idle for `limit`; `None` while a request is in
    /// progress.
    fn idle_until(&self, limit: Duration) -> Option<Instant> {
        if self.open.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last_end = Duration::from_millis(self.last_end.load(Ordering::Relaxed));
        Some(self.start + last_end + limit)
    }
}

/// One request in progress; its end is when this is dropped.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let since_start = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end.fetch_max(since_start, Ordering::Relaxed);
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request's tally, over when hyper has sent or dropped its response.
struct Timed(Tally);

impl Drop for Timed {
    fn drop(&mut self) {
        self.0.end();
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in progress (and its HTTP/2 connection's permit
    /// for the app) until hyper has sent or dropped it, counting the bytes it sends and telling
    /// the send timeout when it waits on the client.
    struct Counted<B> {
        #[pin]
        body: B,
        _in_progress: InProgress,
        _timed: Timed,
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    }
}

impl<B: Body<Data = Bytes>> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        send_timeout::note(false);
        let polled = self.project().body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                STATS.sent(data.len());
                send_timeout::note(true);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Accepts failing for want of file descriptors: said once when it starts and once when it
/// ends, not on every try (the loop tries again every 50 ms while it lasts).
#[derive(Default)]
struct Shortage {
    failed: u64,
}

impl Shortage {
    fn hit(&mut self, err: &io::Error) {
        if self.failed == 0 {
            tracing::warn!(
                %err,
                open_file_limit = open_file_limit().map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
                "out of file descriptors: new connections wait until some close; connections already open are still served"
            );
        }
        self.failed += 1;
    }

    fn over(&mut self) {
        if self.failed > 0 {
            tracing::info!(
                failed_accepts = self.failed,
                "file descriptors available again; accepting new connections"
            );
            self.failed = 0;
        }
    }
}

/// Whether an accept failed because this process (EMFILE) or the system (ENFILE) has no file
/// descriptor left.
fn out_of_descriptors(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        err.raw_os_error()
            .is_some_and(|code| matches!(Errno::from_raw(code), Errno::EMFILE | Errno::ENFILE))
    }
    #[cfg(not(unix))]
    {
        // WSAEMFILE
        err.raw_os_error() == Some(10024)
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource};
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Raises the soft limit on open files to the hard limit: every client connection is one, and
/// the soft limit a shell or service manager starts ancm with (often 1,024) is far below what
/// the system lets a process take.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            {
                Ok(()) => tracing::debug!(
                    from = soft,
                    to = hard,
                    "raised the open-file limit to the hard limit"
                ),
                Err(err) => tracing::debug!(%err, soft, hard, "cannot raise the open-file limit"),
            },
            Ok((soft, hard)) => {
                tracing::debug!(soft, hard, "the open-file limit is at the hard limit")
            }
            Err(err) => tracing::debug!(%err, "cannot read the open-file limit"),
        }
    }
}
