//! `outbound.http`: HTTP/1.1 and cleartext HTTP/2 (so gRPC works) from the
//! local app, routed by `Host`/`:authority` = `name.namespace.mesh[:port]`
//! over pooled HTTP/2 mesh connections (ALPN `h2`). Bodies stream both ways;
//! the wait for the response head is bounded by `timeouts.request`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::uri::Authority;
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use meshgw_federation::model::ServiceName;
use opentelemetry::KeyValue;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::pool::{self, Sender};
use super::{Shared, host, stopped, upgrade};
use crate::balance::{InFlight, Target};
use crate::body::Coalesce;
use crate::error::{Hop, ProxyError, Reason};
use crate::grpc;
use crate::telemetry::{self, Kind};
use crate::tls::ALPN_H2;

/// The response body the outbound listener sends: streamed from the target, or an error text.
pub type OutBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Serves the outbound HTTP listener until shutdown, then lets requests in
/// flight finish for up to `timeouts.drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    crate::accept::failed("outbound.http", &e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let svc = service_fn(move |req| handle(req, shared.clone()));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "outbound HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(shared.cfg.timeouts.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("drain time over: closing outbound HTTP connections");
    }
}

/// Handles one request from the app: never fails, errors become responses.
async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<OutBody>, Infallible> {
    let start = Instant::now();
    let authority = match host::authority(&req) {
        Ok(a) => a,
        Err(e) => return Ok(error_response(&e, "")),
    };
    let (svc, port) = match host::parse_authority(&authority) {
        Ok(sp) => sp,
        Err(e) => return Ok(error_response(&e, authority.as_str())),
    };
    let span = telemetry::start(
        Kind::Client,
        || format!("{} {svc}", req.method()),
        || host::incoming_traceparent(&req),
        || {
            vec![
                KeyValue::new("http.request.method", req.method().to_string()),
                KeyValue::new("url.path", req.uri().path().to_string()),
                KeyValue::new("meshgw.service", svc.to_string()),
                KeyValue::new("meshgw.src_cluster", shared.cfg.locality.cluster.clone()),
            ]
        },
    );
    let upgrade = upgrade::take(&mut req);
    let (resp, target, failure) =
        match forward(req, &authority, &svc, port, &shared, span.traceparent()).await {
            Ok((resp, target)) => {
                let resp = match upgrade {
                    Some(up) => up.answer(resp, shared.cfg.timeouts.idle, shared.metrics.clone()),
                    None => resp,
                };
                (resp, Some(target), None)
            }
            Err(e) => {
                tracing::info!(service = %svc, error = %e, "outbound request failed");
                let text = e.to_string();
                (error_response(&e, &svc.to_string()), None, Some(text))
            }
        };
    let dst = match &target {
        Some(t) => dst_cluster(t, &shared),
        None => shared.cfg.locality.cluster.as_str(),
    };
    let status = resp.status().as_u16();
    span.finish(status, failure.as_deref());
    shared.metrics.request(dst, &svc, status, start.elapsed());
    Ok(resp)
}

/// The cluster a request to `target` is served in.
fn dst_cluster<'a>(target: &'a Target, shared: &'a Shared) -> &'a str {
    match target {
        Target::ViaGateway { cluster } => cluster.as_str(),
        Target::Local(_) => shared.cfg.locality.cluster.as_str(),
    }
}

/// A gRPC call to `svc` on `target` ended with `grpc-status: code`: outlier
/// detection takes it as the HTTP status it maps to, and it is counted.
fn grpc_ended(shared: &Shared, svc: &ServiceName, target: &Target, code: u32) {
    shared
        .dialer
        .report_response(svc, target, grpc::to_http(code));
    shared
        .metrics
        .grpc_call(dst_cluster(target, shared), svc, code);
}

