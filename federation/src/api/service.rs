//! The tonic `Catalog` trait implementation: thin glue over the handlers.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::pb::catalog_server::Catalog;
use super::{CatalogApi, pb, watch};

type KeepAliveStream = ReceiverStream<Result<pb::KeepAliveResponse, Status>>;

#[tonic::async_trait]
impl Catalog for CatalogApi {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let caller = super::PeerInfo::of(&req).unwrap_or_default();
        if let Some(svc) = req
            .get_ref()
            .instance
            .as_ref()
            .and_then(|i| i.service.as_ref())
        {
            self.writers
                .check(caller.spiffe_id.as_deref(), &svc.namespace, &svc.name)?;
        }
        let resp = self.do_register(req.into_inner()).await;
        if let Ok(r) = &resp {
            tracing::info!(
                id = %r.instance_id,
                lease = r.lease_id,
                caller = caller.spiffe_id.as_deref().unwrap_or("-"),
                remote = %caller.remote_addr.map_or("-".into(), |a| a.to_string()),
                "instance registered"
            );
        }
        resp.map(Response::new)
    }

    type KeepAliveStream = KeepAliveStream;

    async fn keep_alive(
        &self,
        req: Request<Streaming<pb::KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let api = self.clone();
        let caller = super::PeerInfo::of(&req).unwrap_or_default().spiffe_id;
        let mut inbound = req.into_inner();
        let closed = api.closed();
        tokio::spawn(async move {
            tokio::pin!(closed);
            // One renewal per request, in order; the first error ends the
            // stream. Each lease is checked against the caller once.
            let mut allowed = std::collections::HashSet::new();
            loop {
                let msg = tokio::select! {
                    _ = &mut closed => {
                        let _ = tx.send(Err(CatalogApi::closing_status())).await;
                        return;
                    }
                    msg = inbound.message() => msg,
                };
                let Ok(Some(msg)) = msg else { return };
                let lease = msg.lease_id;
                let renewed = if allowed.contains(&lease) {
                    api.renew(lease).await
                } else {
                    match api.check_lease(caller.as_deref(), lease).await {
                        Ok(()) => {
                            allowed.insert(lease);
                            api.renew(lease).await
                        }
                        Err(e) => Err(e),
                    }
                };
                let failed = renewed.is_err();
                if tx.send(renewed).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn set_health(
        &self,
        req: Request<pb::SetHealthRequest>,
    ) -> Result<Response<pb::SetHealthResponse>, Status> {
        let caller = super::PeerInfo::of(&req).unwrap_or_default();
        let r = req.get_ref();
        self.writers
            .check(caller.spiffe_id.as_deref(), &r.namespace, &r.service)?;
        self.do_set_health(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn deregister(
        &self,
        req: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let caller = super::PeerInfo::of(&req).unwrap_or_default();
        let r = req.get_ref();
        self.writers
            .check(caller.spiffe_id.as_deref(), &r.namespace, &r.service)?;
        self.do_deregister(req.into_inner())
            .await
            .map(Response::new)
    }

    type WatchStream = watch::WatchResponses;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let resume = req.into_inner().resume_revision;
        if resume < 0 {
            return Err(Status::invalid_argument(format!(
                "invalid resume_revision: {resume} is negative; send 0 for a fresh snapshot"
            )));
        }
        Ok(Response::new(watch::spawn(self.clone(), resume)))
    }

    async fn list_services(
        &self,
        _req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        self.list_services_or_last().await
    }

    async fn list_peers(
        &self,
        _req: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        self.do_list_peers().await.map(Response::new)
    }
}
