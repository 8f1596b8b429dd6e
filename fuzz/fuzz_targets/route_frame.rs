//! The tunnel route header decoders (`meshgw_proxy::route::decode_header` and
//! `decode_answer`) fed arbitrary bytes. The first two bytes (`u16 LE`, taken
//! modulo the rest's length + 1) choose a split point; the rest is the buffer.
//!
//! What must hold, for both decoders:
//! - never panics;
//! - the prefix before the split decodes to `Ok(None)` or to the same result
//!   as the whole buffer (incremental decoding as bytes arrive);
//! - an accepted frame consumed `6 + len` bytes, at most the buffer, with
//!   `len <= MAX_BODY`, and that prefix alone decodes the same;
//! - `Ok(None)` never happens for a buffer that holds a complete frame;
//! - a body over `MAX_BODY` is rejected (`TooLarge`), and so is a value
//!   whose own encoding would be over it;
//! - an accepted value re-encodes (`encode_header` / `encode_answer`) to a
//!   frame that decodes to the same value;
//! - a rejection's message fits in the `BadHeader` answer the gateway sends
//!   back with it (`gateway/src/forward/{listener,inbound}.rs` do exactly
//!   this: `encode_answer` of `"gateway <cluster>: <error>"`).
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use meshgw_proxy::route::{
    MAGIC, MAX_BODY, RouteAnswer, RouteError, RouteStatus, VERSION, decode_answer, decode_header,
    encode_answer, encode_header,
};

type Decoded<T> = Result<Option<(T, usize)>, RouteError>;

fn check<T: Clone + PartialEq + Debug>(
    buf: &[u8],
    split: usize,
    decode: fn(&[u8]) -> Decoded<T>,
    encode: fn(&T) -> Vec<u8>,
) {
    let whole = decode(buf);
    let prefix = decode(&buf[..split]);
    assert!(
        prefix == Ok(None) || prefix == whole,
        "prefix of {split} bytes gave {prefix:?}, whole buffer {whole:?}"
    );
    let announced = (buf.len() >= 6).then(|| usize::from(u16::from_be_bytes([buf[4], buf[5]])));
    if buf.len() >= 6 && buf[..3] == MAGIC[..] && buf[3] == VERSION {
        let len = announced.unwrap();
        if len > MAX_BODY {
            assert_eq!(whole, Err(RouteError::TooLarge(len)), "body over MAX_BODY");
        }
    }
    match whole {
        Ok(Some((v, n))) => {
            let len = announced.expect("accepted a frame shorter than its 6-byte header");
            assert_eq!(
                n,
                6 + len,
                "consumed bytes differ from the announced length"
            );
            assert!(n <= buf.len(), "consumed {n} of {} bytes", buf.len());
            assert!(len <= MAX_BODY, "accepted a body of {len} bytes");
            assert_eq!(
                decode(&buf[..n]),
                Ok(Some((v.clone(), n))),
                "the frame alone"
            );
            let frame = encode(&v);
            assert_eq!(
                decode(&frame),
                Ok(Some((v, frame.len()))),
                "re-encoded frame"
            );
        }
        Ok(None) => {
            let complete = announced.is_some_and(|len| buf.len() >= 6 + len);
            assert!(
                !complete,
                "asked for more bytes with a complete frame in the buffer"
            );
        }
        Err(e) => {
            if buf.len() >= 6 {
                // Sanity: a rejection is for a reason the frame shows.
                match &e {
                    RouteError::BadMagic => assert_ne!(buf[..3], MAGIC[..]),
                    RouteError::Version(v) => assert_eq!(*v, buf[3]),
                    RouteError::TooLarge(n) => assert!(*n > MAX_BODY),
                    RouteError::Malformed(_) => {}
                }
            }
            let msg = e.to_string();
            assert!(!msg.is_empty(), "empty error message");
            let answer = RouteAnswer {
                status: RouteStatus::BadHeader,
                reason: format!("gateway gcp-europe-west1: {e}"),
            };
            let frame = encode_answer(&answer);
            assert_eq!(decode_answer(&frame), Ok(Some((answer, frame.len()))));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (split, buf) = match data {
        [a, b, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1),
            rest,
        ),
        _ => (0, data),
    };
    check(buf, split, decode_header, |h| {
        encode_header(h).expect("an accepted header re-encodes")
    });
    check(buf, split, decode_answer, encode_answer);
});
