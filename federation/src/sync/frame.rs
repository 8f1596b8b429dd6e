//! The control-stream frame codec: a `u32` big-endian payload length, then a
//! JSON payload holding one [`Message`].

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};

use crate::model::{ServiceName, ServiceSummary};

/// The sync protocol version this build speaks; peers must announce the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest payload a frame may carry (16 MiB), in either direction.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix in front of every payload.
pub const HEADER_LEN: usize = 4;

/// One message on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Opens the session; each side sends it first, exactly once.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`] on both sides.
        protocol_version: u32,
        /// Sender's cluster name.
        cluster: String,
        /// Sender's cloud, e.g. `aws`.
        cloud: String,
        /// Sender's region.
        region: String,
        /// Sender's zones.
        zones: Vec<String>,
        /// Sender's gateway replica id.
        replica: String,
        /// Optional extensions the sender supports; unknown ones are ignored.
        capabilities: Vec<String>,
    },
    /// The complete export set for the receiver; replaces all earlier imports.
    Snapshot {
        /// Sequence number (increases with every snapshot or delta sent).
        seq: u64,
        /// Every service exported to the receiver.
        services: Vec<ServiceSummary>,
    },
    /// Changes since the previous snapshot or delta.
    Delta {
        /// Sequence number (increases with every snapshot or delta sent).
        seq: u64,
        /// Services added or changed.
        upserts: Vec<ServiceSummary>,
        /// Services no longer exported.
        removals: Vec<ServiceName>,
    },
    /// The receiver has applied every snapshot and delta up to `seq`.
    Ack {
        /// Highest applied sequence number.
        seq: u64,
    },
    /// Keeps an idle session alive.
    Heartbeat {
        /// The last sequence number the sender used for a snapshot or delta.
        seq: u64,
    },
    /// Sent before closing the stream because of an error.
    Error {
        /// Machine-readable code, e.g. `version`, `unexpected_peer`, `protocol`.
        code: String,
        /// What went wrong, for the operator.
        message: String,
    },
}

impl Message {
    /// Returns the wire name of this message's type, e.g. `"snapshot"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Snapshot { .. } => "snapshot",
            Message::Delta { .. } => "delta",
            Message::Ack { .. } => "ack",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Error { .. } => "error",
        }
    }
}

/// A frame that cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or an encoded payload) is over [`MAX_FRAME`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload length announced or produced.
        len: u64,
        /// The limit, [`MAX_FRAME`].
        max: usize,
    },
    /// The payload is not JSON of a known message type.
    #[error("frame payload is not a valid sync message: {reason}")]
    Malformed {
        /// The JSON decoder's explanation (names unknown types and missing fields).
        reason: String,
    },
}

/// Returns `msg` as one frame: length prefix, then JSON payload.
///
/// Fails with [`FrameError::TooLarge`] if the payload would exceed [`MAX_FRAME`].
pub fn encode(msg: &Message) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    serde_json::to_writer(&mut out, msg).map_err(|e| FrameError::Malformed {
        reason: e.to_string(),
    })?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: MAX_FRAME,
        });
    }
    // `len <= MAX_FRAME < u32::MAX`, so the cast is lossless.
    out[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Reassembles frames from arbitrarily split input.
///
/// A malformed payload consumes its frame, so the next call continues with the
/// following frame; an oversize length prefix is fatal, because the decoder
/// refuses to buffer that much, and every later call returns the same error.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    fatal: Option<FrameError>,
}

impl Decoder {
    /// Creates an empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers `data` received from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.fatal.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Returns the number of buffered bytes not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME {
            let e = FrameError::TooLarge {
                len: len as u64,
                max: MAX_FRAME,
            };
            self.fatal = Some(e.clone());
            self.buf = BytesMut::new();
            return Err(e);
        }
        if self.buf.len() < HEADER_LEN + len {
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len);
        serde_json::from_slice(&payload)
            .map(Some)
            .map_err(|e| FrameError::Malformed {
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Message {
        Message::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: "aws-us".into(),
            cloud: "aws".into(),
            region: "us-east-1".into(),
            zones: vec!["us-east-1a".into()],
            replica: "gw-0".into(),
            capabilities: vec![],
        }
    }

    #[test]
    fn round_trips_split_at_every_byte() {
        let msgs = [
            hello(),
            Message::Ack { seq: 3 },
            Message::Delta {
                seq: 4,
                upserts: vec![],
                removals: vec![ServiceName::new("default", "web")],
            },
        ];
        let wire: Vec<u8> = msgs.iter().flat_map(|m| encode(m).unwrap()).collect();
        for split in 0..=wire.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.push(part);
                while let Some(m) = d.next().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, msgs, "split at {split}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn wire_format_is_tagged_snake_case_json() {
        let frame = encode(&Message::Heartbeat { seq: 7 }).unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0, 28]);
        assert_eq!(&frame[4..], br#"{"type":"heartbeat","seq":7}"#);
    }

    #[test]
    fn oversize_length_is_fatal_and_named() {
        let mut d = Decoder::new();
        d.push(&[0xff, 0xff, 0xff, 0xff, b'{']);
        let e = d.next().unwrap_err();
        assert_eq!(
            e.to_string(),
            "frame of 4294967295 bytes exceeds the 16777216-byte limit"
        );
        d.push(&encode(&Message::Ack { seq: 1 }).unwrap());
        assert_eq!(d.next().unwrap_err(), e);
    }

    #[test]
    fn malformed_payload_consumes_only_its_frame() {
        let mut d = Decoder::new();
        let bad = br#"{"type":"teleport","seq":1}"#;
        d.push(&(bad.len() as u32).to_be_bytes());
        d.push(bad);
        d.push(&encode(&Message::Ack { seq: 1 }).unwrap());
        let e = d.next().unwrap_err().to_string();
        assert!(e.contains("unknown variant `teleport`"), "{e}");
        assert_eq!(d.next().unwrap(), Some(Message::Ack { seq: 1 }));
    }

    #[test]
    fn bad_json_and_empty_payload_are_malformed() {
        for payload in [&b""[..], b"not json", br#"{"type":"ack"}"#] {
            let mut d = Decoder::new();
            d.push(&(payload.len() as u32).to_be_bytes());
            d.push(payload);
            assert!(
                matches!(d.next(), Err(FrameError::Malformed { .. })),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn exactly_max_frame_is_accepted_as_a_length() {
        let mut d = Decoder::new();
        d.push(&(MAX_FRAME as u32).to_be_bytes());
        assert_eq!(d.next(), Ok(None));
    }
}