async fn forward(
    mut req: Request<Incoming>,
    authority: &Authority,
    svc: &ServiceName,
    port: u16,
    shared: &Arc<Shared>,
    span: Option<&str>,
) -> Result<(Response<OutBody>, Target), ProxyError> {
    let traceparent = host::prepare(&mut req, authority, &shared.source_cluster, span)?;
    let tp = traceparent.as_str();
    let limit = shared.cfg.timeouts.request;
    // A small upload's HEADERS, DATA and END_STREAM in one write (`Coalesce`).
    let (head, body) = req.into_parts();
    let body = Coalesce::prefetched(Either::Left(body)).await;
    // An upgrade holds its stream for as long as the upgraded connection
    // lasts: it gets a mesh connection of its own, so that it takes neither
    // stream slots nor flow-control window from the pooled requests.
    let own_connection = head.extensions.get::<hyper::ext::Protocol>().is_some();
    // A request without a body can be sent again from a copy of its head:
    // an idempotent one when its stream fails before the answer's head
    // (RFC 9110, 9.2.2), any one that the destination did not process (a
    // refused stream, one a GOAWAY left out; RFC 9113, 8.7).
    let idempotent = idempotent(&head.method);
    let mut replay = (body.is_end_stream() && !own_connection).then(|| copy_head(&head));
    let mut req = Request::from_parts(head, body);
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut avoid = Vec::new();
    let mut resent = false;
    let timed_out = || {
        let detail = format!("no response head within {limit:?}");
        ProxyError::new(Hop::App, Reason::RequestTimeout, detail).after_send()
    };
    let (resp, target, guard, deferred) = loop {
        let dial =
            shared
                .dialer
                .with_retry_excluding(svc, std::mem::take(&mut avoid), |t| async move {
                    if own_connection {
                        Box::pin(connect(shared, &t, svc, port, tp)).await
                    } else {
                        sender(shared, t, svc, port, tp).await
                    }
                });
        // A resend connects within what is left of the first attempt's time.
        let connected = match deadline {
            Some(d) => tokio::time::timeout_at(d, dial)
                .await
                .map_err(|_| timed_out())??,
            None => dial.await?,
        };
        let (mut sender, target) = (connected.conn, connected.target);
        // `timeouts.request` runs from the first connection to the
        // response head; a resend gets what is left of it.
        let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + limit);
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out());
        }
        match tokio::time::timeout_at(deadline, sender.try_send_request(req)).await {
            Err(_) => {
                // No answer in time counts against the target, as a 504 would.
                shared.dialer.report_response(svc, &target, 504);
                return Err(timed_out());
            }
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let deferred = if status == 200 && grpc::is_grpc(resp.headers()) {
                    match grpc::code(resp.headers()) {
                        // A trailers-only gRPC answer.
                        Some(code) => {
                            grpc_ended(shared, svc, &target, code);
                            None
                        }
                        // A gRPC call's status comes in its trailers.
                        None => Some(Deferred {
                            shared: shared.clone(),
                            svc: svc.clone(),
                            target: target.clone(),
                        }),
                    }
                } else {
                    shared.dialer.report_response(svc, &target, status);
                    None
                };
                break (resp, target, connected.guard, deferred);
            }
            Ok(Err(mut e)) => {
                let unsent = e.take_message();
                let detail = format!("HTTP/2 request to {}: {}", target.key(), e.error());
                let err = ProxyError::new(
                    Hop::DestinationSidecar,
                    Reason::Io(e.error().to_string()),
                    detail,
                );
                let time_left = deadline > tokio::time::Instant::now();
                match unsent {
                    // The pooled connection closed (its instance draining,
                    // a GOAWAY) before the request was written: nothing
                    // reached the instance, so choose again, once, another
                    // target if there is one (the closed connection leaves
                    // the pool on the next lookup).
                    Some(back) if !resent && time_left => {
                        tracing::debug!(service = %svc, target = %target.key(), error = %e.error(), "connection closed before the request was sent; choosing again");
                        resent = true;
                        avoid.push(target.key());
                        req = back;
                    }
                    Some(_) => return Err(err),
                    // Sent, and the stream or its connection failed before
                    // the answer's head.
                    None => {
                        let unprocessed = unprocessed(e.error());
                        // The instance died or reset the stream: it failed
                        // the request, as a 503 would. A refused stream is
                        // a busy or draining instance, and an upgrade's
                        // reset may be an older sidecar: neither counts.
                        if !unprocessed && !own_connection {
                            shared.dialer.report_response(svc, &target, 503);
                        }
                        match replay.take() {
                            Some(head) if (idempotent || unprocessed) && !resent && time_left => {
                                tracing::info!(service = %svc, target = %target.key(), error = %e.error(), unprocessed, "stream failed before the answer; sending the request again, elsewhere if possible");
                                resent = true;
                                avoid.push(target.key());
                                let none = Coalesce::new(Either::Right(Empty::new()));
                                req = Request::from_parts(head, none);
                            }
                            _ => return Err(err.after_send()),
                        }
                    }
                }
            }
        }
    };
    let resp = resp.map(|body| {
        Guarded {
            body,
            _guard: guard,
            deferred,
        }
        .boxed_unsync()
    });
    Ok((resp, target))
}

/// Whether the destination said it did not process the request: it
/// refused the stream, or a graceful GOAWAY (NO_ERROR) left the stream out
/// (RFC 9113, 8.7). A GOAWAY with an error code ends every open stream,
/// processed or not, so it proves nothing.
fn unprocessed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            let reason = h2.reason();
            return h2.is_remote()
                && ((h2.is_go_away() && reason == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && reason == Some(h2::Reason::REFUSED_STREAM)));
        }
        next = e.source();
    }
    false
}

