//! The sync frame decoder fed arbitrary bytes, split at an input-chosen point:
//! it must never panic, and every message it accepts must re-encode to a frame
//! that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshgw_federation::sync::{Decoder, FrameError, encode};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut decoder = Decoder::new();
    for part in [&data[..split], &data[split..]] {
        decoder.push(part);
        loop {
            match decoder.next() {
                Ok(Some(msg)) => {
                    let frame = encode(&msg).expect("a decoded message re-encodes");
                    let mut again = Decoder::new();
                    again.push(&frame);
                    assert_eq!(again.next(), Ok(Some(msg)));
                }
                Ok(None) | Err(FrameError::TooLarge { .. }) => break,
                // A malformed payload consumes its frame; keep decoding.
                Err(FrameError::Malformed { .. }) => {}
            }
        }
    }
});
