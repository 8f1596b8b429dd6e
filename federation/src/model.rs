//! The catalog model: services, instances, and the per-cluster summaries that
//! gateways exchange, plus the key layout under the store prefix.
//!
//! Key layout (every key starts with the configured prefix, e.g. `/meshgw`):
//!
//! | key | value |
//! | --- | --- |
//! | `{p}/instances/{ns}/{name}/{id}` | [`Instance`] JSON, attached to the instance's lease |
//! | `{p}/leases/{lease:016x}` | `{ns}/{name}` of the service the lease was granted for (who may renew it), attached to that lease |
//! | `{p}/peers/{peer}/imports/{ns}/{name}` | [`ImportRecord`] JSON: a peer's [`ServiceSummary`] |
//! | `{p}/peers/{peer}/sessions/{replica}-{link}` | liveness of one sync session of a replica with the peer, attached to a short lease |
//! | `{p}/leader` | the replica that runs housekeeping (stale marking), attached to its lease |
//!
//! A peer's imports and its session markers share the prefix `{p}/peers/{peer}/`,
//! so one range read gives a consistent view of both: housekeeping marks imports
//! stale only when that view holds no live session.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// A logical service `namespace/name`, reachable as `name.namespace.mesh`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceName {
    /// Namespace, e.g. `default`.
    pub namespace: String,
    /// Name, e.g. `payments`.
    pub name: String,
}

impl ServiceName {
    /// Creates a service name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses `namespace/name`. Returns `None` if there is not exactly one `/`
    /// or either part is empty or not a DNS label.
    pub fn parse(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('/')?;
        if !is_label(ns) || !is_label(name) {
            return None;
        }
        Some(Self::new(ns, name))
    }
}

/// Returns whether `s` is a DNS label: 1-63 of `[a-z0-9-]`, not starting or ending with `-`.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The application protocol an instance port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2.
    Http,
    /// gRPC over HTTP/2.
    Grpc,
    /// Opaque TCP.
    Tcp,
}

/// Health of one instance as its sidecar last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Passing its checks.
    #[default]
    Healthy,
    /// Failing its checks.
    Unhealthy,
}

/// Where something runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Locality {
    /// Cluster name.
    pub cluster: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Zone, e.g. `us-east-1a`.
    pub zone: String,
}

/// One endpoint of a service, as registered by its sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique id within the service (chosen by the sidecar or the gateway).
    pub id: String,
    /// The service this instance belongs to.
    pub service: ServiceName,
    /// Address the sidecar's inbound listener is reachable at.
    pub address: String,
    /// Port of the sidecar's inbound listener.
    pub port: u16,
    /// Protocol spoken.
    pub protocol: Protocol,
    /// Where it runs.
    pub locality: Locality,
    /// Labels such as `version`.
    pub labels: BTreeMap<String, String>,
    /// Last reported health.
    pub health: Health,
    /// Relative weight for load balancing (default 1).
    pub weight: u32,
}

/// A port a service listens on, with its protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// Instances sharing one value of one label, e.g. `version=v2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subset {
    /// Label key, e.g. `version`.
    pub label: String,
    /// Label value, e.g. `v2`.
    pub value: String,
    /// Healthy instances in this subset.
    pub healthy: u32,
    /// Total weight of healthy instances in this subset.
    pub weight: u64,
}

/// What one cluster exports about one service: a summary, never instance addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// The service.
    pub service: ServiceName,
    /// Cluster the instances run in.
    pub source_cluster: String,
    /// Healthy instance count.
    pub healthy: u32,
    /// Total instance count (healthy or not).
    pub total: u32,
    /// Total weight of healthy instances.
    pub weight: u64,
    /// Zones with at least one healthy instance.
    pub zones: BTreeSet<String>,
    /// Ports and protocols.
    pub ports: BTreeSet<PortSpec>,
    /// Label subsets (one entry per label key and value seen).
    pub subsets: Vec<Subset>,
    /// Source store revision the summary was computed at: a newer summary of
    /// the same service always carries a larger revision, so replicas that
    /// write imports can drop older ones (idempotent versioned writes).
    pub revision: i64,
}

