//! Valid configs load into the expected typed values.

use std::time::Duration;

use super::{FULL, Fixture, MINIMAL, edit};
use crate::{AnyConfig, AppProtocol, HealthKind, load_any};

#[test]
fn full_config_loads_every_key() {
    let fx = Fixture::new();
    let c = fx.load(FULL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mesh.trust_domain, "mesh.test");
    assert_eq!(
        (c.locality.cluster.as_str(), c.locality.zone.as_str()),
        ("a", "a-zone-a")
    );
    assert_eq!(c.gateway.api, "127.0.0.1:7444");
    assert_eq!(c.gateway.forward, "127.0.0.1:7446");
    assert_eq!(c.service.protocol, AppProtocol::Http);
    assert_eq!(c.service.app, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.service.weight, 3);
    assert_eq!(c.service.labels["version"], "v1");
    assert_eq!(c.service.labels["app.kubernetes.io/part-of"], "shop");
    assert_eq!(c.inbound.listen, "0.0.0.0:15006".parse().unwrap());
    assert_eq!(c.inbound.advertise, "10.0.0.7:15006");
    assert_eq!(c.outbound.http, Some("127.0.0.1:15001".parse().unwrap()));
    assert_eq!(c.upstreams.len(), 2);
    assert_eq!(
        (c.upstreams[0].service.as_str(), c.upstreams[0].port),
        ("default/echo", 0)
    );
    assert_eq!(c.upstreams[1].port, 9000);
    assert_eq!(
        c.health.kind,
        HealthKind::Http {
            path: "/ready".into()
        }
    );
    assert_eq!(c.health.interval, Duration::from_secs(2));
    assert_eq!((c.health.unhealthy_after, c.health.healthy_after), (3, 2));
    assert_eq!(c.tls.key, fx.path("pki/a/default.payments.key"));
    assert_eq!(c.admin, "127.0.0.1:15000".parse().unwrap());
    assert_eq!(c.timeouts.idle, Duration::from_secs(60));
    assert_eq!(c.workers, 2);
    assert_eq!(c.source, fx.path("sidecar.toml"));
}

#[test]
fn minimal_config_takes_documented_defaults() {
    let fx = Fixture::new();
    let c = fx.load(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.service.protocol, AppProtocol::Grpc);
    assert_eq!(c.service.weight, 1);
    assert!(c.service.labels.is_empty());
    assert_eq!(c.inbound.advertise, "127.0.0.1:15006", "defaults to listen");
    assert_eq!(c.outbound.http, None);
    assert!(c.upstreams.is_empty());
    assert_eq!(c.health.kind, HealthKind::Tcp);
    assert_eq!(c.health.interval, Duration::from_secs(1));
    assert_eq!(c.health.timeout, Duration::from_millis(500));
    assert_eq!((c.health.unhealthy_after, c.health.healthy_after), (2, 1));
    assert_eq!(c.admin, "127.0.0.1:15000".parse().unwrap());
    let t = c.timeouts;
    assert_eq!(t.connect, Duration::from_secs(2));
    assert_eq!(t.idle, Duration::from_secs(300));
    assert_eq!(t.request, Duration::from_secs(30));
    assert_eq!(t.drain, Duration::from_secs(5));
    assert_eq!(c.outlier, outlier_defaults());
    assert_eq!(c.authz, None, "no [authz]: every mesh caller");
    assert_eq!(c.telemetry, crate::TelemetryConfig::default());
    assert_eq!(c.telemetry.otlp_endpoint, None, "no export unless asked");
    assert!(
        (c.telemetry.sample_ratio() - 0.01).abs() < 1e-12,
        "1% of new traces"
    );
    assert_eq!(c.workers, 1, "one thread unless asked");
}

#[test]
fn http_health_path_defaults_and_none_kind() {
    let fx = Fixture::new();
    let text = format!("{MINIMAL}\n[health]\nkind = \"http\"\n");
    let c = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.health.kind,
        HealthKind::Http {
            path: "/healthz".into()
        }
    );
    let text = format!("{MINIMAL}\n[health]\nkind = \"none\"\n");
    assert_eq!(fx.load(&text).unwrap().health.kind, HealthKind::None);
}

