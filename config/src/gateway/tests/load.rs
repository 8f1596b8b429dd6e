//! Valid configs: defaults, path resolution, typed values, export rules.

use std::time::Duration;

use super::{FULL, Fixture, line_of, only};
use crate::{ExportRule, ForwardTimeouts, GatewayConfig, ListenConfig, StoreConfig, SyncConfig};

const MINIMAL: &str = r#"
[mesh]
trust_domain = "mesh.example"
[cluster]
name = "vm-lab"
cloud = "vm"
region = "lab"
zone = "rack-1"
[store]
data_dir = "state"
[tls]
ca = "pki/root.pem"
cert = "pki/aws-us-east-1/gateway.pem"
key = "pki/aws-us-east-1/gateway.key"
"#;

#[test]
fn full_example_loads_with_defaults_and_resolved_paths() {
    let fx = Fixture::new();
    let c = fx.load(FULL).unwrap_or_else(|e| panic!("{e}"));
    let dir = fx.dir.path();
    assert_eq!(c.source, fx.path("gateway.toml"));
    assert_eq!(c.mesh.trust_domain, "mesh.example");
    assert_eq!(c.cluster.name, "aws-us-east-1");
    assert_eq!(c.cluster.zone, "us-east-1a");
    assert_eq!(c.listen.tunnel, "0.0.0.0:17443".parse().unwrap());
    assert_eq!(
        c.listen.api,
        "127.0.0.1:7444".parse().unwrap(),
        "default api"
    );
    assert_eq!(
        c.listen.admin,
        "127.0.0.1:7445".parse().unwrap(),
        "default admin"
    );
    assert_eq!(c.tls.key, dir.join("pki/aws-us-east-1/gateway.key"));
    assert!(c.tls.ca.is_absolute());

    let StoreConfig::Etcd(etcd) = &c.store else {
        panic!("expected etcd: {:?}", c.store)
    };
    assert_eq!(
        etcd.endpoints,
        ["http://127.0.0.1:2379", "etcd-2.internal:2379"]
    );
    assert_eq!(c.store.prefix(), "/meshgw", "default prefix");
    assert_eq!(
        etcd.dial_timeout,
        Duration::from_secs(5),
        "default dial_timeout"
    );
    assert_eq!(etcd.request_timeout, Duration::from_secs(2));
    let tls = etcd.tls.as_ref().unwrap();
    assert_eq!(tls.ca, dir.join("pki/etcd-ca.pem"));
    assert_eq!(
        tls.key.as_deref(),
        Some(dir.join("pki/etcd-client.key").as_path())
    );
    let auth = etcd.auth.as_ref().unwrap();
    assert_eq!(auth.username, "meshgw");
    assert_eq!(auth.password_file, dir.join("secrets/etcd-password"));

    assert_eq!(c.sync.heartbeat_interval, Duration::from_millis(500));
    assert_eq!(c.sync.peer_timeout, Duration::from_secs(5));
    assert_eq!(c.sync.import_ttl, Duration::from_secs(300));
    assert_eq!(c.sync.backoff_initial, Duration::from_millis(200));

    assert_eq!(c.peers.len(), 2);
    assert_eq!(
        c.peers[0].addresses,
        ["203.0.113.7:7443", "gw.gcp.example:7443"]
    );
    assert_eq!(c.peers[0].sni(), "gw.gcp.example");
    assert_eq!(c.peers[1].trust_bundle, dir.join("pki/dc1-root.pem"));
    assert!(
        c.peers[1].addresses.is_empty(),
        "absent addresses: the peer dials us"
    );
    assert_eq!(c.peers[1].server_name, None);
    assert_eq!(c.peers[1].sni(), "onprem-dc1");
    assert_eq!(c.exports.len(), 2);
}

#[test]
fn minimal_config_takes_every_default() {
    let fx = Fixture::new();
    let c = fx.load(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen, ListenConfig::default());
    assert_eq!(c.sync, SyncConfig::default());
    assert_eq!(c.timeouts, ForwardTimeouts::default());
    assert_eq!(c.workers, None, "one worker per core unless asked");
    let want = StoreConfig::Embedded {
        data_dir: fx.path("state"),
        prefix: "/meshgw".into(),
    };
    assert_eq!(c.store, want);
    assert!(c.peers.is_empty() && c.exports.is_empty());
}

