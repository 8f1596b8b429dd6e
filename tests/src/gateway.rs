//! A real `meshgw gateway` process started from a rendered config file.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{bin, ports, wait};

/// Where a gateway keeps its catalog.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// The embedded store in this directory.
    Embedded(PathBuf),
    /// etcd at these client URLs.
    Etcd(Vec<String>),
}

/// A peer entry of a gateway config.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    /// Peer cluster name.
    pub name: String,
    /// Tunnel addresses to dial (empty: never dial).
    pub addresses: Vec<SocketAddr>,
    /// Expected SPIFFE ID.
    pub spiffe_id: String,
    /// Trust bundle file.
    pub bundle: PathBuf,
}

/// Everything a gateway config says.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    /// Trust domain.
    pub trust_domain: String,
    /// Cluster name.
    pub cluster: String,
    /// Tunnel (UDP) address.
    pub tunnel: SocketAddr,
    /// API address.
    pub api: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    /// Forward address (sidecars hand over cross-cluster connections here).
    pub forward: SocketAddr,
    /// Store.
    pub store: StoreSpec,
    /// CA bundle for API callers.
    pub ca: PathBuf,
    /// Gateway certificate chain.
    pub cert: PathBuf,
    /// Gateway key.
    pub key: PathBuf,
    /// Peers.
    pub peers: Vec<PeerSpec>,
    /// Export rules: (service pattern, peers).
    pub exports: Vec<(String, Vec<String>)>,
    /// `[sync]` keys as (key, humantime value).
    pub sync: Vec<(String, String)>,
    /// `[timeouts]` keys as (key, humantime value); empty means the defaults.
    pub timeouts: Vec<(String, String)>,
    /// `[runtime] workers`; `None` leaves the default (one per core).
    pub workers: Option<u32>,
}

impl GatewaySpec {
    /// Returns a spec with fresh loopback ports and short sync timings.
    pub fn new(
        trust_domain: &str,
        cluster: &str,
        store: StoreSpec,
        cert: PathBuf,
        key: PathBuf,
        ca: PathBuf,
    ) -> Self {
        Self {
            trust_domain: trust_domain.into(),
            cluster: cluster.into(),
            tunnel: ports::udp(),
            api: ports::tcp(),
            admin: ports::tcp(),
            forward: ports::tcp(),
            store,
            ca,
            cert,
            key,
            peers: vec![],
            exports: vec![],
            sync: vec![
                ("heartbeat_interval".into(), "300ms".into()),
                ("peer_timeout".into(), "2s".into()),
                ("stale_after".into(), "2s".into()),
                ("import_ttl".into(), "6s".into()),
                ("backoff_initial".into(), "100ms".into()),
                ("backoff_max".into(), "1s".into()),
            ],
            timeouts: vec![],
            workers: None,
        }
    }

