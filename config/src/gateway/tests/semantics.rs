//! Semantic and file checks: names, peers, exports, store, timers, files.

use super::{FULL, Fixture, edit, line_of, only, set_mode};

#[test]
fn duplicate_peer_points_at_second_and_mentions_first() {
    let fx = Fixture::new();
    let text = edit(FULL, "name = \"onprem-dc1\"", "name = \"gcp-europe-west1\"");
    let errs = fx.errors(&text);
    let e = only(&errs, "peers[1].name");
    let first = line_of(&text, "name = \"gcp-europe-west1\"");
    let lines: Vec<&str> = text.lines().collect();
    let second = lines
        .iter()
        .rposition(|l| *l == "name = \"gcp-europe-west1\"")
        .unwrap()
        + 1;
    assert_ne!(first, second);
    assert_eq!(e.line, Some(second));
    assert!(
        e.message
            .contains(&format!("first defined at line {first}")),
        "{e}"
    );
}

#[test]
fn peer_names_and_ids_are_checked() {
    let fx = Fixture::new();
    let text = edit(FULL, "name = \"onprem-dc1\"", "name = \"aws-us-east-1\"");
    let text = edit(&text, "name = \"gcp-europe-west1\"", "name = \"GCP_EU\"");
    let text = edit(
        &text,
        "spiffe_id = \"spiffe://dc1",
        "spiffe_id = \"https://dc1",
    );
    let text = edit(&text, "\"gw.gcp.example:7443\"", "\"gw.gcp.example\"");
    let errs = fx.errors(&text);
    let e = only(&errs, "peers[1].name");
    assert!(e.message.contains("this cluster's own name"), "{e}");
    let e = only(&errs, "peers[0].name");
    assert!(e.message.contains("not a DNS label"), "{e}");
    let e = only(&errs, "peers[1].spiffe_id");
    assert_eq!(e.line, Some(line_of(&text, "https://dc1")));
    assert!(e.message.contains("must start with `spiffe://`"), "{e}");
    let e = only(&errs, "peers[0].addresses[1]");
    assert!(e.message.contains("host:port"), "{e}");
}

#[test]
fn export_to_unknown_peer_suggests_nearest() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "to = [\"gcp-europe-west1\"]",
        "to = [\"gcp-europe-west2\", \"*\"]",
    );
    let text = edit(&text, "service = \"billing/*\"", "service = \"billing\"");
    let errs = fx.errors(&text);
    let e = only(&errs, "exports[1].to[0]");
    assert_eq!(e.line, Some(line_of(&text, "gcp-europe-west2")));
    assert!(
        e.message
            .contains("unknown peer \"gcp-europe-west2\"; did you mean \"gcp-europe-west1\"?"),
        "{e}"
    );
    assert!(
        e.message
            .contains("configured peers: gcp-europe-west1, onprem-dc1"),
        "{e}"
    );
    let e = only(&errs, "exports[1].service");
    assert!(
        e.message.contains("\"namespace/name\" or \"namespace/*\""),
        "{e}"
    );
    assert_eq!(errs.0.len(), 2, "{errs}");
}

#[test]
fn store_rules() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "kind = \"etcd\"",
        "kind = \"etcd\"\nprefix = \"meshgw/\"",
    );
    let text = edit(
        &text,
        "endpoints = [\"http://127.0.0.1:2379\", \"etcd-2.internal:2379\"]",
        "endpoints = []\ndata_dir = \"x\"",
    );
    let errs = fx.errors(&text);
    let e = only(&errs, "store.prefix");
    assert_eq!(e.line, Some(line_of(&text, "prefix =")));
    assert!(e.message.contains("must start with '/'"), "{e}");
    let e = only(&errs, "store.endpoints");
    assert_eq!(e.line, Some(line_of(&text, "endpoints = []")));
    assert!(e.message.contains("at least one etcd endpoint"), "{e}");
    let e = only(&errs, "store.data_dir");
    assert!(
        e.message.contains("applies only when kind = \"embedded\""),
        "{e}"
    );

    let text = edit(FULL, "kind = \"etcd\"", "kind = \"etc\"");
    let e = only(&fx.errors(&text), "store.kind").clone();
    assert_eq!(e.line, Some(line_of(&text, "kind = \"etc\"")));
    assert!(e.message.contains("use \"embedded\" or \"etcd\""), "{e}");

    let text = edit(FULL, "key = \"pki/etcd-client.key\"\n", "");
    let e = only(&fx.errors(&text), "store.tls.key").clone();
    assert_eq!(e.line, Some(line_of(&text, "[store.tls]")));
    assert!(e.message.contains("set both `cert` and `key`"), "{e}");
}

