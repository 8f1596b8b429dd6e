//! The inbound listener with real TLS on loopback: mesh callers reach a TCP
//! echo app and an HTTP app (which sees `x-meshgw-caller` and the source
//! cluster its certificate proves); callers without
//! a certificate or from another CA are refused and the listener keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use super::{Pki, closed_port, config, eventually};
use crate::inbound::Inbound;
use crate::metrics::{Direction, Metrics};
use crate::tls::{ALPN_H2, ALPN_TCP, WorkloadTls, service_spiffe_id};

const SERVER_ID: &str = "spiffe://mesh.test/ns/default/sa/payments";

/// A TCP echo app.
async fn echo_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// An HTTP/1.1 app answering with the caller headers it saw and the number
/// of body bytes it read (streaming, never holding the body).
async fn http_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        // Every value of a header, comma-joined.
                        let h = |n: &str| {
                            let all: Vec<&str> = req
                                .headers()
                                .get_all(n)
                                .iter()
                                .map(|v| v.to_str().unwrap())
                                .collect();
                            if all.is_empty() {
                                "-".into()
                            } else {
                                all.join(",")
                            }
                        };
                        let seen = format!(
                            "caller={} source={} traceparent={} host={}",
                            h("x-meshgw-caller"),
                            h("x-meshgw-source-cluster"),
                            h("traceparent"),
                            h("host")
                        );
                        let mut body = req.into_body();
                        let mut n = 0u64;
                        while let Some(frame) = body.frame().await {
                            if let Ok(d) = frame.unwrap().into_data() {
                                n += d.len() as u64;
                            }
                        }
                        let resp = http::Response::builder()
                            .header("x-seen", seen)
                            .body(Full::new(Bytes::from(n.to_string())))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

struct Running {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    _stop: watch::Sender<bool>,
}

async fn start(pki: &Pki, app: SocketAddr, protocol: &str) -> Running {
    let cfg = config(pki, app, protocol);
    let tls = WorkloadTls::from_config(&cfg).unwrap();
    let metrics = Arc::new(Metrics::new("a"));
    let inbound = Inbound::new(&cfg, Arc::new(tls), metrics.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(inbound.serve(l, stop_rx));
    Running {
        addr,
        metrics,
        _stop: stop,
    }
}

async fn dial(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("payments").unwrap(), tcp)
        .await
}

/// Sends `ping` over a TCP-ALPN connection; returns what came back.
async fn ping(config: Arc<rustls::ClientConfig>, addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = dial(config, addr).await?;
    s.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

#[tokio::test]
async fn mesh_caller_reaches_a_tcp_app() {
    let pki = Pki::new("mesh.test");
    let inbound = start(&pki, echo_app().await, "tcp").await;
    let caller = pki.tls("caller");
    let config = caller.client_for(SERVER_ID, &[ALPN_TCP]).unwrap();
    assert_eq!(ping(config.clone(), inbound.addr).await.unwrap(), b"ping");
    assert!(
        Arc::ptr_eq(&config, &caller.client_for(SERVER_ID, &[ALPN_TCP]).unwrap()),
        "cached"
    );
    assert_eq!(inbound.metrics.handshake_failures(Direction::Inbound), 0);
}

#[tokio::test]
async fn callers_without_a_mesh_certificate_are_refused_and_the_listener_keeps_serving() {
    let pki = Pki::new("mesh.test");
    let inbound = start(&pki, echo_app().await, "tcp").await;

    // No client certificate at all.
    let verifier = meshgw_identity::SpiffeServerVerifier::new(
        "payments",
        meshgw_identity::load_certs(&pki.root()).unwrap(),
        SERVER_ID,
    )
    .unwrap();
    let mut anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(verifier))
    .with_no_client_auth();
    anonymous.alpn_protocols = vec![ALPN_TCP.to_vec()];
    assert!(ping(Arc::new(anonymous), inbound.addr).await.is_err());
    let m = inbound.metrics.clone();
    eventually("one refused handshake", || {
        m.handshake_failures(Direction::Inbound) == 1
    })
    .await;

    // A certificate from another mesh root, with a valid-looking ID.
    let other = Pki::new("mesh.test");
    let (cert, key) = other.workload("caller");
    let foreign = WorkloadTls::new(
        meshgw_identity::Identity::load(&cert, &key).unwrap(),
        meshgw_identity::load_certs(&pki.root()).unwrap(),
        "mesh.test",
    )
    .unwrap();
    let config = foreign.client_for(SERVER_ID, &[ALPN_TCP]).unwrap();
    assert!(ping(config, inbound.addr).await.is_err());
    eventually("two refused handshakes", || {
        m.handshake_failures(Direction::Inbound) == 2
    })
    .await;

    // The listener still serves the mesh.
    let good = pki
        .tls("caller")
        .client_for(SERVER_ID, &[ALPN_TCP])
        .unwrap();
    assert_eq!(ping(good, inbound.addr).await.unwrap(), b"ping");
    let text = inbound.metrics.render();
    assert!(
        text.contains("meshgw_sidecar_tls_handshake_failures_total{direction=\"Inbound\"} 2"),
        "{text}"
    );
}

type Sender = hyper::client::conn::http2::SendRequest<
    http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>,
