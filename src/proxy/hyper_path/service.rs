//! hyper's path for one request: the service hyper's server calls for every request the lean
//! path does not take (HTTP/2, TLS, upgrades, chunked or large bodies, refusals). `handle` is a
//! pipeline of named steps: refusals before the app, the app's path, the request body's first
//! check, a backend and its limits (`forward.rs`), the request as the app gets it, one send with
//! one retry (`forward.rs`), and the response (or an upgrade's tunnel, `tunnel.rs`). Every
//! failure is an answer: the early ones are pages, the app's are `outcome.rs`'s table.
//!
//! A client that goes away drops its request's future here, and with it the app connection it
//! was using (`exchange.rs`), which closes: the app sees its request aborted.
//!
//! Must not import the lean path (`lean/`) nor `front.rs`, which calls this.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::super::app_path::{self, AppBase, Route};
use super::super::forward::{self, OverLimit, Transport};
use super::super::outcome::{self, NoAnswer};
use super::super::response_body::IdleTimeout;
use super::super::upstream::exchange::AppBody;
use super::super::upstream::pool;
use super::super::upstream::request_body::{BadBody, Progress, RequestBody};
use super::super::{access_log, contract, headers, pages};
use super::super::{page, ClientInfo, Proxy, ProxyBody};
use crate::config::RequestLimits;
use crate::supervisor::{Backend, InFlight};

/// A step's early answer, one of ancm's pages: the request goes no further. Boxed, so that
/// the steps' results stay small on the way that goes on.
type Answered = Box<Response<Full<Bytes>>>;

/// What the client asked to upgrade to, and hyper's handle on its connection for the tunnel.
struct Upgrade {
    protocol: Option<HeaderValue>,
    client_side: Option<OnUpgrade>,
}

impl Proxy {
    /// Forwards one request; never fails, since every failure becomes a response.
    pub(in crate::proxy) async fn handle(
        &self,
        request: Request<Incoming>,
        client: &ClientInfo,
    ) -> Response<ProxyBody> {
        match self.forward(request, client).await {
            Ok(response) => response,
            Err(answered) => page(*answered),
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        client: &ClientInfo,
    ) -> Result<Response<ProxyBody>, Answered> {
        let mut request = self.refuse_early(request)?;
        let stripped = self.route(request.uri())?;
        let upgrade = requested_upgrade(&mut request);
        let client_closes = headers::closes(request.version(), request.headers());
        let (parts, body) = request.into_parts();
        let body = self.checked_body(&parts, body).await?;
        let backend = forward::pick_backend(&self.supervisor)
            .await
            .map_err(answer)?;
        if let Some(over) = over_limits(&backend.config.request_limits, &parts) {
            return Err(Box::new(refuse(over)));
        }
        let version = parts.version;
        let (outgoing, progress) = self.for_app(parts, body, &backend, client, &upgrade, stripped);
        let mut transport = HyperTransport {
            proxy: self,
            progress: progress.as_deref(),
        };
        let request_timeout = backend.config.request_timeout;
        let (response, in_flight) =
            forward::send_with_one_retry(&self.supervisor, backend, &mut transport, outgoing)
                .await
                .map_err(answer)?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(self.switched(response, upgrade.client_side, in_flight));
        }
        Ok(respond(
            response,
            in_flight,
            version,
            client_closes,
            request_timeout,
        ))
    }

