//! Connections to one app process: HTTP/1.1 keep-alive connections, opened when no idle one is
//! at hand and kept between requests, as ANCM's WinHTTP session keeps them. Each process has its
//! own pool (it lives in its [`Backend`](crate::supervisor::Backend)), so a process that is
//! replaced takes its idle connections with it.
//!
//! A connection is lent to one request (`exchange.rs`) and comes back only once its response
//! has been read in full (see `body.rs`). One dropped before that, because the client went
//! away, is closed with the request half done, and the app sees its request aborted. No task
//! watches an idle connection: one idle for a while is peeked for a close before it is used.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::exchange::{self, AppBody, Connection, ExchangeError, Failure};
use super::workers;

/// How long an idle connection is kept. Kestrel closes keep-alive connections idle for 130 s,
/// so ancm lets go first rather than send a request into a connection being closed.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// A connection idle this long is checked for a close by the app before it takes a request.
const PEEK_AFTER: Duration = Duration::from_millis(1);

/// Idle connections kept per process; more than this many at once are closed after use.
const MAX_IDLE: usize = 512;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    #[error("the app closed the connection or sent an invalid response")]
    Exchange(#[source] ExchangeError),
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
    connection: Connection,
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

    /// Sends `request` on an idle connection, or a new one, and returns the response head; its
    /// body holds the connection, given back with [`Pool::put`] once the body is read.
    /// A request a reused connection closed on before taking any of it is sent again on a
    /// fresh one; one that reached the app is never sent again (it may be what made the app
    /// fail).
    pub(super) async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<AppBody>, Unanswered> {
        loop {
            let (connection, reused) = match self.checkout() {
                Some(connection) => (connection, true),
                None => match self.connect().await {
                    Ok(connection) => (connection, false),
                    Err(error) => return Err(Unanswered::unsent(error, request)),
                },
            };
            match exchange::send(connection, request).await {
                Ok(response) => return Ok(response),
                Err(Failure {
                    unsent: Some(unsent),
                    ..
                }) if reused => request = unsent,
                Err(Failure { error, unsent }) => {
                    return Err(Unanswered {
                        error: SendError::Exchange(error),
                        // Unwritten on a fresh connection: the app took no part of it.
                        unsent,
                    });
                }
            }
        }
    }

    /// Gives back a connection whose response has been read in full.
    pub(super) fn put(&self, connection: Connection) {
        let mut idle = self.idle().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// The most recently used idle connection that is still open.
    pub(super) fn checkout(&self) -> Option<Connection> {
        let mut idle = self.idle().lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let Idle { connection, since } = idle.pop()?;
            let idle_for = since.elapsed();
            if idle_for >= IDLE_FOR {
                continue;
            }
            // Under load a connection comes back within microseconds and skips the system
            // call; one that waited may have seen the app die or time it out meanwhile.
            if idle_for >= PEEK_AFTER && connection.closed_by_peer() {
                continue;
            }
            return Some(connection);
        }
    }

    pub(super) async fn connect(&self) -> Result<Connection, SendError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(SendError::Connect { addr, source }),
            Err(_) => return Err(SendError::ConnectTimeout(addr)),
        };
        // Heads and small bodies go out at once rather than waiting on Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Connection::new(stream))
    }
}
