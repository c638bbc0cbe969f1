//! The front listeners: accept loops, TLS handshakes, and one HTTP/1.1-or-HTTP/2 server
//! connection per client (HTTP/2 by ALPN over TLS, or by its preface in plain text, i.e. h2c
//! with prior knowledge). On shutdown they stop accepting, let requests in flight finish, and
//! give upgraded connections a short grace before closing them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::workers::Workers;
use super::{error_chain, ClientInfo, Proxy};

/// How long upgraded connections (WebSockets) may stay open once ancm is stopping. They have
/// no end a shutdown could wait for, and the app is only told to stop after the proxy has
/// drained, so this is a moment for frames already on their way, then both ends are closed.
const TUNNEL_GRACE: Duration = Duration::from_secs(2);

type Server = auto::Builder<TokioExecutor>;

/// Serves on every listener until `shutdown` fires, then stops accepting and lets each
/// connection finish its request in flight. Returns when every connection has closed.
pub async fn serve(proxy: Arc<Proxy>, listeners: Vec<TcpListener>, shutdown: CancellationToken) {
    // Also when the caller gives up on the drain and drops this future: tunnels close with it,
    // and with the workers everything they still serve.
    let _close_tunnels = proxy.close_tunnels.clone().drop_guard();
    let workers = Workers::start().await;
    let server = Arc::new(server(proxy.header_read_timeout));
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
    for task in accepting {
        let _ = task.await;
    }
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

/// One server for every connection: HTTP/1.1 with a deadline for each request's headers, and
/// HTTP/2, told apart per connection by the HTTP/2 preface.
/// The largest request head (request line and headers) accepted, as ANCM's WinHTTP accepts
/// 64 KB response heads.
const MAX_HEAD: usize = 64 * 1024;

fn server(header_read_timeout: Duration) -> Server {
    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // Request heads over 64 KiB get 431 here instead of reaching the app.
        .max_buf_size(MAX_HEAD);
    server.http2().timer(TokioTimer::new());
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
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
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
    let front = match stream.local_addr() {
        Ok(local) => super::headers::front_authority(local),
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
        return serve_connection(stream, client, remote, proxy, &server, shutdown, deadline).await;
    };
    let handshake = tokio::select! {
        handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => handshake,
        () = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let client = ClientInfo {
                forwarded_for,
                proto: HeaderValue::from_static("https"),
                client_cert: super::tls::client_cert_header(stream.get_ref().1),
                front,
            };
            serve_connection(stream, client, remote, proxy, &server, shutdown, deadline).await;
        }
        Ok(Err(err)) => tracing::debug!(%remote, %err, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "no TLS handshake within the header read timeout"),
    }
}

async fn serve_connection<I>(
    io: I,
    client: ClientInfo,
    remote: SocketAddr,
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
    let service = service_fn({
        let started = started.clone();
        move |request| {
            started.store(true, Ordering::Relaxed);
            let proxy = proxy.clone();
            let client = client.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, &client).await) }
        }
    });
    let conn = server.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let first_request = tokio::time::sleep_until(deadline);
    tokio::pin!(first_request);
    let (mut waiting, mut draining) = (true, false);
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
        }
    };
    if let Err(err) = result {
        tracing::debug!(%remote, err = %error_chain(&*err), "client connection ended with an error");
    }
}
