//! Readers of each sidecar config section, with their value checks.

use super::parse::Listeners;
use super::types::{
    AppProtocol, GatewayRef, HealthConfig, HealthKind, InboundConfig, LocalityConfig,
    OutlierConfig, ServiceConfig, TelemetryConfig, Timeouts, UpstreamConfig,
};
use crate::checks::{
    PKI_HINT, check_file, check_host_port, check_private_key, is_dns_label, is_trust_domain,
};
use crate::error::Diag;
use crate::gateway::{MeshConfig, TlsFiles};
use crate::read::{Spanned, View};

/// The message for a value that should be a DNS label.
const LABEL_RULE: &str =
    "not a DNS label; use 1-63 lowercase letters, digits and '-', not starting or ending with '-'";

fn label(t: &View<'_>, d: &mut Diag, key: &str) -> Option<String> {
    let v = t.parse(d, key, "a string", |s| {
        if is_dns_label(s) {
            Ok(s.to_string())
        } else {
            Err(LABEL_RULE.into())
        }
    });
    v.map(|v| v.value)
}

fn non_empty(t: &View<'_>, d: &mut Diag, key: &str) -> Option<String> {
    let v = t.parse(d, key, "a string", |s| {
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(s.to_string())
        }
    });
    v.map(|v| v.value)
}

fn host_port(t: &View<'_>, d: &mut Diag, key: &str) -> Option<Spanned<String>> {
    t.parse(d, key, "a string like \"127.0.0.1:7444\"", |s| {
        check_host_port(s).map(|()| s.to_string())
    })
}

pub(super) fn mesh(t: &View<'_>, d: &mut Diag) -> Option<MeshConfig> {
    let trust_domain = t.parse(d, "trust_domain", "a string", |s| {
        if is_trust_domain(s) {
            Ok(s.to_string())
        } else {
            Err("not a trust domain; use lowercase letters, digits, '.' and '-', e.g. \"mesh.example\"".into())
        }
    });
    Some(MeshConfig {
        trust_domain: trust_domain?.value,
    })
}

pub(super) fn locality(t: &View<'_>, d: &mut Diag) -> Option<LocalityConfig> {
    let cluster = label(t, d, "cluster");
    let region = non_empty(t, d, "region");
    let zone = non_empty(t, d, "zone");
    Some(LocalityConfig {
        cluster: cluster?,
        region: region?,
        zone: zone?,
    })
}

pub(super) fn gateway(t: &View<'_>, d: &mut Diag) -> Option<GatewayRef> {
    let api = host_port(t, d, "api");
    let forward = host_port(t, d, "forward");
    let spiffe_id = t.parse(d, "spiffe_id", "a string", |s| match s.strip_prefix("spiffe://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(s.to_string()),
        _ => Err("must start with `spiffe://` and a trust domain, e.g. \"spiffe://mesh.example/cluster/NAME/gateway\"".into()),
    });
    if let (Some(api), Some(fwd)) = (&api, &forward)
        && api.value == fwd.value
    {
        let msg = format!(
            "same address as `api` ({}); the forward listener is the gateway's `listen.forward`, a different port",
            api.value
        );
        d.push(fwd.line, &t.key_path("forward"), msg);
    }
    Some(GatewayRef {
        api: api?.value,
        forward: forward?.value,
        spiffe_id: spiffe_id?.value,
    })
}

pub(super) fn service(t: &View<'_>, d: &mut Diag, ports: &mut Listeners) -> Option<ServiceConfig> {
    let namespace = label(t, d, "namespace");
    let name = label(t, d, "name");
    let protocol = t.parse(d, "protocol", "a string", |s| match s {
        "http" => Ok(AppProtocol::Http),
        "grpc" => Ok(AppProtocol::Grpc),
        "tcp" => Ok(AppProtocol::Tcp),
        _ => Err("unknown protocol; use \"http\", \"grpc\" or \"tcp\"".into()),
    });
    let app = ports.read(t, d, "app");
    if let Some(a) = app
        && (a.port() == 0 || a.ip().is_unspecified())
    {
        let msg = format!(
            "{a} is not an address the sidecar can connect to; write the app's address, e.g. \"127.0.0.1:8080\""
        );
        d.push(t.key_line(d, "app"), &t.key_path("app"), msg);
    }
    let weight = t.integer(d, "weight", 1, 10_000);
    let labels = t.string_map(d, "labels");
    for k in labels.iter().flat_map(|l| l.keys()) {
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        {
            let msg =
                format!("label key {k:?} is not valid; use letters, digits, '-', '_', '.' and '/'");
            d.push(t.key_line(d, "labels"), &t.key_path("labels"), msg);
        }
    }
    Some(ServiceConfig {
        namespace: namespace?,
        name: name?,
        protocol: protocol?.value,
        app: app?,
        weight: u32::try_from(weight?.value).ok()?,
        labels: labels?,
    })
}

