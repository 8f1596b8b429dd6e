//! Loading a sidecar config: parse with spans, check unknown keys, then read
//! each section into its typed struct, collecting every error on the way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Table};

use super::schema::SIDECAR_SCHEMA;
use super::sections;
use super::types::{OutboundConfig, SidecarConfig};
use crate::error::{ConfigError, ConfigErrors, Diag};
use crate::read::View;
use crate::walk::check_unknown_keys;

impl SidecarConfig {
    /// Reads and validates the sidecar config at `path`. Returns every
    /// problem found, each naming file, line and key.
    pub fn load(path: &Path) -> Result<SidecarConfig, ConfigErrors> {
        let file = absolute(path);
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::from_str_at(&text, &file),
            Err(e) => Err(read_error(file, &e)),
        }
    }

    /// Parses and validates `text` as if read from `path`: relative paths in
    /// it are resolved against `path`'s directory, and the files they name
    /// are checked.
    pub fn from_str_at(text: &str, path: &Path) -> Result<SidecarConfig, ConfigErrors> {
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
        check_unknown_keys(&mut diag, doc.as_table(), &SIDECAR_SCHEMA, "");
        let root = View::root(doc.as_table(), &SIDECAR_SCHEMA);
        match build(&root, &mut diag, file) {
            Some(config) if !diag.has_errors() => Ok(config),
            _ => Err(diag.into_errors()),
        }
    }
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(crate) fn read_error(file: PathBuf, e: &std::io::Error) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        message: format!("cannot read config file: {e}; check the path given to --config"),
        file,
        line: None,
        key: String::new(),
    }])
}

fn build(root: &View<'_>, d: &mut Diag, source: PathBuf) -> Option<SidecarConfig> {
    let empty = Table::new();
    let mut ports = Listeners::default();
    let mesh = root.table(d, "mesh").and_then(|t| sections::mesh(&t, d));
    let locality = root
        .table(d, "locality")
        .and_then(|t| sections::locality(&t, d));
    let gateway = root
        .table(d, "gateway")
        .and_then(|t| sections::gateway(&t, d));
    let service = root
        .table(d, "service")
        .and_then(|t| sections::service(&t, d, &mut ports));
    let inbound = root
        .table(d, "inbound")
        .and_then(|t| sections::inbound(&t, d, &mut ports));
    let outbound = root.table_or_empty(d, "outbound", &empty).and_then(|t| {
        let http = ports.read(&t, d, "http");
        (!t.has("http") || http.is_some()).then_some(OutboundConfig { http })
    });
    let upstreams = sections::upstreams(&root.tables(d, "upstreams"), d, &mut ports);
    let health = root
        .table_or_empty(d, "health", &empty)
        .and_then(|t| sections::health(&t, d));
    let tls = root.table(d, "tls").and_then(|t| sections::tls(&t, d));
    let admin = root
        .table_or_empty(d, "admin", &empty)
        .and_then(|t| ports.read(&t, d, "listen"));
    let timeouts = root
        .table_or_empty(d, "timeouts", &empty)
        .and_then(|t| sections::timeouts(&t, d));
    let outlier = root
        .table_or_empty(d, "outlier", &empty)
        .and_then(|t| sections::outlier(&t, d));
    let telemetry = root
        .table_or_empty(d, "telemetry", &empty)
        .and_then(|t| sections::telemetry(&t, d));
    // No [authz] table: every mesh caller; a table that does not read is
    // an error (recorded), never "allow everyone".
    let authz = match root.has("authz") {
        false => Some(None),
        true => root
            .table(d, "authz")
            .and_then(|t| sections::authz(&t, d))
            .map(Some),
    };
    let workers = root
        .table_or_empty(d, "runtime", &empty)
        .and_then(|t| t.integer(d, "workers", 1, 64))
        .map(|w| usize::try_from(w.value).expect("checked range"));
    ports.check(d);
    Some(SidecarConfig {
        mesh: mesh?,
        locality: locality?,
        gateway: gateway?,
        service: service?,
        inbound: inbound?,
        outbound: outbound?,
        upstreams: upstreams?,
        health: health?,
        tls: tls?,
        admin: admin?,
        timeouts: timeouts?,
        outlier: outlier?,
        telemetry: telemetry?,
        authz: authz?,
        workers: workers?,
        source,
    })
}

/// Every fixed TCP address the sidecar binds or connects to locally, with
/// where it was written, so that two of them cannot collide.
#[derive(Default)]
pub(super) struct Listeners(Vec<(String, SocketAddr, Option<usize>)>);

impl Listeners {
    /// Reads `key` of `t` as a socket address and remembers it.
    pub(super) fn read(&mut self, t: &View<'_>, d: &mut Diag, key: &str) -> Option<SocketAddr> {
        let v = t.socket_addr(d, key)?;
        self.0.push((t.key_path(key), v.value, v.line));
        Some(v.value)
    }

    /// Records an error for each address already used by an earlier key.
    fn check(&self, d: &mut Diag) {
        for (i, (key, addr, line)) in self.0.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            if let Some((first, _, _)) = self.0[..i].iter().find(|(_, a, _)| a == addr) {
                let msg = format!(
                    "{addr} is already used by `{first}`; give each listener (and the app) its own port"
                );
                d.push(*line, key, msg);
            }
        }
    }
}
