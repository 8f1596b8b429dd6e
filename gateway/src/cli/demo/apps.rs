//! The demo's sample applications, served by this process on loopback: an
//! HTTP `payments` that says which cluster answered, `orders`/`checkout`
//! placeholders, a TCP `inventory` that answers each line with where it runs,
//! and the clients that call through a sidecar.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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

/// Starts a TCP app answering every line `L` with `"{service} in {cluster}: L"`.
pub async fn tcp(service: &str, cluster: &str) -> Result<App> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let prefix = format!("{service} in {cluster}: ");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = format!("{prefix}{line}\n");
                    if w.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(App { addr, task })
}

/// Something the demo calls: answers with a text ending in `in <cluster>`.
pub trait Call {
    /// Calls once; returns (status, text, latency); a TCP answer counts as 200.
    fn call(&self) -> impl Future<Output = Result<(u16, String, Duration)>> + Send;
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

    /// Returns a [`Call`] of `http://{host}/` through this sidecar.
    pub fn to(&self, host: &'static str) -> HttpCall {
        HttpCall {
            caller: self.clone(),
            host,
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

/// One HTTP call target: a host through a sidecar.
#[derive(Clone)]
pub struct HttpCall {
    caller: Caller,
    host: &'static str,
}

impl Call for HttpCall {
    async fn call(&self) -> Result<(u16, String, Duration)> {
        self.caller.call(self.host).await
    }
}

/// Calls a TCP service through a sidecar's upstream listener: one connection
/// per call, one line out, one line back.
#[derive(Clone)]
pub struct TcpCall {
    /// The sidecar's upstream listener for the service.
    pub via: SocketAddr,
}

impl Call for TcpCall {
    async fn call(&self) -> Result<(u16, String, Duration)> {
        let t = Instant::now();
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(self.via).await?;
            let (r, mut w) = tcp.into_split();
            w.write_all(b"stock?\n").await?;
            let mut line = String::new();
            BufReader::new(r).read_line(&mut line).await?;
            anyhow::Ok(line)
        };
        let line = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .context("no answer within 5 s")??;
        let Some(text) = line.trim_end().strip_suffix(": stock?") else {
            bail!("unexpected answer {line:?} (the connection was closed or cut)");
        };
        Ok((200, text.to_string(), t.elapsed()))
    }
}
