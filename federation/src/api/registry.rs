//! Register, keep alive, set health and deregister instances.

use std::time::Duration;

use rand::Rng;
use tonic::Status;

use super::convert::{check_instance_id, service_name};
use super::error::store_status;
use super::{CatalogApi, pb};
use crate::model::{Health, Instance};
use crate::store::{Compare, KeyValue, LeaseId, Op, StoreError, Txn};

/// Lease TTL when the request leaves it 0.
pub(crate) const DEFAULT_TTL_SECS: u32 = 10;
/// Shortest lease TTL granted.
pub(crate) const MIN_TTL_SECS: u32 = 2;
/// Longest lease TTL granted.
pub(crate) const MAX_TTL_SECS: u32 = 300;
/// Attempts of a conditional read-modify-write before giving up.
const RMW_ATTEMPTS: usize = 5;

/// Returns the TTL to grant for a requested one (0 = default).
pub(crate) fn effective_ttl(requested: u32) -> u32 {
    if requested == 0 {
        DEFAULT_TTL_SECS
    } else {
        requested.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
    }
}

fn generated_id() -> String {
    format!("i-{:016x}", rand::rng().random::<u64>())
}

fn decode(kv: &KeyValue) -> Result<Instance, Status> {
    serde_json::from_slice(&kv.value).map_err(|e| {
        Status::internal(format!(
            "instance at {} is not valid JSON ({e}); deregister and register it again",
            kv.key
        ))
    })
}

fn encode(i: &Instance) -> Vec<u8> {
    serde_json::to_vec(i).expect("an Instance always serialises to JSON")
}

impl CatalogApi {
    /// Validates and completes an instance from a Register request.
    pub(crate) fn prepare_instance(&self, mut msg: pb::Instance) -> Result<Instance, Status> {
        if msg.id.is_empty() {
            msg.id = generated_id();
        }
        let mut inst = Instance::try_from(msg)?;
        let loc = &mut inst.locality;
        for (field, given, ours) in [
            ("cluster", &mut loc.cluster, &self.local.cluster),
            ("region", &mut loc.region, &self.local.region),
        ] {
            if given.is_empty() {
                given.clone_from(ours);
            } else if given != ours {
                return Err(Status::invalid_argument(format!(
                    "invalid instance.locality.{field}: {given:?} but this gateway serves {field} {ours:?}; \
                     leave it empty or register with the gateway of {field} {given:?}"
                )));
            }
        }
        if loc.zone.is_empty() {
            loc.zone.clone_from(&self.local.zone);
        }
        Ok(inst)
    }

    pub(crate) async fn do_register(
        &self,
        req: pb::RegisterRequest,
    ) -> Result<pb::RegisterResponse, Status> {
        let msg = req
            .instance
            .ok_or_else(|| Status::invalid_argument("invalid instance: is required"))?;
        let inst = self.prepare_instance(msg)?;
        let ttl = effective_ttl(req.ttl_seconds);
        let lease = self
            .store
            .grant(Duration::from_secs(u64::from(ttl)))
            .await
            .map_err(store_status)?;
        let key = self.keys.instance(&inst.service, &inst.id);
        // The instance and the record of whose lease it is, together.
        let owner = format!("{}/{}", inst.service.namespace, inst.service.name);
        let put = |key: String, value: Vec<u8>| Op::Put {
            key,
            value,
            lease: Some(lease),
        };
        let txn = Txn {
            compare: vec![],
            success: vec![
                put(key, encode(&inst)),
                put(self.keys.lease_owner(lease), owner.into_bytes()),
            ],
            failure: vec![],
        };
        let revision = match self.store.txn(txn).await {
            Ok(r) => r.revision,
            Err(e) => {
                if let Err(re) = self.store.revoke(lease).await {
                    tracing::debug!(lease, error = %re, "revoking the lease of a failed registration");
                }
                return Err(store_status(e));
            }
        };
        tracing::debug!(service = %inst.service, id = %inst.id, lease, ttl, "instance stored");
        Ok(pb::RegisterResponse {
            instance_id: inst.id,
            lease_id: lease,
            ttl_seconds: ttl,
            revision,
        })
    }

