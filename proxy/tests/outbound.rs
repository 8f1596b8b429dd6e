//! The outbound side over loopback: TCP upstreams and HTTP routing to a
//! local instance over mTLS, retries, SPIFFE checks, and the path through
//! the local gateway (route header, answer, TLS inside TLS).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshgw_federation::model::{Protocol, ServiceName};
use meshgw_proxy::catalog::{Catalog, LocalEndpoint, RemoteCluster, View};
use meshgw_proxy::metrics::Metrics;
use meshgw_proxy::outbound::{self, Context, Outbound};
use meshgw_proxy::route::RouteStatus;
use support::{Chunks, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

fn svc() -> ServiceName {
    ServiceName::new("default", "payments")
}

fn local(id: &str, addr: SocketAddr) -> LocalEndpoint {
    LocalEndpoint {
        id: id.into(),
        addr: addr.to_string(),
        zone: "eu-a".into(),
        region: "eu".into(),
        healthy: true,
        weight: 1,
        labels: Default::default(),
        protocol: Protocol::Http,
    }
}

fn view(locals: Vec<LocalEndpoint>, remotes: Vec<RemoteCluster>) -> View {
    View {
        local: [(svc(), locals.into_iter().map(Arc::new).collect())]
            .into_iter()
            .collect(),
        remote: [(svc(), remotes)].into_iter().collect(),
        peer_rtt: Default::default(),
        revision: 1,
    }
}

/// Binds the outbound listeners of a `default/web` sidecar and serves them
/// in the background; dropping the returned sender stops them.
async fn start(pki: &Pki, v: View, gateway: SocketAddr) -> (Outbound, watch::Sender<bool>) {
    let cfg = Arc::new(support::config(pki, gateway, &["default/payments"]));
    let (catalog, tx) = Catalog::from_view(v);
    std::mem::forget(tx);
    let (stop, shutdown) = watch::channel(false);
    let ctx = Context {
        cfg,
        catalog,
        tls: pki.sidecar_tls(),
        metrics: Arc::new(Metrics::new("a")),
        shutdown,
    };
    (outbound::bind(ctx).await.unwrap(), stop)
}

async fn run(
    pki: &Pki,
    v: View,
    gateway: SocketAddr,
) -> (SocketAddr, SocketAddr, watch::Sender<bool>) {
    let (out, stop) = start(pki, v, gateway).await;
    let http = out.http_addr().unwrap();
    let tcp = out.upstream_addrs()[0];
    tokio::spawn(out.serve());
    (http, tcp, stop)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn http1<B>(addr: SocketAddr, req: Request<B>) -> (StatusCode, http::HeaderMap, String)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get(host: &str, path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn tcp_upstream_pipes_to_a_local_instance_with_half_close() {
    let pki = Pki::new();
    let (dest, _) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let (_, tcp, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let mut c = TcpStream::connect(tcp).await.unwrap();
    c.write_all(b"hello mesh").await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"HELLO MESH");
}

#[tokio::test]
async fn http_routes_by_host_adds_headers_and_streams_large_bodies() {
    let pki = Pki::new();
    let (dest, seen) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let (http, _, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;

    let big = 100 * 1024 * 1024;
    let up = Request::post("/upload")
        .header("host", "payments.default.mesh")
        .body(Chunks { left: big })
        .unwrap();
    let (status, _, body) = http1(http, up).await;
    assert_eq!((status, body), (StatusCode::OK, format!("len={big}")));
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.source_cluster.as_deref(), Some("a"));
    assert_eq!(
        s.traceparent.map(|t| t.len()),
        Some(55),
        "a traceparent is created when absent"
    );

    let io = TokioIo::new(TcpStream::connect(http).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(get(
            "payments.default.mesh:8080",
            &format!("/download/{big}"),
        ))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        n += f.unwrap().into_data().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(n, big);
}

#[tokio::test]
async fn http2_prior_knowledge_is_routed_too() {
    let pki = Pki::new();
    let (dest, seen) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let (http, _, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let io = TokioIo::new(TcpStream::connect(http).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = Request::post("http://payments.default.mesh/grpc.Svc/Call")
        .header("traceparent", tp)
        .body(http_body_util::Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"len=5");
    assert_eq!(
        seen.lock().unwrap()[0].traceparent.as_deref(),
        Some(tp),
        "traceparent kept"
    );
}

#[tokio::test]
async fn bad_hosts_and_unknown_services_get_clear_errors() {
    let pki = Pki::new();
    let (dest, _) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let (http, _, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let (status, headers, body) = http1(http, get("example.com", "/")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers["x-meshgw-error"],
        "bad_host; service=example.com; hop=local-sidecar"
    );
    assert!(body.contains("name.namespace.mesh"), "{body}");
    let (status, headers, _) = http1(http, get("nope.default.mesh", "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers["x-meshgw-error"],
        "unknown_service; service=default/nope; hop=local-sidecar"
    );
}

#[tokio::test]
async fn a_destination_with_the_wrong_identity_is_refused() {
    let pki = Pki::new();
    let (dest, seen) = support::destination(&pki, &pki.workload("default", "impostor")).await;
    let (http, _, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let (status, headers, body) = http1(http, get("payments.default.mesh", "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers["x-meshgw-error"],
        "tls; service=default/payments; hop=destination-sidecar"
    );
    assert!(body.contains("SPIFFE"), "{body}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refusing_endpoint_is_retried_on_another() {
    let pki = Pki::new();
    let (dest, _) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let v = view(vec![local("dead", closed), local("live", dest)], vec![]);
    let (http, _, _stop) = run(&pki, v, dest).await;
    for _ in 0..6 {
        let (status, _, body) = http1(http, get("payments.default.mesh", "/")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "len=0"));
    }
}

fn remote(cluster: &str) -> RemoteCluster {
    RemoteCluster {
        cluster: cluster.into(),
        healthy: 2,
        weight: 2,
        zones: vec![],
        stale: false,
    }
}

#[tokio::test]
async fn via_gateway_a_no_instance_answer_names_the_peer_gateway() {
    let pki = Pki::new();
    let reason = "gateway b: no healthy instance of default/payments";
    let (gw, headers) = support::gateway(&pki, RouteStatus::NoInstance, reason, None).await;
    let (http, _, _stop) = run(&pki, view(vec![], vec![remote("b")]), gw).await;
    let (status, h, body) = http1(http, get("payments.default.mesh:9090", "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        h["x-meshgw-error"],
        "no_instance; service=default/payments; hop=peer-gateway:b"
    );
    assert!(body.contains(reason), "{body}");
    let sent = headers.lock().unwrap()[0].clone();
    assert_eq!(
        (sent.namespace.as_str(), sent.service.as_str(), sent.port),
        ("default", "payments", 9090)
    );
    assert_eq!(
        (sent.source_cluster.as_str(), sent.target_cluster.as_deref()),
        ("a", Some("b"))
    );
    assert!(sent.traceparent.is_some());
}

#[tokio::test]
async fn via_gateway_runs_the_sidecar_tls_session_inside_the_gateway_one() {
    let pki = Pki::new();
    let (dest, seen) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let (gw, headers) = support::gateway(&pki, RouteStatus::Ok, "gateway b: ok", Some(dest)).await;
    let (http, tcp, _stop) = run(&pki, view(vec![], vec![remote("b")]), gw).await;
    let (status, _, body) = http1(http, get("payments.default.mesh", "/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "len=0"));
    assert_eq!(seen.lock().unwrap()[0].source_cluster.as_deref(), Some("a"));
    let mut c = TcpStream::connect(tcp).await.unwrap();
    c.write_all(b"across").await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"ACROSS");
    assert_eq!(headers.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let pki = Pki::new();
    let (dest, _) = support::destination(&pki, &pki.workload("default", "payments")).await;
    let (out, stop) = start(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let http = out.http_addr().unwrap();
    let served = tokio::spawn(out.serve());
    let (status, _, _) = http1(http, get("payments.default.mesh", "/")).await;
    assert_eq!(status, StatusCode::OK);
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(http).await.is_err());
}

/// The real inbound side as the destination: outbound → mTLS → inbound →
/// an HTTP/1.1 app, which sees the caller's cluster and identity.
#[tokio::test]
async fn reaches_an_app_behind_the_real_inbound_sidecar() {
    let pki = Pki::new();
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = app.accept().await.unwrap();
        let svc = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            let text = format!(
                "cluster={} caller={}",
                h("x-meshgw-source-cluster"),
                h("x-meshgw-caller")
            );
            Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(Bytes::from(
                text,
            ))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .await;
    });
    let (dest, _stop_dest) = real_inbound(&pki, app_addr).await;
    let (http, _, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let (status, _, body) = http1(http, get("payments.default.mesh", "/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        format!(
            "cluster=a caller=spiffe://{}/ns/default/sa/web",
            support::TD
        )
    );
}

/// Starts the real inbound listener of a `default/payments` sidecar in
/// front of `app`; it stops when the returned sender is dropped.
async fn real_inbound(pki: &Pki, app: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    use meshgw_proxy::inbound::Inbound;
    use meshgw_proxy::tls::WorkloadTls;
    let mut cfg = support::config(pki, app, &[]);
    cfg.service.name = "payments".into();
    cfg.service.app = app;
    let tls = WorkloadTls::new(
        pki.workload("default", "payments"),
        pki.bundle(),
        support::TD,
    )
    .unwrap();
    let inbound = Inbound::new(&cfg, Arc::new(tls), Arc::new(Metrics::new("a")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(inbound.serve(listener, shutdown));
    (addr, stop)
}

/// The destination sidecar cannot reach its app: the caller gets a 502
/// whose `x-meshgw-error` names the app hop, and a body with the next step.
#[tokio::test]
async fn an_app_that_is_down_gets_a_502_naming_the_app_hop() {
    let pki = Pki::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = closed.local_addr().unwrap();
    drop(closed);
    let (dest, _stop_dest) = real_inbound(&pki, app_addr).await;
    let (http, _, _stop) = run(&pki, view(vec![local("p1", dest)], vec![]), dest).await;
    let (status, headers, body) = http1(http, get("payments.default.mesh", "/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        headers.get("x-meshgw-error").unwrap(),
        "refused; service=default/payments; hop=app"
    );
    assert!(body.contains("is it listening on service.app?"), "{body}");
}
