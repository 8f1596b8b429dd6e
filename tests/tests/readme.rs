//! The README's quick start works as written: every line of its quickstart
//! block runs (against copies of examples/quickstart), the two gateways
//! federate, and `meshgw status` shows the peer's tunnel up.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshgw_tests::{bin, wait};

struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn quickstart_lines(readme: &str) -> Result<Vec<String>> {
    let start = readme
        .find("<!-- quickstart")
        .context("README has no quickstart block")?;
    let block = &readme[start..];
    let body = block
        .split("```sh\n")
        .nth(1)
        .context("quickstart block has no sh fence")?;
    let body = body.split("```").next().context("unterminated fence")?;
    Ok(body
        .lines()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_works_as_written() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repo root")?;
    let lines = quickstart_lines(&std::fs::read_to_string(root.join("README.md"))?)?;
    let dir = tempfile::tempdir()?;
    let bin_dir = bin::path().parent().context("bin dir")?.to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bg = Background(Vec::new());
    let mut status_line = None;
    for line in &lines {
        if let Some(sub) = line.strip_prefix("cd ") {
            for f in ["east.toml", "west.toml"] {
                std::fs::copy(root.join(sub).join(f), dir.path().join(f))?;
            }
            continue;
        }
        let sh = |cmd: &str| {
            let mut c = Command::new("bash");
            c.args(["-c", cmd])
                .current_dir(dir.path())
                .env("PATH", &path);
            c
        };
        if let Some(cmd) = line.strip_suffix('&') {
            bg.0.push(sh(&format!("exec {}", cmd.trim())).spawn()?);
        } else if line.starts_with("meshgw status") {
            status_line = Some(line.clone());
        } else {
            let out = sh(line).output()?;
            ensure!(
                out.status.success(),
                "README line failed: {line}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let Some(status) = status_line else {
        bail!("the quickstart block has no `meshgw status` line")
    };
    let out = wait::until(
        "status to show west's tunnel up",
        Duration::from_secs(20),
        || {
            let out = Command::new("bash")
                .args(["-c", &status])
                .current_dir(dir.path())
                .env("PATH", &path)
                .output();
            async move {
                let out = out?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let up = text
                    .lines()
                    .any(|l| l.starts_with("west ") && l.split_whitespace().nth(1) == Some("up"));
                Ok(up.then_some(text))
            }
        },
    )
    .await;
    let logs = || std::fs::read_to_string(dir.path().join("east.log")).unwrap_or_default();
    out.map_err(|e| e.context(logs()))?;
    Ok(())
}
