//! [`AppPool`] against real hyper apps on loopback: connections are reused,
//! concurrent requests get their own, a connection the app closed while idle
//! costs no request, one still sending an upload the app no longer reads
//! holds up no other request, idle connections expire, and gRPC requests
//! share one HTTP/2 connection.

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
use tokio_stream::StreamExt;

use crate::sidecar::app_pool::AppPool;

/// Connections an app accepted, and how many are open now.
#[derive(Clone, Default)]
struct Conns {
    total: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Conns {
    fn load(&self, ordering: Ordering) -> usize {
        self.total.load(ordering)
    }
}

/// An HTTP/1.1 app that counts its connections. `/chunked` answers with a
/// streamed (chunked) body, `/close` with `Connection: close`, `/early`
/// without reading the request body, anything else with a fixed-length body.
async fn app() -> (SocketAddr, Conns) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Conns::default();
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.total.fetch_add(1, Ordering::SeqCst);
            count.open.fetch_add(1, Ordering::SeqCst);
            let open = count.open.clone();
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
                        // `/early` and the rest answer without reading the body.
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
                open.fetch_sub(1, Ordering::SeqCst);
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

/// A request as the inbound side has it, with a body that the test feeds
/// (and may never finish).
async fn upload(path: &'static str) -> (Request<Incoming>, tokio::sync::mpsc::Sender<Bytes>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
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
    let (feed, chunks) = tokio::sync::mpsc::channel::<Bytes>(4);
    let body = StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(chunks)
            .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))),
    );
    let req = Request::post(format!("http://app{path}"))
        .body(body)
        .unwrap();
    tokio::spawn(send.send_request(req));
    (rx.recv().await.unwrap(), feed)
}

/// A raw HTTP/1.1 app: answers every request head at once (its path as a
/// fixed-length body); after `/early` it never reads that connection again,
/// as an app that rejects an upload without reading it may do.
async fn early_app() -> (SocketAddr, Conns) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Conns::default();
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.total.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                        path.len()
                    );
                    s.write_all(resp.as_bytes()).await.unwrap();
                    if path == "/early" {
                        // Never reads the rest: the upload fills the socket.
                        std::future::pending::<()>().await;
                    }
                    buf.clear();
                }
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn a_connection_still_sending_an_unread_upload_holds_up_no_request() {
    let (addr, conns) = early_app().await;
    let pool = pool(addr);
    let (req, feed) = upload("/early").await;
    // The upload goes on, faster than anyone reads it.
    let feeder = tokio::spawn(async move {
        while feed.send(Bytes::from(vec![b'u'; 64 * 1024])).await.is_ok() {}
    });
    let resp = pool.send(origin(req)).await.unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "/early"
    );
    // The first connection is idle now, but still busy with the upload.
    let next = incoming_requests(1, "/fixed").await.pop().unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), pool.send(origin(next)))
        .await
        .expect("the request waited for the other connection's upload")
        .unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "/fixed"
    );
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "served on a second connection"
    );
    feeder.abort();
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (addr, conns) = app().await;
    let pool = AppPool::new(
        addr,
        false,
        Duration::from_secs(2),
        Duration::from_millis(200),
    );
    let mut held = Vec::new();
    for req in incoming_requests(3, "/fixed").await {
        held.push(pool.send(origin(req)).await.unwrap());
    }
    for resp in held {
        resp.into_body().collect().await.unwrap();
    }
    assert_eq!(conns.open.load(Ordering::SeqCst), 3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conns.open.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} idle connections still open 10 s after a 200 ms idle timeout",
            conns.open.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cleartext HTTP/2 app (as a gRPC app is) that counts its connections.
async fn h2_app() -> (SocketAddr, Conns) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Conns::default();
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.total.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"h2"),
                    )))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn concurrent_first_grpc_requests_share_one_connection() {
    let (addr, conns) = h2_app().await;
    let pool = AppPool::new(addr, true, Duration::from_secs(2), Duration::from_secs(60));
    let reqs = incoming_requests(10, "/grpc.health.v1.Health/Check").await;
    let calls = reqs.into_iter().map(|mut req| {
        let pool = pool.clone();
        *req.uri_mut() = format!("http://{addr}/grpc.health.v1.Health/Check")
            .parse()
            .unwrap();
        tokio::spawn(async move {
            let resp = pool.send(req).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes()
        })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap(), "h2");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}
