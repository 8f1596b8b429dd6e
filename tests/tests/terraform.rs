//! The Terraform modules, applied for real where no provider is needed:
//!
//! - `terraform fmt -check -recursive` is clean, the region modules keep the
//!   mesh variables of `gateway-config` verbatim, and `terraform test` passes
//!   for `modules/gateway-config` (its rendered files pass `meshgw check`);
//! - every module README's Inputs/Outputs tables match its variables
//!   (type, default) and outputs; the READMEs' hcl examples are formatted HCL;
//! - `examples/local`: `apply` starts three clusters, a request crosses two of
//!   them through a sidecar, `destroy` leaves no process behind;
//! - `modules/vm`: installs two gateways over SSH (sshd on loopback, started
//!   here) and they federate (a service registered in one is imported by the
//!   other); a changed input reinstalls and restarts the host it concerns,
//!   which runs the new config and still federates.
//!
//! They need `terraform` on the PATH and fail, naming what to install, when
//! it (or sshd) is missing. Each works on a copy of `terraform/` in a temp
//! directory, and destroys what it applied even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use meshgw_tests::sidecar::{SidecarProc, SidecarSpec};
use meshgw_tests::{apps, bin, pki::Pki, wait};

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

/// Returns `n` consecutive loopback ports reserved for this test process (see `ports`).
fn port_range(n: u16) -> u16 {
    meshgw_tests::ports::range(n)
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

/// The blocks `KIND "NAME" { ... }` of a Terraform file, as (name, text up
/// to the next such block).
fn tf_blocks(text: &str, kind: &str) -> Vec<(String, String)> {
    format!("\n{text}")
        .split(&format!("\n{kind} \""))
        .skip(1)
        .filter_map(|b| {
            let (name, body) = b.split_once('"')?;
            Some((name.to_string(), body.to_string()))
        })
        .collect()
}

/// The first line of a block's top-level attribute `key` (indented two
/// spaces, as `terraform fmt` leaves it), after `=`.
fn tf_attr<'a>(block: &'a str, key: &str) -> Option<&'a str> {
    block.lines().find_map(|l| {
        let rest = l.strip_prefix("  ")?;
        if rest.starts_with(' ') {
            return None;
        }
        let (k, v) = rest.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// How a README's inputs table writes a type: as in variables.tf when it
/// fits on one line, else its outer constructors (`list(object({` is
/// `list(object)`).
fn short_type(ty: &str) -> String {
    match ty.strip_suffix("({") {
        Some(head) => {
            let open = head.matches('(').count() - head.matches(')').count();
            format!("{head}{}", ")".repeat(open))
        }
        None => ty.to_string(),
    }
}

/// The rows of the table under `## heading` of a README (up to the next
/// `## `), as cells with surrounding backticks removed.
fn readme_table(readme: &str, heading: &str) -> Result<Vec<Vec<String>>> {
    let marker = format!("\n## {heading}\n");
    let start = readme
        .find(&marker)
        .with_context(|| format!("no `## {heading}` section"))?;
    let section = readme[start + marker.len()..]
        .split("\n## ")
        .next()
        .unwrap_or_default();
    Ok(section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim()
                .trim_start_matches('|')
                .trim_end_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect())
}

/// Each module's README documents exactly its inputs (name, type, default,
/// description) and outputs, as variables*.tf and outputs.tf declare them.
/// Notes each row of a README `table` that is repeated or names no `what`
/// of module `name` (`known` says which names exist).
fn stray_rows(
    problems: &mut Vec<String>,
    name: &str,
    table: &str,
    what: &str,
    rows: &[Vec<String>],
    known: impl Fn(&str) -> bool,
) {
    for r in rows {
        if rows.iter().filter(|x| x[0] == r[0]).count() > 1 || !known(&r[0]) {
            problems.push(format!(
                "modules/{name}: {table} row {} is not one {what} of the module",
                r[0]
            ));
        }
    }
}

#[test]
fn module_readmes_list_every_variable_and_output_with_type_and_default() -> Result<()> {
    let modules = repo().join("terraform/modules");
    let mut problems = vec![];
    let mut checked = 0;
    for m in std::fs::read_dir(&modules)? {
        let dir = m?.path();
        if !dir.join("outputs.tf").is_file() {
            continue;
        }
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .with_context(|| format!("modules/{name}/README.md"))?;

        let mut vars = vec![];
        for f in std::fs::read_dir(&dir)? {
            let f = f?.path();
            let file = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if file.starts_with("variables") && file.ends_with(".tf") {
                vars.extend(tf_blocks(&std::fs::read_to_string(&f)?, "variable"));
            }
        }
        let rows =
            readme_table(&readme, "Inputs").with_context(|| format!("modules/{name}/README.md"))?;
        for (var, block) in &vars {
            let Some(row) = rows.iter().find(|r| r[0] == *var) else {
                problems.push(format!(
                    "modules/{name}: variable {var} not in the README's Inputs table"
                ));
                continue;
            };
            let ty = short_type(tf_attr(block, "type").unwrap_or("any"));
            let default = tf_attr(block, "default").unwrap_or("required");
            match row.as_slice() {
                [_, t, d, desc, ..] if *t == ty && *d == default && !desc.is_empty() => {}
                _ => problems.push(format!(
                    "modules/{name}: README row {row:?} should read type `{ty}`, default {default}, and a description"
                )),
            }
        }
        stray_rows(&mut problems, &name, "Inputs", "variable", &rows, |r| {
            vars.iter().any(|(v, _)| *v == r)
        });

        let outputs = tf_blocks(&std::fs::read_to_string(dir.join("outputs.tf"))?, "output");
        let rows = readme_table(&readme, "Outputs")
            .with_context(|| format!("modules/{name}/README.md"))?;
        for (out, _) in &outputs {
            if !rows
                .iter()
                .any(|r| r[0] == *out && r.get(1).is_some_and(|d| !d.is_empty()))
            {
                problems.push(format!("modules/{name}: output {out} not in the README's Outputs table (with a description)"));
            }
        }
        stray_rows(&mut problems, &name, "Outputs", "output", &rows, |r| {
            outputs.iter().any(|(o, _)| *o == r)
        });
        ensure!(
            !vars.is_empty() && !outputs.is_empty(),
            "modules/{name}: no variables or outputs parsed"
        );
        checked += 1;
    }
    ensure!(
        checked >= 4,
        "expected at least 4 modules, checked {checked}"
    );
    ensure!(
        problems.is_empty(),
        "module READMEs out of date:\n{}",
        problems.join("\n")
    );
    Ok(())
}

fn readmes(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() && !p.ends_with(".terraform") {
            readmes(&p, found)?;
        } else if p.file_name().is_some_and(|n| n == "README.md") {
            found.push(p);
        }
    }
    Ok(())
}

/// Every ```hcl block of a README under terraform/ parses and is formatted
/// as `terraform fmt` would write it (so it can be pasted as is).
#[test]
fn readme_hcl_examples_are_valid_formatted_hcl() -> Result<()> {
    let tf_dir = repo().join("terraform");
    let mut found = vec![];
    readmes(&tf_dir, &mut found)?;
    let scratch = tempfile::Builder::new()
        .prefix("meshgw-tf-hcl-")
        .tempdir()?;
    let mut n = 0;
    for readme in &found {
        let text = std::fs::read_to_string(readme)?;
        for block in text.split("```hcl\n").skip(1) {
            let body = block.split("```").next().unwrap_or_default();
            let rel = readme.strip_prefix(&tf_dir).unwrap_or(readme);
            let name = format!("{n:02}-{}.tf", rel.display().to_string().replace('/', "_"));
            std::fs::write(scratch.path().join(name), body)?;
            n += 1;
        }
    }
    ensure!(n >= 4, "expected the READMEs' hcl examples, found {n}");
    tf(
        scratch.path(),
        &["fmt", "-check", "-diff", "-no-color"],
        Duration::from_secs(30),
    )
    .context("an hcl example in a README under terraform/ is not valid, formatted HCL")?;
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

/// Returns the pid of the one `meshgw gateway` process run from
/// `host_dir/bin/meshgw` (meshgwctl's restart loop, which mentions the same
/// command, does not start with it).
fn gateway_pid(host_dir: &Path) -> Result<u32> {
    let prefix = format!("{}/bin/meshgw gateway ", host_dir.display());
    let found: Vec<_> = processes_mentioning(&prefix)
        .into_iter()
        .filter(|(_, c)| c.starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [(pid, _)] => Ok(*pid),
        other => bail!("expected one gateway process from {prefix}…, found {other:#?}"),
    }
}

/// Returns how the status JSON of a gateway shows `ns/name` from `cluster`.
fn service_view<'a>(
    status: &'a serde_json::Value,
    svc: &str,
    cluster: &str,
) -> Option<&'a serde_json::Value> {
    let (ns, name) = svc.split_once('/').expect("ns/name");
    status["services"]
        .as_array()?
        .iter()
        .find(|s| s["namespace"] == ns && s["name"] == name)?["clusters"]
        .as_array()?
        .iter()
        .find(|c| c["cluster"] == cluster)
}

