//! `[authz]`: which callers may reach the workload, by the SPIFFE ID their
//! certificate proves. A pattern is one ID, or a prefix ending in `/*`
//! (`spiffe://mesh.example/ns/shop/*`: every workload of namespace `shop`;
//! `spiffe://mesh.example/*`: the whole trust domain).

use std::fmt;

use crate::checks::is_trust_domain;
use crate::error::Diag;
use crate::read::View;

/// `[authz]`: the callers allowed everything, and `[[authz.rules]]`: the
/// requests other callers may make; anyone else is refused (HTTP 403, a
/// TCP connection reset) at the inbound listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzConfig {
    /// `allow`: callers allowed every request, in file order.
    pub allow: Vec<CallerPattern>,
    /// `[[authz.rules]]`: requests allowed to some callers, in file order.
    pub rules: Vec<AuthzRule>,
}

/// One `[[authz.rules]]` entry: `callers` may make requests with one of
/// `methods` (any if empty) to one of `paths` (any if empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRule {
    /// Who the rule is for.
    pub callers: Vec<CallerPattern>,
    /// HTTP methods allowed (`GET`, `POST`, ...); empty: any.
    pub methods: Vec<String>,
    /// Request paths allowed (the query left out); empty: any.
    pub paths: Vec<PathPattern>,
}

impl AuthzRule {
    /// Whether the rule allows every request (no method or path limit),
    /// so also TCP connections.
    pub fn is_unlimited(&self) -> bool {
        self.methods.is_empty() && self.paths.is_empty()
    }

    /// Whether the rule allows a request with `method` to `path`.
    pub fn permits(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
    }
}

/// What a caller may do, decided once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every request (an `allow` entry, or a rule without limits).
    All,
    /// The requests these rules permit (HTTP only).
    Limited(Vec<AuthzRule>),
    /// Nothing.
    Denied,
}

impl Access {
    /// Whether a request with `method` to `path` is allowed.
    pub fn permits(&self, method: &str, path: &str) -> bool {
        match self {
            Access::All => true,
            Access::Limited(rules) => rules.iter().any(|r| r.permits(method, path)),
            Access::Denied => false,
        }
    }
}

impl AuthzConfig {
    /// Returns the first `allow` pattern that allows `caller`, if any.
    pub fn allows(&self, caller: &str) -> Option<&CallerPattern> {
        self.allow.iter().find(|p| p.matches(caller))
    }

    /// What `caller` may do.
    pub fn access(&self, caller: &str) -> Access {
        if self.allows(caller).is_some() {
            return Access::All;
        }
        let mine: Vec<AuthzRule> = self
            .rules
            .iter()
            .filter(|r| r.callers.iter().any(|p| p.matches(caller)))
            .cloned()
            .collect();
        if mine.is_empty() {
            Access::Denied
        } else if mine.iter().any(AuthzRule::is_unlimited) {
            Access::All
        } else {
            Access::Limited(mine)
        }
    }
}

/// Whether a request path is in the one form rules are matched against: no
/// empty, `.` or `..` segment, no backslash, no `;` (a path parameter, which
/// servlet containers drop before resolving dots: `/a/..;/b`), and no
/// percent-encoded `/`, `.`, `\` or `%` (which an app might decode, once
/// or twice, into one of those). A path that is not could reach the app as
/// another path than the one matched, so a caller limited by rules is
/// refused it.
pub fn is_normal_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains(['\\', ';']) {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%25"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return false;
    }
    // Segments after the leading `/`; a trailing `/` (an empty last
    // segment) is a path of its own, not a way around one.
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    !segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i != last))
}

/// One `paths` entry: a path, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Exactly this path.
    Exact(String),
    /// Any path that starts with this.
    Prefix(String),
}

impl PathPattern {
    /// Parses `/a/b` or `/a/*`; returns why it is neither.
    pub fn parse(s: &str) -> Result<Self, String> {
        const EXAMPLE: &str = "write a path such as \"/orders\", or a prefix ending in * such as \"/orders/*\" or \"/grpc.health.v1.Health/*\"";
        if !s.starts_with('/') {
            return Err(format!("{s:?} does not start with /; {EXAMPLE}"));
        }
        if s.contains('?') {
            return Err(format!(
                "{s:?} has a query: rules match the path only; {EXAMPLE}"
            ));
        }
        let pattern = match s.strip_suffix('*') {
            Some(stem) if !stem.contains('*') => PathPattern::Prefix(stem.to_string()),
            _ if s.contains('*') => {
                return Err(format!("{s:?}: `*` may only end a path; {EXAMPLE}"));
            }
            _ => PathPattern::Exact(s.to_string()),
        };
        // Requests are only matched in normal form: a pattern that is not
        // would never match.
        let stem = match &pattern {
            PathPattern::Exact(p) | PathPattern::Prefix(p) => p,
        };
        if !is_normal_path(stem) {
            return Err(format!(
                "{s:?} is not a normal path (an empty, . or .. segment, a backslash, a ;, or an encoded / . \\ %), so no request would match it; {EXAMPLE}"
            ));
        }
        Ok(pattern)
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => p == path,
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
        }
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
    read_each(t, d, key, CallerPattern::parse)
}

