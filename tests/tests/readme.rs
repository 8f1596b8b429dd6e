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

fn logs(dir: &Path) -> String {
    ["east.log", "west.log", "payments.log", "orders.log"]
        .iter()
        .map(|f| {
            format!(
                "== {f}\n{}",
                std::fs::read_to_string(dir.join(f)).unwrap_or_default()
            )
        })
        .collect()
}

async fn wait_status(status: &str, dir: &Path, path: &str) -> Result<()> {
    wait::until(
        "status to show west's tunnel up",
        Duration::from_secs(20),
        || {
            let out = Command::new("bash")
                .args(["-c", status])
                .current_dir(dir)
                .env("PATH", path)
                .output();
            async move {
                let out = out?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let up = text
                    .lines()
                    .any(|l| l.starts_with("west ") && l.split_whitespace().nth(1) == Some("up"));
                Ok(up.then_some(()))
            }
        },
    )
    .await
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
    let mut curl_line = None;
    for line in &lines {
        if let Some(sub) = line.strip_prefix("cd ") {
            for f in std::fs::read_dir(root.join(sub))? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "toml") {
                    std::fs::copy(&f, dir.path().join(f.file_name().context("file name")?))?;
                }
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
            // Everything after it depends on the tunnel: wait for it here.
            wait_status(line, dir.path(), &path)
                .await
                .map_err(|e| e.context(logs(dir.path())))?;
        } else if line.starts_with("curl ") {
            curl_line = Some(line.clone());
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
    ensure!(
        status_line.is_some(),
        "the quickstart block has no `meshgw status` line"
    );
    let Some(curl) = curl_line else {
        bail!("the quickstart block has no curl call through a sidecar")
    };
    // The call crosses east sidecar -> east gateway -> QUIC -> west gateway -> west sidecar -> app.
    let body = wait::until(
        "the README's curl to reach payments in west",
        Duration::from_secs(30),
        || {
            let out = Command::new("bash")
                .args(["-c", &curl])
                .current_dir(dir.path())
                .env("PATH", &path)
                .output();
            async move {
                let out = out?;
                let body = String::from_utf8_lossy(&out.stdout).into_owned();
                Ok((out.status.success() && body.contains("Directory listing")).then_some(body))
            }
        },
    )
    .await
    .map_err(|e| e.context(logs(dir.path())))?;
    ensure!(
        body.contains("east-orders.toml"),
        "payments' app did not answer from the quickstart directory: {body}"
    );
    Ok(())
}
