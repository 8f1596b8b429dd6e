//! Writing PKI files safely and reading CAs back for signing.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rcgen::{Issuer, KeyPair};

use crate::error::PkiError;
use crate::load::{load_certs, load_key};

/// Mode of private key files.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode of certificate files.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `contents` to `path` with permission `mode`, atomically.
///
/// The data goes to a fresh temporary file created with `mode` (never wider),
/// which is then renamed over `path`; an existing file with a wider mode is
/// therefore replaced, not reused.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Loads a CA certificate and its key as an rcgen [`Issuer`].
///
/// Returns the issuer and the CA certificate file's PEM text (to append to chains).
pub(crate) fn load_issuer(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    let bad = |path: &Path, reason: String| PkiError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let certs = load_certs(cert_path)?;
    let key_der = load_key(key_path)?;
    let key = KeyPair::try_from(&key_der).map_err(|e| bad(key_path, e.to_string()))?;
    let issuer =
        Issuer::from_ca_cert_der(&certs[0], key).map_err(|e| bad(cert_path, e.to_string()))?;
    let pem = std::fs::read_to_string(cert_path).map_err(|e| bad(cert_path, e.to_string()))?;
    Ok((issuer, pem))
}