/// Whether a request with `method` may be sent twice (RFC 9110, 9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of a request head (without its extensions, which a plain
/// request has none of here: an upgrade's CONNECT is not idempotent).
fn copy_head(head: &http::request::Parts) -> http::request::Parts {
    let mut copy = Request::new(());
    *copy.method_mut() = head.method.clone();
    *copy.uri_mut() = head.uri.clone();
    *copy.version_mut() = head.version;
    *copy.headers_mut() = head.headers.clone();
    copy.into_parts().0
}

/// Returns a ready HTTP/2 handle to `target`: the pooled one, or a new connection.
async fn sender(
    shared: &Shared,
    target: Target,
    svc: &ServiceName,
    port: u16,
    tp: &str,
) -> Result<Sender, ProxyError> {
    let slot = match &target {
        Target::ViaGateway { cluster } => {
            let healthy = shared.dialer.remote_healthy(svc, cluster);
            shared
                .pool
                .next_slot(healthy.clamp(1, pool::MAX_REMOTE_CONNS))
        }
        Target::Local(_) => 0,
    };
    if let Some(mut s) = shared.pool.get(svc, port, &target, slot) {
        if s.ready().await.is_ok() {
            return Ok(s);
        }
        shared.pool.remove(svc, port, &target, slot);
    }
    // The connect path is boxed: its TLS state would otherwise make every
    // request's future (moved into place per request) kilobytes larger.
    let s = Box::pin(connect(shared, &target, svc, port, tp)).await?;
    shared.pool.put(svc, port, &target, slot, s.clone());
    Ok(s)
}

/// Opens a new HTTP/2 mesh connection to `target` (TLS, through the
/// gateway when remote) and returns its ready handle.
async fn connect(
    shared: &Shared,
    target: &Target,
    svc: &ServiceName,
    port: u16,
    tp: &str,
) -> Result<Sender, ProxyError> {
    let stream = shared
        .dialer
        .dial(target, svc, port, ALPN_H2, Some(tp))
        .await?;
    let (mut s, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| {
                ProxyError::new(
                    Hop::DestinationSidecar,
                    Reason::Io(e.to_string()),
                    "HTTP/2 handshake",
                )
            })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "mesh HTTP/2 connection ended with an error");
        }
    });
    s.ready().await.map_err(|e| {
        ProxyError::new(
            Hop::DestinationSidecar,
            Reason::Io(e.to_string()),
            "HTTP/2 connection closed at once",
        )
    })?;
    Ok(s)
}

fn error_response(e: &ProxyError, service: &str) -> Response<OutBody> {
    e.to_response(service)
        .map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

/// A response body that keeps its target's in-flight count raised until it
/// ends, and reports a gRPC call's outcome from its trailers.
struct Guarded {
    body: Incoming,
    _guard: InFlight,
    deferred: Option<Deferred>,
}

/// A gRPC call whose `grpc-status` is still to come, in the trailers.
struct Deferred {
    shared: Arc<Shared>,
    svc: ServiceName,
    target: Target,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if self.deferred.is_some() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc::code) {
                        let d = self.deferred.take().expect("checked");
                        grpc_ended(&d.shared, &d.svc, &d.target, code);
                    }
                }
                // The answer broke off before its status: the target failed
                // the call (outlier detection; no grpc-status to count).
                Poll::Ready(Some(Err(_))) => {
                    let d = self.deferred.take().expect("checked");
                    d.shared.dialer.report_response(&d.svc, &d.target, 503);
                }
                Poll::Ready(None) => self.deferred = None,
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    use super::unprocessed;

    /// The error a hyper HTTP/2 client gets when the server resets its
    /// first stream with `reason`.
    async fn reset_with(reason: h2::Reason) -> hyper::Error {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(server_io).await.unwrap();
            if let Some(Ok((_req, mut respond))) = conn.accept().await {
                respond.send_reset(reason);
            }
            // Keep the connection going so the reset is what the client sees.
            while conn.accept().await.is_some() {}
        });
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client_io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("http://x/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.send_request(req).await.expect_err("reset")
    }

    #[tokio::test]
    async fn a_refused_stream_is_unprocessed_and_other_resets_are_not() {
        assert!(unprocessed(&reset_with(h2::Reason::REFUSED_STREAM).await));
        assert!(!unprocessed(&reset_with(h2::Reason::CANCEL).await));
        assert!(!unprocessed(&reset_with(h2::Reason::INTERNAL_ERROR).await));
    }
}
