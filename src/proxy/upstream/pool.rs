//! The proxy's connections to the app's processes: HTTP/1.1 keep-alive connections, opened
//! when no idle one is at hand and kept between requests, as ANCM's WinHTTP session keeps them.
//! They are kept per proxy worker (`workers.rs`), in a thread-local list of pools, one per app
//! process ([`Backend::id`]): a connection is driven by the worker that opened it, so it only
//! serves that worker's requests, and finding it takes no lock. A process that is gone (it
//! exited, or a recycle replaced and stopped it) takes its idle connections with it: each worker
//! drops its pools of gone processes at its next use of the pool after one goes.
//!
//! A connection is lent to one request (`exchange.rs`, `lean/`) and comes back only when
//! [`reusable`] says the exchange left it clean: its response read in full, no doubt about
//! where that response ended, and the whole request body sent before the app answered. One
//! dropped before that, because the client went away, is closed with the request half done,
//! and the app sees its request aborted. No task watches an idle connection: each is peeked
//! before it takes a request, and one with anything to read (bytes the app sent past its
//! response, or its close) is closed instead: bytes there would be taken for the next
//! request's answer.

// Clippy 1.96 (Debian's, which lints the Windows build) asks for a const initializer for
// POOLS, which has one: a false positive of that version on that target.
#![cfg_attr(windows, allow(clippy::missing_const_for_thread_local))]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::net::TcpStream;

use super::super::h1::ExchangeError;
use super::connection::Connection;
use super::exchange::{self, AppBody, Failure};
use super::request_body::RequestBody;
use crate::supervisor::{self, Backend};

/// How long an idle connection is kept. Kestrel closes keep-alive connections idle for 130 s,
/// so ancm lets go first rather than send a request into a connection being closed.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Idle connections a worker keeps per process; more than this many at once are closed after
/// use.
const MAX_IDLE: usize = 512;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request could not be sent to the app or got no response.
#[derive(Debug, thiserror::Error)]
pub(in crate::proxy) enum SendError {
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
pub(in crate::proxy) struct Unanswered {
    pub(in crate::proxy) error: SendError,
    pub(in crate::proxy) unsent: Option<Request<RequestBody>>,
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

/// The idle connections one worker keeps to one app process.
struct ProcessPool {
    id: u64,
    backend: Weak<Backend>,
    /// Oldest first.
    idle: VecDeque<Idle>,
}

/// One worker's pools, one per app process it has had connections to.
struct Pools {
    /// [`supervisor::gone_count`] when the pools of gone processes were last dropped.
    gone_seen: u64,
    pools: Vec<ProcessPool>,
}

thread_local! {
    /// The calling worker's pools. A list: there are as many as processesPerApplication, plus
    /// one draining while a recycle is under way.
    static POOLS: RefCell<Pools> = const {
        RefCell::new(Pools {
            gone_seen: 0,
            pools: Vec::new(),
        })
    };
}

impl Pools {
    /// Where the pool of the process `id` is in the list, if this worker has one. Drops the
    /// pools of processes gone since the last look first, which costs one atomic read when
    /// none went.
    #[inline]
    fn find(&mut self, id: u64) -> Option<usize> {
        let gone = supervisor::gone_count();
        if gone != self.gone_seen {
            self.drop_gone(gone);
        }
        self.pools.iter().position(|pool| pool.id == id)
    }

