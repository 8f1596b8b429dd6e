//! Reading `[[peers]]` and `[[exports]]`, with the checks that span entries:
//! unique peer names, no peering with ourselves, exports naming known peers.

use std::collections::HashMap;

use super::parse::LABEL_RULE;
use super::types::{ExportRule, PeerConfig};
use crate::checks::{PKI_HINT, check_file, check_host_port, is_dns_label};
use crate::error::Diag;
use crate::read::View;
use crate::schema::suggest;

/// The peers read, and every peer name seen (even of invalid entries), so
/// exports are checked against what the operator wrote.
pub(super) struct Peers {
    pub peers: Option<Vec<PeerConfig>>,
    pub names: Vec<String>,
}

pub(super) fn read_peers(views: &[View<'_>], d: &mut Diag, own: Option<&str>) -> Peers {
    let mut seen: HashMap<String, Option<usize>> = HashMap::new();
    let mut names = Vec::new();
    let mut peers = Some(Vec::new());
    for t in views {
        let name = t.parse(d, "name", "a string", |s| {
            if is_dns_label(s) {
                Ok(s.to_string())
            } else {
                Err(LABEL_RULE.into())
            }
        });
        if let Some(n) = &name {
            check_name(t, d, n.value.as_str(), n.line, own, &seen);
            seen.entry(n.value.clone()).or_insert(n.line);
            names.push(n.value.clone());
        }
        let peer = read_peer(t, d, name.map(|n| n.value));
        peers = peers.zip(peer).map(|(mut all, p)| {
            all.push(p);
            all
        });
    }
    Peers { peers, names }
}

fn check_name(
    t: &View<'_>,
    d: &mut Diag,
    name: &str,
    line: Option<usize>,
    own: Option<&str>,
    seen: &HashMap<String, Option<usize>>,
) {
    if let Some(first) = seen.get(name) {
        let at = first.map(|l| format!(" at line {l}")).unwrap_or_default();
        let msg = format!(
            "duplicate peer name \"{name}\" (first defined{at}); merge the two entries or rename one"
        );
        d.push(line, &t.key_path("name"), msg);
    }
    if own == Some(name) {
        let msg = format!(
            "peer \"{name}\" is this cluster's own name (cluster.name); a gateway does not peer with itself: remove this entry or fix the name"
        );
        d.push(line, &t.key_path("name"), msg);
    }
}

fn read_peer(t: &View<'_>, d: &mut Diag, name: Option<String>) -> Option<PeerConfig> {
    let addresses = t.strings(d, "addresses");
    for (i, a) in addresses.iter().flatten().enumerate() {
        if let Err(why) = check_host_port(&a.value) {
            let msg = format!("invalid address \"{}\": {why}", a.value);
            d.push(a.line, &format!("{}[{i}]", t.key_path("addresses")), msg);
        }
    }
    let spiffe_id = t.parse(d, "spiffe_id", "a string", |s| match s.strip_prefix("spiffe://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(s.to_string()),
        _ => Err("must start with `spiffe://` and a trust domain, e.g. \"spiffe://mesh.example/cluster/NAME/gateway\"".into()),
    });
    let trust_bundle = t.path(d, "trust_bundle");
    if let Some(f) = &trust_bundle {
        check_file(d, f.line, &t.key_path("trust_bundle"), &f.value, PKI_HINT);
    }
    let server_name = t.parse(d, "server_name", "a string", |s| {
        if s.is_empty() {
            Err("must not be empty; leave it out to send the peer name".into())
        } else {
            Ok(s.to_string())
        }
    });
    if t.has("server_name") && server_name.is_none() {
        return None;
    }
    Some(PeerConfig {
        name: name?,
        addresses: match addresses {
            Some(a) => a.into_iter().map(|a| a.value).collect(),
            None if t.has("addresses") => return None,
            None => Vec::new(),
        },
        spiffe_id: spiffe_id?.value,
        trust_bundle: trust_bundle?.value,
        server_name: server_name.map(|s| s.value),
    })
}

pub(super) fn read_exports(
    views: &[View<'_>],
    d: &mut Diag,
    peers: &[String],
) -> Option<Vec<ExportRule>> {
    let mut rules = Some(Vec::new());
    for t in views {
        let service = t.parse(d, "service", "a string", check_service);
        let to = t.strings(d, "to");
        if let Some(to) = &to {
            if to.is_empty() {
                let msg = "must name at least one peer, or \"*\" for all peers";
                d.push(t.key_line(d, "to"), &t.key_path("to"), msg);
            }
            for (i, p) in to.iter().enumerate() {
                if p.value != "*" && !peers.contains(&p.value) {
                    let msg = unknown_peer(&p.value, peers);
                    d.push(p.line, &format!("{}[{i}]", t.key_path("to")), msg);
                }
            }
        }
        let rule = service.zip(to).map(|(s, to)| ExportRule {
            service: s.value,
            to: to.into_iter().map(|p| p.value).collect(),
        });
        rules = rules.zip(rule).map(|(mut all, r)| {
            all.push(r);
            all
        });
    }
    rules
}

fn unknown_peer(name: &str, peers: &[String]) -> String {
    let mut msg = format!("unknown peer \"{name}\"");
    if let Some(near) = suggest(name, peers.iter().map(String::as_str)) {
        msg.push_str(&format!("; did you mean \"{near}\"?"));
    }
    if peers.is_empty() {
        msg.push_str(" (no [[peers]] are configured; add one or use \"*\")");
    } else {
        msg.push_str(&format!(
            " (configured peers: {}; or use \"*\")",
            peers.join(", ")
        ));
    }
    msg
}

fn check_service(s: &str) -> Result<String, String> {
    let ok = match s.split_once('/') {
        Some((ns, "*")) => is_dns_label(ns),
        Some((ns, name)) => is_dns_label(ns) && is_dns_label(name),
        None => false,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected \"namespace/name\" or \"namespace/*\" with DNS-label parts, e.g. \"default/payments\"".into())
    }
}