#[test]
fn defaults_match_the_documented_values() {
    let l = ListenConfig::default();
    assert_eq!(l.tunnel, "0.0.0.0:7443".parse().unwrap());
    assert_eq!(l.api, "127.0.0.1:7444".parse().unwrap());
    assert_eq!(l.admin, "127.0.0.1:7445".parse().unwrap());
    let s = SyncConfig::default();
    assert_eq!(s.heartbeat_interval, Duration::from_secs(1));
    assert_eq!(s.peer_timeout, Duration::from_secs(5));
    assert_eq!(s.stale_after, Duration::from_secs(5));
    assert_eq!(s.import_ttl, Duration::from_secs(300));
    assert_eq!(s.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.backoff_initial, Duration::from_millis(200));
    assert_eq!(s.backoff_max, Duration::from_secs(10));
    let t = ForwardTimeouts::default();
    assert_eq!(t.connect, Duration::from_secs(2));
    assert_eq!(t.idle, Duration::from_secs(300));
}

#[test]
fn forward_timeouts_are_read_and_zero_is_refused() {
    let fx = Fixture::new();
    let ok = format!("{MINIMAL}\n[timeouts]\nconnect = \"750ms\"\nidle = \"30s\"\n");
    let c = fx.load(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.timeouts.connect, Duration::from_millis(750));
    assert_eq!(c.timeouts.idle, Duration::from_secs(30));
    let zero = format!("{MINIMAL}\n[timeouts]\nidle = \"0s\"\n");
    let err = fx.load(&zero).unwrap_err().to_string();
    assert!(err.contains("timeouts.idle"), "{err}");
    assert!(err.contains("greater than zero"), "{err}");
}

#[test]
fn runtime_workers_are_read_with_zero_for_one_per_core() {
    let fx = Fixture::new();
    let with = |n: &str| format!("{MINIMAL}\n[runtime]\nworkers = {n}\n");
    let c = fx.load(&with("1")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.workers, Some(1));
    let c = fx.load(&with("0")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.workers, None);
    let text = with("300");
    let errs = fx.errors(&text);
    let e = only(&errs, "runtime.workers");
    assert_eq!(e.line, Some(line_of(&text, "workers = 300")));
    assert!(e.message.contains("use 0 to 256"), "{e}");
}

#[test]
fn api_admins_are_read_and_checked() {
    let fx = Fixture::new();
    let c = fx.load(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.api_admins.is_empty(), "no admins unless listed");
    let text = format!(
        "{MINIMAL}\n[api]\nadmins = [\"spiffe://mesh.example/ns/ops/*\", \"spiffe://mesh.example/ns/ci/sa/deploy\"]\n"
    );
    let c = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.api_admins,
        [
            crate::CallerPattern::Prefix("spiffe://mesh.example/ns/ops/".into()),
            crate::CallerPattern::Exact("spiffe://mesh.example/ns/ci/sa/deploy".into()),
        ]
    );
    let text = format!("{MINIMAL}\n[api]\nadmins = [\"ops\"]\n");
    let errs = fx.errors(&text);
    let e = only(&errs, "api.admins[0]");
    assert_eq!(e.line, Some(line_of(&text, "admins = ")));
    assert!(e.message.contains("does not start with spiffe://"), "{e}");
}

#[test]
fn inline_array_of_tables_is_accepted() {
    let fx = Fixture::new();
    // Top-level keys must precede the first table header.
    let text = format!("exports = [{{ service = \"default/web\", to = [\"*\"] }}]\n{MINIMAL}");
    let c = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.exports_to("anyone", "default", "web"));
}

#[test]
fn exports_to_matches_exact_wildcard_and_peer() {
    let rule = |service: &str, to: &[&str]| ExportRule {
        service: service.into(),
        to: to.iter().map(|s| s.to_string()).collect(),
    };
    let fx = Fixture::new();
    let mut c: GatewayConfig = fx.load(MINIMAL).unwrap();
    c.exports = vec![
        rule("default/payments", &["*"]),
        rule("billing/*", &["gcp-eu"]),
        rule("shop/cart", &["gcp-eu", "azure-west"]),
    ];
    assert!(c.exports_to("anyone", "default", "payments"));
    assert!(
        !c.exports_to("anyone", "default", "ledger"),
        "other name, same namespace"
    );
    assert!(
        c.exports_to("gcp-eu", "billing", "invoices"),
        "namespace wildcard"
    );
    assert!(
        !c.exports_to("azure-west", "billing", "invoices"),
        "peer not listed"
    );
    assert!(c.exports_to("azure-west", "shop", "cart"));
    assert!(!c.exports_to("gcp-eu", "shop", "carts"));
    assert!(!c.exports_to("gcp-eu", "shopping", "cart"));
    c.exports.clear();
    assert!(
        !c.exports_to("gcp-eu", "default", "payments"),
        "nothing exported by default"
    );
}
