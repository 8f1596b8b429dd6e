//! `[authz]`: which callers may reach the workload, by the SPIFFE ID their
//! certificate proves. A pattern is one ID, or a prefix ending in `/*`
//! (`spiffe://mesh.example/ns/shop/*`: every workload of namespace `shop`;
//! `spiffe://mesh.example/*`: the whole trust domain).

use std::fmt;

use crate::checks::is_trust_domain;
use crate::error::Diag;
use crate::read::View;

/// `[authz]`: the callers allowed; anyone else is refused (HTTP 403, a TCP
/// connection reset) at the inbound listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzConfig {
    /// `allow`: callers allowed, in file order; empty allows nobody.
    pub allow: Vec<CallerPattern>,
}

impl AuthzConfig {
    /// Returns the first pattern that allows `caller`, if any.
    pub fn allows(&self, caller: &str) -> Option<&CallerPattern> {
        self.allow.iter().find(|p| p.matches(caller))
    }
}

/// One `allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerPattern {
    /// Exactly this SPIFFE ID.
    Exact(String),
    /// Any SPIFFE ID that starts with this (which ends with `/`) and goes on.
    Prefix(String),
}

impl CallerPattern {
    /// Parses `spiffe://<trust-domain>/<path>` or a prefix ending in `/*`;
    /// returns why it is neither.
    pub fn parse(s: &str) -> Result<Self, String> {
        const EXAMPLE: &str = "write a SPIFFE ID such as \"spiffe://mesh.example/ns/shop/sa/cart\", or a prefix ending in /* such as \"spiffe://mesh.example/ns/shop/*\"";
        let Some(rest) = s.strip_prefix("spiffe://") else {
            return Err(format!("{s:?} does not start with spiffe://; {EXAMPLE}"));
        };
        let (td, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_trust_domain(td) {
            return Err(format!(
                "{td:?} is not a trust domain (dot-separated DNS labels); {EXAMPLE}"
            ));
        }
        if path.is_empty() {
            return Err(format!("{s:?} names no workload; {EXAMPLE}"));
        }
        match path.strip_suffix('*') {
            Some(stem) if (stem.is_empty() || stem.ends_with('/')) && !stem.contains('*') => {
                Ok(CallerPattern::Prefix(s[..s.len() - 1].to_string()))
            }
            _ if path.contains('*') => Err(format!(
                "{s:?}: `*` may only stand for the last path segments, after a `/`; {EXAMPLE}"
            )),
            _ => Ok(CallerPattern::Exact(s.to_string())),
        }
    }

    /// Whether `id` is allowed by this pattern.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            CallerPattern::Exact(p) => p == id,
            CallerPattern::Prefix(p) => id.len() > p.len() && id.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for CallerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerPattern::Exact(id) => f.write_str(id),
            CallerPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Reads `key` of `t` as an array of caller patterns (`[authz] allow`,
/// `[api] admins`), reporting each bad entry at its own line and index.
/// `None` when the key is absent (reported if required) or an entry is bad.
pub(crate) fn read_patterns(t: &View<'_>, d: &mut Diag, key: &str) -> Option<Vec<CallerPattern>> {
    let entries = t.strings(d, key)?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match CallerPattern::parse(&e.value) {
            Ok(p) => out.push(p),
            Err(msg) => d.push(e.line, &format!("{}[{i}]", t.key_path(key)), msg),
        }
    }
    (out.len() == entries.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let exact = CallerPattern::parse("spiffe://m.test/ns/shop/sa/cart").unwrap();
        assert!(exact.matches("spiffe://m.test/ns/shop/sa/cart"));
        assert!(!exact.matches("spiffe://m.test/ns/shop/sa/cart2"));
        let ns = CallerPattern::parse("spiffe://m.test/ns/shop/*").unwrap();
        assert_eq!(ns, CallerPattern::Prefix("spiffe://m.test/ns/shop/".into()));
        assert!(ns.matches("spiffe://m.test/ns/shop/sa/cart"));
        assert!(
            !ns.matches("spiffe://m.test/ns/shop/"),
            "a prefix alone is no ID"
        );
        assert!(!ns.matches("spiffe://m.test/ns/shopping/sa/x"));
        assert!(!ns.matches("spiffe://other.test/ns/shop/sa/cart"));
        let td = CallerPattern::parse("spiffe://m.test/*").unwrap();
        assert!(td.matches("spiffe://m.test/ns/a/sa/b"));
        assert!(!td.matches("spiffe://m.testing/ns/a/sa/b"));
        assert_eq!(ns.to_string(), "spiffe://m.test/ns/shop/*");
        for bad in [
            "https://m.test/ns/a/sa/b",
            "spiffe://M_TEST/ns/a",
            "spiffe://m.test",
            "spiffe://m.test/",
            "spiffe://m.test/ns/*/sa/b",
            "spiffe://m.test/ns/sh*",
            "*",
        ] {
            assert!(CallerPattern::parse(bad).is_err(), "{bad} accepted");
        }
        let authz = AuthzConfig {
            allow: vec![exact.clone(), ns.clone()],
        };
        assert_eq!(authz.allows("spiffe://m.test/ns/shop/sa/x"), Some(&ns));
        assert_eq!(authz.allows("spiffe://m.test/ns/web/sa/x"), None);
        assert_eq!(
            AuthzConfig { allow: vec![] }.allows("spiffe://m.test/a"),
            None
        );
    }
}
