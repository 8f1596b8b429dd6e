//! A real `meshgw sidecar` process next to a test app, from a rendered config.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::gateway::{GatewayProc, http_get};
use crate::mesh::Mesh;
use crate::{bin, ports};

/// Everything a sidecar config says.
#[derive(Clone, Debug)]
pub struct SidecarSpec {
    /// Trust domain.
    pub trust_domain: String,
    /// Cluster, region, zone.
    pub locality: (String, String, String),
    /// Local gateway: API, forward, SPIFFE ID.
    pub gateway: (SocketAddr, SocketAddr, String),
    /// `ns/name` of the workload's service.
    pub service: String,
    /// `http`, `grpc` or `tcp`.
    pub protocol: String,
    /// The app's address.
    pub app: SocketAddr,
    /// Labels of the instance.
    pub labels: Vec<(String, String)>,
    /// Inbound (mTLS) listener.
    pub inbound: SocketAddr,
    /// Outbound HTTP listener.
    pub outbound_http: SocketAddr,
    /// TCP upstreams: (listen, ns/name).
    pub upstreams: Vec<(SocketAddr, String)>,
    /// Health check kind: `http`, `tcp` or `none`.
    pub health: String,
    /// CA bundle, workload cert and key.
    pub tls: (PathBuf, PathBuf, PathBuf),
    /// Admin listener.
    pub admin: SocketAddr,
    /// `timeouts.request` (humantime).
    pub request_timeout: String,
    /// More TOML appended to the config (tables the spec has no field for,
    /// e.g. `[outlier]`); empty for none.
    pub extra: String,
}

impl SidecarSpec {
    /// Renders the TOML config.
    pub fn render(&self) -> String {
        let (ns, name) = self.service.split_once('/').expect("ns/name");
        let p = |p: &Path| format!("{:?}", p.to_str().expect("utf-8 path"));
        let mut s = String::new();
        writeln!(s, "[mesh]\ntrust_domain = {:?}\n", self.trust_domain).unwrap();
        let (c, r, z) = &self.locality;
        writeln!(
            s,
            "[locality]\ncluster = {c:?}\nregion = {r:?}\nzone = {z:?}\n"
        )
        .unwrap();
        let (api, fwd, id) = &self.gateway;
        writeln!(
            s,
            "[gateway]\napi = \"{api}\"\nforward = \"{fwd}\"\nspiffe_id = {id:?}\n"
        )
        .unwrap();
        writeln!(
            s,
            "[service]\nnamespace = {ns:?}\nname = {name:?}\nprotocol = {:?}\napp = \"{}\"\n",
            self.protocol, self.app
        )
        .unwrap();
        if !self.labels.is_empty() {
            writeln!(s, "[service.labels]").unwrap();
            for (k, v) in &self.labels {
                writeln!(s, "{k} = {v:?}").unwrap();
            }
            writeln!(s).unwrap();
        }
        writeln!(s, "[inbound]\nlisten = \"{}\"\n", self.inbound).unwrap();
        writeln!(s, "[outbound]\nhttp = \"{}\"\n", self.outbound_http).unwrap();
        for (listen, svc) in &self.upstreams {
            writeln!(
                s,
                "[[upstreams]]\nlisten = \"{listen}\"\nservice = {svc:?}\n"
            )
            .unwrap();
        }
        writeln!(s, "[health]\nkind = {:?}\ninterval = \"300ms\"\ntimeout = \"300ms\"\nunhealthy_after = 1\nhealthy_after = 1\n", self.health).unwrap();
        let (ca, cert, key) = &self.tls;
        writeln!(
            s,
            "[tls]\nca = {}\ncert = {}\nkey = {}\n",
            p(ca),
            p(cert),
            p(key)
        )
        .unwrap();
        writeln!(s, "[admin]\nlisten = \"{}\"\n", self.admin).unwrap();
        writeln!(
            s,
            "[timeouts]\nconnect = \"5s\"\nidle = \"60s\"\nrequest = {:?}\ndrain = \"2s\"",
            self.request_timeout
        )
        .unwrap();
        if !self.extra.is_empty() {
            writeln!(s, "\n{}", self.extra).unwrap();
        }
        s
    }
}

