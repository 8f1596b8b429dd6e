//! Reading `[store]`, `[store.tls]` and `[store.auth]`.

use super::types::{EtcdAuth, EtcdConfig, EtcdTls, StoreConfig};
use crate::checks::{PKI_HINT, check_file, check_host_port, check_private_key};
use crate::error::Diag;
use crate::read::View;

/// Keys that only mean something for `kind = "etcd"`.
const ETCD_ONLY: &[&str] = &[
    "endpoints",
    "dial_timeout",
    "request_timeout",
    "tls",
    "auth",
];
/// Keys that only mean something for `kind = "embedded"`.
const EMBEDDED_ONLY: &[&str] = &["data_dir"];

pub(super) fn read_store(t: &View<'_>, d: &mut Diag) -> Option<StoreConfig> {
    let kind = t.parse(d, "kind", "a string", |s| match s {
        "embedded" | "etcd" => Ok(s.to_string()),
        _ => Err("unknown store kind; use \"embedded\" or \"etcd\"".into()),
    });
    let prefix = t.parse(d, "prefix", "a string", |s| {
        if !s.starts_with('/') {
            Err("must start with '/', e.g. \"/meshgw\"".into())
        } else if s.ends_with('/') {
            Err("must not end with '/', e.g. \"/meshgw\"".into())
        } else {
            Ok(s.to_string())
        }
    });
    let kind = kind?.value;
    let foreign = if kind == "etcd" {
        EMBEDDED_ONLY
    } else {
        ETCD_ONLY
    };
    for key in foreign.iter().filter(|k| t.has(k)) {
        let other = if kind == "etcd" { "embedded" } else { "etcd" };
        let msg = format!(
            "`{key}` applies only when kind = \"{other}\", but kind = \"{kind}\"; remove it or change `kind`"
        );
        d.push(t.key_line(d, key), &t.key_path(key), msg);
    }
    if kind == "embedded" {
        if !t.has("data_dir") {
            t.missing(d, "data_dir", " when kind = \"embedded\"");
        }
        let data_dir = t.path(d, "data_dir");
        return Some(StoreConfig::Embedded {
            data_dir: data_dir?.value,
            prefix: prefix?.value,
        });
    }
    read_etcd(t, d, prefix.map(|p| p.value))
}

fn read_etcd(t: &View<'_>, d: &mut Diag, prefix: Option<String>) -> Option<StoreConfig> {
    if !t.has("endpoints") {
        t.missing(d, "endpoints", " when kind = \"etcd\"");
    }
    let endpoints = t.strings(d, "endpoints");
    if let Some(eps) = &endpoints {
        if eps.is_empty() {
            let msg = "must list at least one etcd endpoint, e.g. [\"http://127.0.0.1:2379\"]";
            d.push(t.key_line(d, "endpoints"), &t.key_path("endpoints"), msg);
        }
        for (i, ep) in eps.iter().enumerate() {
            if let Err(why) = check_endpoint(&ep.value) {
                let msg = format!("invalid etcd endpoint \"{}\": {why}", ep.value);
                d.push(ep.line, &format!("{}[{i}]", t.key_path("endpoints")), msg);
            }
        }
    }
    let dial_timeout = t.duration(d, "dial_timeout");
    let request_timeout = t.duration(d, "request_timeout");
    for (key, v) in [
        ("dial_timeout", &dial_timeout),
        ("request_timeout", &request_timeout),
    ] {
        if let Some(v) = v.as_ref().filter(|v| v.value.is_zero()) {
            d.push(
                v.line,
                &t.key_path(key),
                "must be greater than zero, e.g. \"5s\"",
            );
        }
    }
    let tls = match t.table(d, "tls") {
        Some(tt) => Some(read_tls(&tt, d)?),
        None => None,
    };
    let auth = match t.table(d, "auth") {
        Some(at) => Some(read_auth(&at, d)?),
        None => None,
    };
    Some(StoreConfig::Etcd(EtcdConfig {
        endpoints: endpoints?.into_iter().map(|e| e.value).collect(),
        prefix: prefix?,
        dial_timeout: dial_timeout?.value,
        request_timeout: request_timeout?.value,
        tls,
        auth,
    }))
}

/// Checks an etcd endpoint: `http(s)://host:port` or `host:port`.
fn check_endpoint(s: &str) -> Result<(), String> {
    let rest = match s.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "scheme `{scheme}` not supported; use http:// or https://"
            ));
        }
        None => s,
    };
    check_host_port(rest.trim_end_matches('/'))
}

fn read_tls(t: &View<'_>, d: &mut Diag) -> Option<EtcdTls> {
    let ca = t.path(d, "ca");
    let cert = t.path(d, "cert");
    let key = t.path(d, "key");
    if t.has("cert") != t.has("key") {
        let msg = "set both `cert` and `key` for a client certificate, or neither";
        d.push(
            t.line(),
            &t.key_path(if t.has("cert") { "key" } else { "cert" }),
            msg,
        );
    }
    if let Some(f) = &ca {
        check_file(d, f.line, &t.key_path("ca"), &f.value, PKI_HINT);
    }
    if let Some(f) = &cert {
        check_file(d, f.line, &t.key_path("cert"), &f.value, PKI_HINT);
    }
    if let Some(f) = &key {
        check_private_key(d, f.line, &t.key_path("key"), &f.value);
    }
    let ok = t.has("cert") == cert.is_some() && t.has("key") == key.is_some();
    ok.then_some(())?;
    Some(EtcdTls {
        ca: ca?.value,
        cert: cert.map(|c| c.value),
        key: key.map(|k| k.value),
    })
}

fn read_auth(t: &View<'_>, d: &mut Diag) -> Option<EtcdAuth> {
    let username = t.parse(d, "username", "a string", |s| {
        if s.is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(s.to_string())
        }
    });
    let password_file = t.path(d, "password_file");
    if let Some(f) = &password_file {
        let hint = "write the etcd password into it or fix the path";
        check_file(d, f.line, &t.key_path("password_file"), &f.value, hint);
    }
    Some(EtcdAuth {
        username: username?.value,
        password_file: password_file?.value,
    })
}
