//! Syntax, unknown keys, missing keys and wrong types: every error reported,
//! each with the right line and key.

use std::path::Path;

use super::{FULL, Fixture, edit, line_of, only};
use crate::GatewayConfig;

#[test]
fn syntax_error_reports_its_line() {
    let fx = Fixture::new();
    let text = edit(FULL, "region = \"us-east-1\"", "region = us-east-1");
    let errs = fx.errors(&text);
    assert_eq!(errs.0.len(), 1, "{errs}");
    let e = &errs.0[0];
    assert_eq!(e.line, Some(line_of(&text, "region = us-east-1")));
    assert!(e.message.contains("TOML syntax error"), "{e}");
    assert_eq!(e.file, fx.path("gateway.toml"));
}

#[test]
fn unknown_key_suggests_nearest_with_line() {
    let fx = Fixture::new();
    let text = edit(FULL, "[listen]", "[lisen]");
    let errs = fx.errors(&text);
    let e = only(&errs, "lisen");
    assert_eq!(e.line, Some(line_of(&text, "[lisen]")));
    assert!(
        e.message
            .contains("unknown key `lisen`; did you mean `listen`?"),
        "{e}"
    );
    assert!(
        e.message.contains(
            "mesh, cluster, listen, store, tls, sync, timeouts, runtime, api, peers, exports"
        ),
        "{e}"
    );
    let shown = e.to_string();
    let want = format!(
        "{}:{}: lisen: unknown key",
        fx.path("gateway.toml").display(),
        e.line.unwrap()
    );
    assert!(shown.starts_with(&want), "{shown}");
}

#[test]
fn unknown_keys_in_nested_tables_and_entries() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "server_name = \"gw.gcp.example\"",
        "server_nmae = \"x\"",
    );
    let text = edit(&text, "password_file =", "pasword_file =");
    let text = edit(
        &text,
        "trust_bundle = \"pki/dc1-root.pem\"",
        "trust_bundle = \"pki/dc1-root.pem\"\ncolour = \"blue\"",
    );
    let errs = fx.errors(&text);
    let e = only(&errs, "peers[0].server_nmae");
    assert_eq!(e.line, Some(line_of(&text, "server_nmae")));
    assert!(e.message.contains("did you mean `server_name`?"), "{e}");
    let e = only(&errs, "store.auth.pasword_file");
    assert_eq!(e.line, Some(line_of(&text, "pasword_file")));
    assert!(e.message.contains("did you mean `password_file`?"), "{e}");
    let e = only(&errs, "peers[1].colour");
    assert_eq!(e.line, Some(line_of(&text, "colour")));
    assert!(
        !e.message.contains("did you mean"),
        "nothing is close to `colour`: {e}"
    );
    // The misspelt password_file also leaves the required key missing.
    let e = only(&errs, "store.auth.password_file");
    assert_eq!(e.line, Some(line_of(&text, "[store.auth]")));
}

#[test]
fn several_errors_in_one_file_are_all_reported_in_line_order() {
    let fx = Fixture::new();
    let text = edit(
        FULL,
        "trust_domain = \"mesh.example\"",
        "trust_domian = \"mesh.example\"",
    );
    let text = edit(&text, "tunnel = \"0.0.0.0:17443\"", "tunnel = 7443");
    let text = edit(
        &text,
        "request_timeout = \"2s\"",
        "request_timeout = \"5 parsecs\"",
    );
    let text = edit(&text, "[sync]\n", "[sync]\npeer_timeout = \"500ms\"\n");
    let errs = fx.errors(&text);
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "mesh.trust_domain",
            "mesh.trust_domian",
            "listen.tunnel",
            "store.request_timeout",
            "sync.peer_timeout"
        ],
        "{errs}"
    );
    assert_eq!(
        errs.0[0].line,
        Some(line_of(&text, "[mesh]")),
        "missing key: header line"
    );
    assert!(
        errs.0[0]
            .message
            .contains("missing required key `trust_domain`")
    );
    assert_eq!(errs.0[1].line, Some(line_of(&text, "trust_domian")));
    let tunnel = &errs.0[2];
    assert_eq!(tunnel.line, Some(line_of(&text, "tunnel = 7443")));
    assert!(
        tunnel
            .message
            .contains("expected a string like \"0.0.0.0:7443\", found integer `7443`"),
        "{tunnel}"
    );
    let timeout = &errs.0[3];
    assert_eq!(timeout.line, Some(line_of(&text, "5 parsecs")));
    assert!(
        timeout.message.contains("invalid value \"5 parsecs\""),
        "{timeout}"
    );
    assert!(
        timeout.message.contains("\"500ms\", \"5s\" or \"5m\""),
        "{timeout}"
    );
    assert_eq!(errs.0[4].line, Some(line_of(&text, "peer_timeout")));
    // Display: one error per line.
    assert_eq!(errs.to_string().lines().count(), 5);
}

#[test]
fn bad_socket_address_and_missing_tables() {
    let fx = Fixture::new();
    let text = edit(FULL, "tunnel = \"0.0.0.0:17443\"", "tunnel = \"localhost\"");
    let text = edit(&text, "[mesh]\ntrust_domain = \"mesh.example\"\n", "");
    let errs = fx.errors(&text);
    let e = only(&errs, "listen.tunnel");
    assert_eq!(e.line, Some(line_of(&text, "localhost")));
    assert!(e.message.contains("not an IP socket address"), "{e}");
    let e = only(&errs, "mesh");
    assert_eq!(e.line, None);
    assert!(e.message.contains("missing required table [mesh]"), "{e}");
}

#[test]
fn wrong_shapes_are_type_errors() {
    let fx = Fixture::new();
    let text = edit(FULL, "to = [\"*\"]", "to = \"*\"");
    let text = edit(&text, "\"etcd-2.internal:2379\"", "2379");
    let errs = fx.errors(&text);
    let e = only(&errs, "exports[0].to");
    assert_eq!(e.line, Some(line_of(&text, "to = \"*\"")));
    assert!(
        e.message
            .contains("expected an array of strings, found string"),
        "{e}"
    );
    let e = only(&errs, "store.endpoints[1]");
    assert!(
        e.message
            .contains("expected a string, found integer `2379`"),
        "{e}"
    );
}

#[test]
fn unreadable_config_file_is_one_error() {
    let errs = GatewayConfig::load(Path::new("/nonexistent/meshgw/gateway.toml")).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert!(
        errs.0[0].message.contains("cannot read config file"),
        "{errs}"
    );
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/meshgw/gateway.toml: cannot read")
    );
}
