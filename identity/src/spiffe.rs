//! SPIFFE IDs: how meshgw names gateways and workloads, and how peers are matched.
//!
//! A gateway is `spiffe://<td>/cluster/<cluster>/gateway`, a workload is
//! `spiffe://<td>/ns/<namespace>/sa/<service>`.

use std::fmt;

use crate::error::IdentityError;

const SCHEME: &str = "spiffe://";

/// Returns the SPIFFE ID of the gateway of `cluster` in `trust_domain`.
pub fn gateway_id(trust_domain: &str, cluster: &str) -> String {
    format!("{SCHEME}{trust_domain}/cluster/{cluster}/gateway")
}

/// Returns the SPIFFE ID of workload `service` in `namespace` of `trust_domain`.
pub fn workload_id(trust_domain: &str, namespace: &str, service: &str) -> String {
    format!("{SCHEME}{trust_domain}/ns/{namespace}/sa/{service}")
}

/// Returns the trust domain of a SPIFFE ID (`example.org` for
/// `spiffe://example.org/ns/a/sa/b`), or `None` if `id` is not a SPIFFE ID.
pub fn trust_domain_of(id: &str) -> Option<&str> {
    let rest = id.strip_prefix(SCHEME)?;
    let td = rest.split('/').next().unwrap_or_default();
    (!td.is_empty()).then_some(td)
}

/// Checks a trust domain name: lowercase letters, digits, `.`, `-`, `_`.
pub(crate) fn check_trust_domain(td: &str) -> Result<(), String> {
    if td.is_empty() || td.len() > 255 {
        return Err("a trust domain must be 1 to 255 characters, e.g. mesh.example.org".into());
    }
    match td
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        Some(c) => Err(format!(
            "character {c:?} is not allowed: use lowercase letters, digits, '.', '-' and '_'"
        )),
        None => Ok(()),
    }
}

/// Checks one SPIFFE path segment (cluster, namespace, service).
pub(crate) fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err("must be a non-empty name other than '.' and '..'".into());
    }
    match segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        Some(c) => Err(format!(
            "character {c:?} is not allowed: use letters, digits, '.', '-' and '_'"
        )),
        None => Ok(()),
    }
}

/// Which SPIFFE IDs a trust entry accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeMatch {
    /// Exactly this SPIFFE ID, e.g. `spiffe://eu.example/cluster/gcp-eu/gateway`.
    Exact(String),
    /// Any SPIFFE ID in this trust domain; given as `example.org` or `spiffe://example.org`.
    TrustDomain(String),
}

impl SpiffeMatch {
    /// Returns whether `id` is accepted by this matcher.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            SpiffeMatch::Exact(expected) => expected == id,
            SpiffeMatch::TrustDomain(td) => {
                let td = td.strip_prefix(SCHEME).unwrap_or(td).trim_end_matches('/');
                id.strip_prefix(SCHEME)
                    .and_then(|rest| rest.strip_prefix(td))
                    .is_some_and(|path| path.starts_with('/') && path.len() > 1)
            }
        }
    }

    /// Checks that the matcher is well formed.
    pub fn validate(&self) -> Result<(), IdentityError> {
        let invalid = |value: &str, reason: String| IdentityError::InvalidSpiffeId {
            value: value.to_owned(),
            reason,
        };
        match self {
            SpiffeMatch::Exact(id) => match trust_domain_of(id) {
                Some(td) => check_trust_domain(td).map_err(|r| invalid(id, r)),
                None => Err(invalid(
                    id,
                    "expected spiffe://<trust-domain>/<path>, e.g. spiffe://mesh.local/cluster/eu/gateway".into(),
                )),
            },
            SpiffeMatch::TrustDomain(td) => {
                let bare = td.strip_prefix(SCHEME).unwrap_or(td).trim_end_matches('/');
                check_trust_domain(bare).map_err(|r| invalid(td, r))
            }
        }
    }
}

impl fmt::Display for SpiffeMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeMatch::Exact(id) => write!(f, "exactly {id}"),
            SpiffeMatch::TrustDomain(td) => {
                let bare = td.strip_prefix(SCHEME).unwrap_or(td).trim_end_matches('/');
                write!(f, "any ID in {SCHEME}{bare}/")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_built_from_their_parts() {
        assert_eq!(
            gateway_id("m.local", "eu"),
            "spiffe://m.local/cluster/eu/gateway"
        );
        assert_eq!(
            workload_id("m.local", "shop", "cart"),
            "spiffe://m.local/ns/shop/sa/cart"
        );
        assert_eq!(
            trust_domain_of("spiffe://m.local/ns/a/sa/b"),
            Some("m.local")
        );
        assert_eq!(trust_domain_of("https://m.local/"), None);
    }

    #[test]
    fn trust_domain_matcher_needs_the_whole_domain() {
        let m = SpiffeMatch::TrustDomain("mesh.local".into());
        assert!(m.matches("spiffe://mesh.local/ns/a/sa/b"));
        assert!(!m.matches("spiffe://mesh.local.evil/ns/a/sa/b"));
        assert!(!m.matches("spiffe://mesh.localx/ns/a/sa/b"));
        assert!(!m.matches("spiffe://mesh.local"));
        assert!(!m.matches("spiffe://other/ns/a/sa/b"));
        let prefixed = SpiffeMatch::TrustDomain("spiffe://mesh.local/".into());
        assert!(prefixed.matches("spiffe://mesh.local/cluster/x/gateway"));
    }

    #[test]
    fn exact_matcher_is_exact() {
        let m = SpiffeMatch::Exact("spiffe://a/cluster/x/gateway".into());
        assert!(m.matches("spiffe://a/cluster/x/gateway"));
        assert!(!m.matches("spiffe://a/cluster/x/gateway/"));
        assert!(!m.matches("spiffe://a/cluster/y/gateway"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_trust_domain("Mesh.Local").is_err());
        assert!(check_trust_domain("").is_err());
        assert!(check_segment("..").is_err());
        assert!(check_segment("a/b").is_err());
        assert!(check_segment("gcp-eu_1.x").is_ok());
        assert!(SpiffeMatch::Exact("gateway".into()).validate().is_err());
        assert!(
            SpiffeMatch::TrustDomain("BAD DOMAIN".into())
                .validate()
                .is_err()
        );
    }
}
