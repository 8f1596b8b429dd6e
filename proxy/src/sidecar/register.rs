//! Keeping this instance registered with the local gateway: Register with a
//! 10 s lease, renew it over a KeepAlive stream, report health changes with
//! SetHealth, register again whenever the lease or the stream is lost (the
//! gateway or its store may have restarted), and Deregister on shutdown.

use std::sync::Arc;
use std::time::Duration;

use meshgw_federation::api::CatalogClient;
use meshgw_federation::api::pb;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

use super::backoff::Backoff;
use crate::admin::Ready;
use crate::metrics::Metrics;

/// Lease TTL requested at registration.
pub const TTL_SECS: u32 = 10;

/// The registration loop's inputs.
pub(crate) struct Registrar {
    pub client: CatalogClient<Channel>,
    pub instance: pb::Instance,
    pub health: watch::Receiver<bool>,
    pub ready: Arc<Ready>,
    pub metrics: Arc<Metrics>,
    /// The lease of the current registration (0: none).
    pub lease: i64,
}

/// Why one registration ended.
enum Ended {
    /// Register again (after a backoff).
    Lost(String),
    /// Shutdown: deregister.
    Shutdown,
}

impl Registrar {
    /// Keeps the instance registered until `shutdown` turns true, then
    /// deregisters it (best effort, bounded by `deregister_within`).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>, deregister_within: Duration) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            self.lease = 0;
            let ended = tokio::select! {
                _ = crate::sidecar::stopped(&mut shutdown) => Ended::Shutdown,
                e = self.once() => e,
            };
            self.ready.set_registered(false);
            self.metrics.set_registered(false);
            match ended {
                Ended::Shutdown => return self.deregister(deregister_within).await,
                Ended::Lost(why) => {
                    if self.lease != 0 {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(reason = %why, retry_in = ?delay, "instance not registered with the gateway; registering again");
                    tokio::select! {
                        _ = crate::sidecar::stopped(&mut shutdown) => return self.deregister(deregister_within).await,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Registers once, then renews and reports health until the lease or
    /// the stream is lost.
    async fn once(&mut self) -> Ended {
        let mut inst = self.instance.clone();
        let healthy = *self.health.borrow_and_update();
        inst.health = health_value(healthy);
        let req = pb::RegisterRequest {
            instance: Some(inst),
            ttl_seconds: TTL_SECS,
        };
        let reg = match self.client.register(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Ended::Lost(format!("register failed: {}", s.message())),
        };
        tracing::info!(id = %reg.instance_id, lease = reg.lease_id, healthy, "instance registered with the gateway");
        self.ready.set_registered(true);
        self.metrics.set_registered(true);
        let lease = reg.lease_id;
        self.lease = lease;
        let every = Duration::from_secs(u64::from(reg.ttl_seconds.max(2))) / 3;
        let (tx, rx) = mpsc::channel(1);
        let feed = async move {
            loop {
                if tx
                    .send(pb::KeepAliveRequest { lease_id: lease })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        };
        let mut ka_client = self.client.clone();
        let renew = async move {
            let stream = ka_client
                .keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            let mut stream = match stream {
                Ok(s) => s.into_inner(),
                Err(s) => return format!("keep-alive failed: {}", s.message()),
            };
            loop {
                match stream.message().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return "the gateway ended the keep-alive stream".to_string(),
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        return format!("lease lost ({})", s.message());
                    }
                    Err(s) => return format!("keep-alive stream lost: {}", s.message()),
                }
            }
        };
        let report = self.report_health(&reg.instance_id);
        tokio::select! {
            _ = feed => Ended::Lost("keep-alive feed stopped".into()),
            why = renew => Ended::Lost(why),
            why = report => Ended::Lost(why),
        }
    }

    /// Sends SetHealth on every health change; returns why it stopped.
    async fn report_health(&self, id: &str) -> String {
        let mut health = self.health.clone();
        let mut client = self.client.clone();
        loop {
            if health.changed().await.is_err() {
                return "health checks stopped".into();
            }
            let healthy = *health.borrow_and_update();
            let req = pb::SetHealthRequest {
                namespace: ns(&self.instance),
                service: name(&self.instance),
                instance_id: id.to_string(),
                healthy,
            };
            match client.set_health(req).await {
                Ok(_) => tracing::info!(healthy, "reported health to the gateway"),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    return format!("instance gone while setting health ({})", s.message());
                }
                Err(s) => return format!("set health failed: {}", s.message()),
            }
        }
    }

    async fn deregister(&mut self, within: Duration) {
        let lease = self.lease;
        let inst = &self.instance;
        let req = pb::DeregisterRequest {
            namespace: ns(inst),
            service: name(inst),
            instance_id: inst.id.clone(),
            lease_id: lease,
        };
        match tokio::time::timeout(within, self.client.deregister(req)).await {
            Ok(Ok(_)) => tracing::info!(id = %inst.id, "instance deregistered"),
            Ok(Err(s)) => {
                tracing::warn!(id = %inst.id, error = s.message(), "deregister failed; the lease expires on its own")
            }
            Err(_) => {
                tracing::warn!(id = %inst.id, "deregister timed out; the lease expires on its own")
            }
        }
    }
}

fn ns(i: &pb::Instance) -> String {
    i.service
        .as_ref()
        .map(|s| s.namespace.clone())
        .unwrap_or_default()
}

fn name(i: &pb::Instance) -> String {
    i.service
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

fn health_value(healthy: bool) -> i32 {
    if healthy {
        pb::Health::Healthy as i32
    } else {
        pb::Health::Unhealthy as i32
    }
}
