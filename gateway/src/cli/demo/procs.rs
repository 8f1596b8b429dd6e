//! The demo's gateway and sidecar processes: started from this same binary,
//! logs to files, killed when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A `meshgw gateway` or `meshgw sidecar` child process.
pub struct Gateway {
    kind: &'static str,
    config: PathBuf,
    log: PathBuf,
    admin: SocketAddr,
    child: Option<Child>,
}

impl Gateway {
    /// Starts `meshgw gateway --config CONFIG`, logging to LOG.
    pub fn start(config: &Path, log: &Path, admin: SocketAddr) -> Result<Self> {
        Self::start_kind("gateway", config, log, admin)
    }

    /// Starts `meshgw sidecar --config CONFIG`, logging to LOG.
    pub fn sidecar(config: &Path, log: &Path, admin: SocketAddr) -> Result<Self> {
        Self::start_kind("sidecar", config, log, admin)
    }

    fn start_kind(
        kind: &'static str,
        config: &Path,
        log: &Path,
        admin: SocketAddr,
    ) -> Result<Self> {
        let mut g = Gateway {
            kind,
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            admin,
            child: None,
        };
        g.spawn()?;
        Ok(g)
    }

    fn spawn(&mut self) -> Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let exe = std::env::current_exe().context("locating the meshgw binary")?;
        let child = Command::new(exe)
            .args([self.kind, "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting a {} process", self.kind))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the gateway's `/readyz` answers 200.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(st) = c.try_wait()?
            {
                bail!(
                    "{} exited ({st}); see its log {}",
                    self.kind,
                    self.log.display()
                );
            }
            if ready(self.admin) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "gateway not ready after 20s; see its log {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same config.
    pub fn respawn(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ready(admin: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&admin, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if write!(s, "GET /readyz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}
