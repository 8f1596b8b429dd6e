//! External programs the data-plane benchmark drives: HAProxy (the baseline
//! proxy), wrk (maximum rate) and curl (bulk transfer). Each is found on
//! `PATH` (plus `/usr/sbin` for haproxy); a missing one fails with one line
//! naming the Debian package.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

/// Where the external programs are.
#[derive(Clone, Debug)]
pub struct Tools {
    /// haproxy.
    pub haproxy: PathBuf,
    /// wrk.
    pub wrk: PathBuf,
    /// curl.
    pub curl: PathBuf,
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// Finds haproxy, wrk and curl, or fails with one line naming the package.
    pub fn find() -> Result<Self> {
        let need = |name: &str, pkg: &str| {
            which(name).with_context(|| {
                format!("`{name}` not found: install the Debian package `{pkg}` (apt-get install -y haproxy wrk, or scripts/install-bench-deps.sh)")
            })
        };
        Ok(Self {
            haproxy: need("haproxy", "haproxy")?,
            wrk: need("wrk", "wrk")?,
            curl: need("curl", "curl")?,
        })
    }

    /// Returns the first line of each tool's version output.
    pub fn versions(&self) -> Vec<String> {
        let first = |p: &Path, arg: &str| {
            Command::new(p)
                .arg(arg)
                .output()
                .ok()
                .map(|o| {
                    let s = format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    s.lines().next().unwrap_or("").trim().to_string()
                })
                .unwrap_or_default()
        };
        vec![
            first(&self.haproxy, "-v"),
            first(&self.wrk, "-v"),
            first(&self.curl, "--version"),
        ]
    }
}

