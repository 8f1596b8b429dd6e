//! The Terraform modules, applied for real where no provider is needed:
//!
//! - `terraform fmt -check -recursive` is clean, the region modules keep the
//!   mesh variables of `gateway-config` verbatim, and `terraform test` passes
//!   for `modules/gateway-config` (its rendered files pass `meshgw check`);
//! - `examples/local`: `apply` starts three clusters, a request crosses two of
//!   them through a sidecar, `destroy` leaves no process behind;
//! - `modules/vm`: installs two gateways over SSH (sshd on loopback, started
//!   here) and they federate.
//!
//! They need `terraform` on the PATH and fail, naming what to install, when
//! it (or sshd) is missing. Each works on a copy of `terraform/` in a temp
//! directory, and destroys what it applied even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use meshgw_tests::{bin, pki::Pki, wait};

/// Returns the path of `terraform`, or fails with the one line saying what
/// to install.
fn terraform() -> PathBuf {
    find_exe("terraform", &[]).unwrap_or_else(|| {
        panic!(
            "terraform not found on PATH: install Terraform >= 1.6 \
             (https://developer.hashicorp.com/terraform/install) to run the Terraform tests"
        )
    })
}

fn find_exe(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(extra.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies the repository's `terraform/` tree (without state or `.terraform`)
/// into `dst`.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n == ".terraform" || n.contains(".tfstate") || n == ".terraform.lock.hcl" {
            continue;
        }
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst.join(&name))?;
        } else {
            std::fs::copy(e.path(), dst.join(&name))?;
        }
    }
    Ok(())
}

/// Runs `terraform ARGS` in `dir`, killed after `limit`; fails with its
/// output unless it exits 0.
fn tf(dir: &Path, args: &[&str], limit: Duration) -> Result<String> {
    // Output goes to a temp file, never into `dir` (fmt runs in the repo).
    let out_file = tempfile::NamedTempFile::new()?;
    let out = out_file.path().to_path_buf();
    let f = out_file.reopen()?;
    let mut child = Command::new(terraform())
        .args(args)
        .current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .context("spawning terraform")?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "terraform {} still running after {limit:?}; output:\n{}",
                args.join(" "),
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    ensure!(
        status.success(),
        "terraform {} failed ({status}) in {}:\n{text}",
        args.join(" "),
        dir.display()
    );
    Ok(text)
}

/// Returns `n` consecutive loopback ports, free for TCP and UDP a moment ago.
fn port_range(n: u16) -> u16 {
    for _ in 0..50 {
        let base = meshgw_tests::ports::tcp().port();
        if base < 20000 || base > 65535 - n {
            continue;
        }
        let free = (base..base + n).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no {n} consecutive free loopback ports");
}

/// Returns the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = vec![];
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            found.push((pid, cmd.trim().to_string()));
        }
    }
    found
}

/// An applied configuration: destroyed on drop unless `destroy` ran; as a
/// last resort, kills the process groups recorded under `run_dirs`.
struct Applied {
    dir: PathBuf,
    vars: Vec<String>,
    run_dirs: Vec<PathBuf>,
    destroyed: bool,
}

impl Applied {
    fn args<'a>(&'a self, cmd: &'a str) -> Vec<&'a str> {
        let mut a = vec![cmd, "-no-color", "-input=false"];
        if cmd != "plan" {
            a.push("-auto-approve");
        }
        a.extend(self.vars.iter().map(String::as_str));
        a
    }

    fn apply(&self, limit: Duration) -> Result<String> {
        tf(&self.dir, &self.args("apply"), limit)
    }

