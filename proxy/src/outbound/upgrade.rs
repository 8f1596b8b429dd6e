//! HTTP/1.1 upgrades (WebSocket and the like) through `outbound.http`.
//!
//! An app's `GET` with `Connection: upgrade` and `Upgrade: <protocol>`
//! crosses the mesh as an HTTP/2 extended CONNECT (RFC 8441) with
//! `:protocol` = `<protocol>` on the pooled mesh connection, its other
//! headers (`Sec-WebSocket-Key` and the like) unchanged. The destination
//! sidecar replays it to its app as the HTTP/1.1 upgrade it was, and
//! answers `200` with the app's `101` headers; the caller's sidecar then
//! answers its app `101 Switching Protocols` with those headers, and bytes
//! flow both ways between the two upgraded connections (through the
//! gateways when the service runs elsewhere), until either side closes or
//! nothing moves for `timeouts.idle`. Any other answer is passed back as is.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::ext::Protocol;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::http::OutBody;
use crate::metrics::{Direction, Metrics};
use crate::sidecar::splice::splice;

/// What an upgrade request asked for, taken from the app's request before
/// it is rewritten.
pub(crate) struct Requested {
    /// The protocol token, as the app spelled it.
    protocol: HeaderValue,
    /// The app's side of the connection, once answered `101`.
    app: OnUpgrade,
}

/// If `req` is an HTTP/1.1 `GET` asking to upgrade to one protocol (other
/// than `h2c`, which is a hop's own business), turns it into the extended
/// CONNECT that carries it and returns what the answer needs.
pub(crate) fn take<B>(req: &mut Request<B>) -> Option<Requested> {
    if req.version() != Version::HTTP_11 || req.method() != Method::GET {
        return None;
    }
    // An upgrade request with a body is not carried (a CONNECT has none).
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH).is_some_and(|v| v != "0")
    {
        return None;
    }
    let protocol = req.headers().get(header::UPGRADE)?.clone();
    let token = protocol.to_str().ok()?.trim();
    let connection_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade
        || token.is_empty()
        || token.contains([',', ' '])
        || token.eq_ignore_ascii_case("h2c")
    {
        return None;
    }
    let ext = Protocol::from(token);
    let app = hyper::upgrade::on(&mut *req);
    *req.method_mut() = Method::CONNECT;
    req.extensions_mut().insert(ext);
    Some(Requested { protocol, app })
}

impl Requested {
    /// Answers the app: `101` and a tunnel if the destination accepted
    /// (`200` to the CONNECT), the destination's answer otherwise. The
    /// destination's (empty) body, which holds the target's in-flight
    /// count, lives as long as the tunnel.
    pub(crate) fn answer(
        self,
        mut resp: Response<OutBody>,
        idle: Duration,
        metrics: Arc<Metrics>,
    ) -> Response<OutBody> {
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let remote = hyper::upgrade::on(&mut resp);
        let (head, keep) = resp.into_parts();
        let mut out = Response::new(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = out.headers_mut();
        copy_end_to_end(&head.headers, h);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, self.protocol);
        tunnel(self.app, remote, idle, metrics, Direction::Outbound, keep);
        out
    }
}

/// Headers of a connection's own that an upgrade's answer does not carry
/// from one hop to the next (a `101`, or a `200` to a CONNECT, has no body).
pub(crate) const CONNECTION_OWN: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::UPGRADE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

/// Copies the destination's response headers that concern the app: all
/// but [`CONNECTION_OWN`].
fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !CONNECTION_OWN.contains(name) {
            to.append(name, value.clone());
        }
    }
}

/// Joins the two sides of an upgrade once both have switched protocols:
/// bytes flow both ways until either side closes or nothing moves for
/// `idle`, and are counted in `direction` when it ends. `keep` (a target's
/// in-flight count, say) is held as long. Either side failing to switch
/// ends it at once. Used by both the caller's and the destination's
/// sidecar.
pub(crate) fn tunnel<K: Send + 'static>(
    a: OnUpgrade,
    b: OnUpgrade,
    idle: Duration,
    metrics: Arc<Metrics>,
    direction: Direction,
    keep: K,
) {
    tokio::spawn(async move {
        let (a, b) = match tokio::join!(a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                tracing::debug!(?direction, a = ?a.err(), b = ?b.err(), "upgrade: a side never switched protocols");
                return;
            }
        };
        match splice(TokioIo::new(a), TokioIo::new(b), idle, 16 * 1024).await {
            Ok((up, down)) => {
                metrics.bytes(direction, up + down);
                tracing::debug!(?direction, up, down, "upgraded connection closed");
            }
            Err(e) => tracing::debug!(?direction, error = %e, "upgraded connection ended"),
        }
        drop(keep);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/chat");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_websocket_get_becomes_an_extended_connect() {
        let mut req = get(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        let up = take(&mut req).expect("an upgrade");
        assert_eq!(req.method(), Method::CONNECT);
        assert_eq!(
            req.extensions().get::<Protocol>().map(Protocol::as_str),
            Some("websocket")
        );
        assert_eq!(up.protocol, "websocket");
    }

    #[test]
    fn other_requests_are_left_alone() {
        for headers in [
            &[("upgrade", "websocket")][..],
            &[("connection", "upgrade")][..],
            &[("connection", "upgrade"), ("upgrade", "h2c")][..],
            &[("connection", "upgrade"), ("upgrade", "websocket, foo/2")][..],
            &[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("content-length", "3"),
            ][..],
        ] {
            let mut req = get(headers);
            assert!(take(&mut req).is_none(), "{headers:?}");
            assert_eq!(req.method(), Method::GET);
        }
        let mut post = get(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        *post.method_mut() = Method::POST;
        assert!(take(&mut post).is_none());
    }
}
