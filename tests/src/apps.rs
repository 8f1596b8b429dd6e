//! Small real applications for the data-plane tests, on loopback ports:
//! an HTTP app (identifies itself, echoes the mesh headers it received,
//! streams big uploads and downloads with checksums), a gRPC app (the
//! standard grpc.health.v1 service), and a TCP echo. Each stops when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// A running app; aborted when dropped.
pub struct App {
    /// Where it listens.
    pub addr: SocketAddr,
    pub(crate) task: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Returns the deterministic byte at offset `i` of a download.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Returns the SHA-256 (hex) of `n` pattern bytes.
pub fn pattern_sha256(n: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut i = 0;
    while i < n {
        let k = (n - i).min(buf.len() as u64) as usize;
        for (j, b) in buf[..k].iter_mut().enumerate() {
            *b = pattern(i + j as u64);
        }
        h.update(&buf[..k]);
        i += k as u64;
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

/// Starts the HTTP app `name`:
/// - `GET /` → `200 name=<name>` plus the `x-meshgw-*`, `traceparent` and
///   `x-http-method-override` headers it saw, one per line;
/// - `POST /upload` → `200 <sha256 of the body> <length>` (streamed, never buffered whole);
/// - `GET /download?n=N` → N pattern bytes (streamed);
/// - `GET /slow?ms=N` → the head at once (`x-app: <name>`), then after N ms
///   the body `name=<name>` (a request that stays in flight);
/// - `GET /healthz` → 200.
pub async fn http(name: &str) -> Result<App> {
    let name = name.to_string();
    serve_http(move |req| handle(name.clone(), req)).await
}

/// Serves HTTP/1.1 and h2c on a fresh loopback port, each request by `handler`.
async fn serve_http<F, Fut>(handler: F) -> Result<App>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let svc = service_fn(handler.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(App { addr, task })
}

async fn handle(name: String, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let resp = match path.as_str() {
        "/upload" => {
            let mut body = req.into_body();
            let mut h = Sha256::new();
            let mut n = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    n += data.len() as u64;
                    h.update(&data);
                }
            }
            Response::new(full(format!("{} {n}", hex(&h.finalize()))))
        }
        "/download" => {
            let n: u64 = query
                .strip_prefix("n=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let stream = futures::stream::unfold(0u64, move |i| async move {
                if i >= n {
                    return None;
                }
                let k = (n - i).min(64 * 1024);
                let chunk: Vec<u8> = (i..i + k).map(pattern).collect();
                Some((
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk))),
                    i + k,
                ))
            });
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        "/slow" => {
            let ms: u64 = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let body = format!("name={name}\n");
            let stream = futures::stream::once(async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(body)))
            });
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            if let Ok(v) = http::HeaderValue::from_str(&name) {
                resp.headers_mut().insert("x-app", v);
            }
            resp
        }
        _ => {
            let mut out = format!("name={name}\n");
            for (k, v) in req.headers() {
                let k = k.as_str();
                if k.starts_with("x-meshgw-") || k == "traceparent" || k == "x-http-method-override"
                {
                    out += &format!("{k}={}\n", v.to_str().unwrap_or("?"));
                }
            }
            Response::new(full(out))
        }
    };
    Ok(resp)
}

/// Starts a broken HTTP app `name`: `GET /healthz` answers 200 (its health
/// check passes), every other request `status` with the body
/// `name=<name> failing`.
pub async fn http_failing(name: &str, status: u16) -> Result<App> {
    let status =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = format!("name={name} failing\n");
    serve_http(move |req: Request<Incoming>| {
        let mut resp = Response::new(full(body.clone()));
        if req.uri().path() != "/healthz" {
            *resp.status_mut() = status;
        }
        async move { Ok::<_, Infallible>(resp) }
    })
    .await
}

/// Starts a TCP echo app.
pub async fn tcp_echo() -> Result<App> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(App { addr, task })
}

/// Starts a gRPC app serving `grpc.health.v1.Health`, reporting `service` as SERVING.
pub async fn grpc(service: &str) -> Result<App> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(service, tonic_health::ServingStatus::Serving)
        .await;
    let task = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
        let _ = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming)
            .await;
        drop(reporter);
    });
    Ok(App { addr, task })
}

/// Starts an HTTP app that never answers: each request waits until the
/// caller gives up.
pub async fn http_hanging() -> Result<App> {
    serve_http(|_req: Request<Incoming>| async {
        std::future::pending::<()>().await;
        Ok::<Response<Body>, Infallible>(Response::new(full(String::new())))
    })
    .await
}

/// Starts an HTTP app whose health check passes but which never answers
/// anything else: each such request waits until the caller gives up.
/// Returns the app and the number of requests it has received (health
/// checks left out).
pub async fn http_stalling() -> Result<(App, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = serve_http(move |req: Request<Incoming>| {
        let count = count.clone();
        async move {
            if req.uri().path() != "/healthz" {
                count.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            Ok::<Response<Body>, Infallible>(Response::new(full(String::new())))
        }
    })
    .await?;
    Ok((app, seen))
}

/// Starts a gRPC app that fails every call with `grpc-status: code`: in
/// the head of a trailers-only answer (as tonic answers an error), or in
/// trailers after an HTTP 200 head (as a server that failed mid-call does).
pub async fn grpc_failing(code: u32, trailers_only: bool) -> Result<App> {
    serve_http(move |_req: Request<Incoming>| async move {
        let mut status = http::HeaderMap::new();
        status.insert("grpc-status", code.into());
        status.insert(
            "grpc-message",
            http::HeaderValue::from_static("failing on purpose"),
        );
        let mut resp = Response::builder()
            .header("content-type", "application/grpc")
            .body(if trailers_only {
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed()
            } else {
                let frames =
                    tokio_stream::iter([Ok::<_, std::io::Error>(Frame::trailers(status.clone()))]);
                StreamBody::new(frames).boxed()
            })
            .expect("static response");
        if trailers_only {
            resp.headers_mut().extend(status);
        }
        Ok::<_, Infallible>(resp)
    })
    .await
}

/// How a connection to [`tcp_echo_reporting`] ended, as the app saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEnd {
    /// A clean end of stream (the caller's FIN) after this many bytes.
    Eof(u64),
    /// A read or write failed with this error.
    Failed(std::io::ErrorKind),
    /// The app reset the connection itself: it read a `!`.
    ResetByApp,
}

/// Starts a TCP echo that resets a connection (RST) when it reads a `!`,
/// and reports how each connection ended on the returned channel.
pub async fn tcp_echo_reporting() -> Result<(App, tokio::sync::mpsc::UnboundedReceiver<TcpEnd>)> {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut total = 0u64;
                let end = loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) => break TcpEnd::Eof(total),
                        Ok(n) => n,
                        Err(e) => break TcpEnd::Failed(e.kind()),
                    };
                    if buf[..n].contains(&b'!') {
                        let _ = s.set_zero_linger();
                        break TcpEnd::ResetByApp;
                    }
                    total += n as u64;
                    if let Err(e) = s.write_all(&buf[..n]).await {
                        break TcpEnd::Failed(e.kind());
                    }
                };
                if end != TcpEnd::ResetByApp {
                    let _ = s.shutdown().await;
                }
                drop(s);
                let _ = tx.send(end);
            });
        }
    });
    Ok((App { addr, task }, rx))
}
