//! [`EtcdCluster`]: real etcd members for tests, on free 127.0.0.1 ports, in a
//! temporary directory that is removed (and every process killed) on drop,
//! including when the test panics.

use std::fs::{self, File};
use std::io::{self, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a member may take to report healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster of 1 or more members, killed and deleted on drop.
pub struct EtcdCluster {
    dir: PathBuf,
    token: String,
    bin: PathBuf,
    members: Vec<Member>,
}

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCluster")
            .field("dir", &self.dir)
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

fn etcd_binary() -> io::Result<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("etcd"))
            .find(|p| p.is_file())
    });
    let bin = from_path.unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "etcd binary not found in PATH or at /usr/bin/etcd; \
             install etcd-server: apt-get install -y etcd-server",
        ))
    }
}

/// Returns `n` distinct free ports (all bound at once, then released).
fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

fn unique_dir() -> io::Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "meshgw-etcd-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl EtcdCluster {
    /// Starts `members` etcd processes as one cluster and waits (up to 30 s)
    /// until every member reports healthy.
    pub async fn start(members: usize) -> io::Result<Self> {
        assert!(members >= 1, "an etcd cluster needs at least one member");
        let bin = etcd_binary()?;
        let dir = unique_dir()?;
        let ports = free_ports(members * 2)?;
        let token = dir
            .file_name()
            .map_or_else(|| "meshgw".into(), |n| n.to_string_lossy().into_owned());
        let members = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut cluster = Self {
            dir,
            token,
            bin,
            members,
        };
        cluster.start_all().await?;
        Ok(cluster)
    }

    /// Returns the client URLs of every member, e.g. `http://127.0.0.1:41234`.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Returns the client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Returns the path of member `i`'s log file (its stdout and stderr).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.members[i].name))
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit. Its data is kept.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again with the same data dir and ports, and waits
    /// until it reports healthy (which needs a quorum of members running).
    pub async fn restart_member(&mut self, i: usize) -> io::Result<()> {
        self.kill_member(i);
        self.spawn(i)?;
        self.wait_healthy(i).await
    }

    /// Kills every member ("etcd is down"); [`EtcdCluster::start_all`] brings them back.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }

    /// Starts every member that is not running and waits until all are healthy.
    pub async fn start_all(&mut self) -> io::Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i)?;
            }
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i).await?;
        }
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let child = Command::new(&self.bin)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.join(&m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot run {}: {e}", self.bin.display()))
            })?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Polls `GET /health` on member `i` until it says `"health":"true"`.
    async fn wait_healthy(&mut self, i: usize) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = format!("127.0.0.1:{}", self.members[i].client_port);
        loop {
            if let Some(child) = self.members[i].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.members[i].child = None;
                return Err(io::Error::other(format!(
                    "etcd member {i} exited with {status}; its log ({}) ends with:\n{}",
                    self.log_path(i).display(),
                    tail(&self.log_path(i))
                )));
            }
            if health(&addr).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "etcd member {i} at {addr} not healthy after {READY_TIMEOUT:?}; log {}:\n{}",
                        self.log_path(i).display(),
                        tail(&self.log_path(i))
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Returns whether the member at `addr` answers `GET /health` with health true.
async fn health(addr: &str) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        Ok::<_, io::Error>(body.contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