    /// Renders the TOML config.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let q = |p: &Path| format!("{:?}", p.to_str().expect("utf-8 path"));
        writeln!(s, "[mesh]\ntrust_domain = {:?}\n", self.trust_domain).unwrap();
        writeln!(
            s,
            "[cluster]\nname = {:?}\ncloud = \"test\"\nregion = \"{}-region\"\nzone = \"{}-zone-a\"\n",
            self.cluster, self.cluster, self.cluster
        )
        .unwrap();
        writeln!(
            s,
            "[listen]\ntunnel = \"{}\"\napi = \"{}\"\nadmin = \"{}\"\nforward = \"{}\"\n",
            self.tunnel, self.api, self.admin, self.forward
        )
        .unwrap();
        match &self.store {
            StoreSpec::Embedded(d) => writeln!(s, "[store]\nkind = \"embedded\"\ndata_dir = {}\n", q(d)).unwrap(),
            StoreSpec::Etcd(eps) => writeln!(
                s,
                "[store]\nkind = \"etcd\"\nendpoints = {eps:?}\nprefix = \"/meshgw/{}\"\nrequest_timeout = \"2s\"\ndial_timeout = \"2s\"\n",
                self.cluster
            )
            .unwrap(),
        }
        writeln!(
            s,
            "[tls]\nca = {}\ncert = {}\nkey = {}\n",
            q(&self.ca),
            q(&self.cert),
            q(&self.key)
        )
        .unwrap();
        writeln!(s, "[sync]").unwrap();
        for (k, v) in &self.sync {
            writeln!(s, "{k} = {v:?}").unwrap();
        }
        if !self.timeouts.is_empty() {
            writeln!(s, "\n[timeouts]").unwrap();
            for (k, v) in &self.timeouts {
                writeln!(s, "{k} = {v:?}").unwrap();
            }
        }
        if let Some(n) = self.workers {
            writeln!(s, "\n[runtime]\nworkers = {n}").unwrap();
        }
        // The harness's API client (`client::Api`, workload default/e2e-client)
        // registers instances of any service, as an operator's tool would.
        writeln!(
            s,
            "\n[api]\nadmins = [\"spiffe://{}/ns/default/sa/e2e-client\"]",
            self.trust_domain
        )
        .unwrap();
        for p in &self.peers {
            let addrs: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
            writeln!(
                s,
                "\n[[peers]]\nname = {:?}\naddresses = {addrs:?}\nspiffe_id = {:?}\ntrust_bundle = {}",
                p.name,
                p.spiffe_id,
                q(&p.bundle)
            )
            .unwrap();
        }
        for (svc, to) in &self.exports {
            writeln!(s, "\n[[exports]]\nservice = {svc:?}\nto = {to:?}").unwrap();
        }
        s
    }

    /// Returns this gateway's SPIFFE ID.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/cluster/{}/gateway",
            self.trust_domain, self.cluster
        )
    }
}

/// A running gateway process. Killed when dropped.
pub struct GatewayProc {
    /// Its spec.
    pub spec: GatewaySpec,
    /// Its config file.
    pub config: PathBuf,
    /// Its log file (stderr and stdout, appended across restarts).
    pub log: PathBuf,
    child: Option<Child>,
}

impl GatewayProc {
    /// Writes the config under `dir` and starts the gateway (waits until ready).
    pub async fn start(spec: GatewaySpec, dir: &Path) -> Result<Self> {
        let name = format!("{}-{}", spec.cluster, spec.admin.port());
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, spec.render())?;
        let log = dir.join(format!("{name}.log"));
        let mut g = GatewayProc {
            spec,
            config,
            log,
            child: None,
        };
        g.spawn()?;
        g.wait_ready().await?;
        Ok(g)
    }

    fn spawn(&mut self) -> Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = bin::command()
            .args(["gateway", "--config"])
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("MESHGW_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .context("spawning meshgw gateway")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/readyz` answers 200; fails early with the log if the process exits.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let admin = self.spec.admin;
        let log = self.log.clone();
        let child = self.child.as_mut().context("gateway not running")?;
        let deadline = std::time::Instant::now() + bin::startup_limit();
        loop {
            if let Some(st) = child.try_wait()? {
                bail!(
                    "gateway exited during start-up ({st}); log:\n{}",
                    std::fs::read_to_string(&log)?
                );
            }
            if matches!(http_get(admin, "/readyz"), Ok((200, _))) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "gateway not ready after {:?}; log:\n{}",
                    bin::startup_limit(),
                    std::fs::read_to_string(&log)?
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status()?;
            let status = wait::until("gateway exit", Duration::from_secs(10), || {
                let r = c.try_wait();
                async move { Ok(r?) }
            })
            .await?;
            if !status.success() {
                bail!("gateway exited with {status} on SIGTERM");
            }
        }
        Ok(())
    }

    /// Rewrites the config from `spec` and restarts with it.
    pub async fn reconfigure(&mut self, spec: GatewaySpec) -> Result<()> {
        std::fs::write(&self.config, spec.render())?;
        self.spec = spec;
        self.restart().await
    }

    /// Starts the process again with the same config and waits until ready.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()?;
        self.wait_ready().await
    }

    /// Starts the process again without waiting for readiness.
    pub fn respawn(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Returns whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Returns the log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Returns the process's resident memory in KiB (VmRSS), if it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Returns the admin endpoint's answer to GET `path`.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.spec.admin, path)
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.0 GET, enough for the admin endpoints.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("bad HTTP status line")?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}