    /// Checks that `caller` may renew `lease`: it may write the service the
    /// lease was granted for. Under [`WritePolicy::Open`](super::WritePolicy)
    /// anyone may. A lease without that record (the gateways' own leases,
    /// one granted before gateways kept the record, or one already gone) is
    /// not renewed through the API: its holder registers again.
    pub(crate) async fn check_lease(
        &self,
        caller: Option<&str>,
        lease: LeaseId,
    ) -> Result<(), Status> {
        if self.writers.is_open() {
            return Ok(());
        }
        let Some(kv) = self
            .store
            .get(&self.keys.lease_owner(lease))
            .await
            .map_err(store_status)?
        else {
            return Err(Status::not_found(format!(
                "lease {lease} ({lease:x}) is not one this catalog granted to a registration, or it expired: register the instance again"
            )));
        };
        let owner = String::from_utf8_lossy(&kv.value);
        let (namespace, name) = owner.split_once('/').unwrap_or(("", &owner));
        self.writers.check(caller, namespace, name).map_err(|s| {
            Status::permission_denied(format!(
                "renewing lease {lease} ({lease:x}): {}",
                s.message()
            ))
        })
    }

    /// Renews one lease for the KeepAlive stream.
    pub(crate) async fn renew(&self, lease: LeaseId) -> Result<pb::KeepAliveResponse, Status> {
        match self.store.keep_alive(lease).await {
            Ok(ttl) => Ok(pb::KeepAliveResponse {
                lease_id: lease,
                ttl_seconds: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            }),
            Err(StoreError::LeaseNotFound(_)) => Err(Status::not_found(format!(
                "lease {lease:x} expired or was revoked: register again"
            ))),
            Err(e) => Err(store_status(e)),
        }
    }

    pub(crate) async fn do_set_health(
        &self,
        req: pb::SetHealthRequest,
    ) -> Result<pb::SetHealthResponse, Status> {
        let svc = service_name(&req.namespace, &req.service, ("namespace", "service"))?;
        check_instance_id(&req.instance_id, "instance_id")?;
        let key = self.keys.instance(&svc, &req.instance_id);
        let health = if req.healthy {
            Health::Healthy
        } else {
            Health::Unhealthy
        };
        for _ in 0..RMW_ATTEMPTS {
            let Some(kv) = self.store.get(&key).await.map_err(store_status)? else {
                return Err(Status::not_found(format!(
                    "instance {svc}/{} is not registered (or its lease expired): register it again",
                    req.instance_id
                )));
            };
            let mut inst = decode(&kv)?;
            if inst.health == health {
                return Ok(pb::SetHealthResponse {
                    revision: kv.mod_revision,
                });
            }
            inst.health = health;
            let txn = Txn {
                compare: vec![Compare::ModRevision(key.clone(), kv.mod_revision)],
                success: vec![Op::Put {
                    key: key.clone(),
                    value: encode(&inst),
                    lease: (kv.lease != 0).then_some(kv.lease),
                }],
                failure: vec![],
            };
            let res = self.store.txn(txn).await.map_err(store_status)?;
            if res.succeeded {
                return Ok(pb::SetHealthResponse {
                    revision: res.revision,
                });
            }
        }
        Err(Status::aborted(format!(
            "instance {svc}/{} changed {RMW_ATTEMPTS} times while its health was being set: retry",
            req.instance_id
        )))
    }

    pub(crate) async fn do_deregister(
        &self,
        req: pb::DeregisterRequest,
    ) -> Result<pb::DeregisterResponse, Status> {
        let svc = service_name(&req.namespace, &req.service, ("namespace", "service"))?;
        check_instance_id(&req.instance_id, "instance_id")?;
        let key = self.keys.instance(&svc, &req.instance_id);
        let existing = self.store.get(&key).await.map_err(store_status)?;
        // Revoke only the lease the instance is attached to: a client cannot
        // revoke someone else's lease by naming it.
        if let Some(kv) = &existing
            && req.lease_id != 0
            && kv.lease == req.lease_id
        {
            match self.store.revoke(req.lease_id).await {
                Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                Err(e) => return Err(store_status(e)),
            }
        }
        let (deleted, revision) = self.store.delete(&key).await.map_err(store_status)?;
        tracing::info!(service = %svc, id = %req.instance_id, "instance deregistered");
        Ok(pb::DeregisterResponse {
            removed: existing.is_some() || deleted > 0,
            revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_defaults_and_clamps() {
        assert_eq!(effective_ttl(0), 10);
        assert_eq!(effective_ttl(1), 2);
        assert_eq!(effective_ttl(30), 30);
        assert_eq!(effective_ttl(100_000), 300);
    }
}