/// Reads `key` of `t` as an array of strings, each parsed by `parse`; each
/// bad entry is reported at its own line and index. `None` when the key is
/// absent (reported if required) or an entry is bad.
fn read_each<T>(
    t: &View<'_>,
    d: &mut Diag,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let entries = t.strings(d, key)?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match parse(&e.value) {
            Ok(v) => out.push(v),
            Err(msg) => d.push(e.line, &format!("{}[{i}]", t.key_path(key)), msg),
        }
    }
    (out.len() == entries.len()).then_some(out)
}

/// Reads `[[authz.rules]]`, each bad entry reported at its own line.
pub(crate) fn read_rules(views: &[View<'_>], d: &mut Diag) -> Option<Vec<AuthzRule>> {
    let mut all = Some(Vec::new());
    for t in views {
        let callers = read_patterns(t, d, "callers");
        if callers.as_ref().is_some_and(Vec::is_empty) {
            let msg = "lists no caller: a rule is for at least one";
            d.push(t.key_line(d, "callers"), &t.key_path("callers"), msg);
        }
        let methods = read_list(t, d, "methods", |m| {
            let token =
                |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
            if m.bytes().any(|b| b.is_ascii_uppercase()) && m.bytes().all(token) {
                Ok(m.to_string())
            } else {
                Err(format!(
                    "{m:?} is not an HTTP method in capitals, such as \"GET\", \"POST\" or \"M-SEARCH\""
                ))
            }
        });
        let paths = read_list(t, d, "paths", PathPattern::parse);
        let one = (|| {
            Some(AuthzRule {
                callers: callers.filter(|c| !c.is_empty())?,
                methods: methods?,
                paths: paths?,
            })
        })();
        all = all.zip(one).map(|(mut v, r)| {
            v.push(r);
            v
        });
    }
    all
}

/// Reads optional `key` of `t` as a non-empty array of strings, each parsed
/// by `parse`; absent is an empty list (no limit).
fn read_list<T>(
    t: &View<'_>,
    d: &mut Diag,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    if !t.has(key) {
        return Some(Vec::new());
    }
    let out = read_each(t, d, key, parse)?;
    if out.is_empty() {
        let msg = "is empty, so nothing would match: leave the key out to allow any";
        d.push(t.key_line(d, key), &t.key_path(key), msg);
        return None;
    }
    Some(out)
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
            rules: vec![],
        };
        assert_eq!(authz.allows("spiffe://m.test/ns/shop/sa/x"), Some(&ns));
        assert_eq!(authz.allows("spiffe://m.test/ns/web/sa/x"), None);
        assert_eq!(AuthzConfig::default().allows("spiffe://m.test/a"), None);
    }

    #[test]
    fn rules_limit_their_callers_to_methods_and_paths() {
        let p = |s: &str| CallerPattern::parse(s).unwrap();
        let rule = |callers: &[&str], methods: &[&str], paths: &[&str]| AuthzRule {
            callers: callers.iter().map(|c| p(c)).collect(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            paths: paths
                .iter()
                .map(|s| PathPattern::parse(s).unwrap())
                .collect(),
        };
        let authz = AuthzConfig {
            allow: vec![p("spiffe://m.test/ns/ops/*")],
            rules: vec![
                rule(
                    &["spiffe://m.test/ns/web/*"],
                    &["GET", "HEAD"],
                    &["/catalog/*", "/"],
                ),
                rule(&["spiffe://m.test/ns/web/sa/cart"], &["POST"], &["/orders"]),
                rule(&["spiffe://m.test/ns/batch/sa/sync"], &[], &[]),
            ],
        };
        assert_eq!(authz.access("spiffe://m.test/ns/ops/sa/admin"), Access::All);
        assert_eq!(
            authz.access("spiffe://m.test/ns/batch/sa/sync"),
            Access::All
        );
        assert_eq!(
            authz.access("spiffe://m.test/ns/other/sa/x"),
            Access::Denied
        );
        let web = authz.access("spiffe://m.test/ns/web/sa/home");
        assert!(web.permits("GET", "/catalog/shoes"));
        assert!(web.permits("HEAD", "/"));
        assert!(
            !web.permits("GET", "/catalogue"),
            "a prefix is not a word stem"
        );
        assert!(!web.permits("POST", "/orders"), "that rule is the cart's");
        assert!(!web.permits("DELETE", "/catalog/shoes"));
        let cart = authz.access("spiffe://m.test/ns/web/sa/cart");
        assert!(cart.permits("POST", "/orders") && cart.permits("GET", "/catalog/x"));
        assert!(!cart.permits("POST", "/orders/1"));
        for normal in ["/", "/catalog/shoes", "/catalog/", "/a.b/c..d/%41"] {
            assert!(is_normal_path(normal), "{normal} refused");
        }
        for odd in [
            "",
            "//admin",
            "/catalog//x",
            "/catalog/../admin",
            "/catalog/./x",
            "/catalog/..",
            "/catalog/%2e%2e/admin",
            "/catalog%2Fadmin",
            "/catalog\\admin",
            "/catalog/%5C",
            "/catalog/..;/admin",
            "/catalog;x=1/y",
            "/catalog/%252e%252e/admin",
        ] {
            assert!(!is_normal_path(odd), "{odd} taken as normal");
        }
        for bad in ["orders", "/a*/b", "/a?x=1", "/a/../b/*", "//x", "/%2e/*"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            PathPattern::parse("/catalog/*").unwrap(),
            PathPattern::Prefix("/catalog/".into())
        );
    }
}
