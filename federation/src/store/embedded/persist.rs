//! On-disk persistence of the embedded store: an append-only log of committed
//! records (`wal`), and a compacted `snapshot` that replaces the log's prefix.
//!
//! Every record carries a sequence number; the snapshot records the last one
//! it includes, so a crash between writing the snapshot and truncating the
//! log only makes replay skip records it already has.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::time::Instant;

use super::codec::{
    Dec, Enc, FRAME_HEADER, MAX_FRAME, Record, check_counter, check_lease_id, check_seq, check_ttl,
    crc32, frame,
};
use super::state::{State, Stored};
use crate::store::StoreError;

const WAL: &str = "wal";
const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";

/// The open log file.
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    len: u64,
    seq: u64,
    fsync: bool,
    snapshot_after: u64,
}

fn corrupt(path: &Path, offset: usize, what: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{} is damaged at byte offset {offset}: {what}. The data there cannot be trusted: \
         restore the data dir from a backup, or move it aside to start empty \
         (sidecars re-register their instances and peers re-send their imports)",
        path.display()
    ))
}

/// Loads the snapshot and replays the log under `dir`; returns the state and
/// the log, opened for appending.
pub(crate) fn load(
    dir: &Path,
    history_limit: usize,
    fsync: bool,
    snapshot_after: u64,
) -> Result<(State, Wal), StoreError> {
    let now = Instant::now();
    let mut state = State::new(history_limit);
    let snap_path = dir.join(SNAPSHOT);
    let mut seq = 0;
    if snap_path.exists() {
        let bytes = fs::read(&snap_path)?;
        seq = decode_snapshot(&bytes, &mut state, now).map_err(|e| corrupt(&snap_path, 0, &e))?;
        state.set_compact_rev(state.revision + 1);
    }
    let _ = fs::remove_file(dir.join(SNAPSHOT_TMP));

    let wal_path = dir.join(WAL);
    let bytes = match fs::read(&wal_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut off = 0;
    let mut torn = None;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if rest.iter().all(|&b| b == 0) {
            torn = Some("zero-filled tail");
            break;
        }
        if rest.len() < FRAME_HEADER {
            torn = Some("incomplete record header");
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_FRAME || rest.len() < FRAME_HEADER + len {
            torn = Some("record extends past the end of the file");
            break;
        }
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
        let last = rest.len() == FRAME_HEADER + len;
        if crc32(payload) != crc {
            if last {
                torn = Some("checksum mismatch in the last record");
                break;
            }
            return Err(corrupt(&wal_path, off, "record checksum mismatch"));
        }
        let (rseq, rec) = Record::decode(payload).map_err(|e| corrupt(&wal_path, off, &e))?;
        if rseq > seq {
            state.apply(&rec, now);
            seq = rseq;
        }
        off += FRAME_HEADER + len;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&wal_path)?;
    if let Some(why) = torn {
        tracing::warn!(
            file = %wal_path.display(),
            offset = off,
            dropped_bytes = bytes.len() - off,
            "dropping a torn last record ({why}); the write it held never returned success"
        );
        file.set_len(off as u64)?;
        file.sync_all()?;
    }
    let wal = Wal {
        dir: dir.to_path_buf(),
        file,
        len: off as u64,
        seq,
        fsync,
        snapshot_after,
    };
    Ok((state, wal))
}

impl Wal {
    /// Appends `rec`, flushed to disk (fsync'd unless disabled) before returning.
    pub(crate) fn append(&mut self, rec: &Record) -> Result<(), StoreError> {
        let bytes = frame(&rec.encode(self.seq + 1));
        let res = self.file.write_all(&bytes).and_then(|()| {
            if self.fsync {
                self.file.sync_data()
            } else {
                self.file.flush()
            }
        });
        if let Err(e) = res {
            // Do not leave a partial record in front of the next one.
            let _ = self.file.set_len(self.len);
            return Err(e.into());
        }
        self.seq += 1;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Returns whether the log has grown enough to be folded into a snapshot.
    pub(crate) fn wants_snapshot(&self) -> bool {
        self.len >= self.snapshot_after
    }

    /// Returns the snapshot of `state` as of the last logged record, framed.
    pub(crate) fn encode_snapshot(&self, state: &State) -> Vec<u8> {
        frame(&encode_snapshot(state, self.seq))
    }

    /// Writes a snapshot made by [`Wal::encode_snapshot`] (temp file, fsync,
    /// rename) and empties the log. Call it with no record logged since.
    pub(crate) fn write_snapshot(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        File::open(&self.dir)?.sync_all()?;
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }
}

fn encode_snapshot(state: &State, seq: u64) -> Vec<u8> {
    let mut e = Enc::default();
    e.u64(seq);
    e.i64(state.revision);
    e.i64(state.next_lease);
    e.u64(state.kvs.len() as u64);
    for (k, s) in &state.kvs {
        e.bytes(k.as_bytes());
        e.bytes(&s.value);
        e.i64(s.create_revision);
        e.i64(s.mod_revision);
        e.i64(s.version);
        e.i64(s.lease);
    }
    let mut leases: Vec<_> = state.leases.iter().collect();
    leases.sort_by_key(|(id, _)| **id);
    e.u64(leases.len() as u64);
    for (id, l) in leases {
        e.i64(*id);
        e.u64(l.ttl_secs);
    }
    e.0
}

/// Fills `state` from a framed snapshot; returns its sequence number.
fn decode_snapshot(bytes: &[u8], state: &mut State, now: Instant) -> Result<u64, String> {
    if bytes.len() < FRAME_HEADER {
        return Err("file too short".into());
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let payload = &bytes[FRAME_HEADER..];
    if payload.len() != len || crc32(payload) != crc {
        return Err("length or checksum mismatch".into());
    }
    let mut d = Dec(payload);
    let seq = d.u64()?;
    check_seq(seq)?;
    state.revision = d.i64()?;
    check_counter("revision", state.revision)?;
    state.next_lease = d.i64()?;
    check_lease_id(state.next_lease).map_err(|e| format!("next {e}"))?;
    let mut keys = Vec::new();
    for _ in 0..d.u64()? {
        let key = d.string()?;
        let stored = Stored {
            value: d.bytes()?,
            create_revision: d.i64()?,
            mod_revision: d.i64()?,
            version: d.i64()?,
            lease: d.i64()?,
        };
        check_counter("create revision", stored.create_revision)?;
        check_counter("mod revision", stored.mod_revision)?;
        check_counter("version", stored.version)?;
        check_counter("lease id", stored.lease)?;
        keys.push((key.clone(), stored.lease));
        state.kvs.insert(key, stored);
    }
    for _ in 0..d.u64()? {
        let id = d.i64()?;
        let ttl_secs = d.u64()?;
        check_lease_id(id)?;
        check_ttl(ttl_secs)?;
        state.apply(&Record::Grant { id, ttl_secs }, now);
    }
    for (key, lease) in keys {
        if let Some(l) = state.leases.get_mut(&lease) {
            l.keys.insert(key);
        }
    }
    d.finish()?;
    Ok(seq)
}