pub(super) fn inbound(t: &View<'_>, d: &mut Diag, ports: &mut Listeners) -> Option<InboundConfig> {
    let listen = ports.read(t, d, "listen");
    let advertise = if t.has("advertise") {
        Some(host_port(t, d, "advertise")?.value)
    } else {
        None
    };
    let listen = listen?;
    let advertise = match advertise {
        Some(a) => a,
        None if listen.ip().is_unspecified() => {
            let msg = format!(
                "`listen` is the wildcard address {listen}, which other sidecars cannot dial; set `advertise` to the address they reach this one at, e.g. \"10.0.0.7:{}\"",
                listen.port()
            );
            d.push(t.line(), &t.key_path("advertise"), msg);
            return None;
        }
        None => listen.to_string(),
    };
    Some(InboundConfig { listen, advertise })
}

pub(super) fn upstreams(
    views: &[View<'_>],
    d: &mut Diag,
    ports: &mut Listeners,
) -> Option<Vec<UpstreamConfig>> {
    let mut all = Some(Vec::new());
    for t in views {
        let listen = ports.read(t, d, "listen");
        let service = t.parse(d, "service", "a string", |s| match s.split_once('/') {
            Some((ns, name)) if is_dns_label(ns) && is_dns_label(name) => Ok(s.to_string()),
            _ => Err(
                "expected \"namespace/name\", both DNS labels, e.g. \"default/payments\"".into(),
            ),
        });
        let port = t.integer(d, "port", 0, 65_535);
        let one = (|| {
            Some(UpstreamConfig {
                listen: listen?,
                service: service?.value,
                port: u16::try_from(port?.value).ok()?,
            })
        })();
        all = all.zip(one).map(|(mut v, u)| {
            v.push(u);
            v
        });
    }
    all
}

pub(super) fn health(t: &View<'_>, d: &mut Diag) -> Option<HealthConfig> {
    let kind = t.parse(d, "kind", "a string", |s| match s {
        "http" | "tcp" | "none" => Ok(s.to_string()),
        _ => Err("unknown health check kind; use \"http\", \"tcp\" or \"none\"".into()),
    });
    let kind = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("http") => {
            let path = t.parse(d, "path", "a string", |s| {
                if s.starts_with('/') {
                    Ok(s.to_string())
                } else {
                    Err("must start with '/', e.g. \"/healthz\"".into())
                }
            });
            path.map(|p| HealthKind::Http { path: p.value })
        }
        Some(other) => {
            if t.has("path") {
                let msg = format!(
                    "`path` applies only when kind = \"http\" (kind is \"{other}\"); remove it or set kind = \"http\""
                );
                d.push(t.key_line(d, "path"), &t.key_path("path"), msg);
            }
            Some(if other == "tcp" {
                HealthKind::Tcp
            } else {
                HealthKind::None
            })
        }
        None => None,
    };
    let interval = t.positive_duration(d, "interval");
    let timeout = t.positive_duration(d, "timeout");
    if let (Some(i), Some(to)) = (&interval, &timeout)
        && to.value > i.value
    {
        let msg = format!(
            "{} is longer than interval ({}); checks would overlap: lower timeout or raise interval",
            humantime::format_duration(to.value),
            humantime::format_duration(i.value)
        );
        d.push(to.line, &t.key_path("timeout"), msg);
    }
    let unhealthy_after = t.integer(d, "unhealthy_after", 1, 100);
    let healthy_after = t.integer(d, "healthy_after", 1, 100);
    Some(HealthConfig {
        kind: kind?,
        interval: interval?.value,
        timeout: timeout?.value,
        unhealthy_after: u32::try_from(unhealthy_after?.value).ok()?,
        healthy_after: u32::try_from(healthy_after?.value).ok()?,
    })
}

