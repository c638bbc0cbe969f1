//! The front listener: accepts client connections, forwards each request to a ready app
//! process over pooled HTTP/1.1 keep-alive connections, streaming bodies both ways, and answers
//! with ancm's own pages when there is no app to forward to.

mod body;
mod headers;
mod pages;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::supervisor::{InFlight, Supervisor, Unavailable};
use body::IdleTimeout;
pub use headers::ClientInfo;

/// What the proxy answers with: the app's streamed body, or one of ancm's pages.
pub type ProxyBody = Either<IdleTimeout<Incoming>, Full<Bytes>>;

/// How long a client may take to send a request's headers: slow-header clients must not hold
/// connections for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared, read-only state for every request.
pub struct Proxy {
    supervisor: Supervisor,
    client: Client<HttpConnector, Incoming>,
    request_timeout: Option<Duration>,
    /// Show the app's output on the 502.5 page (ASPNETCORE_ENVIRONMENT=Development).
    show_output: bool,
    keep_connection_header: bool,
}

impl Proxy {
    pub fn new(supervisor: Supervisor) -> anyhow::Result<Proxy> {
        let cfg = supervisor.config();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let show_output = is_development(&cfg.environment);
        Ok(Proxy {
            request_timeout: cfg.request_timeout,
            keep_connection_header: cfg.forward_response_connection_header,
            client,
            show_output,
            supervisor,
        })
    }

    /// Forwards one request; never fails, since every failure becomes a response.
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        client: &ClientInfo,
    ) -> Response<ProxyBody> {
        let backend = match self.supervisor.backend().await {
            Ok(backend) => backend,
            Err(unavailable) => return self.unavailable(&unavailable),
        };
        let in_flight = InFlight::new(backend.clone());

        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(backend.authority.clone())
            .path_and_query(path)
            .build();
        match uri {
            Ok(uri) => *request.uri_mut() = uri,
            Err(err) => {
                return page(pages::bad_gateway(&format!(
                    "cannot forward this URL: {err}"
                )))
            }
        }
        *request.version_mut() = Version::HTTP_11;
        headers::rewrite_request(request.headers_mut(), &backend.token, client);

        let forwarded = self.client.request(request);
        let result = match self.request_timeout {
            Some(limit) => {
                match tokio::time::timeout(limit, forwarded).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(pid = backend.pid, "the app did not answer within requestTimeout ({limit:?}); answering 502");
                        return page(pages::bad_gateway(&format!(
                            "The app did not answer within requestTimeout ({} s).",
                            limit.as_secs_f64()
                        )));
                    }
                }
            }
            None => forwarded.await,
        };
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                headers::rewrite_response(&mut parts.headers, self.keep_connection_header);
                Response::from_parts(
                    parts,
                    Either::Left(IdleTimeout::new(
                        body,
                        self.request_timeout,
                        Some(in_flight),
                    )),
                )
            }
            Err(err) => {
                let reason = if err.is_connect() {
                    "ancm could not connect to the app; it may have just exited and is being restarted."
                } else {
                    "The app closed the connection or sent an invalid response."
                };
                tracing::warn!(pid = backend.pid, err = %error_chain(&err), "forwarding to the app failed; answering 502");
                page(pages::bad_gateway(reason))
            }
        }
    }

    fn unavailable(&self, unavailable: &Unavailable) -> Response<ProxyBody> {
        page(pages::startup_failure(
            unavailable,
            &self.supervisor.config(),
            self.show_output,
        ))
    }
}

fn page(response: Response<Full<Bytes>>) -> Response<ProxyBody> {
    response.map(Either::Right)
}

/// Whether the app runs as Development, which lets error pages show its output (as ANCM's
/// detailed errors do).
fn is_development(environment: &[(String, String)]) -> bool {
    ["ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT"]
        .iter()
        .any(|name| {
            let value = environment
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok());
            value.is_some_and(|v| v.eq_ignore_ascii_case("Development"))
        })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Serves on every listener until `shutdown` fires, then stops accepting and lets each
/// connection finish its request in flight. Returns when every connection has closed.
pub async fn serve(proxy: Arc<Proxy>, listeners: Vec<TcpListener>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept(
                listener,
                proxy.clone(),
                shutdown.clone(),
                connections.clone(),
            ))
        })
        .collect();
    for task in accepting {
        let _ = task.await;
    }
    connections.close();
    connections.wait().await;
}

async fn accept(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                connections.spawn(connection(stream, remote, proxy.clone(), shutdown.clone()));
            }
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let client = Arc::new(ClientInfo {
        forwarded_for: HeaderValue::from_str(&remote.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        proto: HeaderValue::from_static("http"),
    });
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        let client = client.clone();
        async move { Ok::<_, Infallible>(proxy.handle(request, &client).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%remote, err = %error_chain(&err), "client connection ended with an error");
    }
}
