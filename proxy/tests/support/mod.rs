//! Test fixtures for the outbound side: a development PKI in a tempdir, a
//! small mTLS destination sidecar (echo over `meshgw-tcp`, an HTTP/2 app
//! over `h2`), a fake gateway that answers route headers, and configs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshgw_config::MeshConfig;
use meshgw_config::TlsFiles;
use meshgw_config::sidecar::*;
use meshgw_identity::{
    Identity, SpiffeClientVerifier, SpiffeMatch, TrustEntry, load_certs, server_config,
};
use meshgw_proxy::route::{self, RouteAnswer, RouteHeader, RouteStatus};
use meshgw_proxy::tls::WorkloadTls;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub const TD: &str = "mesh.test";

/// A development PKI with one cluster, `a`.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        meshgw_identity::init_root(dir.path(), TD, false).unwrap();
        meshgw_identity::issue_cluster_ca(dir.path(), "a").unwrap();
        Pki { dir }
    }

    pub fn bundle(&self) -> Vec<CertificateDer<'static>> {
        load_certs(&self.dir.path().join("root.pem")).unwrap()
    }

    pub fn workload(&self, ns: &str, name: &str) -> Identity {
        let c = meshgw_identity::issue_workload(self.dir.path(), "a", ns, name).unwrap();
        Identity::load(&c.cert, &c.key).unwrap()
    }

    pub fn gateway(&self) -> Identity {
        let c = meshgw_identity::issue_gateway(self.dir.path(), "a").unwrap();
        Identity::load(&c.cert, &c.key).unwrap()
    }

    /// The client sidecar's TLS: workload `default/web`.
    pub fn sidecar_tls(&self) -> Arc<WorkloadTls> {
        Arc::new(WorkloadTls::new(self.workload("default", "web"), self.bundle(), TD).unwrap())
    }

    fn acceptor(&self, id: &Identity, alpn: &[&[u8]]) -> TlsAcceptor {
        let verifier = SpiffeClientVerifier::new(vec![TrustEntry {
            name: "mesh".into(),
            bundle: self.bundle(),
            allowed: SpiffeMatch::TrustDomain(TD.into()),
        }])
        .unwrap();
        TlsAcceptor::from(Arc::new(
            server_config(id, Arc::new(verifier), alpn).unwrap(),
        ))
    }
}

/// What a destination saw of an HTTP request.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub source_cluster: Option<String>,
    pub traceparent: Option<String>,
    pub body_len: u64,
}

/// Starts a destination sidecar presenting `id`: on `meshgw-tcp` it reads
/// to EOF and answers the bytes uppercased; on `h2` it serves HTTP/2,
/// answering `len=<request body bytes>` or, for `GET /download/<n>`, n bytes.
pub async fn destination(pki: &Pki, id: &Identity) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let acceptor = pki.acceptor(id, &[b"h2", b"meshgw-tcp"]);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                if tls.get_ref().1.alpn_protocol() == Some(b"meshgw-tcp") {
                    let mut buf = Vec::new();
                    tls.read_to_end(&mut buf).await.unwrap();
                    tls.write_all(&buf.to_ascii_uppercase()).await.unwrap();
                    tls.shutdown().await.unwrap();
                    return;
                }
                let svc = hyper::service::service_fn(move |req| app(req, log.clone()));
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

type AppBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn app(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<AppBody>, hyper::Error> {
    let header = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let mut seen = Seen {
        source_cluster: header("x-meshgw-source-cluster"),
        traceparent: header("traceparent"),
        body_len: 0,
    };
    if let Some(n) = req.uri().path().strip_prefix("/download/") {
        log.lock().unwrap().push(seen);
        let n: u64 = n.parse().unwrap();
        return Ok(Response::new(Chunks { left: n }.boxed()));
    }
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            seen.body_len += d.len() as u64;
        }
    }
    let len = seen.body_len;
    log.lock().unwrap().push(seen);
    Ok(Response::new(
        Full::new(Bytes::from(format!("len={len}")))
            .map_err(|n| match n {})
            .boxed(),
    ))
}

/// A body of `left` zero bytes in 64 KiB chunks, generated as it is read.
pub struct Chunks {
    pub left: u64,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let n = self.left.min(64 * 1024);
        if n == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(
            vec![0u8; n as usize],
        )))))
    }
}

/// Starts a fake local gateway presenting the gateway certificate of `a`
/// with ALPN `meshgw-forward`. It records each route header, answers
/// `status`, and on `Ok` splices the stream to `forward_to`.
pub async fn gateway(
    pki: &Pki,
    status: RouteStatus,
    reason: &str,
    forward_to: Option<SocketAddr>,
) -> (SocketAddr, Arc<Mutex<Vec<RouteHeader>>>) {
    let acceptor = pki.acceptor(&pki.gateway(), &[b"meshgw-forward"]);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let headers = Arc::new(Mutex::new(Vec::new()));
    let (log, reason) = (headers.clone(), reason.to_owned());
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (acceptor, log, reason) = (acceptor.clone(), log.clone(), reason.clone());
            tokio::spawn(async move {
                let mut tls = acceptor.accept(s).await.unwrap();
                let mut buf = Vec::new();
                let header = loop {
                    let mut chunk = [0u8; 512];
                    let n = tls.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some((h, used)) = route::decode_header(&buf).unwrap() {
                        assert_eq!(used, buf.len(), "the sidecar waits for the answer");
                        break h;
                    }
                };
                log.lock().unwrap().push(header);
                let answer = route::encode_answer(&RouteAnswer { status, reason });
                tls.write_all(&answer).await.unwrap();
                if let (RouteStatus::Ok, Some(to)) = (status, forward_to) {
                    let mut dest = TcpStream::connect(to).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut dest).await;
                } else {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, headers)
}

/// Returns a sidecar config of `default/web` in cluster `a` (region `eu`,
/// zone `eu-a`), listening on port 0, with one upstream per service given.
pub fn config(pki: &Pki, gateway: SocketAddr, upstreams: &[&str]) -> SidecarConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let d = pki.dir.path();
    SidecarConfig {
        mesh: MeshConfig {
            trust_domain: TD.into(),
        },
        locality: LocalityConfig {
            cluster: "a".into(),
            region: "eu".into(),
            zone: "eu-a".into(),
        },
        gateway: GatewayRef {
            api: "127.0.0.1:1".into(),
            forward: gateway.to_string(),
            spiffe_id: format!("spiffe://{TD}/cluster/a/gateway"),
        },
        service: ServiceConfig {
            namespace: "default".into(),
            name: "web".into(),
            protocol: AppProtocol::Http,
            app: any,
            weight: 1,
            labels: BTreeMap::new(),
        },
        inbound: InboundConfig {
            listen: any,
            advertise: "127.0.0.1:0".into(),
        },
        outbound: OutboundConfig { http: Some(any) },
        upstreams: upstreams
            .iter()
            .map(|s| UpstreamConfig {
                listen: any,
                service: (*s).into(),
                port: 0,
            })
            .collect(),
        health: HealthConfig {
            kind: HealthKind::None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            unhealthy_after: 3,
            healthy_after: 1,
        },
        tls: TlsFiles {
            ca: d.join("root.pem"),
            cert: d.join("a/default.web.pem"),
            key: d.join("a/default.web.key"),
        },
        admin: any,
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            idle: Duration::from_secs(30),
            request: Duration::from_secs(30),
            drain: Duration::from_secs(1),
        },
        outlier: Default::default(),
        authz: None,
        telemetry: Default::default(),
        workers: 1,
        source: d.join("sidecar.toml"),
    }
}
