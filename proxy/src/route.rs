//! The tunnel route header: the first bytes of every proxied connection a
//! sidecar hands to its gateway, and of every QUIC data stream between
//! gateways. After the header and its one-frame answer, the connection is an
//! opaque byte pipe (it carries the sidecar-to-sidecar TLS session).
//!
//! ```text
//! header:  "MGW" | version u8 (= 1) | len u16 BE | JSON RouteHeader (len bytes)
//! answer:  "MGW" | version u8 (= 1) | len u16 BE | JSON RouteAnswer (len bytes)
//! ```
//!
//! Sans-IO: [`decode_header`] / [`decode_answer`] take a buffer and return the
//! parsed value and the bytes consumed, or `Ok(None)` when more bytes are needed.

use serde::{Deserialize, Serialize};

/// Magic bytes that start a header or an answer.
pub const MAGIC: &[u8; 3] = b"MGW";
/// Version of the route header format.
pub const VERSION: u8 = 1;
/// Largest JSON body accepted (the header is small; this bounds what a peer can make us buffer).
pub const MAX_BODY: usize = 8 * 1024;

/// Where a proxied connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteHeader {
    /// Target service namespace.
    pub namespace: String,
    /// Target service name.
    pub service: String,
    /// Target port (the service's port as registered).
    pub port: u16,
    /// Cluster the connection comes from.
    pub source_cluster: String,
    /// Cluster to send it to; `None` lets the gateway choose.
    pub target_cluster: Option<String>,
    /// W3C `traceparent` of the caller, if any.
    pub traceparent: Option<String>,
}

/// The gateway's answer to a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteStatus {
    /// The pipe is open to an instance.
    Ok,
    /// No healthy instance of the service where it was sent.
    NoInstance,
    /// The service is not exported to the source cluster.
    NotExported,
    /// No tunnel to the target cluster is up.
    PeerUnreachable,
    /// A connect timed out at some hop (named in the reason).
    Timeout,
    /// The header could not be read.
    BadHeader,
}

/// The answer frame: a status and a reason naming the hop and the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAnswer {
    /// Outcome.
    pub status: RouteStatus,
    /// Human-readable reason, naming the hop (e.g. "gateway gcp-europe-west1: ...").
    pub reason: String,
}

/// Errors decoding a header or an answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// The bytes do not start with the magic.
    #[error("not a meshgw route header (bad magic): is the client speaking to the right port?")]
    BadMagic,
    /// An unknown format version.
    #[error(
        "route header version {0} is not supported (this side speaks {VERSION}): upgrade the older side"
    )]
    Version(u8),
    /// The body is over [`MAX_BODY`].
    #[error("route header of {0} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge(usize),
    /// The body is not valid JSON of the expected shape.
    #[error("malformed route header: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let body = serde_json::to_vec(v).expect("route frames serialise");
    assert!(body.len() <= MAX_BODY, "route frame over MAX_BODY");
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode<T: for<'de> Deserialize<'de>>(buf: &[u8]) -> Result<Option<(T, usize)>, RouteError> {
    let n = buf.len().min(3);
    if buf[..n] != MAGIC[..n] {
        return Err(RouteError::BadMagic);
    }
    if buf.len() < 6 {
        return Ok(None);
    }
    if buf[3] != VERSION {
        return Err(RouteError::Version(buf[3]));
    }
    let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if len > MAX_BODY {
        return Err(RouteError::TooLarge(len));
    }
    if buf.len() < 6 + len {
        return Ok(None);
    }
    let v = serde_json::from_slice(&buf[6..6 + len])
        .map_err(|e| RouteError::Malformed(e.to_string()))?;
    Ok(Some((v, 6 + len)))
}

/// Returns the encoded header.
pub fn encode_header(h: &RouteHeader) -> Vec<u8> {
    encode(h)
}

/// Returns the encoded answer.
pub fn encode_answer(a: &RouteAnswer) -> Vec<u8> {
    encode(a)
}

/// Decodes a header from the start of `buf`: `Ok(None)` if more bytes are needed.
pub fn decode_header(buf: &[u8]) -> Result<Option<(RouteHeader, usize)>, RouteError> {
    decode(buf)
}

/// Decodes an answer from the start of `buf`: `Ok(None)` if more bytes are needed.
pub fn decode_answer(buf: &[u8]) -> Result<Option<(RouteAnswer, usize)>, RouteError> {
    decode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RouteHeader {
        RouteHeader {
            namespace: "default".into(),
            service: "payments".into(),
            port: 8443,
            source_cluster: "aws-us-east-1".into(),
            target_cluster: Some("gcp-europe-west1".into()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        }
    }

    #[test]
    fn round_trips_and_reports_consumed_bytes() {
        let mut b = encode_header(&header());
        let n = b.len();
        b.extend_from_slice(b"\x16\x03\x01 tls bytes follow");
        assert_eq!(decode_header(&b), Ok(Some((header(), n))));
        let a = RouteAnswer {
            status: RouteStatus::NoInstance,
            reason: "gateway b: none healthy".into(),
        };
        let enc = encode_answer(&a);
        assert_eq!(decode_answer(&enc), Ok(Some((a, enc.len()))));
    }

    #[test]
    fn every_prefix_asks_for_more_bytes() {
        let b = encode_header(&header());
        for i in 0..b.len() {
            assert_eq!(decode_header(&b[..i]), Ok(None), "prefix {i}");
        }
    }

    #[test]
    fn rejects_bad_magic_version_size_and_json() {
        assert_eq!(
            decode_header(b"GET / HTTP/1.1\r\n"),
            Err(RouteError::BadMagic)
        );
        assert_eq!(
            decode_header(b"MGW\x02\x00\x01{"),
            Err(RouteError::Version(2))
        );
        assert_eq!(
            decode_header(b"MGW\x01\xff\xff"),
            Err(RouteError::TooLarge(65535))
        );
        assert!(matches!(
            decode_header(b"MGW\x01\x00\x02{}"),
            Err(RouteError::Malformed(_))
        ));
    }
}