impl ServiceSummary {
    /// Returns the summary of `instances` (all of `service`) as seen in `cluster`.
    pub fn from_instances<'a>(
        service: &ServiceName,
        cluster: &str,
        revision: i64,
        instances: impl IntoIterator<Item = &'a Instance>,
    ) -> Self {
        let mut s = ServiceSummary {
            service: service.clone(),
            source_cluster: cluster.to_string(),
            healthy: 0,
            total: 0,
            weight: 0,
            zones: BTreeSet::new(),
            ports: BTreeSet::new(),
            subsets: Vec::new(),
            revision,
        };
        let mut subsets: BTreeMap<(String, String), (u32, u64)> = BTreeMap::new();
        for i in instances {
            s.total += 1;
            s.ports.insert(PortSpec {
                port: i.port,
                protocol: i.protocol,
            });
            if i.health != Health::Healthy {
                continue;
            }
            s.healthy += 1;
            s.weight += u64::from(i.weight);
            s.zones.insert(i.locality.zone.clone());
            for (k, v) in &i.labels {
                let e = subsets.entry((k.clone(), v.clone())).or_default();
                e.0 += 1;
                e.1 += u64::from(i.weight);
            }
        }
        s.subsets = subsets
            .into_iter()
            .map(|((label, value), (healthy, weight))| Subset {
                label,
                value,
                healthy,
                weight,
            })
            .collect();
        s
    }

    /// Returns whether two summaries say the same thing, ignoring the revision.
    pub fn same_content(&self, other: &ServiceSummary) -> bool {
        let mut a = self.clone();
        a.revision = other.revision;
        &a == other
    }
}

/// A peer's summary as stored under `{p}/peers/{peer}/imports/{ns}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// What the peer exported.
    pub summary: ServiceSummary,
    /// Unix milliseconds when the import was last confirmed by a live session.
    pub updated_at_ms: u64,
    /// Set when the peer went silent: Unix milliseconds since when it is stale.
    pub stale_since_ms: Option<u64>,
}

