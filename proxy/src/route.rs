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
    /// The body is over [`MAX_BODY`], or its value would be when encoded
    /// again (omitted optional fields re-encode as `null`).
    #[error("route header of {0} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge(usize),
    /// The body is not valid JSON of the expected shape.
    #[error("malformed route header: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, RouteError> {
    let body = serde_json::to_vec(v).map_err(malformed)?;
    if body.len() > MAX_BODY {
        return Err(RouteError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Longest JSON parser message kept in [`RouteError::Malformed`]: the parser
/// quotes the body (a wrongly typed string, an unknown field), and the gateway
/// sends the error back in a `bad_header` answer, which must fit in a frame.
const MAX_ERROR: usize = 200;

fn malformed(e: serde_json::Error) -> RouteError {
    let mut msg = e.to_string();
    if msg.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push_str(&format!("… at line {} column {}", e.line(), e.column()));
    }
    RouteError::Malformed(msg)
}

fn decode<T: Serialize + for<'de> Deserialize<'de>>(
    buf: &[u8],
) -> Result<Option<(T, usize)>, RouteError> {
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
    let v: T = serde_json::from_slice(&buf[6..6 + len]).map_err(malformed)?;
    // Omitted optional fields decode as `None` and re-encode as `null`: refuse
    // a value whose own encoding would not fit in a frame (the gateway
    // re-encodes the headers it forwards).
    let encoded = serde_json::to_vec(&v).map_err(malformed)?.len();
    if encoded > MAX_BODY {
        return Err(RouteError::TooLarge(encoded));
    }
    Ok(Some((v, 6 + len)))
}

/// Returns the encoded header, or `TooLarge` if its JSON exceeds [`MAX_BODY`]
/// (names are short, but a `traceparent` or a cluster name comes from
/// outside: a caller must not be able to make a proxy panic).
pub fn encode_header(h: &RouteHeader) -> Result<Vec<u8>, RouteError> {
    encode(h)
}

/// Returns the encoded answer; a reason too long for a frame is cut (at a
/// character boundary) and marked with `…`.
pub fn encode_answer(a: &RouteAnswer) -> Vec<u8> {
    if let Ok(frame) = encode(a) {
        return frame;
    }
    // JSON escaping can at most sextuple a character (`\u00XX`).
    let mut cut = MAX_BODY / 6 - 64;
    while !a.reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let short = RouteAnswer {
        status: a.status,
        reason: format!("{}…", &a.reason[..cut]),
    };
    encode(&short).expect("a reason of MAX_BODY / 6 bytes fits in a frame")
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
        let mut b = encode_header(&header()).unwrap();
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
    fn a_header_too_large_to_send_is_an_error_not_a_panic() {
        let h = RouteHeader {
            traceparent: Some("x".repeat(MAX_BODY)),
            ..header()
        };
        assert!(matches!(encode_header(&h), Err(RouteError::TooLarge(n)) if n > MAX_BODY));
    }

    #[test]
    fn an_answer_with_a_huge_reason_is_cut_to_fit() {
        for reason in ["é".repeat(MAX_BODY), "\u{1}".repeat(MAX_BODY)] {
            let a = RouteAnswer {
                status: RouteStatus::Timeout,
                reason: reason.clone(),
            };
            let frame = encode_answer(&a);
            let (got, n) = decode_answer(&frame).unwrap().unwrap();
            assert_eq!(n, frame.len());
            assert_eq!(got.status, RouteStatus::Timeout);
            assert!(got.reason.ends_with('…'));
            assert!(reason.starts_with(got.reason.trim_end_matches('…')));
        }
    }

    #[test]
    fn every_prefix_asks_for_more_bytes() {
        let b = encode_header(&header()).unwrap();
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

    /// The `route_frame` fuzz target's properties ([`crate::route_check`]),
    /// over a fixed-seed stream of random and mutated inputs, so they run in
    /// the normal suite.
    mod property {
        use super::super::*;
        use super::header;
        use crate::route_check::check_both;

        /// xorshift64*: a tiny fixed-seed PRNG (no dependency).
        struct Rng(u64);

        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }

            /// Returns a number in `0..n` (`n > 0`).
            fn below(&mut self, n: usize) -> usize {
                (self.next() % n as u64) as usize
            }
        }

        /// Returns a frame with `body` and its true length.
        fn framed(body: &[u8]) -> Vec<u8> {
            let mut f = MAGIC.to_vec();
            f.push(VERSION);
            f.extend_from_slice(&(body.len() as u16).to_be_bytes());
            f.extend_from_slice(body);
            f
        }

        /// Valid frames to mutate: headers (full, nulls, omitted options,
        /// one of exactly `MAX_BODY`), an answer of every status, a header
        /// with the pipe's bytes behind it.
        fn templates() -> Vec<Vec<u8>> {
            let mut t = vec![encode_header(&header()).unwrap()];
            t.push(
                encode_header(&RouteHeader {
                    target_cluster: None,
                    traceparent: None,
                    ..header()
                })
                .unwrap(),
            );
            t.push(framed(
                br#"{"namespace":"ns","service":"svc","port":80,"source_cluster":"a"}"#,
            ));
            let mut big = header();
            big.namespace.clear();
            let base = serde_json::to_vec(&big).unwrap().len();
            big.namespace = "n".repeat(MAX_BODY - base);
            let big = encode_header(&big).unwrap();
            assert_eq!(big.len(), 6 + MAX_BODY);
            t.push(big);
            // Omitted options (`None` on decode, `null` when re-encoded) and
            // a wrongly typed string the error message quotes, both at the limit.
            t.push(omitted_options_at_the_limit());
            t.push(quoted_string_at_the_limit());
            for status in [
                RouteStatus::Ok,
                RouteStatus::NoInstance,
                RouteStatus::NotExported,
                RouteStatus::PeerUnreachable,
                RouteStatus::Timeout,
                RouteStatus::BadHeader,
            ] {
                t.push(encode_answer(&RouteAnswer {
                    status,
                    reason: format!("gateway b: {status:?}"),
                }));
            }
            let mut tail = encode_header(&header()).unwrap();
            tail.extend_from_slice(b"\x16\x03\x01\x00\x05hello");
            t.push(tail);
            t
        }

        const TOKENS: &[&[u8]] = &[
            b"MGW\x01",
            b"\"namespace\"",
            b"\"port\"",
            b"\"target_cluster\"",
            b"\"status\"",
            b"\"reason\"",
            b"\"no_instance\"",
            b"\"bad_header\"",
            b"null",
            b"65536",
            b"-1",
            b"\\\"",
            b"\\u0000",
            b"\\ud83d",
            b"{",
            b"}",
            b",",
            b"\xff",
        ];

        fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len() + 1);
                match rng.below(7) {
                    0 if at < buf.len() => buf[at] ^= 1 << rng.below(8),
                    1 if at < buf.len() => buf[at] = rng.next() as u8,
                    2 => buf.truncate(at),
                    3 => {
                        let tok = TOKENS[rng.below(TOKENS.len())];
                        buf.splice(at..at, tok.iter().copied());
                    }
                    4 => {
                        let end = (at + 1 + rng.below(16)).min(buf.len());
                        buf.drain(at.min(end)..end);
                    }
                    5 if buf.len() >= 6 => {
                        let len = match rng.below(4) {
                            0 => MAX_BODY as u16,
                            1 => MAX_BODY as u16 + 1,
                            2 => u16::MAX,
                            _ => rng.next() as u16,
                        };
                        buf[4..6].copy_from_slice(&len.to_be_bytes());
                    }
                    _ => {
                        let n = rng.below(8);
                        buf.extend((0..n).map(|_| rng.next() as u8));
                    }
                }
            }
            // Half the time, make the announced length true again so the
            // JSON decoder sees the mutated body.
            if buf.len() >= 6 && rng.below(2) == 0 {
                let len = u16::try_from(buf.len() - 6).unwrap_or(u16::MAX);
                buf[4..6].copy_from_slice(&len.to_be_bytes());
            }
        }

        /// A header of exactly `MAX_BODY` bytes without the optional fields.
        fn omitted_options_at_the_limit() -> Vec<u8> {
            let head = br#"{"namespace":""#;
            let tail = br#"","service":"s","port":1,"source_cluster":"a"}"#;
            let mut body = head.to_vec();
            body.resize(MAX_BODY - tail.len(), b'n');
            body.extend_from_slice(tail);
            framed(&body)
        }

        /// A body of `MAX_BODY` bytes whose `port` is a string of escaped
        /// quotes (serde_json quotes the string in its error message).
        fn quoted_string_at_the_limit() -> Vec<u8> {
            let mut body = br#"{"port":""#.to_vec();
            while body.len() + 2 + 2 <= MAX_BODY {
                body.extend_from_slice(br#"\""#);
            }
            body.extend_from_slice(br#""}"#);
            framed(&body)
        }

        #[test]
        fn a_header_without_options_at_the_limit_is_rejected_or_re_encodes() {
            let f = omitted_options_at_the_limit();
            assert_eq!(f.len(), 6 + MAX_BODY);
            check_both(&f, 0);
            // Re-encoding adds `"target_cluster":null,"traceparent":null`,
            // over the limit: the decoder refuses it instead of handing out a
            // header `encode_header` would refuse.
            assert!(matches!(decode_header(&f), Err(RouteError::TooLarge(n)) if n > MAX_BODY));
            // Just under the limit minus those 40 bytes it is fine.
            let body = br#"{"namespace":"n","service":"s","port":1,"source_cluster":"a"}"#;
            let (h, _) = decode_header(&framed(body)).unwrap().unwrap();
            assert_eq!(h.target_cluster, None);
            assert_eq!(h.traceparent, None);
        }

        #[test]
        fn a_malformed_message_fits_in_a_bad_header_answer() {
            let f = quoted_string_at_the_limit();
            check_both(&f, 0);
            let Err(RouteError::Malformed(msg)) = decode_header(&f) else {
                panic!("expected Malformed");
            };
            assert!(msg.len() <= 300, "{} bytes: {msg}", msg.len());
            assert!(msg.starts_with("invalid type: string"), "{msg}");
            assert!(
                msg.ends_with(&format!("at line 1 column {}", MAX_BODY - 2)),
                "{msg}"
            );
        }

        #[test]
        fn random_and_mutated_frames_keep_the_properties() {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let templates = templates();
            for t in &templates {
                for split in [0, 3, 6, t.len() / 2, t.len()] {
                    check_both(t, split);
                }
            }
            for _ in 0..3000 {
                let buf = if rng.below(4) == 0 {
                    let n = rng.below(64);
                    (0..n).map(|_| rng.next() as u8).collect()
                } else {
                    let mut b = templates[rng.below(templates.len())].clone();
                    mutate(&mut rng, &mut b);
                    b
                };
                let split = rng.below(buf.len() + 1);
                check_both(&buf, split);
            }
        }
    }
}
