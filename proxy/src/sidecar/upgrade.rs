//! The destination's half of an HTTP/1.1 upgrade (see `outbound::upgrade`
//! for the caller's): a caller's extended CONNECT (`:protocol`) is replayed
//! to the app as the `GET` with `Connection: upgrade` and `Upgrade:
//! <protocol>` it was, on a connection of its own. A `101` from the app
//! becomes `200` to the caller with the app's headers, and bytes then flow
//! between the CONNECT stream and the app's connection until either side
//! closes or nothing moves for `timeouts.idle`; any other answer goes back
//! as the app gave it.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::ext::Protocol;
use meshgw_config::AppProtocol;

use super::{AppForwarder, Caller, ProxyBody};
use crate::metrics::Direction;
use crate::outbound::upgrade::{CONNECTION_OWN, tunnel};

/// Whether `req` is an extended CONNECT carrying an upgrade.
pub(super) fn requested(req: &Request<Incoming>) -> bool {
    req.method() == Method::CONNECT && req.extensions().get::<Protocol>().is_some()
}

impl AppForwarder {
    /// Replays an upgrade to the app and, once it switches protocols,
    /// joins the two connections.
    pub(super) async fn upgrade(
        &self,
        mut req: Request<Incoming>,
        caller: &Caller,
        limited: bool,
        traceparent: Option<&str>,
    ) -> Result<Response<ProxyBody>, (StatusCode, &'static str, String)> {
        let protocol = req
            .extensions()
            .get::<Protocol>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        // (A `tcp` service never gets here: its connections are spliced.)
        if self.protocol != AppProtocol::Http {
            let why = format!(
                "meshgw inbound: {} cannot take an upgrade to {protocol:?}: its service.protocol is {:?}, and only \"http\" apps are sent HTTP/1.1 upgrades",
                self.service,
                self.protocol.as_str()
            );
            return Err((StatusCode::NOT_IMPLEMENTED, "upgrade_unsupported", why));
        }
        let Ok(upgrade) = HeaderValue::from_str(&protocol) else {
            let why = format!("meshgw inbound: {protocol:?} is not a protocol name");
            return Err((StatusCode::BAD_REQUEST, "bad_upgrade", why));
        };
        let caller_side = hyper::upgrade::on(&mut req);
        let (mut parts, _) = req.into_parts();
        self.app_head(&mut parts, caller, limited, traceparent)?;
        parts.method = Method::GET;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, upgrade);
        let req = Request::from_parts(parts, Empty::<Bytes>::new());
        let mut resp = self.timed(self.pool.upgrade(req)).await?;
        let status = resp.status();
        if status.is_success() {
            // A 2xx to a CONNECT opens the tunnel: an app that ignored the
            // upgrade and answered, say, 200 must not look like one that
            // switched.
            let why = format!(
                "meshgw inbound: the app at {} answered {status} to an upgrade to {protocol:?} without switching protocols (101)",
                self.app
            );
            return Err((StatusCode::BAD_GATEWAY, "upgrade_not_switched", why));
        }
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp.map(BodyExt::boxed));
        }
        let app_side = hyper::upgrade::on(&mut resp);
        let (mut head, _) = resp.into_parts();
        head.status = StatusCode::OK;
        for name in CONNECTION_OWN {
            head.headers.remove(name);
        }
        tracing::debug!(caller = %caller.id, "upgraded connection open");
        tunnel(
            caller_side,
            app_side,
            self.idle,
            self.metrics.clone(),
            Direction::Inbound,
            (),
        );
        let body = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed();
        Ok(Response::from_parts(head, body))
    }
}