/// Key builders for the layout in the module docs.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Creates key builders under `prefix` (a trailing `/` is trimmed).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// Returns the prefix of all instances.
    pub fn instances(&self) -> String {
        format!("{}/instances/", self.prefix)
    }

    /// Returns the prefix of one service's instances.
    pub fn service_instances(&self, s: &ServiceName) -> String {
        format!("{}/instances/{}/{}/", self.prefix, s.namespace, s.name)
    }

    /// Returns the key of one instance.
    pub fn instance(&self, s: &ServiceName, id: &str) -> String {
        format!("{}{}", self.service_instances(s), id)
    }

    /// Returns the key naming the service a lease was granted for (attached
    /// to that lease), so that only writers of that service renew it.
    pub fn lease_owner(&self, lease: i64) -> String {
        format!("{}/leases/{lease:016x}", self.prefix)
    }

    /// Returns the prefix holding every peer's imports (and its session
    /// markers: use [`Keys::parse_import`] to pick out the imports).
    pub fn imports(&self) -> String {
        self.peers()
    }

    /// Returns the prefix of everything stored about one peer.
    pub fn peer_root(&self, peer: &str) -> String {
        format!("{}/peers/{}/", self.prefix, peer)
    }

    /// Returns the prefix of one peer's imports.
    pub fn peer_imports(&self, peer: &str) -> String {
        format!("{}imports/", self.peer_root(peer))
    }

    /// Returns the key of one imported service.
    pub fn import(&self, peer: &str, s: &ServiceName) -> String {
        format!("{}{}/{}", self.peer_imports(peer), s.namespace, s.name)
    }

    /// Returns the prefix of all peer session markers.
    pub fn peers(&self) -> String {
        format!("{}/peers/", self.prefix)
    }

    /// Returns the prefix of one peer's live session markers.
    pub fn peer_sessions(&self, peer: &str) -> String {
        format!("{}sessions/", self.peer_root(peer))
    }

    /// Returns the session marker of one replica's session with a peer.
    pub fn peer_session(&self, peer: &str, replica: &str) -> String {
        format!("{}{}", self.peer_sessions(peer), replica)
    }

    /// Returns the leader election key.
    pub fn leader(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// Parses an instance key back into (service, id).
    pub fn parse_instance(&self, key: &str) -> Option<(ServiceName, String)> {
        let rest = key.strip_prefix(&self.instances())?;
        let mut it = rest.splitn(3, '/');
        let (ns, name, id) = (it.next()?, it.next()?, it.next()?);
        Some((ServiceName::new(ns, name), id.to_string()))
    }

    /// Parses an import key back into (peer, service); `None` for any other key.
    pub fn parse_import(&self, key: &str) -> Option<(String, ServiceName)> {
        let rest = key.strip_prefix(&self.peers())?;
        let mut it = rest.splitn(4, '/');
        let (peer, kind, ns, name) = (it.next()?, it.next()?, it.next()?, it.next()?);
        (kind == "imports").then(|| (peer.to_string(), ServiceName::new(ns, name)))
    }

    /// Parses a session marker key back into (peer, replica); `None` for any other key.
    pub fn parse_session(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.peers())?;
        let mut it = rest.splitn(3, '/');
        let (peer, kind, replica) = (it.next()?, it.next()?, it.next()?);
        (kind == "sessions").then(|| (peer.to_string(), replica.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, zone: &str, health: Health, version: &str) -> Instance {
        Instance {
            id: id.into(),
            service: ServiceName::new("default", "payments"),
            address: "127.0.0.1".into(),
            port: 8443,
            protocol: Protocol::Http,
            locality: Locality {
                cluster: "a".into(),
                region: "r".into(),
                zone: zone.into(),
            },
            labels: [("version".to_string(), version.to_string())].into(),
            health,
            weight: 2,
        }
    }

    #[test]
    fn summary_counts_only_healthy_instances() {
        let svc = ServiceName::new("default", "payments");
        let list = [
            inst("1", "z1", Health::Healthy, "v1"),
            inst("2", "z2", Health::Healthy, "v2"),
            inst("3", "z3", Health::Unhealthy, "v2"),
        ];
        let s = ServiceSummary::from_instances(&svc, "a", 7, &list);
        assert_eq!((s.healthy, s.total, s.weight), (2, 3, 4));
        assert_eq!(s.zones.iter().collect::<Vec<_>>(), ["z1", "z2"]);
        assert_eq!(s.subsets.len(), 2);
        assert_eq!(s.subsets[1].value, "v2");
        assert_eq!(s.subsets[1].healthy, 1);
    }

    #[test]
    fn keys_round_trip() {
        let k = Keys::new("/meshgw/");
        let svc = ServiceName::new("default", "payments");
        assert_eq!(
            k.parse_instance(&k.instance(&svc, "i-1")),
            Some((svc.clone(), "i-1".into()))
        );
        assert_eq!(
            k.parse_import(&k.import("gcp", &svc)),
            Some(("gcp".into(), svc))
        );
        let marker = k.peer_session("gcp", "gw-1");
        assert_eq!(k.parse_import(&marker), None);
        assert_eq!(
            k.parse_session(&marker),
            Some(("gcp".into(), "gw-1".into()))
        );
        assert!(marker.starts_with(&k.peer_root("gcp")));
    }

    #[test]
    fn service_name_parse_rejects_bad_names() {
        assert!(ServiceName::parse("default/payments").is_some());
        for bad in ["payments", "a/b/c", "/x", "Default/x", "a/-x"] {
            assert!(ServiceName::parse(bad).is_none(), "{bad}");
        }
    }
}
