//! Locating and running the `meshgw` binary built by `cargo build`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

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

/// A command every gateway and sidecar the harness starts runs under (e.g.
/// `valgrind --tool=callgrind`), set once per process by a benchmark.
static WRAPPER: OnceLock<Vec<String>> = OnceLock::new();

/// Makes every gateway and sidecar started from now on run under `wrapper`
/// (program and arguments, before `meshgw`). Fails if one was set already.
pub fn set_wrapper(wrapper: Vec<String>) -> Result<()> {
    WRAPPER
        .set(wrapper)
        .map_err(|_| anyhow::anyhow!("a process wrapper is set already"))
}

/// Returns a command that runs `meshgw`, under the wrapper if one is set.
pub fn command() -> Command {
    match WRAPPER.get() {
        Some(w) if !w.is_empty() => {
            let mut c = Command::new(&w[0]);
            c.args(&w[1..]).arg(path());
            c
        }
        _ => Command::new(path()),
    }
}

/// How long a started gateway or sidecar may take to become ready: 20 s,
/// or 180 s under a wrapper (valgrind runs them tens of times slower).
pub fn startup_limit() -> Duration {
    match WRAPPER.get() {
        Some(w) if !w.is_empty() => Duration::from_secs(180),
        _ => Duration::from_secs(20),
    }
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