    fn destroy(&mut self) -> Result<String> {
        self.destroyed = true;
        tf(&self.dir, &self.args("destroy"), Duration::from_secs(60))
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        if !self.destroyed
            && let Err(e) = self.destroy()
        {
            eprintln!("clean-up: {e:#}");
        }
        for run in &self.run_dirs {
            for e in std::fs::read_dir(run).into_iter().flatten().flatten() {
                if let Ok(pg) = std::fs::read_to_string(e.path()) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &format!("-{}", pg.trim())])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

#[test]
fn fmt_is_clean_and_gateway_config_passes_terraform_test() -> Result<()> {
    let tf_dir = repo().join("terraform");
    tf(
        &tf_dir,
        &["fmt", "-check", "-recursive", "-diff", "-no-color"],
        Duration::from_secs(30),
    )
    .context("run `terraform fmt -recursive terraform/`")?;

    // The region modules pass the mesh settings through unchanged: their
    // variables_mesh.tf holds gateway-config's blocks verbatim.
    let src = std::fs::read_to_string(tf_dir.join("modules/gateway-config/variables.tf"))?;
    for m in ["aws-region", "gcp-region", "vm"] {
        let copy =
            std::fs::read_to_string(tf_dir.join("modules").join(m).join("variables_mesh.tf"))?;
        for block in copy.split("\nvariable ").skip(1) {
            let block = format!("variable {}", block.trim_end());
            ensure!(
                src.contains(&block),
                "modules/{m}/variables_mesh.tf differs from modules/gateway-config/variables.tf in:\n{block}"
            );
        }
    }

    let tmp = tempfile::Builder::new().prefix("meshgw-tf-").tempdir()?;
    copy_tree(&tf_dir, tmp.path())?;
    let module = tmp.path().join("modules/gateway-config");
    let limit = Duration::from_secs(60);
    tf(&module, &["init", "-no-color", "-input=false"], limit)?;
    let bin = bin::path();
    let var = format!("-var=meshgw_bin={}", bin.display());
    let work = format!("-var=work_dir={}", tmp.path().join("check").display());
    let out = tf(&module, &["test", "-no-color", &var, &work], limit)?;
    ensure!(out.contains("0 failed"), "terraform test:\n{out}");
    ensure!(
        out.contains("run \"rendered_files_pass_meshgw_check\"... pass"),
        "the meshgw check run did not pass:\n{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_example_serves_a_request_across_clusters_and_destroy_stops_everything() -> Result<()>
{
    let tmp = tempfile::Builder::new().prefix("meshgw-tf-").tempdir()?;
    copy_tree(&repo().join("terraform"), &tmp.path().join("terraform"))?;
    let example = tmp.path().join("terraform/examples/local");
    let work = tmp.path().join("work");
    let base = port_range(40);
    tf(
        &example,
        &["init", "-no-color", "-input=false"],
        Duration::from_secs(30),
    )?;

    let mut applied = Applied {
        dir: example.clone(),
        vars: vec![
            format!("-var=meshgw_bin={}", bin::path().display()),
            format!("-var=work_dir={}", work.display()),
            format!("-var=base_port={base}"),
        ],
        run_dirs: vec![work.join("run")],
        destroyed: false,
    };
    applied.apply(Duration::from_secs(90))?;
    let needle = work.display().to_string();
    let started = processes_mentioning(&needle);
    ensure!(
        started.iter().filter(|(_, c)| c.contains("meshgw")).count() >= 5,
        "expected 3 gateways and 2 sidecars running: {started:#?}"
    );

    // Client sidecar (second cluster) → its gateway → tunnel → first cluster's
    // gateway → payments sidecar → python http.server.
    let outbound = format!("http://127.0.0.1:{}/", base + 35);
    let body = wait::until(
        "payments.default.mesh through the client sidecar",
        Duration::from_secs(20),
        || {
            let out = Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "3",
                    "-H",
                    "Host: payments.default.mesh",
                ])
                .arg(&outbound)
                .output();
            async move {
                let out = out?;
                let body = String::from_utf8_lossy(&out.stdout).into_owned();
                ensure!(
                    out.status.success(),
                    "curl: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Ok(body.contains("payments: hello from").then_some(body))
            }
        },
    )
    .await
    .with_context(|| logs(&work.join("logs")))?;
    ensure!(
        body.contains("aws-us-east-1"),
        "answered by the wrong cluster: {body}"
    );

    // Idempotent: a second plan has nothing to do.
    let plan = tf(&example, &applied.args("plan"), Duration::from_secs(30))?;
    ensure!(
        plan.contains("No changes"),
        "second plan not empty:\n{plan}"
    );

    applied.destroy()?;
    let left = processes_mentioning(&needle);
    ensure!(left.is_empty(), "processes left after destroy: {left:#?}");
    Ok(())
}

fn logs(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        s.push_str(&format!("== {}\n", e.path().display()));
        for l in tail.iter().rev() {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// An sshd on a loopback port, as the current user, with its own host key
/// and one authorized key. Killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    host_key_pub: String,
    client_key: PathBuf,
    user: String,
    log: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Result<Self> {
        let sshd = find_exe("sshd", &["/usr/sbin/sshd"]).context(
            "sshd not found: install openssh-server (apt-get install -y openssh-server, or scripts/install-deps.sh)",
        )?;
        std::fs::create_dir_all(dir)?;
        let keygen = |path: &Path| -> Result<()> {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .context("ssh-keygen (openssh-client)")?;
            ensure!(st.success(), "ssh-keygen failed");
            Ok(())
        };
        let host_key = dir.join("host_ed25519");
        let client_key = dir.join("id_ed25519");
        keygen(&host_key)?;
        keygen(&client_key)?;
        std::fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys"))?;
        let port = meshgw_tests::ports::tcp().port();
        let uid = Command::new("id").arg("-u").output()?.stdout;
        let root = String::from_utf8_lossy(&uid).trim() == "0";
        if root {
            // Privilege separation directory the Debian service would create.
            std::fs::create_dir_all("/run/sshd")?;
        }
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PermitRootLogin {}\nStrictModes no\nSubsystem sftp internal-sftp\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                dir.join("authorized_keys").display(),
                if root { "prohibit-password" } else { "no" },
            ),
        )?;
        let log = dir.join("sshd.log");
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting sshd")?;
        let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?
            .trim()
            .to_string();
        let host_key_pub = std::fs::read_to_string(dir.join("host_ed25519.pub"))?;
        let mut s = Sshd {
            child,
            port,
            host_key_pub,
            client_key,
            user,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(st) = s.child.try_wait()? {
                bail!(
                    "sshd exited ({st}): {}",
                    std::fs::read_to_string(&s.log).unwrap_or_default()
                );
            }
            ensure!(Instant::now() < deadline, "sshd not listening after 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_module_installs_gateways_over_ssh_that_federate() -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("meshgw-tf-").tempdir()?;
    let t = tmp.path();
    copy_tree(&repo().join("terraform"), &t.join("terraform"))?;
    // A copy of the binary: a rebuild meanwhile must not change its hash
    // between plan and apply.
    let meshgw = t.join("meshgw");
    std::fs::copy(bin::path(), &meshgw)?;
    let pki = Pki::init(&t.join("pki"), "mesh.example")?;
    let names = ["vm-a", "vm-b"];
    for n in names {
        pki.cluster(n)?;
    }
    let hosts = [
        Sshd::start(&t.join("ssh-a"))?,
        Sshd::start(&t.join("ssh-b"))?,
    ];
    let tunnels = [
        meshgw_tests::ports::udp().port(),
        meshgw_tests::ports::udp().port(),
    ];

    // The root module: one vm module block per cluster, each host in its own
    // install directory, each cluster the other's peer.
    let mut main = String::from("terraform {\n  required_version = \">= 1.6.0\"\n}\n");
    for (i, n) in names.iter().enumerate() {
        let other = names[1 - i];
        let (cert, key) = pki.gateway(n);
        let h = &hosts[i];
        main.push_str(&format!(
            r#"
module "{n}" {{
  source          = "./terraform/modules/vm"
  cluster_name    = "{n}"
  region          = "lab"
  zones           = ["rack-{i}"]
  trust_domain    = "mesh.example"
  bind_address    = "127.0.0.1"
  ports           = {{ tunnel = {tunnel}, api = {api}, admin = {admin}, forward = {fwd} }}
  peers           = [{{ name = "{other}", addresses = ["127.0.0.1:{other_tunnel}"] }}]
  exports         = [{{ service = "default/*", to = ["*"] }}]
  sync            = {{ heartbeat_interval = "300ms", peer_timeout = "2s", stale_after = "2s", backoff_initial = "100ms", backoff_max = "1s" }}
  hosts           = [{{ address = "127.0.0.1", port = {ssh}, user = "{user}", host_key = {host_key:?} }}]
  ssh_private_key = file("{client_key}")
  install_dir     = "{dir}"
  meshgw_bin      = "{bin}"
  service_manager = "meshgwctl"
  pki_files = {{
    "pki/root.pem"    = "{root}"
    "pki/gateway.pem" = "{cert}"
    "pki/gateway.key" = "{key}"
  }}
}}
"#,
            tunnel = tunnels[i],
            other_tunnel = tunnels[1 - i],
            api = meshgw_tests::ports::tcp().port(),
            admin = meshgw_tests::ports::tcp().port(),
            fwd = meshgw_tests::ports::tcp().port(),
            ssh = h.port,
            user = h.user,
            host_key = h.host_key_pub.trim(),
            client_key = h.client_key.display(),
            dir = t.join(format!("host-{n}")).display(),
            bin = meshgw.display(),
            root = pki.root().display(),
            cert = cert.display(),
            key = key.display(),
        ));
    }
    std::fs::write(t.join("main.tf"), main)?;
    tf(
        t,
        &["init", "-no-color", "-input=false"],
        Duration::from_secs(30),
    )?;

    let mut applied = Applied {
        dir: t.to_path_buf(),
        vars: vec![],
        run_dirs: names
            .iter()
            .map(|n| t.join(format!("host-{n}/run")))
            .collect(),
        destroyed: false,
    };
    applied.apply(Duration::from_secs(120)).with_context(|| {
        hosts
            .iter()
            .map(|h| std::fs::read_to_string(&h.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    })?;

    let cfg = t.join("host-vm-a/gateway.toml").display().to_string();
    wait::until(
        "vm-a's status shows vm-b's tunnel up",
        Duration::from_secs(20),
        || {
            let out = bin::run_ok(&["status", "--config", &cfg, "--json"]);
            async move {
                let v: serde_json::Value = serde_json::from_str(&out?)?;
                let up = v["peers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "vm-b" && p["connected"] == true);
                Ok(up.then_some(()))
            }
        },
    )
    .await
    .with_context(|| logs(&t.join("host-vm-a/logs")) + &logs(&t.join("host-vm-b/logs")))?;

    // Content hashes as triggers: nothing changed, nothing to do.
    let plan = tf(t, &applied.args("plan"), Duration::from_secs(30))?;
    ensure!(
        plan.contains("No changes"),
        "second plan not empty:\n{plan}"
    );

    applied.destroy()?;
    let left = processes_mentioning(&t.display().to_string());
    let left: Vec<_> = left
        .into_iter()
        .filter(|(_, c)| !c.contains("sshd"))
        .collect();
    ensure!(left.is_empty(), "processes left after destroy: {left:#?}");
    Ok(())
}