#[test]
fn load_any_tells_the_kinds_apart() {
    let fx = Fixture::new();
    fx.write("sidecar.toml", MINIMAL);
    match load_any(&fx.path("sidecar.toml")) {
        Ok(AnyConfig::Sidecar(c)) => assert_eq!(c.service.name, "payments"),
        other => panic!("want a sidecar config: {other:?}"),
    }
    let gateway = "[mesh]\ntrust_domain = \"mesh.test\"\n[cluster]\nname = \"a\"\ncloud = \"vm\"\nregion = \"r\"\nzone = \"z\"\n[store]\ndata_dir = \"state\"\n[tls]\nca = \"pki/root.pem\"\ncert = \"pki/a/default.payments.pem\"\nkey = \"pki/a/default.payments.key\"\n";
    fx.write("gateway.toml", gateway);
    match load_any(&fx.path("gateway.toml")) {
        Ok(AnyConfig::Gateway(c)) => assert_eq!(c.cluster.name, "a"),
        other => panic!("want a gateway config: {other:?}"),
    }
    // A sidecar config's errors come from the sidecar schema.
    fx.write(
        "bad.toml",
        &edit(MINIMAL, "protocol = \"grpc\"", "protocl = \"grpc\""),
    );
    let errs = load_any(&fx.path("bad.toml")).unwrap_err();
    assert!(
        errs.to_string().contains("did you mean `protocol`?"),
        "{errs}"
    );
    fx.write("neither.toml", "[mesh]\ntrust_domain = \"mesh.test\"\n");
    let errs = load_any(&fx.path("neither.toml")).unwrap_err();
    assert!(
        errs.to_string().contains("cannot tell which kind"),
        "{errs}"
    );
    fx.write("syntax.toml", "[mesh\n");
    let errs = load_any(&fx.path("syntax.toml")).unwrap_err();
    assert_eq!(errs.0[0].line, Some(1), "{errs}");
}

/// The documented `[outlier]` defaults, written out.
fn outlier_defaults() -> crate::OutlierConfig {
    crate::OutlierConfig {
        consecutive_connect_failures: 3,
        consecutive_5xx: 5,
        base_ejection_time: Duration::from_secs(10),
        max_ejection_time: Duration::from_secs(300),
    }
}

#[test]
fn outlier_settings_are_read() {
    let fx = Fixture::new();
    let c = fx.load(FULL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.outlier,
        crate::OutlierConfig {
            consecutive_connect_failures: 2,
            consecutive_5xx: 4,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(600),
        }
    );
    assert_eq!(crate::OutlierConfig::default(), outlier_defaults());
}

#[test]
fn authz_allow_lists_are_read() {
    use crate::{AuthzConfig, CallerPattern};
    let fx = Fixture::new();
    let c = fx.load(FULL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.authz,
        Some(AuthzConfig {
            allow: vec![
                CallerPattern::Exact("spiffe://mesh.test/ns/default/sa/orders".into()),
                CallerPattern::Prefix("spiffe://mesh.test/ns/shop/".into()),
            ],
            rules: vec![],
        })
    );
    let text = format!("{MINIMAL}\n[authz]\nallow = []\n");
    let c = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.authz, Some(AuthzConfig::default()), "nobody");
}

#[test]
fn authz_rules_are_read() {
    use crate::{AuthzConfig, AuthzRule, CallerPattern, PathPattern};
    let fx = Fixture::new();
    let text = format!(
        "{MINIMAL}\n[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/web/*\"]\nmethods = [\"GET\"]\npaths = [\"/catalog/*\", \"/\"]\n\n[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/batch/sa/sync\"]\n"
    );
    let c = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.authz,
        Some(AuthzConfig {
            allow: vec![],
            rules: vec![
                AuthzRule {
                    callers: vec![CallerPattern::Prefix("spiffe://mesh.test/ns/web/".into())],
                    methods: vec!["GET".into()],
                    paths: vec![
                        PathPattern::Prefix("/catalog/".into()),
                        PathPattern::Exact("/".into())
                    ],
                },
                AuthzRule {
                    callers: vec![CallerPattern::Exact(
                        "spiffe://mesh.test/ns/batch/sa/sync".into()
                    )],
                    methods: vec![],
                    paths: vec![],
                },
            ],
        })
    );
}

#[test]
fn telemetry_settings_are_read() {
    let fx = Fixture::new();
    let c = fx.load(FULL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4317")
    );
    assert_eq!(c.telemetry.sample_ppm, 5_000, "0.5%");
    let text = edit(FULL, "sample_percent = 0.5", "sample_percent = 100");
    let c = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!((c.telemetry.sample_ratio() - 1.0).abs() < 1e-12);
}
