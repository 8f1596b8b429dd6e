//! Loading a gateway config: parse with spans, check unknown keys, then read
//! each section into its typed struct, collecting every error on the way.

use std::path::{Path, PathBuf};

use toml_edit::{Document, Table};

use super::schema::GATEWAY_SCHEMA;
use super::types::{
    ClusterConfig, ForwardTimeouts, GatewayConfig, ListenConfig, MeshConfig, SyncConfig, TlsFiles,
};
use super::{peers, store};
use crate::checks::{PKI_HINT, check_file, check_private_key, is_dns_label, is_trust_domain};
use crate::error::{ConfigError, ConfigErrors, Diag};
use crate::read::View;
use crate::walk::check_unknown_keys;

impl GatewayConfig {
    /// Reads and validates the gateway config at `path`. Returns every
    /// problem found, each naming file, line and key.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigErrors> {
        let file = absolute(path);
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::from_str_at(&text, &file),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                message: format!("cannot read config file: {e}; check the path given to --config"),
                file,
                line: None,
                key: String::new(),
            }])),
        }
    }

    /// Parses and validates `text` as if read from `path`: relative paths in
    /// it are resolved against `path`'s directory, and the files they name
    /// are checked.
    pub fn from_str_at(text: &str, path: &Path) -> Result<GatewayConfig, ConfigErrors> {
        let file = absolute(path);
        let mut diag = Diag::new(&file, text);
        let doc = match Document::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let msg = format!(
                    "TOML syntax error: {}; fix the syntax at this line",
                    e.message()
                );
                diag.push(diag.line(e.span()), "", msg);
                return Err(diag.into_errors());
            }
        };
        check_unknown_keys(&mut diag, doc.as_table(), &GATEWAY_SCHEMA, "");
        let config = build(
            &View::root(doc.as_table(), &GATEWAY_SCHEMA),
            &mut diag,
            file,
        );
        match config {
            Some(config) if !diag.has_errors() => Ok(config),
            _ => Err(diag.into_errors()),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn build(root: &View<'_>, d: &mut Diag, source: PathBuf) -> Option<GatewayConfig> {
    let empty = Table::new();
    let mesh = root.table(d, "mesh").and_then(|t| read_mesh(&t, d));
    let cluster = root.table(d, "cluster").and_then(|t| read_cluster(&t, d));
    let listen = root
        .table_or_empty(d, "listen", &empty)
        .and_then(|t| read_listen(&t, d));
    let store = root
        .table_or_empty(d, "store", &empty)
        .and_then(|t| store::read_store(&t, d));
    let tls = root.table(d, "tls").and_then(|t| read_tls(&t, d));
    let sync = root
        .table_or_empty(d, "sync", &empty)
        .and_then(|t| read_sync(&t, d));
    let timeouts = root
        .table_or_empty(d, "timeouts", &empty)
        .and_then(|t| read_timeouts(&t, d));
    let workers = root
        .table_or_empty(d, "runtime", &empty)
        .and_then(|t| t.integer(d, "workers", 0, 256))
        .map(|w| usize::try_from(w.value).ok().filter(|&n| n > 0));
    let api_admins = root
        .table_or_empty(d, "api", &empty)
        .and_then(|t| read_admins(&t, d));
    let own_name = cluster.as_ref().map(|c: &ClusterConfig| c.name.as_str());
    let peers = peers::read_peers(&root.tables(d, "peers"), d, own_name);
    let exports = peers::read_exports(&root.tables(d, "exports"), d, &peers.names);
    Some(GatewayConfig {
        mesh: mesh?,
        cluster: cluster?,
        listen: listen?,
        store: store?,
        tls: tls?,
        sync: sync?,
        timeouts: timeouts?,
        workers: workers?,
        api_admins: api_admins?,
        peers: peers.peers?,
        exports: exports?,
        source,
    })
}

/// `[api] admins`: caller patterns, each checked (an absent key: none).
fn read_admins(t: &View<'_>, d: &mut Diag) -> Option<Vec<crate::CallerPattern>> {
    if !t.has("admins") {
        return Some(Vec::new());
    }
    crate::sidecar::read_patterns(t, d, "admins")
}

fn read_mesh(t: &View<'_>, d: &mut Diag) -> Option<MeshConfig> {
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

/// The message for a value that should be a DNS label.
pub(super) const LABEL_RULE: &str =
    "not a DNS label; use 1-63 lowercase letters, digits and '-', not starting or ending with '-'";

fn read_cluster(t: &View<'_>, d: &mut Diag) -> Option<ClusterConfig> {
    let name = t.parse(d, "name", "a string", |s| {
        if is_dns_label(s) {
            Ok(s.to_string())
        } else {
            Err(LABEL_RULE.into())
        }
    });
    let mut text = |key: &str| {
        t.parse(d, key, "a string", |s| {
            if s.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(s.to_string())
            }
        })
    };
    let (cloud, region, zone) = (text("cloud"), text("region"), text("zone"));
    Some(ClusterConfig {
        name: name?.value,
        cloud: cloud?.value,
        region: region?.value,
        zone: zone?.value,
    })
}

fn read_listen(t: &View<'_>, d: &mut Diag) -> Option<ListenConfig> {
    let tunnel = t.socket_addr(d, "tunnel");
    let api = t.socket_addr(d, "api");
    let admin = t.socket_addr(d, "admin");
    let forward = t.socket_addr(d, "forward");
    if let (Some(api), Some(admin)) = (&api, &admin)
        && api.value == admin.value
        && api.value.port() != 0
    {
        let msg = format!(
            "`api` and `admin` both listen on TCP {}; give each its own port",
            api.value
        );
        d.push(admin.line, &t.key_path("admin"), msg);
    }
    Some(ListenConfig {
        tunnel: tunnel?.value,
        api: api?.value,
        admin: admin?.value,
        forward: forward?.value,
    })
}

fn read_tls(t: &View<'_>, d: &mut Diag) -> Option<TlsFiles> {
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

fn read_timeouts(t: &View<'_>, d: &mut Diag) -> Option<ForwardTimeouts> {
    let connect = t.positive_duration(d, "connect");
    let idle = t.positive_duration(d, "idle");
    Some(ForwardTimeouts {
        connect: connect?.value,
        idle: idle?.value,
    })
}

fn read_sync(t: &View<'_>, d: &mut Diag) -> Option<SyncConfig> {
    let mut dur = |key: &str| t.positive_duration(d, key);
    let heartbeat = dur("heartbeat_interval");
    let peer_timeout = dur("peer_timeout");
    let stale_after = dur("stale_after");
    let import_ttl = dur("import_ttl");
    let connect_timeout = dur("connect_timeout");
    let backoff_initial = dur("backoff_initial");
    let backoff_max = dur("backoff_max");
    if let Some(hb) = &heartbeat {
        for (key, v) in [
            ("peer_timeout", &peer_timeout),
            ("stale_after", &stale_after),
        ] {
            if let Some(v) = v.as_ref().filter(|v| v.value <= hb.value) {
                let msg = format!(
                    "{} must be greater than heartbeat_interval ({}), or live peers would be dropped; a few heartbeats is typical",
                    humantime::format_duration(v.value),
                    humantime::format_duration(hb.value)
                );
                d.push(v.line, &t.key_path(key), msg);
            }
        }
    }
    if let (Some(lo), Some(hi)) = (&backoff_initial, &backoff_max)
        && lo.value > hi.value
    {
        let msg = "must be at least backoff_initial; raise backoff_max or lower backoff_initial";
        d.push(hi.line, &t.key_path("backoff_max"), msg);
    }
    Some(SyncConfig {
        heartbeat_interval: heartbeat?.value,
        peer_timeout: peer_timeout?.value,
        stale_after: stale_after?.value,
        import_ttl: import_ttl?.value,
        connect_timeout: connect_timeout?.value,
        backoff_initial: backoff_initial?.value,
        backoff_max: backoff_max?.value,
    })
}

/// Reads a section from an empty table, i.e. all schema defaults.
fn defaults<T>(key: &str, read: impl FnOnce(&View<'_>, &mut Diag) -> Option<T>) -> T {
    let (empty, mut d) = (Table::new(), Diag::new(Path::new("<defaults>"), ""));
    let root = View::root(&empty, &GATEWAY_SCHEMA);
    let view = root
        .table_or_empty(&mut d, key, &empty)
        .expect("absent table reads as empty");
    read(&view, &mut d).expect("schema defaults are valid")
}

impl Default for ListenConfig {
    /// Returns the documented defaults (the schema's).
    fn default() -> Self {
        defaults("listen", read_listen)
    }
}

impl Default for ForwardTimeouts {
    /// Returns the documented defaults (the schema's).
    fn default() -> Self {
        defaults("timeouts", read_timeouts)
    }
}

impl Default for SyncConfig {
    /// Returns the documented defaults (the schema's).
    fn default() -> Self {
        defaults("sync", read_sync)
    }
}
