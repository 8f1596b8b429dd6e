//! Binary encoding of log records and snapshots, and the checksummed frame
//! around each of them: `[len: u32 LE][crc32: u32 LE][payload: len bytes]`.

use crate::store::{LeaseId, Revision};

/// Bytes of a frame header (length + checksum).
pub(crate) const FRAME_HEADER: usize = 8;

/// Frames larger than this are treated as damage, not as a real record.
pub(crate) const MAX_FRAME: usize = 256 * 1024 * 1024;

/// One change to one key, as written to the log and replayed at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Sets a key (creating it or bumping its version), attached to `lease` (0: none).
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    /// Removes a key that exists.
    Delete { key: String },
}

/// One committed operation. Replaying the records in order rebuilds the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// Key changes committed together at revision `rev`.
    Write { rev: Revision, effects: Vec<Effect> },
    /// A lease was granted.
    Grant { id: LeaseId, ttl_secs: u64 },
    /// A lease ended (revoked or expired); `effects` delete its keys at `rev`
    /// (`rev` is unused when there were none).
    EndLease {
        id: LeaseId,
        rev: Revision,
        effects: Vec<Effect>,
    },
}

/// Returns the CRC-32 (IEEE) of `data`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Wraps `payload` in a frame.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// An append-only byte writer for payloads.
#[derive(Default)]
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
}

/// A reader over a payload; every method fails with a short reason.
pub(crate) struct Dec<'a>(pub(crate) &'a [u8]);

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated payload (wanted {n} more bytes)"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = usize::try_from(self.u64()?).map_err(|_| "length overflow".to_string())?;
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?).map_err(|_| "key is not UTF-8".to_string())
    }
    pub(crate) fn finish(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.0.len()))
        }
    }
}

fn enc_effects(e: &mut Enc, effects: &[Effect]) {
    e.u64(effects.len() as u64);
    for fx in effects {
        match fx {
            Effect::Put { key, value, lease } => {
                e.u8(1);
                e.bytes(key.as_bytes());
                e.bytes(value);
                e.i64(*lease);
            }
            Effect::Delete { key } => {
                e.u8(2);
                e.bytes(key.as_bytes());
            }
        }
    }
}

fn dec_effects(d: &mut Dec<'_>) -> Result<Vec<Effect>, String> {
    let n = d.u64()?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(match d.u8()? {
            1 => Effect::Put {
                key: d.string()?,
                value: d.bytes()?,
                lease: d.i64()?,
            },
            2 => Effect::Delete { key: d.string()? },
            t => return Err(format!("unknown effect tag {t}")),
        });
    }
    Ok(out)
}

impl Record {
    /// Encodes the record with its sequence number (unframed).
    pub(crate) fn encode(&self, seq: u64) -> Vec<u8> {
        let mut e = Enc::default();
        e.u64(seq);
        match self {
            Record::Write { rev, effects } => {
                e.u8(1);
                e.i64(*rev);
                enc_effects(&mut e, effects);
            }
            Record::Grant { id, ttl_secs } => {
                e.u8(2);
                e.i64(*id);
                e.u64(*ttl_secs);
            }
            Record::EndLease { id, rev, effects } => {
                e.u8(3);
                e.i64(*id);
                e.i64(*rev);
                enc_effects(&mut e, effects);
            }
        }
        e.0
    }

    /// Decodes a payload written by [`Record::encode`]; returns `(seq, record)`.
    pub(crate) fn decode(payload: &[u8]) -> Result<(u64, Record), String> {
        let mut d = Dec(payload);
        let seq = d.u64()?;
        let rec = match d.u8()? {
            1 => Record::Write {
                rev: d.i64()?,
                effects: dec_effects(&mut d)?,
            },
            2 => Record::Grant {
                id: d.i64()?,
                ttl_secs: d.u64()?,
            },
            3 => Record::EndLease {
                id: d.i64()?,
                rev: d.i64()?,
                effects: dec_effects(&mut d)?,
            },
            t => return Err(format!("unknown record tag {t}")),
        };
        d.finish()?;
        check_seq(seq)?;
        match &rec {
            Record::Write { rev, .. } => check_counter("revision", *rev)?,
            Record::Grant { id, ttl_secs } => {
                check_lease_id(*id)?;
                check_ttl(*ttl_secs)?;
            }
            Record::EndLease { id, rev, .. } => {
                check_lease_id(*id)?;
                check_counter("revision", *rev)?;
            }
        }
        Ok((seq, rec))
    }
}

