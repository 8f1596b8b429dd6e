//! The demo's sample applications, served by this process on loopback: an
//! HTTP `payments` that says which cluster answered, `orders`/`checkout`
//! placeholders, and the client that calls through a sidecar.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

/// A running app; aborted when dropped.
pub struct App {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an HTTP app answering every request with `"{service} in {cluster}"`.
pub async fn http(service: &str, cluster: &str) -> Result<App> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let text = Bytes::from(format!("{service} in {cluster}"));
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let text = text.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let text = text.clone();
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(text))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(App { addr, task })
}

/// Calls `http://{host}/` through a sidecar's outbound HTTP listener.
#[derive(Clone)]
pub struct Caller {
    client: Client<HttpConnector, Empty<Bytes>>,
    via: SocketAddr,
}

impl Caller {
    /// Creates a caller using the sidecar listening at `via`.
    pub fn new(via: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            via,
        }
    }

    /// Calls `host` once; returns (status, body, latency).
    pub async fn call(&self, host: &str) -> Result<(u16, String, Duration)> {
        let req = hyper::Request::get(format!("http://{}/", self.via))
            .header("host", host)
            .body(Empty::new())?;
        let t = Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(5), self.client.request(req))
            .await
            .context("no answer within 5 s")??;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            String::from_utf8_lossy(&body).into_owned(),
            t.elapsed(),
        ))
    }
}
