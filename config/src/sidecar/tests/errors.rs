//! Invalid configs: every error names file, line and key, and says what to do.

use super::{FULL, Fixture, MINIMAL, at, edit, line_of, only, set_mode};

#[test]
fn unknown_keys_suggest_the_nearest() {
    let fx = Fixture::new();
    let text = edit(FULL, "weight = 3", "wieght = 3");
    let text = edit(&text, "[admin]", "[admn]");
    let errs = fx.errors(&text);
    let e = only(&errs, "service.wieght");
    assert_eq!(e.line, Some(line_of(&text, "wieght")));
    assert!(e.message.contains("did you mean `weight`?"), "{e}");
    let e = only(&errs, "admn");
    assert!(e.message.contains("did you mean `admin`?"), "{e}");
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert!(errs.0.iter().all(|e| e.file == fx.path("sidecar.toml")));
}

#[test]
fn missing_keys_point_at_their_table() {
    let fx = Fixture::new();
    let text = edit(MINIMAL, "app = \"127.0.0.1:8080\"\n", "");
    let text = edit(&text, "zone = \"a-zone-a\"\n", "");
    let errs = fx.errors(&text);
    let e = only(&errs, "service.app");
    assert_eq!(e.line, Some(line_of(&text, "[service]")));
    assert!(e.message.contains("missing required key `app`"), "{e}");
    only(&errs, "locality.zone");
    let text = edit(MINIMAL, "[gateway]", "[gateway_]");
    let errs = fx.errors(&text);
    assert!(
        only(&errs, "gateway")
            .message
            .contains("missing required table [gateway]")
    );
}

#[test]
fn values_are_checked() {
    let fx = Fixture::new();
    let text = edit(FULL, "protocol = \"http\"", "protocol = \"udp\"");
    let text = edit(&text, "weight = 3", "weight = 0");
    let text = edit(&text, "cluster = \"a\"", "cluster = \"A_1\"");
    let text = edit(&text, "api = \"127.0.0.1:7444\"", "api = \"127.0.0.1\"");
    let text = edit(&text, "spiffe_id = \"spiffe://", "spiffe_id = \"https://");
    let text = edit(&text, "service = \"default/echo\"", "service = \"echo\"");
    let text = edit(&text, "port = 9000", "port = 70000");
    let text = edit(&text, "unhealthy_after = 3", "unhealthy_after = \"3\"");
    let text = edit(&text, "idle = \"1m\"", "idle = \"0s\"");
    let text = edit(&text, "version = \"v1\"", "version = 1");
    let text = edit(&text, "workers = 2", "workers = 0");
    let errs = fx.errors(&text);
    let at = |key: &str, needle: &str, want: &str| at(&errs, &text, key, needle, want);
    at(
        "service.protocol",
        "\"udp\"",
        "use \"http\", \"grpc\" or \"tcp\"",
    );
    at("service.weight", "weight = 0", "use 1 to 10000");
    at("locality.cluster", "A_1", "not a DNS label");
    at("gateway.api", "api = ", "host:port");
    at(
        "gateway.spiffe_id",
        "https://",
        "must start with `spiffe://`",
    );
    at(
        "upstreams[0].service",
        "service = \"echo\"",
        "\"namespace/name\"",
    );
    at("upstreams[1].port", "70000", "use 0 to 65535");
    at(
        "health.unhealthy_after",
        "unhealthy_after",
        "expected an integer, found string",
    );
    at("timeouts.idle", "idle = ", "greater than zero");
    at(
        "service.labels.version",
        "version = 1",
        "expected a string, found integer",
    );
    at("runtime.workers", "workers = 0", "use 1 to 64");
    assert_eq!(errs.0.len(), 11, "{errs}");
}

#[test]
fn authz_patterns_are_checked_one_by_one() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "\"spiffe://mesh.test/ns/shop/*\"",
        "\"spiffe://mesh.test/ns/*/sa/cart\"",
    );
    let text = edit(
        &text,
        "\"spiffe://mesh.test/ns/default/sa/orders\"",
        "\"orders\"",
    );
    let errs = fx.errors(&text);
    at(
        &errs,
        &text,
        "authz.allow[0]",
        "\"orders\"",
        "does not start with spiffe://",
    );
    at(
        &errs,
        &text,
        "authz.allow[1]",
        "ns/*/sa",
        "`*` may only stand for the last path segments",
    );
    assert_eq!(errs.0.len(), 2, "{errs}");
    let text = format!("{MINIMAL}\n[authz]\n");
    let e = only(&fx.errors(&text), "authz.allow").clone();
    assert!(e.message.contains("allows nobody as written"), "{e}");
}

#[test]
fn authz_rules_are_checked_entry_by_entry() {
    let fx = Fixture::new();
    let text = format!(
        "{MINIMAL}\n[[authz.rules]]\ncallers = []\n\n[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/web/*\"]\nmethods = [\"get\"]\npaths = [\"catalog\"]\n\n[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/web/*\"]\nmethods = []\n\n[[authz.rules]]\npaths = [\"/x\"]\n"
    );
    let errs = fx.errors(&text);
    at(
        &errs,
        &text,
        "authz.rules[0].callers",
        "callers = []",
        "lists no caller",
    );
    at(
        &errs,
        &text,
        "authz.rules[1].methods[0]",
        "\"get\"",
        "HTTP method in capitals",
    );
    at(
        &errs,
        &text,
        "authz.rules[1].paths[0]",
        "\"catalog\"",
        "does not start with /",
    );
    at(
        &errs,
        &text,
        "authz.rules[2].methods",
        "methods = []",
        "leave the key out",
    );
    let e = only(&errs, "authz.rules[3].callers");
    assert!(e.message.contains("missing required key `callers`"), "{e}");
    assert_eq!(errs.0.len(), 5, "{errs}");
}

