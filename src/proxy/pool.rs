//! Connections to one app process: HTTP/1.1 keep-alive connections, opened when no idle one is
//! at hand and kept between requests, as ANCM's WinHTTP session keeps them. Each process has its
//! own pool (it lives in its [`Backend`](crate::supervisor::Backend)), so a process that is
//! replaced takes its idle connections with it.
//!
//! A connection is lent to one request and comes back only once its response has been read in
//! full (see `body.rs`). One dropped before that, because the client went away, is closed with
//! the request half done, and the app sees its request aborted.
//!
//! Responses are read from the app in small pieces ([`SmallReads`]): a piece a slow client has
//! not taken yet keeps its whole read buffer alive, so small pieces keep what a stalled client
//! costs small, and the app meets back-pressure instead.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::workers;

/// One connection to the app, ready to carry a request.
pub(super) struct Sender {
    send: http1::SendRequest<RequestBody>,
    /// The connection's socket, to look for a close that arrived while it was idle.
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
}

impl Sender {
    fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    /// Whether the app closed (or reset) the connection while it was idle, as far as the
    /// kernel knows: the connection's own task may not have read that yet, and a request
    /// written into it then would fail with no way to tell it from one that crashed the app.
    /// A peek that takes nothing; on a descriptor that is no longer this socket it fails, and
    /// the connection is only given up.
    #[cfg(unix)]
    fn closed_by_peer(&self) -> bool {
        use nix::sys::socket::{recv, MsgFlags};
        let mut byte = [0u8; 1];
        match recv(
            self.fd,
            &mut byte,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            // Nothing to read: open and quiet, as an idle connection is.
            Err(nix::errno::Errno::EAGAIN) => false,
            // End of stream, bytes the app sent unasked, or an error: not one to send on.
            _ => true,
        }
    }

    #[cfg(not(unix))]
    fn closed_by_peer(&self) -> bool {
        false
    }
}

/// How long an idle connection is kept. Kestrel closes keep-alive connections idle for 130 s,
/// so ancm lets go first rather than send a request into a connection being closed.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// A connection idle this long is checked for a close by the app before it takes a request.
const PEEK_AFTER: Duration = Duration::from_millis(1);

/// Idle connections kept per process; more than this many at once are closed after use.
const MAX_IDLE: usize = 512;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response head taken from the app, as WinHTTP takes 64 KB for ANCM (spec §4.1);
/// a larger one fails its request with a 502 and the reason in the log.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Header lines a response head may have. hyper parses up to 100 on the stack; with a limit
/// set, it takes two heap buffers of that many entries for every response, about 700
/// instructions per request whatever the size (callgrind). 1,024 lines fill a 64 KiB head at 64
/// bytes a line, so the byte limit above is what bounds real heads (many Set-Cookie and
/// Content-Security-Policy lines); at 4,096 the 128 KiB buffers also make glibc trim and regrow
/// the proxy threads' heaps every few requests.
const MAX_RESPONSE_HEADERS: usize = 1024;

/// The most read from the app at once. hyper grows its read buffer to twice what a read
/// brings, so this bounds the buffer as well as each piece of body handed to the front.
const READ_PIECE: usize = 8 * 1024;

/// The read buffer's bound: a whole response head must fit (it is taken in pieces).
const MAX_READ_BUFFER: usize = MAX_RESPONSE_HEAD + READ_PIECE;