    /// Refusals before the app: HTTP/2's pseudo-headers made plain first, then a head over
    /// --max-request-head (431), then what `headers::refusal` refuses.
    fn refuse_early(&self, mut request: Request<Incoming>) -> Result<Request<Incoming>, Answered> {
        let version = request.version();
        if version == Version::HTTP_2 {
            let authority = request.uri().authority().cloned();
            headers::from_http2(request.headers_mut(), authority.as_ref());
        }
        if version < Version::HTTP_2
            && headers::head_size(request.method(), request.uri(), request.headers())
                > self.max_request_head
        {
            tracing::debug!(method = %request.method(), "refused a request head over --max-request-head");
            return Err(Box::new(pages::client_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The request's head is larger than this server takes (--max-request-head).",
            )));
        }
        if let Some((status, reason)) =
            headers::refusal(request.method(), request.uri(), version, request.headers())
        {
            tracing::debug!(method = %request.method(), status = status.as_u16(), reason, "refused a request before the app");
            return Err(Box::new(pages::client_error(status, reason)));
        }
        Ok(request)
    }

    /// Under `--app-path`: 404 outside the base; the path without it under `--strip-app-path`.
    fn route(&self, uri: &Uri) -> Result<Option<PathAndQuery>, Answered> {
        match self.base.as_ref().map(|base| (base, base.route(uri))) {
            Some((base, Route::Outside)) => Err(outside(base)),
            Some((_, Route::Stripped(path))) => Ok(Some(path)),
            _ => Ok(None),
        }
    }

    /// hyper already refuses what could be read two ways (RFC 9112 §6.3): a Transfer-Encoding
    /// not ending in chunked gets 400; with both Content-Length and chunked, chunked wins,
    /// Content-Length is dropped and the connection closes after the answer, so nothing can be
    /// smuggled behind the body. A chunked body broken from its first chunk is refused here,
    /// before anything reaches the app.
    async fn checked_body(&self, parts: &Parts, body: Incoming) -> Result<RequestBody, Answered> {
        if !parts.headers.contains_key(header::TRANSFER_ENCODING) || body.is_end_stream() {
            return Ok(RequestBody::streamed(body));
        }
        match RequestBody::checked(body, self.header_read_timeout).await {
            Ok(body) => Ok(body),
            Err(err @ BadBody::Invalid(_)) => Err(Box::new(pages::client_error(
                StatusCode::BAD_REQUEST,
                &err.to_string(),
            ))),
            Err(err @ BadBody::Slow(_)) => Err(Box::new(pages::client_error(
                StatusCode::REQUEST_TIMEOUT,
                &err.to_string(),
            ))),
        }
    }

    /// The request as the app gets it (spec §4.3), with the body watched for requestTimeout and
    /// maxAllowedContentLength when either applies to it.
    fn for_app(
        &self,
        mut parts: Parts,
        body: RequestBody,
        backend: &Backend,
        client: &ClientInfo,
        upgrade: &Upgrade,
        stripped: Option<PathAndQuery>,
    ) -> (Request<RequestBody>, Option<Arc<Progress>>) {
        let request_timeout = backend.config.request_timeout;
        let max_body = backend.config.request_limits.max_body;
        let bodiless = body.is_end_stream();
        let declared_length = parts.headers.contains_key(header::CONTENT_LENGTH);
        // A declared length was checked above, and hyper holds the body to it; a chunked (or
        // HTTP/2) body is counted as it goes.
        let count_to = max_body.filter(|_| !declared_length);
        let progress =
            (!bodiless && (request_timeout.is_some() || count_to.is_some())).then(Progress::new);
        let body = match &progress {
            Some(progress) => body.watched(count_to, progress.clone()),
            None => body,
        };
        let path = stripped.unwrap_or_else(|| {
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        });
        let mut headers = std::mem::take(&mut parts.headers);
        headers::for_app(
            &mut headers,
            &parts,
            bodiless,
            upgrade.protocol.as_ref(),
            &backend.token,
            client,
        );
        // Replaces whatever the client sent: only ancm knows what it took off.
        if let Some(prefix) = self.base.as_ref().and_then(AppBase::prefix) {
            headers.insert(app_path::X_FORWARDED_PREFIX, prefix.clone());
        }
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = Uri::from(path);
        *outgoing.version_mut() = Version::HTTP_11;
        *outgoing.headers_mut() = headers;
        (outgoing, progress)
    }

    /// The app switched protocols: a tunnel when the client asked for it; otherwise 502.
    /// Upgraded, the app's connection becomes the tunnel's: not one to pool.
    fn switched(
        &self,
        response: Response<AppBody>,
        client_side: Option<OnUpgrade>,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        match client_side {
            Some(client_side) => self.tunnel(response, client_side, in_flight),
            None => page(
                NoAnswer::SwitchedUnasked {
                    pid: in_flight.backend().pid,
                }
                .answer(),
            ),
        }
    }

    /// Sends one request to `backend`. requestTimeout bounds each wait on the app until the
    /// response head: the connect, each gap while the app takes the request body (`progress`),
    /// and the head itself once the body is sent; never the client's own pace. Returns the
    /// response head (its body holds the connection), or why there is none and, if the app
    /// never saw it, the request.
    async fn send(
        &self,
        backend: &Backend,
        request: Request<RequestBody>,
        progress: Option<&Progress>,
    ) -> Result<Response<AppBody>, (NoAnswer, Option<Request<RequestBody>>)> {
        let pid = backend.pid;
        let forwarded = pool::send(backend, request);
        let Some(limit) = backend.config.request_timeout else {
            return forwarded
                .await
                .map_err(|u| outcome::classify(u, progress, pid));
        };
        tokio::pin!(forwarded);
        let idle = tokio::time::sleep(limit);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                result = &mut forwarded => return result.map_err(|u| outcome::classify(u, progress, pid)),
                () = &mut idle => {
                    let now = tokio::time::Instant::now();
                    let due = match progress {
                        None => now,
                        // The client is still sending: its pace is not the app's silence.
                        Some(progress) => progress.idle_deadline(limit).unwrap_or(now + limit),
                    };
                    if due <= now {
                        return Err((NoAnswer::Timeout { pid, limit }, None));
                    }
                    idle.as_mut().reset(due);
                }
            }
        }
    }
}

