//! Upgraded connections (WebSockets and any other `Upgrade`): once the app has answered 101,
//! the client's connection and the app's are spliced byte for byte until either side closes.
//! No requestTimeout applies: a WebSocket may rightly stay quiet for hours. The request counts
//! as in flight for as long as the tunnel is open, so a recycle waits for it.

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body_util::{Either, Full};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::exchange::AppBody;
use super::{error_chain, headers, page, pages, Proxy, ProxyBody};
use crate::supervisor::InFlight;

impl Proxy {
    /// Answers the client's upgrade with the app's 101 and splices the two connections in a
    /// tracked task once hyper has handed the client's over.
    pub(super) fn tunnel(
        &self,
        response: Response<AppBody>,
        client_side: OnUpgrade,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        let Some(app_side) = body.into_upgraded() else {
            return page(pages::bad_gateway(
                "The app's connection closed as it switched protocols.",
            ));
        };
        headers::rewrite_switching(&mut parts.headers);
        if super::access_log::enabled() {
            parts
                .extensions
                .insert(super::access_log::AppPid(in_flight.backend().pid));
        }
        let close = self.close_tunnels.clone();
        self.tunnels
            .spawn(splice(client_side, app_side, close, in_flight));
        Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
    }
}

async fn splice(
    client_side: OnUpgrade,
    (mut app, early): (TcpStream, BytesMut),
    close: CancellationToken,
    // Held, not read: the request stays in flight until the tunnel closes.
    _in_flight: InFlight,
) {
    let spliced = async {
        // Resolves once hyper has written our 101; fails if the client's connection closed
        // first.
        let client = match client_side.await {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(err = %error_chain(&err), "an upgraded connection closed before the switch");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        // What the app sent right behind its 101 was read with the head.
        if !early.is_empty() {
            if let Err(err) = client.write_all(&early).await {
                tracing::debug!(%err, "upgraded connection ended");
                return;
            }
        }
        match tokio::io::copy_bidirectional(&mut client, &mut app).await {
            Ok((up, down)) => {
                tracing::debug!(up, down, "upgraded connection closed");
            }
            // A reset from either side is how many of these end.
            Err(err) => tracing::debug!(%err, "upgraded connection ended"),
        }
    };
    tokio::select! {
        () = spliced => {}
        // Dropping both ends closes them: ancm is stopping and the grace is over.
        () = close.cancelled() => tracing::debug!("closing an upgraded connection: ancm is stopping"),
    }
}
