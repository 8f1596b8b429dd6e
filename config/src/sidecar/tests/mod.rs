//! Tests of sidecar config loading, against real files in a temp directory.

mod docs;
mod errors;
mod load;

use std::path::PathBuf;

use tempfile::TempDir;

use crate::{ConfigErrors, SidecarConfig};

/// A complete, valid sidecar config using every section; relative paths.
pub(super) const FULL: &str = r#"
[mesh]
trust_domain = "mesh.test"

[locality]
cluster = "a"
region = "a-region"
zone = "a-zone-a"

[gateway]
api = "127.0.0.1:7444"
forward = "127.0.0.1:7446"
spiffe_id = "spiffe://mesh.test/cluster/a/gateway"

[service]
namespace = "default"
name = "payments"
protocol = "http"
app = "127.0.0.1:8080"
weight = 3

[service.labels]
version = "v1"
"app.kubernetes.io/part-of" = "shop"

[inbound]
listen = "0.0.0.0:15006"
advertise = "10.0.0.7:15006"

[outbound]
http = "127.0.0.1:15001"

[[upstreams]]
listen = "127.0.0.1:16000"
service = "default/echo"

[[upstreams]]
listen = "127.0.0.1:16001"
service = "billing/ledger"
port = 9000

[health]
kind = "http"
path = "/ready"
interval = "2s"
timeout = "1s"
unhealthy_after = 3
healthy_after = 2

[tls]
ca = "pki/root.pem"
cert = "pki/a/default.payments.pem"
key = "pki/a/default.payments.key"

[admin]
listen = "127.0.0.1:15000"

[timeouts]
connect = "1s"
idle = "1m"
request = "10s"
drain = "3s"

[telemetry]
otlp_endpoint = "http://127.0.0.1:4317"
sample_percent = 0.5

[authz]
allow = [
  "spiffe://mesh.test/ns/default/sa/orders",
  "spiffe://mesh.test/ns/shop/*",
]

[outlier]
consecutive_connect_failures = 2
consecutive_5xx = 4
base_ejection_time = "30s"
max_ejection_time = "10m"

[runtime]
workers = 2
"#;

/// The least a sidecar config needs; every other key takes its default.
pub(super) const MINIMAL: &str = r#"
[mesh]
trust_domain = "mesh.test"

[locality]
cluster = "a"
region = "a-region"
zone = "a-zone-a"

[gateway]
api = "127.0.0.1:7444"
forward = "127.0.0.1:7446"
spiffe_id = "spiffe://mesh.test/cluster/a/gateway"

[service]
namespace = "default"
name = "payments"
protocol = "grpc"
app = "127.0.0.1:8080"

[inbound]
listen = "127.0.0.1:15006"

[tls]
ca = "pki/root.pem"
cert = "pki/a/default.payments.pem"
key = "pki/a/default.payments.key"
"#;

/// Files named by [`FULL`], [`MINIMAL`] and the example in docs/config.md.
const FILES: &[&str] = &[
    "pki/root.pem",
    "pki/a/default.payments.pem",
    "pki/a/default.payments.key",
    "pki/aws-us-east-1/default.payments.pem",
    "pki/aws-us-east-1/default.payments.key",
];

/// A temp directory holding every file of [`FILES`] (mode 0600) and a
/// config file `sidecar.toml` written on demand.
pub(super) struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let fx = Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        };
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

    /// Writes `text` as `sidecar.toml` and loads it.
    pub fn load(&self, text: &str) -> Result<SidecarConfig, ConfigErrors> {
        self.write("sidecar.toml", text);
        SidecarConfig::load(&self.path("sidecar.toml"))
    }

    /// Loads `text`, expecting failure; returns the errors.
    pub fn errors(&self, text: &str) -> ConfigErrors {
        match self.load(text) {
            Ok(c) => panic!("expected errors, config loaded: {c:#?}"),
            Err(e) => e,
        }
    }
}

pub(super) fn set_mode(path: &std::path::Path, mode: u32) {
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
/// Asserts that `errs` holds one error for `key`, on the line of `text`
/// containing `needle`, whose message contains `want`.
pub(super) fn at(errs: &ConfigErrors, text: &str, key: &str, needle: &str, want: &str) {
    let e = only(errs, key);
    assert_eq!(e.line, Some(line_of(text, needle)), "{e}");
    assert!(e.message.contains(want), "{e}");
}

pub(super) fn only<'a>(errs: &'a ConfigErrors, key: &'a str) -> &'a crate::ConfigError {
    let hits: Vec<_> = errs.for_key(key).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one error for `{key}`, got:\n{errs}"
    );
    hits[0]
}