/// Why a request could not be sent to the app or got no response.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {0} took longer than {CONNECT_TIMEOUT:?}")]
    ConnectTimeout(SocketAddr),
    #[error("the HTTP/1.1 handshake with the app failed")]
    Handshake(#[source] hyper::Error),
    #[error("the app closed the connection or sent an invalid response")]
    Request(#[source] hyper::Error),
}

/// A request that got no response, and the request itself when the app never saw it: no
/// connection could be made, so it may go to another process as it is.
pub(super) struct Unanswered {
    pub(super) error: SendError,
    pub(super) unsent: Option<Request<RequestBody>>,
}

impl Unanswered {
    fn unsent(error: SendError, request: Request<RequestBody>) -> Self {
        Unanswered {
            error,
            unsent: Some(request),
        }
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The keep-alive connections to one app process.
pub struct Pool {
    addr: SocketAddr,
    /// Idle connections by proxy worker (`workers.rs`): a connection is driven by the worker
    /// that opened it, so it only serves that worker's requests.
    idle: Box<[Mutex<Vec<Idle>>]>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = self
            .idle
            .iter()
            .map(|idle| idle.lock().map_or(0, |idle| idle.len()))
            .sum();
        f.debug_struct("Pool")
            .field("addr", &self.addr)
            .field("idle", &idle)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: (0..workers::count())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// The calling worker's idle connections.
    fn idle(&self) -> &Mutex<Vec<Idle>> {
        &self.idle[workers::current() % self.idle.len()]
    }

    /// Sends `request` on an idle connection, or a new one, and returns the response head with
    /// the connection it came on (to be given back with [`Pool::put`] once the body is read).
    /// A request a reused connection closed on before taking it is sent again on a fresh one;
    /// one that reached the app is never sent again (it may be what made the app fail).
    pub(super) async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Sender), Unanswered> {
        loop {
            let (mut sender, reused) = match self.checkout().await {
                Some(sender) => (sender, true),
                None => match self.connect().await {
                    Ok(sender) => (sender, false),
                    Err(error) => return Err(Unanswered::unsent(error, request)),
                },
            };
            match sender.send.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    unsent => {
                        return Err(Unanswered {
                            error: SendError::Request(err.into_error()),
                            // Unwritten on a fresh connection: the app took no part of it.
                            unsent,
                        });
                    }
                },
            }
        }
    }

    /// Gives back a connection whose response has been read in full.
    pub(super) fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// The most recently used idle connection that is still open, once it can take a request
    /// (it may still be finishing the previous response).
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let Idle { mut sender, since } = self
                .idle()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()?;
            let idle_for = since.elapsed();
            if idle_for >= IDLE_FOR || sender.is_closed() {
                continue;
            }
            // Under load a connection comes back within microseconds and skips the system
            // call; one that waited may have seen the app die or time it out meanwhile.
            if idle_for >= PEEK_AFTER && sender.closed_by_peer() {
                continue;
            }
            if sender.send.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(SendError::Connect { addr, source }),
            Err(_) => return Err(SendError::ConnectTimeout(addr)),
        };
        // Heads and small bodies go out at once rather than waiting on Nagle.
        let _ = stream.set_nodelay(true);
        #[cfg(unix)]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let (send, connection) = http1::Builder::new()
            .max_header_size(MAX_RESPONSE_HEAD)
            .max_headers(MAX_RESPONSE_HEADERS)
            .max_buf_size(MAX_READ_BUFFER)
            .handshake(TokioIo::new(SmallReads(stream)))
            .await
            .map_err(SendError::Handshake)?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(%addr, err = %super::error_chain(&err), "connection to the app ended with an error");
            }
        });
        Ok(Sender {
            send,
            #[cfg(unix)]
            fd,
        })
    }
}

/// The connection to the app, read at most [`READ_PIECE`] bytes at a time.
struct SmallReads(TcpStream);

impl AsyncRead for SmallReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() <= READ_PIECE {
            return Pin::new(&mut self.0).poll_read(cx, buf);
        }
        // Zeroed first: reading into it safely needs it initialised (a memset of 8 KiB).
        let mut piece = ReadBuf::new(buf.initialize_unfilled_to(READ_PIECE));
        let polled = Pin::new(&mut self.0).poll_read(cx, &mut piece);
        let filled = piece.filled().len();
        buf.advance(filled);
        polled
    }
}

impl AsyncWrite for SmallReads {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
