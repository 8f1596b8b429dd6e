//! Locating and running the `meshgw` binary built by `cargo build`.

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// Returns the path of the `meshgw` binary: `$MESHGW_BIN`, or
/// `target/<profile>/meshgw` next to the running test or tool.
pub fn path() -> PathBuf {
    if let Ok(p) = std::env::var("MESHGW_BIN") {
        return PathBuf::from(p);
    }
    // Tests run from target/<profile>/deps/, tools from target/<profile>/.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    let p = [dir, dir.parent().unwrap_or(dir)]
        .iter()
        .map(|d| d.join("meshgw"))
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join("meshgw"));
    assert!(
        p.exists(),
        "{} not found: build it first with `cargo build -p meshgw-gateway` (or set MESHGW_BIN)",
        p.display()
    );
    p
}

/// Runs `meshgw ARGS...` to completion and returns its output.
pub fn run(args: &[&str]) -> Result<Output> {
    Command::new(path())
        .args(args)
        .output()
        .with_context(|| format!("running meshgw {}", args.join(" ")))
}

/// Runs `meshgw ARGS...` and fails unless it exits 0.
pub fn run_ok(args: &[&str]) -> Result<String> {
    let out = run(args)?;
    if !out.status.success() {
        bail!(
            "meshgw {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
