//! Shared harness of the catalog API tests: a real server on 127.0.0.1:0 over
//! an `EmbeddedStore` in a tempdir, and a real tonic client.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::api::{
    self, ApiError, CatalogApi, CatalogClient, NoPeers, PeerStatusSource, pb,
};
use meshgw_federation::model::{Keys, Locality};
use meshgw_federation::store::CatalogStore;
use meshgw_federation::store::embedded::{EmbeddedOptions, EmbeddedStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The keys every test uses.
pub fn keys() -> Keys {
    Keys::new("/meshgw")
}

/// The gateway's own locality.
pub fn local() -> Locality {
    Locality {
        cluster: "local".into(),
        region: "r1".into(),
        zone: "z1".into(),
    }
}

/// Opens an embedded store in a fresh tempdir (no fsync: tests only).
pub async fn embedded() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = EmbeddedOptions {
        fsync: false,
        ..Default::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), opts)
        .await
        .expect("open embedded store");
    (store, dir)
}

/// A running server and a client connected to it.
pub struct Harness {
    pub client: CatalogClient<Channel>,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), ApiError>>,
}

impl Harness {
    /// Serves `store` in plaintext with no peers.
    pub async fn start(store: Arc<dyn CatalogStore>) -> Self {
        Self::start_with(store, Arc::new(NoPeers), None).await
    }

    /// Serves `store` with `peers`, over TLS when `tls` is set (the client is
    /// then plaintext and useless: connect your own).
    pub async fn start_with(
        store: Arc<dyn CatalogStore>,
        peers: Arc<dyn PeerStatusSource>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let api = CatalogApi::new(store, keys(), local(), peers);
        let (tx, rx) = oneshot::channel();
        let plaintext = tls.is_none();
        let server = tokio::spawn(api::serve(api, listener, tls, async {
            let _ = rx.await;
        }));
        let client = if plaintext {
            api::client::connect(&addr.to_string(), None)
                .await
                .expect("connect")
        } else {
            CatalogClient::new(Channel::from_static("http://127.0.0.1:9").connect_lazy())
        };
        Self {
            client,
            addr,
            shutdown: Some(tx),
            server,
        }
    }

    /// Signals shutdown and returns what `serve` returned, failing after [`DEADLINE`].
    pub async fn stop(mut self) -> Result<(), ApiError> {
        let _ = self.shutdown.take().expect("stopped twice").send(());
        tokio::time::timeout(DEADLINE, &mut self.server)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Returns an instance of `default/<name>` with `id` (empty: let the gateway choose).
pub fn instance(name: &str, id: &str, port: u32) -> pb::Instance {
    pb::Instance {
        id: id.into(),
        service: Some(pb::ServiceName {
            namespace: "default".into(),
            name: name.into(),
        }),
        address: "127.0.0.1".into(),
        port,
        protocol: pb::Protocol::Http.into(),
        labels: [("version".to_string(), "v1".to_string())].into(),
        ..Default::default()
    }
}

/// Registers `inst` with `ttl_seconds`.
pub async fn register(
    client: &mut CatalogClient<Channel>,
    inst: pb::Instance,
    ttl_seconds: u32,
) -> pb::RegisterResponse {
    client
        .register(pb::RegisterRequest {
            instance: Some(inst),
            ttl_seconds,
        })
        .await
        .expect("register")
        .into_inner()
}

/// Returns the next message of a stream, failing after [`DEADLINE`].
pub async fn next<T>(stream: &mut Streaming<T>) -> Result<T, tonic::Status> {
    tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("no message before the deadline")
        .map(|m| m.expect("stream ended"))
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the local cluster view of `default/<name>`, if listed.
pub async fn local_view(
    client: &mut CatalogClient<Channel>,
    name: &str,
) -> Option<pb::ClusterView> {
    let resp = client
        .list_services(pb::ListServicesRequest {})
        .await
        .expect("list services")
        .into_inner();
    resp.services
        .into_iter()
        .find(|s| s.namespace == "default" && s.name == name)?
        .clusters
        .into_iter()
        .find(|c| c.local)
}

/// Returns the ids of upserted instances in a watch response.
pub fn upserted_ids(r: &pb::WatchResponse) -> Vec<String> {
    r.instances_upserted.iter().map(|i| i.id.clone()).collect()
}

/// Returns the ids of removed instances in a watch response.
pub fn removed_ids(r: &pb::WatchResponse) -> Vec<String> {
    r.instances_removed.iter().map(|i| i.id.clone()).collect()
}