/// Largest sequence number, revision or lease id accepted from disk. The
/// store only ever counts up by one from 1, so anything near the type's
/// limit is damage that a checksum happened to miss; accepting it would make
/// the next increment wrap (and lose a write on the next replay).
pub(crate) const MAX_COUNTER: u64 = 1 << 62;

/// Longest lease TTL accepted from disk (ten years; the API clamps to minutes).
pub(crate) const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// Rejects a sequence number no store could have written.
pub(crate) fn check_seq(seq: u64) -> Result<(), String> {
    if seq >= MAX_COUNTER {
        return Err(format!("sequence number {seq} is out of range"));
    }
    Ok(())
}

/// Rejects a revision or lease id no store could have written.
pub(crate) fn check_counter(what: &str, v: i64) -> Result<(), String> {
    if v < 0 || v as u64 >= MAX_COUNTER {
        return Err(format!("{what} {v} is out of range"));
    }
    Ok(())
}

/// Rejects a granted lease id no store could have written: ids start at 1,
/// and 0 means "no lease" (a lease 0 would capture every lease-less key and
/// delete it when it expired; found by the store_log fuzz target).
pub(crate) fn check_lease_id(id: i64) -> Result<(), String> {
    if id == 0 {
        return Err("lease id 0 is reserved for \"no lease\"".into());
    }
    check_counter("lease id", id)
}

/// Rejects a lease TTL no store could have written.
pub(crate) fn check_ttl(ttl: u64) -> Result<(), String> {
    if ttl > MAX_TTL_SECS {
        return Err(format!("lease TTL of {ttl} s is out of range"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn records_round_trip() {
        let recs = [
            Record::Write {
                rev: 7,
                effects: vec![
                    Effect::Put {
                        key: "/a".into(),
                        value: b"v".to_vec(),
                        lease: 3,
                    },
                    Effect::Delete { key: "/b".into() },
                ],
            },
            Record::Grant { id: 9, ttl_secs: 2 },
            Record::EndLease {
                id: 9,
                rev: 8,
                effects: vec![],
            },
        ];
        for (i, r) in recs.iter().enumerate() {
            let (seq, back) = Record::decode(&r.encode(i as u64)).unwrap();
            assert_eq!((seq, &back), (i as u64, r));
        }
    }

    #[test]
    fn decode_rejects_values_no_store_writes() {
        // Found by the store_log fuzz target: a huge TTL overflowed the clock,
        // and a sequence number at u64::MAX made the next append wrap to 0.
        let huge_ttl = Record::Grant {
            id: 1,
            ttl_secs: u64::MAX,
        }
        .encode(1);
        assert!(Record::decode(&huge_ttl).unwrap_err().contains("TTL"));
        let max_seq = Record::Grant { id: 1, ttl_secs: 1 }.encode(u64::MAX);
        assert!(Record::decode(&max_seq).unwrap_err().contains("sequence"));
        let neg_rev = Record::Write {
            rev: -1,
            effects: vec![],
        }
        .encode(1);
        assert!(Record::decode(&neg_rev).unwrap_err().contains("revision"));
        // Also found by it: lease id 0 ("no lease") granted from disk.
        let lease0 = Record::Grant {
            id: 0,
            ttl_secs: 10,
        }
        .encode(1);
        assert!(Record::decode(&lease0).unwrap_err().contains("lease id 0"));
        let end0 = Record::EndLease {
            id: 0,
            rev: 1,
            effects: vec![],
        }
        .encode(1);
        assert!(Record::decode(&end0).unwrap_err().contains("lease id 0"));
        let ok = Record::Grant {
            id: 1,
            ttl_secs: MAX_TTL_SECS,
        }
        .encode(MAX_COUNTER - 1);
        assert!(Record::decode(&ok).is_ok());
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut p = Record::Grant { id: 1, ttl_secs: 1 }.encode(0);
        p.push(0);
        assert!(Record::decode(&p).unwrap_err().contains("trailing"));
    }
}
