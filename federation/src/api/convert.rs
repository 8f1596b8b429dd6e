//! Conversions between the catalog model and the protobuf messages.
//!
//! Model → protobuf always succeeds. Protobuf → model checks what the model
//! relies on and names the offending field in [`ConvertError`].

use std::collections::BTreeMap;

use tonic::Status;

use super::pb;
use crate::model::{
    Health, ImportRecord, Instance, Locality, PortSpec, Protocol, ServiceName, ServiceSummary,
    Subset, is_label,
};

/// A protobuf message that does not describe a valid model value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConvertError {
    /// The field path, e.g. `instance.service.name`.
    pub field: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl ConvertError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<ConvertError> for Status {
    fn from(e: ConvertError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// Returns `ServiceName` from its parts, checking both are DNS labels;
/// `fields` names the namespace and name fields for the error.
pub(crate) fn service_name(
    ns: &str,
    name: &str,
    fields: (&str, &str),
) -> Result<ServiceName, ConvertError> {
    const LABEL: &str = "must be a DNS label: 1-63 of [a-z0-9-], not starting or ending with '-'";
    for (value, field) in [(ns, fields.0), (name, fields.1)] {
        if !is_label(value) {
            return Err(ConvertError::new(field, format!("{value:?} {LABEL}")));
        }
    }
    Ok(ServiceName::new(ns, name))
}

/// Checks an instance id: non-empty, at most 253 bytes, no `/` or whitespace.
pub(crate) fn check_instance_id(id: &str, field: &str) -> Result<(), ConvertError> {
    if id.is_empty() || id.len() > 253 || id.contains('/') || id.chars().any(char::is_whitespace) {
        return Err(ConvertError::new(
            field,
            format!("{id:?} must be 1-253 characters without '/' or whitespace"),
        ));
    }
    Ok(())
}

fn port(p: u32, field: &str) -> Result<u16, ConvertError> {
    match u16::try_from(p) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ConvertError::new(field, format!("{p} must be 1-65535"))),
    }
}

fn protocol(p: i32, field: &str) -> Result<Protocol, ConvertError> {
    match pb::Protocol::try_from(p) {
        Ok(pb::Protocol::Http) => Ok(Protocol::Http),
        Ok(pb::Protocol::Grpc) => Ok(Protocol::Grpc),
        Ok(pb::Protocol::Tcp) => Ok(Protocol::Tcp),
        _ => Err(ConvertError::new(
            field,
            format!("{p} is not a protocol: set PROTOCOL_HTTP, PROTOCOL_GRPC or PROTOCOL_TCP"),
        )),
    }
}

impl From<Protocol> for pb::Protocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Http => pb::Protocol::Http,
            Protocol::Grpc => pb::Protocol::Grpc,
            Protocol::Tcp => pb::Protocol::Tcp,
        }
    }
}

impl From<Health> for pb::Health {
    fn from(h: Health) -> Self {
        match h {
            Health::Healthy => pb::Health::Healthy,
            Health::Unhealthy => pb::Health::Unhealthy,
        }
    }
}

impl From<&ServiceName> for pb::ServiceName {
    fn from(s: &ServiceName) -> Self {
        Self {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
        }
    }
}

impl TryFrom<&pb::ServiceName> for ServiceName {
    type Error = ConvertError;
    fn try_from(s: &pb::ServiceName) -> Result<Self, ConvertError> {
        service_name(&s.namespace, &s.name, ("service.namespace", "service.name"))
    }
}

impl From<&Locality> for pb::Locality {
    fn from(l: &Locality) -> Self {
        Self {
            cluster: l.cluster.clone(),
            region: l.region.clone(),
            zone: l.zone.clone(),
        }
    }
}

impl From<pb::Locality> for Locality {
    fn from(l: pb::Locality) -> Self {
        Self {
            cluster: l.cluster,
            region: l.region,
            zone: l.zone,
        }
    }
}

impl From<&Instance> for pb::Instance {
    fn from(i: &Instance) -> Self {
        Self {
            id: i.id.clone(),
            service: Some((&i.service).into()),
            address: i.address.clone(),
            port: u32::from(i.port),
            protocol: pb::Protocol::from(i.protocol).into(),
            locality: Some((&i.locality).into()),
            labels: i.labels.clone().into_iter().collect(),
            health: pb::Health::from(i.health).into(),
            weight: i.weight,
        }
    }
}

impl TryFrom<pb::Instance> for Instance {
    type Error = ConvertError;
    /// Checks the id, service name, address, port and protocol; an unset
    /// health means healthy and weight 0 means 1.
    fn try_from(i: pb::Instance) -> Result<Self, ConvertError> {
        let svc = i
            .service
            .as_ref()
            .ok_or_else(|| ConvertError::new("instance.service", "is required"))?;
        let service = service_name(
            &svc.namespace,
            &svc.name,
            ("instance.service.namespace", "instance.service.name"),
        )?;
        check_instance_id(&i.id, "instance.id")?;
        if i.address.trim().is_empty() {
            return Err(ConvertError::new(
                "instance.address",
                "is empty: set the address the sidecar's inbound listener is reachable at",
            ));
        }
        let health = match pb::Health::try_from(i.health) {
            Ok(pb::Health::Unhealthy) => Health::Unhealthy,
            Ok(_) => Health::Healthy,
            Err(_) => {
                return Err(ConvertError::new(
                    "instance.health",
                    format!("{} is not a health value", i.health),
                ));
            }
        };
        Ok(Instance {
            id: i.id,
            service,
            address: i.address,
            port: port(i.port, "instance.port")?,
            protocol: protocol(i.protocol, "instance.protocol")?,
            locality: i.locality.map(Locality::from).unwrap_or_default(),
            labels: i.labels.into_iter().collect::<BTreeMap<_, _>>(),
            health,
            weight: if i.weight == 0 { 1 } else { i.weight },
        })
    }
}

