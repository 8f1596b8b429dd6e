//! [`AppPool`] against a real hyper HTTP/1.1 app on loopback: connections
//! are reused, concurrent requests get their own, and a connection the app
//! closed while idle costs no request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::sidecar::app_pool::AppPool;

/// An app that counts its connections. `/chunked` answers with a streamed
/// (chunked) body, `/close` with `Connection: close`, anything else with a
/// fixed-length body.
async fn app() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_string();
                    let body = match path.as_str() {
                        "/chunked" => {
                            let frames =
                                futures::stream::iter([Ok::<_, std::convert::Infallible>(
                                    Frame::data(Bytes::from_static(b"streamed")),
                                )]);
                            StreamBody::new(frames).boxed()
                        }
                        _ => Full::new(Bytes::from(path.clone()))
                            .map_err(|e| match e {})
                            .boxed(),
                    };
                    let mut resp = http::Response::new(body);
                    if path == "/close" {
                        resp.headers_mut()
                            .insert("connection", "close".parse().unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

/// An HTTP/2 request body as the inbound side has it: `Incoming`, from a
/// real HTTP/2 connection (a tiny loopback echo of the request).
async fn incoming_requests(n: usize, path: &'static str) -> Vec<Request<Incoming>> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(n);
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(req).await;
                Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
            }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(s), svc)
            .await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    for _ in 0..n {
        let req = Request::get(format!("http://app{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        tokio::spawn(send.send_request(req));
        out.push(rx.recv().await.unwrap());
    }
    out
}

fn pool(addr: SocketAddr) -> Arc<AppPool> {
    AppPool::new(addr, false, Duration::from_secs(2), Duration::from_secs(60))
}

fn origin(mut req: Request<Incoming>) -> Request<Incoming> {
    *req.uri_mut() = req
        .uri()
        .path_and_query()
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    req
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (addr, conns) = app().await;
    let pool = pool(addr);
    for (i, path) in ["/fixed", "/chunked"].into_iter().enumerate() {
        for req in incoming_requests(20, path).await {
            let resp = pool.send(origin(req)).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let want = if path == "/chunked" { "streamed" } else { path };
            assert_eq!(body, want);
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1, "after {} batches", i + 1);
    }
}

#[tokio::test]
async fn concurrent_requests_get_their_own_connections() {
    let (addr, conns) = app().await;
    let pool = pool(addr);
    let reqs = incoming_requests(4, "/fixed").await;
    // Four responses in hand, bodies unread: each holds its connection.
    let mut held = Vec::new();
    for req in reqs {
        held.push(pool.send(origin(req)).await.unwrap());
    }
    assert_eq!(conns.load(Ordering::SeqCst), 4);
    for resp in held {
        resp.into_body().collect().await.unwrap();
    }
    // Bodies read: the four are idle and reused.
    for req in incoming_requests(4, "/fixed").await {
        pool.send(origin(req))
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
    }
    assert_eq!(conns.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_connection_the_app_closed_costs_no_request() {
    let (addr, conns) = app().await;
    let pool = pool(addr);
    for req in incoming_requests(5, "/close").await {
        let resp = pool.send(origin(req)).await.unwrap();
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            "/close"
        );
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        5,
        "each closed connection is replaced"
    );
}
