//! The errors an operator meets first say what is wrong and what to do:
//! a missing config file, a port another process holds, a private key
//! readable by others, an unreachable etcd, a gateway that refuses the
//! client certificate.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use meshgw_tests::gateway::{GatewayProc, GatewaySpec, StoreSpec};
use meshgw_tests::mesh::{Backend, MeshBuilder};
use meshgw_tests::pki::Pki;
use meshgw_tests::{bin, ports, wait};

fn stderr_of(args: &[&str]) -> Result<(bool, String)> {
    let out = bin::run(args)?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn a_missing_config_file_is_named() -> Result<()> {
    let (ok, err) = stderr_of(&["gateway", "--config", "/nonexistent/gw.toml"])?;
    ensure!(!ok && err.contains("/nonexistent/gw.toml"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_says_which_and_what_to_do() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    // A second gateway with the same ports (and its own store).
    let mut spec = m.clusters["a"].gateways[0].spec.clone();
    spec.store = StoreSpec::Embedded(m.dir.path().join("second-store"));
    let cfg = m.dir.path().join("second.toml");
    std::fs::write(&cfg, spec.render())?;
    let (ok, err) = stderr_of(&["gateway", "--config", cfg.to_str().unwrap()])?;
    ensure!(!ok, "a second gateway started on taken ports");
    ensure!(
        err.contains("cannot bind") && err.contains("free port"),
        "unhelpful error: {err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_readable_by_others_is_refused_with_the_chmod_to_run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::init(&dir.path().join("pki"), "mesh.test")?;
    pki.cluster("a")?;
    let (cert, key) = pki.gateway("a");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let spec = GatewaySpec::new(
        "mesh.test",
        "a",
        StoreSpec::Embedded(dir.path().join("data")),
        cert,
        key.clone(),
        pki.root(),
    );
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, spec.render())?;
    let (ok, err) = stderr_of(&["gateway", "--config", cfg.to_str().unwrap()])?;
    ensure!(
        !ok && err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_keeps_the_gateway_up_unready_with_a_hint() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::init(&dir.path().join("pki"), "mesh.test")?;
    pki.cluster("a")?;
    let (cert, key) = pki.gateway("a");
    // Nothing listens on this port.
    let dead = format!("http://{}", ports::tcp());
    let spec = GatewaySpec::new(
        "mesh.test",
        "a",
        StoreSpec::Etcd(vec![dead.clone()]),
        cert,
        key,
        pki.root(),
    );
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, spec.render())?;
    let log = dir.path().join("gw.log");
    let mut child = std::process::Command::new(bin::path())
        .args(["gateway", "--config", cfg.to_str().unwrap()])
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let r = wait::until("the etcd hint in the log", Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let admin = spec.admin;
        let dead = dead.clone();
        async move {
            let unready = matches!(
                meshgw_tests::gateway::http_get(admin, "/readyz"),
                Ok((503, _))
            );
            Ok((unready
                && text.contains("unreachable")
                && text.contains(&dead)
                && text.contains("is etcd running"))
            .then_some(()))
        }
    })
    .await;
    let alive = child.try_wait()?.is_none();
    let _ = child.kill();
    let _ = child.wait();
    r.map_err(|e| e.context(std::fs::read_to_string(&log).unwrap_or_default()))?;
    ensure!(alive, "the gateway exited instead of waiting for etcd");
    Ok(())
}

/// Runs `meshgw status` against the API at `api` of cluster `a` with the
/// given trust bundle and client certificate; returns (success, stderr).
fn status_at(api: &str, ca: &Path, cert: &Path, key: &Path) -> Result<(bool, String)> {
    stderr_of(&[
        "status",
        "--api",
        api,
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--cluster",
        "a",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_with_a_certificate_from_another_ca_is_refused_clearly() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let other = Pki::init(&m.dir.path().join("other-pki"), "mesh.test")?;
    other.cluster("a")?;
    let (cert, key) = other.workload("a", "default", "ops")?;
    let gw: &GatewayProc = &m.clusters["a"].gateways[0];
    let api = gw.spec.api.to_string();
    let (ok, err) = status_at(&api, &m.pki.root(), &cert, &key)?;
    ensure!(!ok, "status succeeded with a foreign certificate");
    ensure!(
        err.contains("cannot talk to the gateway API")
            && err.contains("the gateway refused this client certificate")
            && err.contains(cert.to_str().unwrap()),
        "the refusal is not named as such:\n{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pointed_at_a_port_that_is_not_the_api_says_so() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let gw: &GatewayProc = &m.clusters["a"].gateways[0];
    let (cert, key) = m.pki.gateway("a");
    // The admin port speaks plain HTTP; the forward port TLS with another ALPN.
    for port in [gw.spec.admin, gw.spec.forward] {
        let api = port.to_string();
        let (ok, err) = status_at(&api, &m.pki.root(), &cert, &key)?;
        ensure!(!ok, "status succeeded against {api}");
        ensure!(
            err.contains("this port does not serve the catalog API") && err.contains("listen.api"),
            "{api} not named as the wrong port:\n{err}"
        );
    }
    Ok(())
}