/// Taken before the request moves on: hyper hands the client's connection over here once our
/// 101 has been written.
fn requested_upgrade(request: &mut Request<Incoming>) -> Upgrade {
    let protocol = headers::requested_upgrade(request.version(), request.headers());
    let client_side = protocol
        .is_some()
        .then(|| hyper::upgrade::on(&mut *request));
    Upgrade {
        protocol,
        client_side,
    }
}

/// The app's response on its way to the client, its headers rewritten (spec §4.4) and its body
/// under requestTimeout, holding the request in flight until it is over.
fn respond(
    response: Response<AppBody>,
    in_flight: InFlight,
    version: Version,
    client_closes: bool,
    request_timeout: Option<std::time::Duration>,
) -> Response<ProxyBody> {
    let backend = in_flight.backend();
    let (mut parts, body) = response.into_parts();
    if access_log::enabled() {
        parts.extensions.insert(access_log::AppPid(backend.pid));
    }
    // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2).
    let keep_connection = contract::forwards_app_connection(
        backend.config.forward_response_connection_header,
        version >= Version::HTTP_2,
        client_closes,
    );
    if headers::rewrite_response(&mut parts.headers, keep_connection) {
        outcome::conflicting_framing(backend.pid);
    }
    Response::from_parts(
        parts,
        Either::Left(IdleTimeout::new(body, request_timeout, Some(in_flight))),
    )
}

/// The outcome table's answer, as a step's early answer.
fn answer(why: NoAnswer) -> Answered {
    Box::new(why.answer())
}

/// hyper's path's transport: hyper's client over the pool, under requestTimeout.
struct HyperTransport<'a> {
    proxy: &'a Proxy,
    progress: Option<&'a Progress>,
}

impl Transport for HyperTransport<'_> {
    type Request = Request<RequestBody>;
    type Response = Response<AppBody>;

    async fn send(
        &mut self,
        backend: &Arc<Backend>,
        request: Request<RequestBody>,
    ) -> Result<Response<AppBody>, (NoAnswer, Option<Request<RequestBody>>)> {
        self.proxy.send(backend, request, self.progress).await
    }

    fn readdress(&mut self, request: &mut Request<RequestBody>, backend: &Backend) {
        request
            .headers_mut()
            .insert(headers::MS_ASPNETCORE_TOKEN, backend.token.clone());
    }
}

/// IIS's request limits (requestFiltering/requestLimits), enforced before the app as IIS does:
/// the IIS integration switches Kestrel's own body limit off. IIS answers 404.13, 404.14 and
/// 404.15; outside IIS the standard 413 and 414 say the same to any client.
fn over_limits(limits: &RequestLimits, parts: &Parts) -> Option<OverLimit> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let query = parts.uri.query().map_or(0, str::len);
    forward::over_limits(limits, parts.uri.path().len(), query, declared)
}

/// The answer to a request over a limit, on hyper's path (the lean path hands such requests
/// here).
fn refuse(over: OverLimit) -> Response<Full<Bytes>> {
    let (what, length, limit) = match over {
        OverLimit::Body { length, limit } => {
            tracing::info!(
                "refused a request body of {length} bytes, over maxAllowedContentLength ({limit})"
            );
            return outcome::too_large();
        }
        OverLimit::Url { length, limit } => ("URL", length, limit),
        OverLimit::Query { length, limit } => ("query string", length, limit),
    };
    tracing::info!("refused a request whose {what} is {length} bytes, over the limit of {limit} (requestLimits)");
    pages::client_error(
        StatusCode::URI_TOO_LONG,
        &format!("The request's {what} is longer than this app accepts ({limit} bytes)."),
    )
}

/// IIS gives the app only the requests under its virtual path; the rest are not the app's
/// (the lean path hands them here).
fn outside(base: &AppBase) -> Answered {
    tracing::debug!(
        base = base.base(),
        "answered 404 to a request outside the app's path"
    );
    Box::new(pages::client_error(
        StatusCode::NOT_FOUND,
        &format!("This server serves only paths under {}.", base.base()),
    ))
}