pub(super) fn tls(t: &View<'_>, d: &mut Diag) -> Option<TlsFiles> {
    let ca = t.path(d, "ca");
    let cert = t.path(d, "cert");
    let key = t.path(d, "key");
    for (name, file) in [("ca", &ca), ("cert", &cert)] {
        if let Some(f) = file {
            check_file(d, f.line, &t.key_path(name), &f.value, PKI_HINT);
        }
    }
    if let Some(k) = &key {
        check_private_key(d, k.line, &t.key_path("key"), &k.value);
    }
    Some(TlsFiles {
        ca: ca?.value,
        cert: cert?.value,
        key: key?.value,
    })
}

pub(super) fn timeouts(t: &View<'_>, d: &mut Diag) -> Option<Timeouts> {
    let connect = t.positive_duration(d, "connect");
    let idle = t.positive_duration(d, "idle");
    let request = t.positive_duration(d, "request");
    let drain = t.positive_duration(d, "drain");
    Some(Timeouts {
        connect: connect?.value,
        idle: idle?.value,
        request: request?.value,
        drain: drain?.value,
    })
}

/// Reads a positive duration of at most 24 hours (an ejection longer than
/// that is a typo, and would overflow the clock arithmetic).
fn at_most_a_day(
    t: &View<'_>,
    d: &mut Diag,
    key: &str,
) -> Option<crate::read::Spanned<std::time::Duration>> {
    let v = t.positive_duration(d, key)?;
    if v.value > std::time::Duration::from_secs(24 * 3600) {
        let msg = format!(
            "{} is longer than a day; use at most \"24h\"",
            humantime::format_duration(v.value)
        );
        d.push(v.line, &t.key_path(key), msg);
        return None;
    }
    Some(v)
}

pub(super) fn outlier(t: &View<'_>, d: &mut Diag) -> Option<OutlierConfig> {
    let count = |d: &mut Diag, key: &str| {
        t.integer(d, key, 1, 1000)
            .map(|v| u32::try_from(v.value).expect("checked range"))
    };
    let connect = count(d, "consecutive_connect_failures");
    let errors = count(d, "consecutive_5xx");
    let base = at_most_a_day(t, d, "base_ejection_time");
    let max = at_most_a_day(t, d, "max_ejection_time");
    if let (Some(b), Some(m)) = (&base, &max)
        && m.value < b.value
    {
        let msg = format!(
            "{} is shorter than base_ejection_time ({}); make it at least as long",
            humantime::format_duration(m.value),
            humantime::format_duration(b.value)
        );
        d.push(m.line, &t.key_path("max_ejection_time"), msg);
    }
    Some(OutlierConfig {
        consecutive_connect_failures: connect?,
        consecutive_5xx: errors?,
        base_ejection_time: base?.value,
        max_ejection_time: max?.value,
    })
}

pub(super) fn authz(t: &View<'_>, d: &mut Diag) -> Option<super::AuthzConfig> {
    let allow = match t.has("allow") {
        true => super::authz::read_patterns(t, d, "allow"),
        false => Some(Vec::new()),
    };
    let views = t.tables(d, "rules");
    let rules = super::authz::read_rules(&views, d);
    if !t.has("allow") && views.is_empty() {
        let msg = "allows nobody as written: list callers in `allow`, add [[authz.rules]], or write `allow = []` to refuse every caller";
        d.push(t.line(), &t.key_path("allow"), msg);
        return None;
    }
    Some(super::AuthzConfig {
        allow: allow?,
        rules: rules?,
    })
}

pub(super) fn telemetry(t: &View<'_>, d: &mut Diag) -> Option<TelemetryConfig> {
    let endpoint = t.has("otlp_endpoint").then(|| {
        t.parse(d, "otlp_endpoint", "a string", |s| {
            if s.starts_with("https://") {
                return Err("TLS to the collector is not supported; point the sidecar at a collector (or agent) on the same host or network over http://, e.g. \"http://127.0.0.1:4317\"".to_string());
            }
            let rest = s.strip_prefix("http://").ok_or_else(|| {
                "not an http:// URL; write the collector's OTLP/gRPC address, e.g. \"http://127.0.0.1:4317\"".to_string()
            })?;
            crate::checks::check_host_port(rest.trim_end_matches('/'))
                .map_err(|e| format!("{e}, after the scheme"))?;
            Ok(s.to_string())
        })
    });
    let percent = t.number(d, "sample_percent", 0.0, 100.0);
    let otlp_endpoint = match endpoint {
        Some(e) => Some(e?.value),
        None => None,
    };
    Some(TelemetryConfig {
        otlp_endpoint,
        sample_ppm: (percent?.value * 10_000.0).round() as u32,
    })
}
