//! The properties of the tunnel route header codec (`crate::route`), as
//! assertions: shared by the `route_frame` fuzz target (fuzz/, with the
//! `fuzzing` feature) and the fixed-seed property test in `route`'s tests.
//!
//! For both decoders: never panics; the prefix before the split decodes to
//! `Ok(None)` or to the same result as the whole buffer; an accepted frame
//! consumed `6 + len <= buf.len()` bytes with `len <= MAX_BODY` and decodes
//! the same alone; `Ok(None)` never with a complete frame in the buffer; a
//! body over `MAX_BODY` is `TooLarge`; an accepted value re-encodes to a frame
//! that decodes to the same value; a rejection's message fits in the
//! `bad_header` answer the gateway sends back with it.

use std::fmt::Debug;

use crate::route::{
    MAGIC, MAX_BODY, RouteAnswer, RouteError, RouteStatus, VERSION, decode_answer, decode_header,
    encode_answer, encode_header,
};

type Decoded<T> = Result<Option<(T, usize)>, RouteError>;

/// Asserts the properties for one decoder on `buf`, with the prefix
/// `buf[..split]` standing for the bytes that arrived first.
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
        "prefix of {split} bytes gave {prefix:?}, whole buffer {whole:?}: {buf:?}"
    );
    let announced = (buf.len() >= 6).then(|| usize::from(u16::from_be_bytes([buf[4], buf[5]])));
    if buf.len() >= 6 && buf[..3] == MAGIC[..] && buf[3] == VERSION {
        let len = announced.unwrap();
        if len > MAX_BODY {
            assert_eq!(whole, Err(RouteError::TooLarge(len)), "{buf:?}");
        }
    }
    match whole {
        Ok(Some((v, n))) => {
            let len = announced.expect("accepted a frame shorter than 6 bytes");
            assert_eq!(n, 6 + len, "consumed vs announced: {buf:?}");
            assert!(n <= buf.len(), "consumed {n} of {} bytes", buf.len());
            assert!(len <= MAX_BODY, "accepted a body of {len} bytes");
            assert_eq!(decode(&buf[..n]), Ok(Some((v.clone(), n))), "frame alone");
            let frame = encode(&v);
            assert_eq!(decode(&frame), Ok(Some((v, frame.len()))), "re-encoded");
        }
        Ok(None) => {
            let complete = announced.is_some_and(|len| buf.len() >= 6 + len);
            assert!(!complete, "asked for more with a complete frame: {buf:?}");
        }
        Err(e) => {
            if buf.len() >= 6 {
                match &e {
                    RouteError::BadMagic => assert_ne!(buf[..3], MAGIC[..]),
                    RouteError::Version(v) => assert_eq!(*v, buf[3]),
                    RouteError::TooLarge(n) => assert!(*n > MAX_BODY),
                    RouteError::Malformed(_) => {}
                }
            }
            assert!(!e.to_string().is_empty());
            // The gateway sends the error back in a `bad_header` answer
            // (gateway/src/forward/{listener,inbound}.rs): it must fit.
            let answer = RouteAnswer {
                status: RouteStatus::BadHeader,
                reason: format!("gateway gcp-europe-west1: {e}"),
            };
            let frame = encode_answer(&answer);
            assert_eq!(decode_answer(&frame), Ok(Some((answer, frame.len()))));
        }
    }
}

/// Asserts the properties for both decoders on `buf`.
pub fn check_both(buf: &[u8], split: usize) {
    check(buf, split, decode_header, |h| {
        encode_header(h).expect("an accepted header re-encodes")
    });
    check(buf, split, decode_answer, encode_answer);
}
