//! Tests of gateway config loading, against real files in a temp directory.

mod docs;
mod errors;
mod load;
mod semantics;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::{ConfigErrors, GatewayConfig};

/// A complete, valid config using every section; relative paths.
pub(super) const FULL: &str = r#"
[mesh]
trust_domain = "mesh.example"

[cluster]
name = "aws-us-east-1"
cloud = "aws"
region = "us-east-1"
zone = "us-east-1a"

[listen]
tunnel = "0.0.0.0:17443"

[store]
kind = "etcd"
endpoints = ["http://127.0.0.1:2379", "etcd-2.internal:2379"]
request_timeout = "2s"

[store.tls]
ca = "pki/etcd-ca.pem"
cert = "pki/etcd-client.pem"
key = "pki/etcd-client.key"

[store.auth]
username = "meshgw"
password_file = "secrets/etcd-password"

[tls]
ca = "pki/root.pem"
cert = "pki/aws-us-east-1/gateway.pem"
key = "pki/aws-us-east-1/gateway.key"

[sync]
heartbeat_interval = "500ms"

[[peers]]
name = "gcp-europe-west1"
addresses = ["203.0.113.7:7443", "gw.gcp.example:7443"]
spiffe_id = "spiffe://mesh.example/cluster/gcp-europe-west1/gateway"
trust_bundle = "pki/root.pem"
server_name = "gw.gcp.example"

[[peers]]
name = "onprem-dc1"
spiffe_id = "spiffe://dc1.example/cluster/onprem-dc1/gateway"
trust_bundle = "pki/dc1-root.pem"

[[exports]]
service = "default/payments"
to = ["*"]

[[exports]]
service = "billing/*"
to = ["gcp-europe-west1"]
"#;

/// Files named by [`FULL`] (relative to the config's directory).
pub(super) const FILES: &[&str] = &[
    "pki/etcd-ca.pem",
    "pki/etcd-client.pem",
    "pki/etcd-client.key",
    "secrets/etcd-password",
    "pki/root.pem",
    "pki/aws-us-east-1/gateway.pem",
    "pki/aws-us-east-1/gateway.key",
    "pki/dc1-root.pem",
];

/// A temp directory holding every file of [`FILES`] (mode 0600) and a
/// config file `gateway.toml` written on demand.
pub(super) struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let fx = Fixture { dir };
        for f in FILES {
            fx.write(f, "-----BEGIN TEST-----\n");
        }
        fx
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `rel` with mode 0600.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        set_mode(&p, 0o600);
    }

    /// Writes `text` as `gateway.toml` and loads it.
    pub fn load(&self, text: &str) -> Result<GatewayConfig, ConfigErrors> {
        self.write("gateway.toml", text);
        GatewayConfig::load(&self.path("gateway.toml"))
    }

    /// Loads `text`, expecting failure; returns the errors.
    pub fn errors(&self, text: &str) -> ConfigErrors {
        match self.load(text) {
            Ok(c) => panic!("expected errors, config loaded: {c:#?}"),
            Err(e) => e,
        }
    }
}

pub(super) fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let _ = (path, mode);
}

/// Returns the 1-based line of the first line of `text` containing `needle`.
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in text"))
        + 1
}

/// Returns `text` with the first occurrence of `from` replaced.
pub(super) fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` not in text");
    text.replacen(from, to, 1)
}

/// Returns the single error for `key`, failing with all errors otherwise.
pub(super) fn only<'a>(errs: &'a ConfigErrors, key: &'a str) -> &'a crate::ConfigError {
    let hits: Vec<_> = errs.for_key(key).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one error for `{key}`, got:\n{errs}"
    );
    hits[0]
}
