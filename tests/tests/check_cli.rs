//! `meshgw check` reports every config error with file, line and key, and exits non-zero.

use anyhow::{Result, ensure};
use meshgw_tests::bin;
use meshgw_tests::pki::Pki;

fn valid(pki: &Pki, extra: &str) -> String {
    let root = pki.root();
    let (cert, key) = pki.gateway("a");
    format!(
        r#"[mesh]
trust_domain = "mesh.test"

[cluster]
name = "a"
cloud = "aws"
region = "us-east-1"
zone = "us-east-1a"

[store]
kind = "embedded"
data_dir = "data"

[tls]
ca = {root:?}
cert = {cert:?}
key = {key:?}

[[peers]]
name = "b"
addresses = ["127.0.0.1:7443"]
spiffe_id = "spiffe://mesh.test/cluster/b/gateway"
trust_bundle = {root:?}
{extra}"#
    )
}

fn check(dir: &std::path::Path, text: &str) -> Result<(bool, String)> {
    let f = dir.join("gw.toml");
    std::fs::write(&f, text)?;
    let out = bin::run(&["check", "--config", f.to_str().unwrap()])?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    ))
}

#[test]
fn check_accepts_a_valid_config_and_reports_each_error_with_file_line_and_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::init(&dir.path().join("pki"), "mesh.test")?;
    pki.cluster("a")?;
    let f = dir.path().join("gw.toml");
    let f = f.to_str().unwrap();

    let (ok, out) = check(dir.path(), &valid(&pki, ""))?;
    ensure!(ok, "a valid config was refused:\n{out}");

    // An unknown key, with the nearest valid one suggested (line 27: `adresses` in a second peer).
    let bad = valid(
        &pki,
        "\n[[peers]]\nname = \"c\"\nadresses = [\"127.0.0.1:1\"]\nspiffe_id = \"spiffe://mesh.test/cluster/c/gateway\"\ntrust_bundle = \"/x\"\n",
    );
    let line = bad.lines().position(|l| l.starts_with("adresses")).unwrap() + 1;
    let (ok, out) = check(dir.path(), &bad)?;
    ensure!(!ok, "unknown key accepted");
    ensure!(
        out.contains(&format!("{f}:{line}"))
            && out.contains("adresses")
            && out.contains("addresses"),
        "unknown key error lacks file:line, key or suggestion:\n{out}"
    );

    // A duplicate peer name.
    let bad = valid(
        &pki,
        "\n[[peers]]\nname = \"b\"\nspiffe_id = \"spiffe://mesh.test/cluster/b/gateway\"\ntrust_bundle = \"/dev/null\"\n",
    );
    let line = bad
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "name = \"b\"")
        .nth(1)
        .unwrap()
        .0
        + 1;
    let (ok, out) = check(dir.path(), &bad)?;
    ensure!(!ok, "duplicate peer accepted");
    ensure!(
        out.contains(&format!("{f}:{line}")) && out.contains("peers[1].name"),
        "duplicate peer error lacks file:line or key:\n{out}"
    );

    // A missing certificate file.
    let bad = valid(&pki, "").replace(
        pki.gateway("a").0.to_str().unwrap(),
        "/nonexistent/gateway.pem",
    );
    let line = bad.lines().position(|l| l.starts_with("cert =")).unwrap() + 1;
    let (ok, out) = check(dir.path(), &bad)?;
    ensure!(!ok, "missing certificate accepted");
    ensure!(
        out.contains(&format!("{f}:{line}"))
            && out.contains("tls.cert")
            && out.contains("/nonexistent/gateway.pem"),
        "missing file error lacks file:line, key or path:\n{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_summarises_a_sidecars_authz() -> Result<()> {
    use meshgw_tests::mesh::{Backend, MeshBuilder};
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let app: std::net::SocketAddr = "127.0.0.1:9".parse()?;
    let mut spec = m.sidecar_spec("a", "default/payments", "http", app)?;
    let dir = tempfile::tempdir()?;
    for (extra, want) in [
        ("", "no [authz]: every caller of the mesh"),
        (
            "[authz]\nallow = [\"spiffe://mesh.test/ns/ops/*\"]\n\n[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/web/*\"]\nmethods = [\"GET\"]\n",
            "[authz]: 1 caller pattern(s) allowed everything, 1 rule(s)",
        ),
    ] {
        spec.extra = extra.into();
        let f = dir.path().join("sidecar.toml");
        std::fs::write(&f, spec.render())?;
        let out = bin::run(&["check", "--config", f.to_str().unwrap()])?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success()
                && text.contains("ok (sidecar of default/payments")
                && text.contains(want),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
