//! Value checks shared by config kinds: names, addresses, SPIFFE IDs, and
//! files that must exist (and, for private keys, stay private).

use std::path::Path;

use crate::error::Diag;

/// Returns whether `s` is a DNS label: 1-63 of `[a-z0-9-]`, not starting or
/// ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Returns whether `s` is a valid SPIFFE trust domain: dot-separated DNS
/// labels, at most 255 bytes.
pub fn is_trust_domain(s: &str) -> bool {
    s.len() <= 255 && s.split('.').all(is_dns_label)
}

/// Checks a `host:port` address (host a name or IP, `[v6]` bracketed).
/// Returns why it is invalid.
pub fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected \"host:port\", e.g. \"203.0.113.7:7443\"".into());
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err("bad host; write \"host:port\" (IPv6 as \"[::1]:7443\")".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err(format!("bad port `{port}`; use 1-65535")),
    }
}

/// The hint appended to "file not found" for files the dev PKI can create.
pub(crate) const PKI_HINT: &str = "create it with `meshgw ca ...` or fix the path";

/// Records an error unless `path` is an existing, readable regular file.
pub(crate) fn check_file(diag: &mut Diag, line: Option<usize>, key: &str, path: &Path, hint: &str) {
    let p = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            diag.push(line, key, format!("file not found: {p} ({hint})"));
            return;
        }
        Err(e) => {
            diag.push(
                line,
                key,
                format!(
                    "cannot access {p}: {e}; check the path and the permissions of its directories"
                ),
            );
            return;
        }
        Ok(m) if !m.is_file() => {
            diag.push(
                line,
                key,
                format!("{p} is not a regular file; point `{key}` at a PEM file"),
            );
            return;
        }
        Ok(_) => {}
    }
    if let Err(e) = std::fs::File::open(path) {
        let msg =
            format!("cannot read {p}: {e}; give the gateway's user read access or fix the path");
        diag.push(line, key, msg);
    }
}

/// Like [`check_file`], and records an error if the private key is
/// accessible by group or others.
pub(crate) fn check_private_key(diag: &mut Diag, line: Option<usize>, key: &str, path: &Path) {
    let before = diag.error_count();
    check_file(diag, line, key, path, PKI_HINT);
    if diag.error_count() != before {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                let p = path.display();
                let msg = format!(
                    "private key {p} is readable by its group or others (mode {mode:04o}); run: chmod 600 {p}"
                );
                diag.push(line, key, msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_domains() {
        assert!(is_dns_label("aws-us-east-1"));
        assert!(!is_dns_label("AWS"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_trust_domain("mesh.example"));
        assert!(!is_trust_domain("mesh..example"));
        assert!(!is_trust_domain("Mesh.example"));
    }

    #[test]
    fn host_ports() {
        assert!(check_host_port("203.0.113.7:7443").is_ok());
        assert!(check_host_port("gw.example.com:7443").is_ok());
        assert!(check_host_port("[::1]:7443").is_ok());
        assert!(check_host_port("gw.example.com").is_err());
        assert!(check_host_port(":7443").is_err());
        assert!(check_host_port("gw:0").is_err());
        assert!(check_host_port("gw:99999").is_err());
    }
}
