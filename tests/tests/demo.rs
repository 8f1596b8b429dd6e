//! `meshgw demo`: the README's first command. `--once` checks every step and
//! exits 0; Ctrl-C (SIGINT) on a running demo leaves no process and no
//! directory behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use meshgw_tests::bin;

#[test]
fn demo_once_checks_every_step_and_exits_zero() -> Result<()> {
    let out = Command::new(bin::path())
        .args(["demo", "--once"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "demo --once failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("every step happened as expected"),
        "demo did not confirm its steps:\n{stdout}"
    );
    let dir = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("files (PKI, configs, logs, stores): ")
        })
        .context("demo did not print its directory")?;
    ensure!(
        !std::path::Path::new(dir).exists(),
        "demo left {dir} behind"
    );
    Ok(())
}

#[test]
fn ctrl_c_stops_every_process_and_removes_the_directory() -> Result<()> {
    let mut child = Command::new(bin::path())
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut dir = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read until the demo says it keeps running (every step done, gateways up).
    for line in lines.by_ref() {
        let line = line?;
        if let Some(d) = line
            .trim()
            .strip_prefix("files (PKI, configs, logs, stores): ")
        {
            dir = Some(d.to_string());
        }
        if line.contains("The mesh keeps running") {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("demo did not reach its running state");
        }
    }
    let dir = dir.context("demo did not print its directory")?;
    let running = |d: &str| -> Result<usize> {
        let out = Command::new("pgrep")
            .args(["-f", &format!("gateway --config {d}")])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().count())
    };
    ensure!(
        running(&dir)? == 3,
        "expected 3 demo gateways before Ctrl-C"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("demo did not exit within 15s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(status.success(), "demo exited with {status} on SIGINT");
    ensure!(
        running(&dir)? == 0,
        "gateway processes left behind after Ctrl-C"
    );
    ensure!(
        !std::path::Path::new(&dir).exists(),
        "demo directory {dir} left behind after Ctrl-C"
    );
    Ok(())
}