impl From<&ServiceSummary> for pb::ServiceSummary {
    fn from(s: &ServiceSummary) -> Self {
        Self {
            service: Some((&s.service).into()),
            source_cluster: s.source_cluster.clone(),
            healthy: s.healthy,
            total: s.total,
            weight: s.weight,
            zones: s.zones.iter().cloned().collect(),
            ports: s
                .ports
                .iter()
                .map(|p| pb::PortSpec {
                    port: u32::from(p.port),
                    protocol: pb::Protocol::from(p.protocol).into(),
                })
                .collect(),
            subsets: s
                .subsets
                .iter()
                .map(|s| pb::Subset {
                    label: s.label.clone(),
                    value: s.value.clone(),
                    healthy: s.healthy,
                    weight: s.weight,
                })
                .collect(),
            revision: s.revision,
        }
    }
}

impl TryFrom<&pb::ServiceSummary> for ServiceSummary {
    type Error = ConvertError;
    fn try_from(s: &pb::ServiceSummary) -> Result<Self, ConvertError> {
        let svc = s
            .service
            .as_ref()
            .ok_or_else(|| ConvertError::new("summary.service", "is required"))?;
        let ports = s
            .ports
            .iter()
            .map(|p| {
                Ok(PortSpec {
                    port: port(p.port, "summary.ports.port")?,
                    protocol: protocol(p.protocol, "summary.ports.protocol")?,
                })
            })
            .collect::<Result<_, ConvertError>>()?;
        Ok(ServiceSummary {
            service: service_name(
                &svc.namespace,
                &svc.name,
                ("summary.service.namespace", "summary.service.name"),
            )?,
            source_cluster: s.source_cluster.clone(),
            healthy: s.healthy,
            total: s.total,
            weight: s.weight,
            zones: s.zones.iter().cloned().collect(),
            ports,
            subsets: s
                .subsets
                .iter()
                .map(|s| Subset {
                    label: s.label.clone(),
                    value: s.value.clone(),
                    healthy: s.healthy,
                    weight: s.weight,
                })
                .collect(),
            revision: s.revision,
        })
    }
}

impl pb::Import {
    /// Returns the message for `peer`'s import `record`.
    pub fn from_record(peer: &str, record: &ImportRecord) -> Self {
        Self {
            peer: peer.to_string(),
            summary: Some((&record.summary).into()),
            updated_at_ms: record.updated_at_ms,
            stale: record.stale_since_ms.is_some(),
            stale_since_ms: record.stale_since_ms.unwrap_or(0),
        }
    }
}

impl TryFrom<&pb::Import> for ImportRecord {
    type Error = ConvertError;
    fn try_from(i: &pb::Import) -> Result<Self, ConvertError> {
        let summary = i
            .summary
            .as_ref()
            .ok_or_else(|| ConvertError::new("import.summary", "is required"))?;
        Ok(ImportRecord {
            summary: summary.try_into()?,
            updated_at_ms: i.updated_at_ms,
            stale_since_ms: i.stale.then_some(i.stale_since_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> Instance {
        Instance {
            id: "i-1".into(),
            service: ServiceName::new("default", "payments"),
            address: "10.0.0.1".into(),
            port: 8443,
            protocol: Protocol::Grpc,
            locality: Locality {
                cluster: "a".into(),
                region: "r".into(),
                zone: "z".into(),
            },
            labels: [("version".to_string(), "v2".to_string())].into(),
            health: Health::Unhealthy,
            weight: 3,
        }
    }

    #[test]
    fn instance_round_trips() {
        let i = instance();
        assert_eq!(Instance::try_from(pb::Instance::from(&i)), Ok(i));
    }

    #[test]
    fn summary_and_import_round_trip() {
        let svc = ServiceName::new("default", "payments");
        let summary = ServiceSummary::from_instances(&svc, "a", 7, [&instance()]);
        let rec = ImportRecord {
            summary,
            updated_at_ms: 5,
            stale_since_ms: Some(9),
        };
        let msg = pb::Import::from_record("gcp", &rec);
        assert_eq!(msg.peer, "gcp");
        assert_eq!(ImportRecord::try_from(&msg), Ok(rec));
    }

    #[test]
    fn bad_instances_name_the_field() {
        let mut bad = pb::Instance::from(&instance());
        bad.service.as_mut().unwrap().name = String::new();
        assert_eq!(
            Instance::try_from(bad).unwrap_err().field,
            "instance.service.name"
        );
        for (field, edit) in [
            (
                "instance.port",
                (|i: &mut pb::Instance| i.port = 0) as fn(&mut _),
            ),
            ("instance.port", |i| i.port = 70_000),
            ("instance.address", |i| i.address = " ".into()),
            ("instance.protocol", |i| i.protocol = 0),
            ("instance.id", |i| i.id = "a/b".into()),
            ("instance.service", |i| i.service = None),
        ] {
            let mut m = pb::Instance::from(&instance());
            edit(&mut m);
            assert_eq!(Instance::try_from(m).unwrap_err().field, field);
        }
    }

    #[test]
    fn defaults_apply() {
        let mut m = pb::Instance::from(&instance());
        m.weight = 0;
        m.health = 0;
        let i = Instance::try_from(m).unwrap();
        assert_eq!((i.weight, i.health), (1, Health::Healthy));
    }
}