>;

async fn h2(caller: &WorkloadTls, addr: SocketAddr) -> Sender {
    let config = caller.client_for(SERVER_ID, &[ALPN_H2]).unwrap();
    let tls = dial(config, addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

fn seen(resp: &http::Response<hyper::body::Incoming>) -> String {
    resp.headers()["x-seen"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn http_requests_reach_the_app_with_the_verified_caller_and_cluster() {
    let pki = Pki::new("mesh.test");
    let inbound = start(&pki, http_app().await, "http").await;
    let caller = pki.tls("caller");
    let mut send = h2(&caller, inbound.addr).await;

    let req = Request::post("http://payments.default.mesh/pay?x=1")
        .header("x-meshgw-caller", "spiffe://forged")
        .header("x-meshgw-source-cluster", "b")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(
            Full::new(Bytes::from_static(b"hello"))
                .map_err(|e| match e {})
                .boxed(),
        )
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let want_caller = service_spiffe_id("mesh.test", "default", "caller");
    assert_eq!(
        seen(&resp),
        format!(
            "caller={want_caller} source=a traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 host=payments.default.mesh"
        )
    );
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "5");

    // The forged cluster `b` was replaced by the one whose CA issued the
    // caller's certificate; without a source header the app gets it too.
    let req = Request::get("http://payments.default.mesh/")
        .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert!(
        seen(&resp).contains("source=a traceparent=-"),
        "{}",
        seen(&resp)
    );
    // The right cluster first and a forged one after it: only the right one.
    let req = Request::get("http://payments.default.mesh/")
        .header("x-meshgw-source-cluster", "a")
        .header("x-meshgw-source-cluster", "b")
        .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert!(
        seen(&resp).contains("source=a traceparent"),
        "{}",
        seen(&resp)
    );
    let text = inbound.metrics.render();
    assert!(text.contains("src_cluster=\"a\",dst_cluster=\"a\",service=\"default/payments\",status_class=\"2xx\"} 3"), "{text}");
}

#[tokio::test]
async fn large_bodies_stream_through() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 100;
    let pki = Pki::new("mesh.test");
    let inbound = start(&pki, http_app().await, "http").await;
    let mut send = h2(&pki.tls("caller"), inbound.addr).await;
    let chunks =
        futures::stream::iter((0..CHUNKS).map(|_| {
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![7u8; CHUNK])))
        }));
    let req = Request::post("http://payments.default.mesh/upload")
        .body(StreamBody::new(chunks).boxed())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (CHUNK * CHUNKS).to_string());
}

#[tokio::test]
async fn unreachable_app_is_a_502_naming_it() {
    let pki = Pki::new("mesh.test");
    let app = closed_port().await;
    let inbound = start(&pki, app, "http").await;
    let mut send = h2(&pki.tls("caller"), inbound.addr).await;
    let req = Request::get("http://payments.default.mesh/")
        .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(&format!("cannot reach the app at {app}")),
        "{body}"
    );
}

/// The leaf certificate the inbound listener presents to a new connection.
async fn presented(config: Arc<rustls::ClientConfig>, addr: SocketAddr) -> Vec<u8> {
    let s = dial(config, addr).await.unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn leaf(path: &std::path::Path) -> Vec<u8> {
    meshgw_identity::load_certs(path).unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_and_one_for_another_workload_is_refused() {
    let pki = Pki::new("mesh.test");
    let cfg = config(&pki, echo_app().await, "tcp");
    let tls = Arc::new(WorkloadTls::from_config(&cfg).unwrap());
    let inbound = Inbound::new(&cfg, tls.clone(), Arc::new(Metrics::new("a")));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(inbound.serve(l, stop_rx));
    let caller = pki
        .tls("caller")
        .client_for(SERVER_ID, &[ALPN_TCP])
        .unwrap();

    let first = leaf(&cfg.tls.cert);
    assert_eq!(presented(caller.clone(), addr).await, first);
    let mut open = dial(caller.clone(), addr).await.unwrap();
    assert!(!tls.reload().unwrap(), "unchanged files are not a rotation");

    // A new certificate and key for the same workload, written in place.
    let (cert, key) = pki.workload("payments");
    assert_eq!(
        (&cert, &key),
        (&cfg.tls.cert, &cfg.tls.key),
        "issued in place"
    );
    let second = leaf(&cfg.tls.cert);
    assert_ne!(first, second);
    assert!(tls.reload().unwrap());
    assert_eq!(presented(caller.clone(), addr).await, second);
    assert_eq!(ping(caller.clone(), addr).await.unwrap(), b"ping");
    // A connection opened before the rotation keeps working.
    open.write_all(b"still").await.unwrap();
    let mut buf = [0u8; 5];
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still");

    // Another workload's certificate in its place is refused, naming both
    // IDs; the listener keeps presenting the last good one.
    let (other_cert, other_key) = pki.workload("orders");
    std::fs::copy(&other_cert, &cfg.tls.cert).unwrap();
    std::fs::copy(&other_key, &cfg.tls.key).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(
        err.contains("sa/orders") && err.contains("sa/payments") && err.contains("restart"),
        "{err}"
    );
    assert_eq!(presented(caller, addr).await, second);
}
