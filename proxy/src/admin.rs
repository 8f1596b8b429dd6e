//! The sidecar's admin HTTP server: `/healthz` (the process is up),
//! `/readyz` (registered with the gateway and a catalog received) and
//! `/metrics` (OpenMetrics text).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// What readiness is made of.
#[derive(Debug, Default)]
pub struct Ready {
    registered: AtomicBool,
    catalog: AtomicBool,
}

impl Ready {
    /// Records whether the instance is registered with the gateway.
    pub fn set_registered(&self, v: bool) {
        self.registered.store(v, Ordering::Relaxed);
    }

    /// Records that a catalog view arrived from the gateway.
    pub fn set_catalog(&self, v: bool) {
        self.catalog.store(v, Ordering::Relaxed);
    }

    /// Returns `None` when ready, else what is missing.
    pub fn missing(&self) -> Option<&'static str> {
        match (
            self.registered.load(Ordering::Relaxed),
            self.catalog.load(Ordering::Relaxed),
        ) {
            (true, true) => None,
            (false, true) => Some("not registered with the gateway yet"),
            (true, false) => Some("no catalog received from the gateway yet"),
            (false, false) => {
                Some("not registered and no catalog yet: is the gateway API reachable?")
            }
        }
    }
}

/// Serves admin requests on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    ready: Arc<Ready>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = crate::sidecar::stopped(&mut shutdown) => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    crate::accept::failed("admin", &e).await;
                    continue;
                }
            },
        };
        let (ready, metrics) = (ready.clone(), metrics.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (ready, metrics) = (ready.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(handle(&req, &ready, &metrics)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn handle(req: &Request<Incoming>, ready: &Ready, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" => match ready.missing() {
            None => (StatusCode::OK, "ready\n".to_string()),
            Some(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => (StatusCode::OK, metrics.render()),
        other => (
            StatusCode::NOT_FOUND,
            format!("no such admin path {other}: try /healthz, /readyz or /metrics\n"),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if req.uri().path() == "/metrics" {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
    }
    resp
}
