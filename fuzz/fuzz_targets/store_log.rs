//! The embedded store opened on a data dir whose `snapshot` and `wal` files
//! are built from the input, through the public `EmbeddedStore::open_with`
//! (no fuzzing hook in the crate). Opening must never panic: it either fails
//! with `StoreError::Corrupt` and a message, or recovers — and a recovered
//! store must take a write and open again with that write in it.
//!
//! Input layout (`flags` is the first byte):
//! - bit 0: a `snapshot` file is written; its payload is the next
//!   `u16 LE` length-prefixed bytes;
//! - bit 1: raw mode — the snapshot payload and the rest of the input are
//!   written as they are. Otherwise (structured mode, which reaches the
//!   record decoder and replay) the snapshot payload is framed with a correct
//!   checksum and the rest is read as `u16 LE` length-prefixed record
//!   payloads, each framed with a correct checksum; a prefix longer than what
//!   is left, and any last byte, go to the log as they are (a torn tail);
//! - bit 2 (structured mode): the snapshot frame's checksum is flipped.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshgw_federation::store::embedded::{EmbeddedOptions, EmbeddedStore};
use meshgw_federation::store::{CatalogStore, StoreError};
use tokio::runtime::Runtime;

const PROBE: &str = "/fuzz/probe";

/// Each process's data dir is `PREFIX` + its pid.
const PREFIX: &str = "meshgw-fuzz-store-";

/// The store's frame checksum (CRC-32 IEEE), as `codec::crc32` computes it.
fn crc32(data: &[u8]) -> u32 {
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

fn frame(out: &mut Vec<u8>, payload: &[u8], flip_crc: bool) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32(payload) ^ if flip_crc { 1 } else { 0 };
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits off a `u16 LE` length-prefixed chunk, or `None` (input unchanged)
/// if the prefix or the chunk is incomplete.
fn chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::from(u16::from_le_bytes([*data.first()?, *data.get(1)?]));
    let c = data.get(2..2 + n)?;
    *data = &data[2 + n..];
    Some(c)
}

/// Returns `(snapshot file, wal file)` built from the input.
fn files(data: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return (None, Vec::new());
    };
    let raw = flags & 2 != 0;
    let snapshot = (flags & 1 != 0).then(|| {
        let payload = chunk(&mut rest).unwrap_or_else(|| std::mem::take(&mut rest));
        if raw {
            payload.to_vec()
        } else {
            let mut f = Vec::new();
            frame(&mut f, payload, flags & 4 != 0);
            f
        }
    });
    if raw {
        return (snapshot, rest.to_vec());
    }
    let mut wal = Vec::new();
    while let Some(payload) = chunk(&mut rest) {
        frame(&mut wal, payload, false);
    }
    wal.extend_from_slice(rest);
    (snapshot, wal)
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs when there is one: the store writes its LOCK on every open.
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        // Crashes and `-fork` workers leave their dirs behind: remove those
        // of processes that are gone.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
                if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        base.join(format!("{PREFIX}{}", std::process::id()))
    })
}

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        fsync: false,
        ..EmbeddedOptions::default()
    }
}

/// Opens the store, retrying while the previous instance's lease task still
/// holds it (it may be inside a blocking `expire_due` when the store is dropped).
async fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
    let mut tries = 0;
    loop {
        match EmbeddedStore::open_with(dir, options()).await {
            Err(StoreError::Other(m)) if m.contains("in use") && tries < 1000 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            res => return res,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = data_dir();
    let (snapshot, wal) = files(data);
    std::fs::create_dir_all(dir).expect("fuzz data dir");
    for name in ["snapshot", "snapshot.tmp", "wal"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    if let Some(s) = &snapshot {
        std::fs::write(dir.join("snapshot"), s).expect("write snapshot");
    }
    std::fs::write(dir.join("wal"), &wal).expect("write wal");

    runtime().block_on(async {
        let store = match open(dir).await {
            Ok(store) => store,
            Err(StoreError::Corrupt(msg)) => {
                assert!(!msg.is_empty(), "Corrupt with an empty message");
                return;
            }
            Err(e) => panic!("open failed with a non-Corrupt error: {e:?}"),
        };
        // A recovered store is usable, and what it writes survives a reopen.
        store.range("").await.expect("range after open");
        store
            .put(PROBE, b"probe".to_vec(), None)
            .await
            .expect("put after open");
        drop(store);
        let again = match open(dir).await {
            Ok(s) => s,
            Err(e) => panic!("reopen after a clean recovery and one put failed: {e:?}"),
        };
        let probe = again.get(PROBE).await.expect("get after reopen");
        assert_eq!(
            probe.map(|kv| kv.value),
            Some(b"probe".to_vec()),
            "the put made after recovery is lost on reopen"
        );
    });
});
