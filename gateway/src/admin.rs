//! The admin HTTP server: `/healthz` (the process is up), `/readyz` (the store
//! answers and the listeners are bound) and `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use crate::shared::Shared;

/// Readiness, set by the gateway's store probe.
#[derive(Default)]
pub struct Ready(AtomicBool);

impl Ready {
    /// Records whether the gateway is ready.
    pub fn set(&self, v: bool) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Returns whether the gateway is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the admin port on TCP {addr}: {e}: is another gateway running? set listen.admin to a free port")
    })
}

/// Serves admin requests forever.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, ready: Arc<Ready>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                meshgw_proxy::accept::failed("admin", &e).await;
                continue;
            }
        };
        let shared = shared.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, shared.clone(), ready.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    ready: Arc<Ready>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" if ready.get() => (StatusCode::OK, "ready\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the catalog store does not answer (see the gateway log)\n".to_string(),
        ),
        "/metrics" => {
            for (peer, link, _) in shared.peers.snapshot() {
                shared.metrics.connected(&peer, link.is_some());
            }
            (StatusCode::OK, shared.metrics.render())
        }
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
            http::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
    }
    Ok(resp)
}