#[test]
fn telemetry_values_are_checked() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "otlp_endpoint = \"http://127.0.0.1:4317\"",
        "otlp_endpoint = \"127.0.0.1:4317\"",
    );
    let text = edit(&text, "sample_percent = 0.5", "sample_percent = 101");
    let errs = fx.errors(&text);
    at(
        &errs,
        &text,
        "telemetry.otlp_endpoint",
        "otlp_endpoint",
        "not an http:// URL",
    );
    let e = only(&errs, "telemetry.sample_percent");
    assert!(e.message.contains("out of range; use 0 to 100"), "{e}");
    assert_eq!(errs.0.len(), 2, "{errs}");
    let text = edit(FULL, "sample_percent = 0.5", "sample_percent = \"all\"");
    let e = only(&fx.errors(&text), "telemetry.sample_percent").clone();
    assert!(e.message.contains("expected a number"), "{e}");
    let text = edit(
        FULL,
        "http://127.0.0.1:4317",
        "https://collector.example:4317",
    );
    let e = only(&fx.errors(&text), "telemetry.otlp_endpoint").clone();
    assert!(
        e.message.contains("TLS to the collector is not supported"),
        "{e}"
    );
}

#[test]
fn outlier_rules() {
    let fx = Fixture::new();
    let text = edit(FULL, "consecutive_5xx = 4", "consecutive_5xx = 0");
    let text = edit(
        &text,
        "max_ejection_time = \"10m\"",
        "max_ejection_time = \"5s\"",
    );
    let text = edit(
        &text,
        "consecutive_connect_failures = 2",
        "consecutive_connect_failures = \"2\"",
    );
    let errs = fx.errors(&text);
    let at = |key: &str, needle: &str, want: &str| at(&errs, &text, key, needle, want);
    at(
        "outlier.consecutive_5xx",
        "consecutive_5xx = 0",
        "use 1 to 1000",
    );
    at(
        "outlier.max_ejection_time",
        "max_ejection_time",
        "5s is shorter than base_ejection_time (30s); make it at least as long",
    );
    at(
        "outlier.consecutive_connect_failures",
        "consecutive_connect_failures",
        "expected an integer, found string",
    );
    assert_eq!(errs.0.len(), 3, "{errs}");
    let text = edit(
        FULL,
        "base_ejection_time = \"30s\"",
        "base_ejection_time = \"3000y\"",
    );
    let e = only(&fx.errors(&text), "outlier.base_ejection_time").clone();
    assert!(e.message.contains("longer than a day"), "{e}");
}

#[test]
fn health_rules() {
    let fx = Fixture::new();
    let text = edit(FULL, "kind = \"http\"", "kind = \"tcp\"");
    let text = edit(&text, "timeout = \"1s\"", "timeout = \"3s\"");
    let errs = fx.errors(&text);
    let e = only(&errs, "health.path");
    assert!(
        e.message.contains("applies only when kind = \"http\""),
        "{e}"
    );
    let e = only(&errs, "health.timeout");
    assert!(e.message.contains("longer than interval (2s)"), "{e}");
    let text = edit(FULL, "path = \"/ready\"", "path = \"ready\"");
    let e = only(&fx.errors(&text), "health.path").clone();
    assert!(e.message.contains("must start with '/'"), "{e}");
}

#[test]
fn listeners_must_not_collide_and_wildcards_need_advertise() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "listen = \"127.0.0.1:16001\"",
        "listen = \"127.0.0.1:15001\"",
    );
    let text = edit(&text, "advertise = \"10.0.0.7:15006\"\n", "");
    let errs = fx.errors(&text);
    let e = only(&errs, "upstreams[1].listen");
    assert_eq!(e.line, Some(line_of(&text, "listen = \"127.0.0.1:15001\"")));
    assert!(e.message.contains("already used by `outbound.http`"), "{e}");
    let e = only(&errs, "inbound.advertise");
    assert_eq!(e.line, Some(line_of(&text, "[inbound]")));
    assert!(e.message.contains("set `advertise`"), "{e}");
    let text = edit(
        MINIMAL,
        "app = \"127.0.0.1:8080\"",
        "app = \"127.0.0.1:15006\"",
    );
    let e = only(&fx.errors(&text), "inbound.listen").clone();
    assert!(e.message.contains("already used by `service.app`"), "{e}");
}

#[cfg(unix)]
#[test]
fn files_are_checked_and_keys_private() {
    let fx = Fixture::new();
    set_mode(&fx.path("pki/a/default.payments.key"), 0o644);
    std::fs::remove_file(fx.path("pki/root.pem")).unwrap();
    let errs = fx.errors(MINIMAL);
    let e = only(&errs, "tls.key");
    assert!(
        e.message
            .contains("readable by its group or others (mode 0644); run: chmod 600"),
        "{e}"
    );
    let e = only(&errs, "tls.ca");
    assert!(e.message.contains("file not found"), "{e}");
    assert_eq!(e.line, Some(line_of(MINIMAL, "ca = ")));
    assert_eq!(errs.0.len(), 2, "{errs}");
}