/// Whether `status` shows `svc` imported from `cluster`, fresh, with
/// `healthy`/`total` instances.
fn imports(status: &serde_json::Value, svc: &str, cluster: &str, healthy: u64, total: u64) -> bool {
    service_view(status, svc, cluster).is_some_and(|c| {
        c["local"] == false && c["stale"] == false && c["healthy"] == healthy && c["total"] == total
    })
}

/// Polls `meshgw status --config cfg --json` (up to 20 s) until `cond`
/// holds; returns that status.
async fn status_until(
    cfg: &Path,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let cfg = cfg.to_str().context("utf-8 path")?;
    wait::until(what, Duration::from_secs(20), || {
        let seen = bin::run_ok(&["status", "--config", cfg, "--json"]).and_then(|out| {
            let v: serde_json::Value = serde_json::from_str(&out)?;
            Ok(cond(&v).then_some(v))
        });
        async move { seen }
    })
    .await
}

/// The vm module end to end: two clusters installed over SSH federate (a
/// service registered in vm-a by a sidecar is imported by vm-b, healthy);
/// changing an input that changes vm-a's rendered config (its exports) and
/// applying again reinstalls that host only, restarts its gateway on the
/// new config (a service it did not export before reaches vm-b), and leaves
/// vm-b's gateway running; then an empty plan, and destroy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_module_federates_over_ssh_and_reinstalls_a_host_whose_config_changed() -> Result<()> {
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
    let host_dirs = names.map(|n| t.join(format!("host-{n}")));
    let tunnels = [
        meshgw_tests::ports::udp().port(),
        meshgw_tests::ports::udp().port(),
    ];
    let apis = [meshgw_tests::ports::tcp(), meshgw_tests::ports::tcp()];
    let forwards = [meshgw_tests::ports::tcp(), meshgw_tests::ports::tcp()];

    // The root module: one vm module block per cluster, each host in its own
    // install directory, each cluster the other's peer. vm-a's exports are a
    // root variable, changed below; vm-b exports everything.
    let mut main = String::from(
        "terraform {\n  required_version = \">= 1.6.0\"\n}\n\n\
         variable \"vm_a_exports\" {\n  type = list(string)\n}\n",
    );
    for (i, n) in names.iter().enumerate() {
        let other = names[1 - i];
        let (cert, key) = pki.gateway(n);
        let h = &hosts[i];
        let exports = if i == 0 {
            r#"[for s in var.vm_a_exports : { service = s, to = ["*"] }]"#
        } else {
            r#"[{ service = "default/*", to = ["*"] }]"#
        };
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
  exports         = {exports}
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
            api = apis[i].port(),
            admin = meshgw_tests::ports::tcp().port(),
            fwd = forwards[i].port(),
            ssh = h.port,
            user = h.user,
            host_key = h.host_key_pub.trim(),
            client_key = h.client_key.display(),
            dir = host_dirs[i].display(),
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
        vars: vec![r#"-var=vm_a_exports=["default/payments"]"#.to_string()],
        run_dirs: host_dirs.iter().map(|d| d.join("run")).collect(),
        destroyed: false,
    };
    let ssh_logs = || {
        hosts
            .iter()
            .map(|h| std::fs::read_to_string(&h.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let gw_logs = || logs(&host_dirs[0].join("logs")) + &logs(&host_dirs[1].join("logs"));
    applied
        .apply(Duration::from_secs(120))
        .with_context(ssh_logs)?;
    let cfgs = host_dirs.each_ref().map(|d| d.join("gateway.toml"));

    // Two workloads in vm-a, each an app behind a sidecar of the test
    // harness registered with vm-a's gateway: billing first, so that once
    // vm-b has payments (registered after) it has seen all of vm-a's catalog.
    let sidecar_dir = t.join("sidecars");
    std::fs::create_dir_all(&sidecar_dir)?;
    let spec = |svc: &str, app: std::net::SocketAddr| -> Result<SidecarSpec> {
        let (ns, name) = svc.split_once('/').context("ns/name")?;
        let (cert, key) = pki.workload("vm-a", ns, name)?;
        Ok(SidecarSpec {
            trust_domain: pki.trust_domain.clone(),
            locality: ("vm-a".into(), "lab".into(), "rack-0".into()),
            gateway: (apis[0], forwards[0], pki.gateway_id("vm-a")),
            service: svc.into(),
            protocol: "http".into(),
            app,
            labels: vec![],
            inbound: meshgw_tests::ports::tcp(),
            outbound_http: meshgw_tests::ports::tcp(),
            upstreams: vec![],
            health: "http".into(),
            tls: (pki.root(), cert, key),
            admin: meshgw_tests::ports::tcp(),
            request_timeout: "60s".into(),
            extra: String::new(),
        })
    };
    let billing_app = apps::http("billing").await?;
    let payments_app = apps::http("payments").await?;
    let mut sidecars =
        vec![SidecarProc::start(spec("default/billing", billing_app.addr)?, &sidecar_dir).await?];
    status_until(&cfgs[0], "vm-a's catalog has billing, healthy", |v| {
        service_view(v, "default/billing", "vm-a")
            .is_some_and(|c| c["local"] == true && c["healthy"] == 1)
    })
    .await
    .with_context(gw_logs)?;
    sidecars.push(
        SidecarProc::start(spec("default/payments", payments_app.addr)?, &sidecar_dir).await?,
    );

    let status = status_until(
        &cfgs[1],
        "vm-b imports payments from vm-a, 1/1 healthy, over a connected tunnel",
        |v| {
            let up = v["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "vm-a" && p["connected"] == true);
            up && imports(v, "default/payments", "vm-a", 1, 1)
        },
    )
    .await
    .with_context(gw_logs)?;
    ensure!(
        service_view(&status, "default/billing", "vm-a").is_none(),
        "vm-a exports default/payments only, yet vm-b imports billing: {status:#}"
    );

    // Re-apply on change: vm-a now exports billing too. Only vm-a's host is
    // reinstalled; its gateway restarts on the new file, vm-b's keeps running.
    let pids = [gateway_pid(&host_dirs[0])?, gateway_pid(&host_dirs[1])?];
    applied.vars = vec![r#"-var=vm_a_exports=["default/payments","default/billing"]"#.to_string()];
    let out = applied
        .apply(Duration::from_secs(120))
        .with_context(ssh_logs)?;
    ensure!(
        out.contains("Resources: 1 added, 0 changed, 1 destroyed."),
        "expected vm-a's host (only) replaced:\n{out}"
    );
    let rendered = std::fs::read_to_string(&cfgs[0])?;
    ensure!(
        rendered.contains("service = \"default/billing\""),
        "vm-a's gateway.toml lacks the new export:\n{rendered}"
    );
    let new_a = gateway_pid(&host_dirs[0])?;
    ensure!(
        new_a != pids[0],
        "vm-a's gateway was not restarted (pid {new_a})"
    );
    ensure!(
        gateway_pid(&host_dirs[1])? == pids[1],
        "vm-b's gateway was restarted though its config did not change"
    );
    status_until(
        &cfgs[1],
        "vm-b imports billing (newly exported) and payments from the restarted vm-a, 1/1 healthy each",
        |v| {
            imports(v, "default/billing", "vm-a", 1, 1)
                && imports(v, "default/payments", "vm-a", 1, 1)
        },
    )
    .await
    .with_context(gw_logs)?;

    // Content hashes as triggers: nothing changed, nothing to do.
    let plan = tf(t, &applied.args("plan"), Duration::from_secs(30))?;
    ensure!(
        plan.contains("No changes"),
        "second plan not empty:\n{plan}"
    );

    drop(sidecars);
    applied.destroy()?;
    let left = processes_mentioning(&t.display().to_string());
    let left: Vec<_> = left
        .into_iter()
        .filter(|(_, c)| !c.contains("sshd"))
        .collect();
    ensure!(left.is_empty(), "processes left after destroy: {left:#?}");
    Ok(())
}