    /// Drops the pools of processes that are gone, with their idle connections.
    #[cold]
    #[inline(never)]
    fn drop_gone(&mut self, gone: u64) {
        self.gone_seen = gone;
        self.pools.retain(|pool| {
            pool.backend
                .upgrade()
                .is_some_and(|backend| !backend.is_gone())
        });
    }
}

/// Sends `request` to `backend` on an idle connection, or a new one, and returns the response
/// head; its body holds the connection, given back with [`put`] once the body is read.
/// A request a reused connection closed on before taking any of it is sent again on a fresh
/// one; one that reached the app is never sent again (it may be what made the app fail).
pub(in crate::proxy) async fn send(
    backend: &Backend,
    mut request: Request<RequestBody>,
) -> Result<Response<AppBody>, Unanswered> {
    loop {
        let ahead = exchange::body_ahead(&mut request).await;
        let (connection, reused) = match checkout(backend) {
            Some(connection) => (connection, true),
            None => match connect(backend).await {
                Ok(connection) => (connection, false),
                Err(error) => {
                    if !ahead.is_empty() {
                        request.body_mut().give_back(ahead);
                    }
                    return Err(Unanswered::unsent(error, request));
                }
            },
        };
        match exchange::send(connection, request, ahead).await {
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

/// Gives back a connection to `backend` whose response has been read in full, to the calling
/// worker's pool.
pub(in crate::proxy) fn put(backend: &Arc<Backend>, connection: Connection) {
    put_at(backend, connection, Instant::now());
}

/// [`put`], with the time it is, as the caller knows it.
pub(in crate::proxy) fn put_at(backend: &Arc<Backend>, connection: Connection, now: Instant) {
    // Past the thread's end (its pools already dropped), the connection just closes.
    let _ = POOLS.try_with(|pools| {
        let mut pools = pools.borrow_mut();
        let index = match pools.find(backend.id) {
            Some(index) => index,
            // A process gone before its pool was made gets none: nothing would drop it. One
            // going after this has its pool dropped at the next look.
            None if backend.is_gone() => return,
            None => {
                pools.pools.push(ProcessPool {
                    id: backend.id,
                    backend: Arc::downgrade(backend),
                    idle: VecDeque::new(),
                });
                pools.pools.len() - 1
            }
        };
        if let Some(pool) = pools.pools.get_mut(index) {
            if pool.idle.len() < MAX_IDLE {
                pool.idle.push_back(Idle {
                    connection,
                    since: now,
                });
            }
        }
    });
}

/// The calling worker's idle connection to `backend` that has waited longest, of those still
/// open with nothing to read. The longest-waiting one, not the last given back: bytes an app
/// sends late after a response then have the most time to arrive before the peek finds them,
/// where the one given back a moment ago would take the next request before they come.
pub(in crate::proxy) fn checkout(backend: &Backend) -> Option<Connection> {
    checkout_at(backend, Instant::now())
}

/// [`checkout`], with the time it is, as the caller knows it.
pub(in crate::proxy) fn checkout_at(backend: &Backend, now: Instant) -> Option<Connection> {
    POOLS
        .try_with(|pools| {
            let mut pools = pools.borrow_mut();
            let index = pools.find(backend.id)?;
            let idle = &mut pools.pools.get_mut(index)?.idle;
            loop {
                let Idle { connection, since } = idle.pop_front()?;
                let idle_for = now.saturating_duration_since(since);
                if idle_for >= IDLE_FOR {
                    continue;
                }
                // A peek (one system call) at every reuse, however short the wait: under load a
                // connection comes back within microseconds, and bytes an app sent late after
                // its response may arrive in that time. Bytes arriving after this look cannot
                // be told from the next answer by any proxy.
                if !connection.quiet() {
                    continue;
                }
                return Some(connection);
            }
        })
        .ok()
        .flatten()
}

/// Opens a new connection to `backend`.
pub(in crate::proxy) async fn connect(backend: &Backend) -> Result<Connection, SendError> {
    let addr = backend.addr;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(SendError::Connect { addr, source }),
        Err(_) => return Err(SendError::ConnectTimeout(addr)),
    };
    // Heads and small bodies go out at once rather than waiting on Nagle.
    let _ = stream.set_nodelay(true);
    Ok(Connection::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// How many pools and idle connections the calling thread holds.
    fn held() -> (usize, usize) {
        POOLS.with(|pools| {
            let pools = pools.borrow();
            let idle = pools.pools.iter().map(|pool| pool.idle.len()).sum();
            (pools.pools.len(), idle)
        })
    }

    fn backend(addr: SocketAddr) -> Arc<Backend> {
        let config = crate::config::parse_web_config(
            Path::new("/app/web.config"),
            br#"<configuration><system.webServer><aspNetCore processPath="app"/></system.webServer></configuration>"#,
        )
        .expect("valid web.config");
        Arc::new(Backend::new(
            addr,
            http::HeaderValue::from_static("token"),
            1,
            Arc::new(config),
        ))
    }

    #[tokio::test]
    async fn a_connection_given_back_serves_the_same_process_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let first = backend(addr);
        let second = backend(addr);
        assert_ne!(first.id, second.id);
        let connection = connect(&first).await.expect("connect");
        put(&first, connection);
        assert!(checkout(&second).is_none());
        assert!(checkout(&first).is_some());
        assert!(checkout(&first).is_none());
    }

    #[tokio::test]
    async fn idle_connections_to_gone_processes_do_not_pile_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        // Each recycle: a new process takes over, the old one's connections come back after
        // it stopped taking requests, then it goes. The old `Backend` stays referenced, as a
        // status or an event may keep it.
        let mut old: Option<Arc<Backend>> = None;
        let mut kept = Vec::new();
        for _ in 0..40 {
            let new = backend(addr);
            let connections = [
                connect(&new).await.expect("connect"),
                connect(&new).await.expect("connect"),
            ];
            for connection in connections {
                put(&new, connection);
            }
            if let Some(old) = old.replace(new.clone()) {
                old.mark_gone();
                kept.push(old);
            }
            // The worker's next request to the new process.
            let connection = checkout(&new).expect("an idle connection");
            put(&new, connection);
            let (pools, idle) = held();
            assert_eq!(
                (pools, idle),
                (1, 2),
                "only the live process's pool is kept"
            );
        }
        // A connection coming back from a process already gone is not kept.
        let live = old.expect("a live process");
        let late = connect(&live).await.expect("connect");
        live.mark_gone();
        put(&live, late);
        assert!(checkout(&live).is_none());
        assert_eq!(held(), (0, 0));
    }
}
