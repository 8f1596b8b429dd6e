//! The gRPC catalog API (`meshgw.catalog.v1.Catalog`, `proto/catalog.proto`).
//!
//! Sidecars register their instance, keep its lease alive, report health and
//! watch the catalog through their local gateway; operators list services and
//! peers. Nothing but the gateway talks to the store.
//!
//! - [`CatalogApi`]: the service, over any [`CatalogStore`], built with
//!   [`CatalogApi::new`] and turned into a tonic service by [`CatalogApi::into_service`].
//! - [`serve`]: runs it on a listener, plaintext or TLS (recording each
//!   caller's SPIFFE ID in [`PeerInfo`]).
//! - [`client::connect`]: a typed client, with our own rustls config for TLS.
//! - [`pb`]: the generated messages, with conversions from and to [`crate::model`].

pub mod client;
mod convert;
mod error;
mod registry;
mod server;
mod service;
mod views;
mod watch;
mod writers;

use std::sync::Arc;

use crate::model::{Keys, Locality};
use crate::store::CatalogStore;

pub use convert::ConvertError;
pub use error::ApiError;
pub use pb::catalog_server::CatalogServer;
pub use pb::{PeerView, catalog_client::CatalogClient};
pub use server::{PeerInfo, serve};
pub use writers::WritePolicy;

/// The generated protobuf messages and tonic client/server of `meshgw.catalog.v1`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("meshgw.catalog.v1");
}

/// Live state of the federation peers, owned by the gateway.
///
/// [`PeerView::imports`] and [`PeerView::stale_imports`] need not be filled:
/// the API counts them from the store.
pub trait PeerStatusSource: Send + Sync + 'static {
    /// Returns one view per configured peer.
    fn peers(&self) -> Vec<PeerView>;
}

/// A [`PeerStatusSource`] with no peers (a gateway that does not federate, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPeers;

impl PeerStatusSource for NoPeers {
    fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }
}

/// The catalog API service. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct CatalogApi {
    store: Arc<dyn CatalogStore>,
    keys: Keys,
    local: Locality,
    peers: Arc<dyn PeerStatusSource>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The last catalog view read from the store, served while the store is
    /// unavailable (see [`CatalogApi::refresh_view`]).
    last_view: Arc<std::sync::Mutex<Option<pb::ListServicesResponse>>>,
    /// Who may change which service.
    writers: Arc<WritePolicy>,
}

impl CatalogApi {
    /// Creates the API over `store`, with keys under `keys`, for the gateway
    /// running at `local` (instances registered here get its cluster and
    /// region), reporting peers from `peers`.
    pub fn new(
        store: Arc<dyn CatalogStore>,
        keys: Keys,
        local: Locality,
        peers: Arc<dyn PeerStatusSource>,
    ) -> Self {
        Self {
            store,
            keys,
            local,
            peers,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            last_view: Arc::default(),
            writers: Arc::new(WritePolicy::Open),
        }
    }

    /// Enforces `policy` on Register, SetHealth and Deregister (the default
    /// is [`WritePolicy::Open`]).
    pub fn with_write_policy(mut self, policy: WritePolicy) -> Self {
        self.writers = Arc::new(policy);
        self
    }

    /// Ends every open Watch and KeepAlive stream (now and later) with
    /// `UNAVAILABLE`, so clients reconnect, to another replica if need be.
    ///
    /// Call it before a graceful server shutdown: the drain waits for open
    /// streams, and these never end on their own. [`serve`] does it for you.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once [`CatalogApi::close_streams`] was called.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Returns the status that ends a stream closed by [`CatalogApi::close_streams`].
    pub(crate) fn closing_status() -> tonic::Status {
        tonic::Status::unavailable(
            "the gateway is shutting down: reconnect (to another replica) and resume from your last revision",
        )
    }

    /// Returns the tonic service to add to a `tonic::transport::Server`.
    pub fn into_service(self) -> CatalogServer<CatalogApi> {
        CatalogServer::new(self)
    }
}

impl std::fmt::Debug for CatalogApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogApi")
            .field("keys", &self.keys)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}
