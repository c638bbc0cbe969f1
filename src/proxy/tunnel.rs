//! Upgraded connections (WebSockets and any other `Upgrade`): once the app has answered 101,
//! the client's connection and the app's are spliced byte for byte until either side closes.
//! No requestTimeout applies: a WebSocket may rightly stay quiet for hours. The request counts
//! as in flight for as long as the tunnel is open, so a recycle waits for it.

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::{error_chain, headers, Proxy, ProxyBody};
use crate::supervisor::InFlight;

impl Proxy {
    /// Answers the client's upgrade with the app's 101 and splices the two connections in a
    /// tracked task once hyper has handed both over.
    pub(super) fn tunnel(
        &self,
        mut response: Response<Incoming>,
        client_side: OnUpgrade,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        let app_side = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
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
    app_side: OnUpgrade,
    close: CancellationToken,
    // Held, not read: the request stays in flight until the tunnel closes.
    _in_flight: InFlight,
) {
    let spliced = async {
        // The client's side resolves once hyper has written our 101; either fails if its
        // connection closed first.
        let (client, app) = match tokio::try_join!(client_side, app_side) {
            Ok(sides) => sides,
            Err(err) => {
                tracing::debug!(err = %error_chain(&err), "an upgraded connection closed before the switch");
                return;
            }
        };
        let (mut client, mut app) = (TokioIo::new(client), TokioIo::new(app));
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