#[test]
fn timers_must_outlast_heartbeat() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "heartbeat_interval = \"500ms\"",
        "heartbeat_interval = \"10s\"\nbackoff_max = \"100ms\"",
    );
    let errs = fx.errors(&text);
    let e = only(&errs, "sync.peer_timeout");
    assert_eq!(
        e.line,
        Some(line_of(&text, "[sync]")),
        "default value: header line"
    );
    assert!(
        e.message.contains("greater than heartbeat_interval (10s)"),
        "{e}"
    );
    only(&errs, "sync.stale_after");
    let e = only(&errs, "sync.backoff_max");
    assert_eq!(e.line, Some(line_of(&text, "backoff_max")));
}

#[test]
fn missing_cert_file_names_absolute_path_and_next_step() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.path("pki/aws-us-east-1/gateway.pem")).unwrap();
    std::fs::remove_file(fx.path("pki/dc1-root.pem")).unwrap();
    let errs = fx.errors(FULL);
    let e = only(&errs, "tls.cert");
    assert_eq!(
        e.line,
        Some(line_of(FULL, "cert = \"pki/aws-us-east-1/gateway.pem\""))
    );
    let abs = fx.path("pki/aws-us-east-1/gateway.pem");
    let want = format!(
        "file not found: {} (create it with `meshgw ca ...` or fix the path)",
        abs.display()
    );
    assert_eq!(e.message, want);
    let e = only(&errs, "peers[1].trust_bundle");
    assert!(
        e.message
            .contains(&fx.path("pki/dc1-root.pem").display().to_string()),
        "{e}"
    );
    assert_eq!(errs.0.len(), 2, "{errs}");
}

#[cfg(unix)]
#[test]
fn private_keys_must_not_be_readable_by_others() {
    let fx = Fixture::new();
    let key = fx.path("pki/aws-us-east-1/gateway.key");
    set_mode(&key, 0o644);
    set_mode(&fx.path("pki/etcd-client.key"), 0o640);
    set_mode(&fx.path("pki/root.pem"), 0o644);
    let errs = fx.errors(FULL);
    let e = only(&errs, "tls.key");
    let k = key.display();
    assert_eq!(
        e.message,
        format!(
            "private key {k} is readable by its group or others (mode 0644); run: chmod 600 {k}"
        )
    );
    assert_eq!(e.line, Some(line_of(FULL, "gateway.key")));
    let e = only(&errs, "store.tls.key");
    assert!(e.message.contains("(mode 0640)"), "{e}");
    assert_eq!(
        errs.0.len(),
        2,
        "certificates may be world-readable: {errs}"
    );
}

#[test]
fn listeners_and_embedded_store_need_their_keys() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "tunnel = \"0.0.0.0:17443\"",
        "api = \"127.0.0.1:9000\"\nadmin = \"127.0.0.1:9000\"",
    );
    let errs = fx.errors(&text);
    let e = only(&errs, "listen.admin");
    assert_eq!(e.line, Some(line_of(&text, "admin = ")));
    assert!(e.message.contains("give each its own port"), "{e}");

    // No [store] at all: the default kind is embedded, which needs data_dir.
    let start = FULL.find("[store]").unwrap();
    let end = FULL.find("[tls]").unwrap();
    let text = format!("{}{}", &FULL[..start], &FULL[end..]);
    let errs = fx.errors(&text);
    let e = only(&errs, "store.data_dir");
    assert_eq!(e.line, None, "no [store] header to point at");
    assert!(e.message.contains("when kind = \"embedded\""), "{e}");
    assert_eq!(errs.0.len(), 1, "{errs}");
}

#[test]
fn from_str_at_resolves_against_the_given_path() {
    let fx = Fixture::new();
    let at = fx.path("gateway.toml");
    let c = crate::GatewayConfig::from_str_at(FULL, &at).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source, at);
    assert_eq!(c.tls.ca, fx.path("pki/root.pem"));
    let elsewhere = fx.path("elsewhere/gateway.toml");
    let errs = crate::GatewayConfig::from_str_at(FULL, &elsewhere).unwrap_err();
    let e = only(&errs, "tls.ca");
    assert!(
        e.message
            .contains(&fx.path("elsewhere/pki/root.pem").display().to_string()),
        "{e}"
    );
    assert!(errs.0.iter().all(|e| e.file == elsewhere));
}
