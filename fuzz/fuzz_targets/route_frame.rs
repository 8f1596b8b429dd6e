//! The tunnel route header decoders (`meshgw_proxy::route::decode_header` and
//! `decode_answer`) fed arbitrary bytes. The first two bytes (`u16 LE`, taken
//! modulo the rest's length + 1) choose a split point; the rest is the buffer.
//!
//! What must hold, for both decoders (asserted by
//! `meshgw_proxy::route_check::check_both`, which the unit tests share):
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

use libfuzzer_sys::fuzz_target;
use meshgw_proxy::route_check::check_both;

fuzz_target!(|data: &[u8]| {
    let (split, buf) = match data {
        [a, b, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1),
            rest,
        ),
        _ => (0, data),
    };
    check_both(buf, split);
});