/// A running HAProxy with a generated config; killed when dropped.
pub struct HaProxy {
    /// Its frontend.
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: u32,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl HaProxy {
    /// Renders the config: one thread, one HTTP frontend on `listen`, one
    /// backend server `app`, keep-alive on both sides.
    pub fn config(listen: SocketAddr, app: SocketAddr) -> String {
        format!(
            "global\n  nbthread 1\n  maxconn 4096\n\n\
             defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  \
             timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n\
             frontend fe\n  bind {listen}\n  default_backend be\n\n\
             backend be\n  server app {app}\n"
        )
    }

    /// Starts haproxy in the foreground on a free loopback port in front of
    /// `app`, under `wrap` (a command and its arguments, or nothing); waits
    /// until it accepts connections.
    pub fn start(tools: &Tools, app: SocketAddr, wrap: &[String]) -> Result<Self> {
        Self::start_with(tools, |listen, _| Ok(Self::config(listen, app)), wrap)
    }

    /// Starts haproxy with the config `render` returns for its listen
    /// address and its own directory (for files the config names).
    pub fn start_with(
        tools: &Tools,
        render: impl FnOnce(SocketAddr, &Path) -> Result<String>,
        wrap: &[String],
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("meshgw-bench-haproxy-")
            .tempdir()?;
        let addr = meshgw_tests::ports::tcp();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, render(addr, dir.path())?)?;
        let check = Command::new(&tools.haproxy)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()?;
        ensure!(
            check.status.success(),
            "haproxy rejected its config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = match wrap.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(&tools.haproxy);
                c
            }
            None => Command::new(&tools.haproxy),
        };
        let child = cmd
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting haproxy")?;
        let pid = child.id();
        let mut h = HaProxy {
            addr,
            pid,
            child,
            log,
            _dir: dir,
        };
        let limit = Duration::from_secs(if wrap.is_empty() { 10 } else { 60 });
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = h.child.try_wait()? {
                bail!(
                    "haproxy exited ({st}): {}",
                    std::fs::read_to_string(&h.log).unwrap_or_default()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(h);
            }
            ensure!(
                Instant::now() < deadline,
                "haproxy not listening on {addr} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The TLS files of a [`HaProxyPair`]: the mesh root, and a client and a
/// server certificate (PEM chain, PEM key) issued under it.
pub struct PairTls {
    /// The root every certificate chains to.
    pub ca: PathBuf,
    /// The front's client certificate and key.
    pub client: (PathBuf, PathBuf),
    /// The back's server certificate and key.
    pub server: (PathBuf, PathBuf),
}

/// Two HAProxy processes doing what two sidecars do, for comparison: the
/// front takes plaintext HTTP/1.1 and keeps pooled HTTP/2 connections over
/// mutual TLS 1.3 to the back, which verifies the client certificate and
/// forwards HTTP/1.1 to the app. One thread each.
pub struct HaProxyPair {
    /// The front, which clients call.
    pub front: HaProxy,
    /// The back, in front of the app.
    pub back: HaProxy,
}

/// Writes `cert` followed by `key` into `dir/name` (HAProxy's `crt` file).
fn combined_pem(dir: &Path, name: &str, (cert, key): &(PathBuf, PathBuf)) -> Result<PathBuf> {
    let mut pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    pem.extend(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    Ok(path)
}

impl HaProxyPair {
    /// Starts the back in front of `app`, then the front in front of it.
    pub fn start(tools: &Tools, app: SocketAddr, tls: &PairTls, wrap: &[String]) -> Result<Self> {
        let common = "global\n  nbthread 1\n  maxconn 4096\n  ssl-default-bind-options ssl-min-ver TLSv1.3\n  \
             ssl-default-server-options ssl-min-ver TLSv1.3\n\n\
             defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  \
             timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n";
        let back = HaProxy::start_with(
            tools,
            |listen, dir| {
                let crt = combined_pem(dir, "server.pem", &tls.server)?;
                Ok(format!(
                    "{common}frontend fe\n  bind {listen} ssl crt {} ca-file {} verify required alpn h2\n  \
                     default_backend be\n\nbackend be\n  server app {app}\n",
                    crt.display(),
                    tls.ca.display()
                ))
            },
            wrap,
        )?;
        let to = back.addr;
        let front = HaProxy::start_with(
            tools,
            |listen, dir| {
                let crt = combined_pem(dir, "client.pem", &tls.client)?;
                Ok(format!(
                    "{common}frontend fe\n  bind {listen}\n  default_backend be\n\n\
                     backend be\n  server back {to} ssl crt {} ca-file {} verify required alpn h2\n",
                    crt.display(),
                    tls.ca.display()
                ))
            },
            wrap,
        )?;
        Ok(HaProxyPair { front, back })
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What wrk measured.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    /// Requests per second.
    pub rps: f64,
    /// Non-2xx/3xx responses and socket errors, as wrk prints them (empty if none).
    pub errors: String,
}

/// Runs `wrk -t1 -c{conns} -d{secs}s -H 'Host: {host}' {url}` and parses it.
pub fn wrk(tools: &Tools, url: &str, host: &str, conns: u32, secs: u32) -> Result<WrkResult> {
    let out = Command::new(&tools.wrk)
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "-H",
            &format!("Host: {host}"),
            url,
        ])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk {url} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let errors = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(WrkResult { rps, errors })
}

/// What one bulk download measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transfer {
    /// Bytes received.
    pub bytes: u64,
    /// Seconds from start to last byte.
    pub secs: f64,
}

impl Transfer {
    /// MiB per second.
    pub fn mib_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.secs
    }
}

/// `curl -o /dev/null` of `url` with `Host: host`; checks status 200 and `n` bytes.
pub fn download(tools: &Tools, url: &str, host: &str, n: u64) -> Result<Transfer> {
    let out = Command::new(&tools.curl)
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "600",
            "-H",
            &format!("Host: {host}"),
        ])
        .args(["-w", "%{http_code} %{size_download} %{time_total}"])
        .arg(url)
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f: Vec<&str> = text.split_whitespace().collect();
    ensure!(f.len() == 3, "unexpected curl output: {text}");
    let (code, bytes, secs): (u16, u64, f64) = (f[0].parse()?, f[1].parse()?, f[2].parse()?);
    ensure!(
        code == 200 && bytes == n,
        "curl {url}: status {code}, {bytes} of {n} bytes"
    );
    Ok(Transfer { bytes, secs })
}
