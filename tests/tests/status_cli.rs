//! `meshgw status` against a running gateway: peers with tunnel state and
//! services local and imported, as a table and as JSON; a clear error when
//! the gateway cannot be reached.

use std::time::Duration;

use anyhow::{Result, ensure};
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use meshgw_tests::{bin, wait};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_peers_and_services_as_table_and_json() -> Result<()> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    let mut a = Api::connect(&m, "a").await?;
    let _k = a.register_kept("default/payments", "p1", 20).await?;
    let b_cfg = m.clusters["b"].gateways[0]
        .config
        .to_str()
        .unwrap()
        .to_string();
    let json: serde_json::Value = wait::until(
        "b's status shows payments from a",
        Duration::from_secs(15),
        || {
            let out = bin::run_ok(&["status", "--config", &b_cfg, "--json"]);
            async move {
                let v: serde_json::Value = serde_json::from_str(&out?)?;
                let seen = v["services"].as_array().into_iter().flatten().any(|s| {
                    s["name"] == "payments"
                        && s["clusters"].as_array().into_iter().flatten().any(|c| {
                            c["cluster"] == "a" && c["healthy"] == 1 && c["local"] == false
                        })
                });
                Ok(seen.then_some(v))
            }
        },
    )
    .await?;
    let peer = &json["peers"][0];
    ensure!(
        peer["name"] == "a" && peer["connected"] == true,
        "peer a not shown connected: {json:#}"
    );
    ensure!(
        peer["rtt_ms"].as_f64().is_some_and(|r| r > 0.0),
        "no tunnel RTT: {json:#}"
    );
    ensure!(
        peer["imports"] == 1 && peer["stale_imports"] == 0,
        "import counts wrong: {json:#}"
    );

    let table = bin::run_ok(&["status", "--config", &b_cfg])?;
    ensure!(
        table.contains("PEERS") && table.contains("SERVICES"),
        "no tables:\n{table}"
    );
    let line = table
        .lines()
        .find(|l| l.starts_with("default/payments"))
        .unwrap_or_default();
    ensure!(
        line.contains("imported") && line.contains("1/1") && line.contains("fresh"),
        "payments row wrong:\n{table}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_explains_an_unreachable_gateway() -> Result<()> {
    let mut m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let cfg = m.gw("a").config.to_str().unwrap().to_string();
    m.gw("a").kill();
    let out = bin::run(&["status", "--config", &cfg])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "status succeeded against a dead gateway"
    );
    ensure!(
        err.contains("cannot talk to the gateway API")
            && err.contains("nothing is listening there")
            && err.contains("is the gateway running"),
        "unhelpful error:\n{err}"
    );
    Ok(())
}
