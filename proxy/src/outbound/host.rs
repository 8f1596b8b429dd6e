//! Reading where an HTTP request goes (`name.namespace.mesh[:port]`) and
//! preparing it for an HTTP/2 mesh connection.

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Version};
use meshgw_federation::model::{ServiceName, is_label};

use crate::error::{Hop, ProxyError, Reason};

/// Header naming the caller's cluster, set on every forwarded request.
pub const SOURCE_CLUSTER: &str = "x-meshgw-source-cluster";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// [`TRACEPARENT`], parsed once.
pub(crate) const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
/// [`SOURCE_CLUSTER`], parsed once.
const SOURCE_CLUSTER_NAME: HeaderName = HeaderName::from_static(SOURCE_CLUSTER);

/// Returns the request's authority: `:authority` / the URI's, else `Host`;
/// an error naming the problem when there is neither or `Host` is invalid.
pub(crate) fn authority<B>(req: &Request<B>) -> Result<Authority, ProxyError> {
    if let Some(a) = req.uri().authority() {
        return Ok(a.clone());
    }
    let Some(host) = req.headers().get(header::HOST) else {
        return Err(ProxyError::new(
            Hop::LocalSidecar,
            Reason::BadHost(String::new()),
            "the request has no Host header: expected Host: name.namespace.mesh[:port]",
        ));
    };
    Authority::try_from(host.as_bytes()).map_err(|_| {
        let shown = String::from_utf8_lossy(host.as_bytes());
        bad_host(&shown, "is not a valid authority")
    })
}

/// Parses `name.namespace.mesh[:port]` into the service and port (0 when
/// absent: the service's registered port).
#[cfg(test)]
pub(crate) fn parse(host: &str) -> Result<(ServiceName, u16), ProxyError> {
    let auth: Authority = host
        .parse()
        .map_err(|_| bad_host(host, "is not a valid authority"))?;
    parse_authority(&auth)
}

fn bad_host(host: &str, why: &str) -> ProxyError {
    ProxyError::new(
        Hop::LocalSidecar,
        Reason::BadHost(host.to_owned()),
        format!("host {host:?} {why}"),
    )
}

/// Parses an authority `name.namespace.mesh[:port]` (any case, an optional
/// trailing dot) into the service and port (0 when absent).
pub(crate) fn parse_authority(auth: &Authority) -> Result<(ServiceName, u16), ProxyError> {
    let bad = |why: &str| bad_host(auth.as_str(), why);
    let host = auth.host().trim_end_matches('.');
    let rest = host
        .len()
        .checked_sub(5)
        .filter(|&i| host.is_char_boundary(i) && host[i..].eq_ignore_ascii_case(".mesh"))
        .map(|i| &host[..i])
        .ok_or_else(|| bad("is not a mesh name: expected name.namespace.mesh[:port]"))?;
    let lower;
    let rest = if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = rest.to_ascii_lowercase();
        lower.as_str()
    } else {
        rest
    };
    let svc = rest
        .split_once('.')
        .filter(|(name, ns)| is_label(name) && is_label(ns))
        .map(|(name, ns)| ServiceName::new(ns, name))
        .ok_or_else(|| bad("is not name.namespace.mesh with DNS labels for name and namespace"))?;
    let port = match (auth.as_str().len() > auth.host().len(), auth.port_u16()) {
        (false, _) => 0,
        (true, Some(p)) => p,
        (true, None) => return Err(bad("has a port that is not a number from 0 to 65535")),
    };
    Ok((svc, port))
}

/// Returns a fresh W3C `traceparent` (version 00, sampled).
pub(crate) fn new_traceparent() -> String {
    fn hex(out: &mut String, v: u128, digits: u32) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in (0..digits).rev() {
            out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
        }
    }
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    hex(&mut out, trace, 32);
    out.push('-');
    hex(&mut out, u128::from(span), 16);
    out.push_str("-01");
    out
}

/// Whether `v` is a W3C `traceparent` this proxy passes on: version, trace
/// id, parent id and flags in lowercase hex, ids not all zero, version not
/// `ff`; a future version may append fields after a `-`.
pub(crate) fn valid_traceparent(v: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let mut parts = v.splitn(5, '-');
    let (Some(ver), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let rest_ok = match parts.next() {
        None => true,
        Some(_) => ver != "00" && v.len() <= 512,
    };
    hex(ver, 2)
        && ver != "ff"
        && hex(trace, 32)
        && !zero(trace)
        && hex(parent, 16)
        && !zero(parent)
        && hex(flags, 2)
        && rest_ok
}

/// Hop-by-hop headers, which HTTP/2 forbids (besides `host`, which every
/// HTTP/1.1 request has and the `:authority` replaces).
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Returns the `x-meshgw-source-cluster` value for `cluster`.
pub(crate) fn source_cluster_value(cluster: &str) -> HeaderValue {
    HeaderValue::from_str(cluster).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Returns the request's `traceparent` if it is one this proxy passes on.
pub(crate) fn incoming_traceparent<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(&TRACEPARENT_NAME)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_traceparent(v))
}