/// A running sidecar. Killed when dropped.
pub struct SidecarProc {
    /// Its spec.
    pub spec: SidecarSpec,
    /// Its config file.
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl SidecarProc {
    /// Writes the config and starts the sidecar; waits until `/readyz` answers 200.
    pub async fn start(spec: SidecarSpec, dir: &Path) -> Result<Self> {
        let name = format!(
            "sidecar-{}-{}",
            spec.service.replace('/', "."),
            spec.admin.port()
        );
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, spec.render())?;
        let log = dir.join(format!("{name}.log"));
        let mut s = SidecarProc {
            spec,
            config,
            log,
            child: None,
        };
        s.spawn()?;
        s.wait_ready().await?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = bin::command()
            .args(["sidecar", "--config"])
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("MESHGW_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .context("spawning meshgw sidecar")?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = std::time::Instant::now() + bin::startup_limit();
        loop {
            if let Some(st) = self.child.as_mut().context("not running")?.try_wait()? {
                bail!(
                    "sidecar exited during start-up ({st}); log:\n{}",
                    std::fs::read_to_string(&self.log)?
                );
            }
            if matches!(http_get(self.spec.admin, "/readyz"), Ok((200, _))) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "sidecar not ready after {:?}; log:\n{}",
                    bin::startup_limit(),
                    std::fs::read_to_string(&self.log)?
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the sidecar (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("not running")?;
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                bail!("sidecar did not exit within 15s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Opens a cleartext HTTP/2 (gRPC) channel through the outbound HTTP
    /// listener to `host` (`name.namespace.mesh`), as a tonic client of the
    /// app would.
    pub async fn grpc_channel(&self, host: &str) -> Result<tonic::transport::Channel> {
        let ch =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.spec.outbound_http))?
                .origin(format!("http://{host}").parse()?)
                .connect()
                .await?;
        Ok(ch)
    }

    /// Runs `curl` through the outbound HTTP listener to `host` (plus
    /// `extra` arguments); returns (status, head, body), skipping interim
    /// `100 Continue` answers.
    pub fn curl(&self, host: &str, path: &str, extra: &[&str]) -> Result<(u16, String, String)> {
        curl_via(self.spec.outbound_http, host, path, extra)
    }

    /// Returns the admin endpoint's answer to GET `path`.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.spec.admin, path)
    }
}

/// [`SidecarProc::curl`] through the outbound HTTP listener at `outbound`
/// (for a thread that cannot hold the sidecar).
pub fn curl_via(
    outbound: SocketAddr,
    host: &str,
    path: &str,
    extra: &[&str],
) -> Result<(u16, String, String)> {
    {
        let url = format!("http://{outbound}{path}");
        let out = Command::new("curl")
            .args([
                "-sS",
                "-D",
                "-",
                "--max-time",
                "60",
                "-H",
                &format!("Host: {host}"),
            ])
            .args(extra)
            .arg(&url)
            .output()
            .context("running curl")?;
        anyhow::ensure!(
            out.status.success(),
            "curl {url} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Interim responses (`100 Continue` to a large upload) come first: skip them.
        while text.starts_with("HTTP/1.1 100") {
            text = text
                .split_once("\r\n\r\n")
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_default();
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, head.to_string(), body.to_string()))
    }
}

/// What [`Mesh::payments_here_and_in_b`] started.
pub struct PaymentsTwice {
    /// payments' sidecar in a, in front of the test's app.
    pub local: SidecarProc,
    /// payments' sidecar in b.
    pub remote: SidecarProc,
    /// orders' sidecar in a, the caller.
    pub client: SidecarProc,
    _apps: (crate::apps::App, crate::apps::App),
}

impl Drop for SidecarProc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Mesh {
    /// Starts a sidecar in `cluster` (next to its first gateway) for `service`
    /// (`ns/name`) fronting `app`, with a fresh workload certificate.
    pub async fn sidecar(
        &self,
        cluster: &str,
        service: &str,
        protocol: &str,
        app: SocketAddr,
    ) -> Result<SidecarProc> {
        let spec = self.sidecar_spec(cluster, service, protocol, app)?;
        SidecarProc::start(spec, self.dir.path()).await
    }

    /// Starts `default/payments` in cluster a (its app at `local_app`) and
    /// in b (an app named `payments-b`), and a `default/orders` caller in a,
    /// and waits until a's catalog lists both copies: the setup of the
    /// failover and resend tests, on a mesh where b exports to a.
    pub async fn payments_here_and_in_b(&self, local_app: SocketAddr) -> Result<PaymentsTwice> {
        let remote_app = crate::apps::http("payments-b").await?;
        let orders_app = crate::apps::http("orders-a").await?;
        let local = self
            .sidecar("a", "default/payments", "http", local_app)
            .await?;
        let remote = self
            .sidecar("b", "default/payments", "http", remote_app.addr)
            .await?;
        let client = self
            .sidecar("a", "default/orders", "http", orders_app.addr)
            .await?;
        self.sees("a", "default/payments", "b", 1, None).await?;
        self.sees("a", "default/payments", "a", 1, None).await?;
        Ok(PaymentsTwice {
            local,
            remote,
            client,
            _apps: (remote_app, orders_app),
        })
    }

    /// Returns a sidecar spec for `cluster`, to adjust before starting it.
    pub fn sidecar_spec(
        &self,
        cluster: &str,
        service: &str,
        protocol: &str,
        app: SocketAddr,
    ) -> Result<SidecarSpec> {
        let gw: &GatewayProc = &self.clusters[cluster].gateways[0];
        let (ns, name) = service.split_once('/').context("service as ns/name")?;
        let (cert, key) = self.pki.workload(cluster, ns, name)?;
        Ok(SidecarSpec {
            trust_domain: self.pki.trust_domain.clone(),
            locality: (
                cluster.into(),
                format!("{cluster}-region"),
                format!("{cluster}-zone-a"),
            ),
            gateway: (gw.spec.api, gw.spec.forward, gw.spec.spiffe_id()),
            service: service.into(),
            protocol: protocol.into(),
            app,
            labels: vec![("version".into(), "v1".into())],
            inbound: ports::tcp(),
            outbound_http: ports::tcp(),
            upstreams: vec![],
            health: if protocol == "http" {
                "http".into()
            } else {
                "tcp".into()
            },
            tls: (self.pki.root(), cert, key),
            admin: ports::tcp(),
            request_timeout: "60s".into(),
            extra: String::new(),
        })
    }
}
