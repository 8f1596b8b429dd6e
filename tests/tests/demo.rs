//! `meshgw demo`: the README's first command. `--once` checks every step and
//! exits 0; a running demo shows its three clusters in `meshgw status`; Ctrl-C
//! (SIGINT to the process group, or to the demo alone) leaves no process and
//! no directory behind.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
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

/// A demo started in its own process group, run until its script is done.
/// Dropping it kills the whole group and removes the demo's directory, so a
/// failing test leaves nothing behind either.
struct Running {
    child: Child,
    /// The demo's directory, once it printed it.
    dir: String,
    /// Lines the demo prints, read by a thread.
    lines: Receiver<String>,
    /// What the demo printed after saying it keeps running.
    after: Vec<String>,
}

impl Running {
    fn start() -> Result<Self> {
        let mut child = Command::new(bin::path())
            .arg("demo")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Running {
            child,
            dir: String::new(),
            lines,
            after: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seen = Vec::new();
        // Read until the demo says it keeps running (every step done).
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match demo.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "demo did not reach its running state in 90 s:\n{}",
                        seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("demo ended before its running state:\n{}", seen.join("\n"))
                }
            };
            if let Some(d) = line
                .trim()
                .strip_prefix("files (PKI, configs, logs, stores): ")
            {
                demo.dir = d.to_string();
            }
            if line.contains("The mesh keeps running") {
                break;
            }
            seen.push(line);
        }
        ensure!(!demo.dir.is_empty(), "demo did not print its directory");
        Ok(demo)
    }

    /// Waits up to `limit` for a line printed after the script that satisfies `want`.
    fn wait_for_line(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> Result<()> {
        let deadline = Instant::now() + limit;
        while !self.after.iter().any(|l| want(l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.after.push(line),
                Err(_) => bail!(
                    "no such line within {limit:?} after the script:\n{}",
                    self.after.join("\n")
                ),
            }
        }
        Ok(())
    }

    /// Meshgw processes (gateways and sidecars) started from the demo's configs.
    fn processes(&self) -> Result<usize> {
        let out = Command::new("pgrep")
            .args(["-f", "--", &format!("--config {}/", self.dir)])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().count())
    }

    /// Sends SIGINT to `target` (a pid, or `-pgid` for the whole group) and
    /// waits for the demo to exit.
    fn interrupt(&mut self, target: &str) -> Result<ExitStatus> {
        Command::new("kill").args(["-INT", "--", target]).status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("demo did not exit within 20s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_nothing_left(&self) -> Result<()> {
        // Children are reaped by the demo before it exits; pgrep sees none.
        ensure!(
            self.processes()? == 0,
            "meshgw processes left behind after Ctrl-C"
        );
        ensure!(
            !Path::new(&self.dir).exists(),
            "demo directory {} left behind after Ctrl-C",
            self.dir
        );
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The whole group: the demo and any gateway or sidecar it left.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        if !self.dir.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The demo's three gateways and five sidecars.
const DEMO_PROCESSES: usize = 8;

#[test]
fn a_running_demo_shows_in_status_and_ctrl_c_leaves_nothing_behind() -> Result<()> {
    let mut demo = Running::start()?;
    ensure!(
        demo.processes()? == DEMO_PROCESSES,
        "expected {DEMO_PROCESSES} demo processes (3 gateways, 5 sidecars) before Ctrl-C"
    );
    let cfg = format!("{}/aws-us-east-1.toml", demo.dir);
    let json: serde_json::Value =
        serde_json::from_str(&bin::run_ok(&["status", "--config", &cfg, "--json"])?)?;
    let peers = json["peers"].as_array().context("peers")?;
    for name in ["gcp-europe-west1", "vm-onprem"] {
        ensure!(
            peers
                .iter()
                .any(|p| p["name"] == name && p["connected"] == true),
            "status does not show the tunnel to {name} up: {json:#}"
        );
    }
    let row =
        |svc: &str, cluster: &str, local: bool| {
            json["services"].as_array().into_iter().flatten().any(|s| {
                s["name"] == svc
                    && s["clusters"].as_array().into_iter().flatten().any(|c| {
                        c["cluster"] == cluster && c["local"] == local && c["healthy"] == 1
                    })
            })
        };
    for (svc, cluster, local) in [
        ("payments", "aws-us-east-1", true),
        ("payments", "gcp-europe-west1", false),
        ("checkout", "aws-us-east-1", true),
        ("orders", "vm-onprem", false),
        ("inventory", "gcp-europe-west1", false),
    ] {
        ensure!(
            row(svc, cluster, local),
            "status misses {svc} in {cluster}: {json:#}"
        );
    }
    let table = bin::run_ok(&["status", "--config", &cfg])?;
    for name in ["gcp-europe-west1", "vm-onprem", "inventory", "orders"] {
        ensure!(table.contains(name), "status table misses {name}:\n{table}");
    }
    // Live traffic keeps flowing once the script is done.
    demo.wait_for_line(Duration::from_secs(20), |l| {
        l.contains("→ inventory") && l.contains("ok, served by gcp-europe-west1")
    })?;
    // Ctrl-C in a terminal signals the whole foreground process group.
    let group = format!("-{}", demo.child.id());
    let status = demo.interrupt(&group)?;
    ensure!(status.success(), "demo exited with {status} on Ctrl-C");
    demo.check_nothing_left()
}

#[test]
fn sigint_to_the_demo_alone_stops_its_children_too() -> Result<()> {
    let mut demo = Running::start()?;
    ensure!(
        demo.processes()? == DEMO_PROCESSES,
        "expected {DEMO_PROCESSES} demo processes before SIGINT"
    );
    let pid = demo.child.id().to_string();
    let status = demo.interrupt(&pid)?;
    ensure!(status.success(), "demo exited with {status} on SIGINT");
    demo.check_nothing_left()
}