/// Rewrites `req` for an HTTP/2 mesh connection: absolute URI with the mesh
/// authority, no hop-by-hop headers, the source cluster set, a
/// `traceparent` set to `span`'s (this sidecar's span of the request), else
/// kept or created. Returns the `traceparent`.
pub(crate) fn prepare<B>(
    req: &mut Request<B>,
    authority: &Authority,
    source_cluster: &HeaderValue,
    span: Option<&str>,
) -> Result<String, ProxyError> {
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|_| {
            ProxyError::new(
                Hop::LocalSidecar,
                Reason::BadHost(authority.to_string()),
                format!("cannot build a URI for {authority}"),
            )
        })?;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    let headers = req.headers_mut();
    headers.remove(header::HOST);
    // One pass over the few names a request has, rather than a hashed
    // lookup per hop-by-hop name: most requests have none of them.
    if headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
    }
    if headers.get(header::TE).is_some_and(|v| v != "trailers") {
        headers.remove(header::TE);
    }
    headers.insert(SOURCE_CLUSTER_NAME, source_cluster.clone());
    // W3C Trace Context: an invalid `traceparent` is replaced, not passed on
    // (it also travels in the route header, which has a size limit).
    let tp = match span {
        Some(v) => v.to_owned(),
        None => match headers
            .get(&TRACEPARENT_NAME)
            .and_then(|v| v.to_str().ok())
            .filter(|v| valid_traceparent(v))
        {
            Some(v) => v.to_owned(),
            None => new_traceparent(),
        },
    };
    // A new value on every request: never worth a slot in the HPACK table
    // (where it would evict the headers that do repeat).
    let mut value = HeaderValue::from_str(&tp).expect("checked or hex: a valid header");
    value.set_sensitive(true);
    headers.insert(TRACEPARENT_NAME, value);
    Ok(tp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked_as_w3c_says() {
        assert!(valid_traceparent(&new_traceparent()));
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(valid_traceparent(good));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!valid_traceparent(bad), "{bad:?} accepted");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(valid_traceparent(future));
        assert!(!valid_traceparent(&format!("{future}{}", "a".repeat(600))));
    }

    #[test]
    fn an_invalid_traceparent_is_replaced() {
        let mut req = Request::get("/")
            .header(TRACEPARENT, "x".repeat(9000))
            .body(())
            .unwrap();
        let auth = Authority::from_static("payments.default.mesh");
        let tp = prepare(&mut req, &auth, &HeaderValue::from_static("a"), None).unwrap();
        assert!(valid_traceparent(&tp));
        assert_eq!(req.headers()[TRACEPARENT], tp.as_str());
    }

    #[test]
    fn parses_mesh_hosts() {
        let (s, p) = parse("payments.default.mesh").unwrap();
        assert_eq!((s, p), (ServiceName::new("default", "payments"), 0));
        let (s, p) = parse("Cart.Shop.MESH.:8080").unwrap();
        assert_eq!((s, p), (ServiceName::new("shop", "cart"), 8080));
        let (s, _) = parse("a.b.mesh..").unwrap();
        assert_eq!(s, ServiceName::new("b", "a"), "trailing dots");
        for bad in [
            "example.com",
            "payments.mesh",
            "a.b.c.mesh",
            "pay_ments.default.mesh",
            "a.b.mesh:x",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e.reason, Reason::BadHost(_)), "{bad}");
        }
    }

    #[test]
    fn prepares_requests_for_http2() {
        let mut req = Request::get("/v1/pay?x=1")
            .header("host", "payments.default.mesh")
            .header("connection", "keep-alive")
            .header(SOURCE_CLUSTER, "forged")
            .body(())
            .unwrap();
        let eu = HeaderValue::from_static("eu");
        let auth = Authority::from_static("payments.default.mesh");
        let tp = prepare(&mut req, &auth, &eu, None).unwrap();
        assert_eq!(req.uri(), "http://payments.default.mesh/v1/pay?x=1");
        assert!(req.headers().get("connection").is_none() && req.headers().get("host").is_none());
        assert_eq!(req.headers()[SOURCE_CLUSTER], "eu");
        assert_eq!(req.headers()[TRACEPARENT], tp.as_str());
        assert_eq!(tp.len(), 55);
        let kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut req = Request::get("/")
            .header(TRACEPARENT, kept)
            .body(())
            .unwrap();
        let auth = Authority::from_static("a.b.mesh");
        assert_eq!(prepare(&mut req, &auth, &eu, None).unwrap(), kept);
        assert!(
            req.headers()[TRACEPARENT].is_sensitive(),
            "kept out of the HPACK table"
        );
    }
}
