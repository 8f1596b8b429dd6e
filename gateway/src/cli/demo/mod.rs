//! `meshgw demo`: a three-cluster mesh on this machine.
//!
//! Generates a PKI and commented configs in a directory it prints, starts
//! three gateways on the embedded store (named like real clusters), registers
//! sample services, and walks through federation, a health failure, recovery,
//! and a gateway crash (imports go stale, then return) — showing what every
//! cluster sees at each step. `--once` checks each step and exits 0 or 1;
//! otherwise it keeps showing the mesh until Ctrl-C. Either way it stops every
//! process and removes the directory (unless `--keep`).

mod client;
mod config;
mod procs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use meshgw_config::GatewayConfig;
use meshgw_federation::api::pb::Protocol;
use meshgw_identity::pki;

use self::client::Api;
use self::config::DemoCluster;
use self::procs::Gateway;

/// Arguments of `meshgw demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Runs the script once, checks every step, and exits 0 (all as expected) or 1.
    #[arg(long)]
    once: bool,
    /// Keeps the demo directory (PKI, configs, logs, stores) instead of removing it.
    #[arg(long)]
    keep: bool,
}

const TD: &str = "demo.meshgw";
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

type View = Vec<(String, String, u32, u32, bool)>;

fn free_tcp() -> Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn free_udp() -> Result<std::net::SocketAddr> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?)
}

/// Runs `meshgw demo`.
pub fn run(a: DemoArgs) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("meshgw-demo-").tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    let path = dir.path().to_path_buf();
    let result = rt.block_on(async {
        tokio::select! {
            r = script(path, a.once) => r,
            _ = tokio::signal::ctrl_c() => {
                println!("\ninterrupted: stopping the demo");
                Ok(())
            }
        }
    });
    // The script's processes were dropped (killed) with its future.
    drop(rt);
    if a.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    } else {
        dir.close().context("removing the demo directory")?;
    }
    result
}

async fn script(dir: PathBuf, once: bool) -> Result<()> {
    println!("meshgw demo: three clusters federating their service catalogs over QUIC");
    println!("  files (PKI, configs, logs, stores): {}\n", dir.display());
    let pki_dir = dir.join("pki");
    pki::init_root(&pki_dir, TD, false)?;
    let mut clusters = Vec::new();
    for (name, cloud, region, zone) in [
        ("aws-us-east-1", "aws", "us-east-1", "us-east-1a"),
        ("gcp-europe-west1", "gcp", "europe-west1", "europe-west1-b"),
        ("vm-onprem", "vm", "dc1", "rack-1"),
    ] {
        pki::issue_cluster_ca(&pki_dir, name)?;
        pki::issue_gateway(&pki_dir, name)?;
        clusters.push(DemoCluster {
            name,
            cloud,
            region,
            zone,
            tunnel: free_udp()?,
            api: free_tcp()?,
            admin: free_tcp()?,
            forward: free_tcp()?,
        });
    }
    let mut gateways = Vec::new();
    for c in &clusters {
        let cfg = dir.join(format!("{}.toml", c.name));
        std::fs::write(&cfg, config::render(c, &clusters, &dir, TD))?;
        GatewayConfig::load(&cfg)
            .map_err(|e| anyhow::anyhow!("generated config is invalid:\n{e}"))?;
        gateways.push(Gateway::start(
            &cfg,
            &dir.join(format!("{}.log", c.name)),
            c.admin,
        )?);
    }
    for g in &mut gateways {
        g.wait_ready().await?;
    }
    step("started 3 gateways (embedded stores), configs pass `meshgw check`");
    let mut apis = Vec::new();
    for c in &clusters {
        apis.push(Api::connect(&pki_dir, TD, c.name, &c.api.to_string()).await?);
    }
    let [aws, gcp, vm] = [&apis[0], &apis[1], &apis[2]];

    let _leases = [
        aws.register("payments", "payments-aws-1", 8443, Protocol::Http, "v1")
            .await?,
        aws.register("payments", "payments-aws-2", 8443, Protocol::Http, "v1")
            .await?,
        gcp.register("payments", "payments-gcp-1", 8443, Protocol::Http, "v2")
            .await?,
        gcp.register("payments", "payments-gcp-2", 8443, Protocol::Http, "v2")
            .await?,
        vm.register("orders", "orders-vm-1", 8080, Protocol::Http, "v1")
            .await?,
        gcp.register("inventory", "inventory-gcp-1", 50051, Protocol::Grpc, "v1")
            .await?,
    ];
    let t = Instant::now();
    expect(
        &apis,
        "every cluster sees payments (aws 2 + gcp 2), orders (vm) and inventory (gRPC, gcp)",
        |v| {
            has(v, "payments", "aws-us-east-1", 2)
                && has(v, "payments", "gcp-europe-west1", 2)
                && has(v, "orders", "vm-onprem", 1)
                && has(v, "inventory", "gcp-europe-west1", 1)
        },
    )
    .await?;
    step(&format!(
        "registered 6 instances; visible in all 3 clusters after {:.0} ms",
        ms(t)
    ));
    show(&clusters, &apis).await?;

    println!("\n-- payments fails its health checks in gcp-europe-west1");
    gcp.set_health("payments", "payments-gcp-1", false).await?;
    gcp.set_health("payments", "payments-gcp-2", false).await?;
    let t = Instant::now();
    expect(
        &apis,
        "payments in gcp-europe-west1 has 0 healthy instances everywhere",
        |v| has(v, "payments", "gcp-europe-west1", 0),
    )
    .await?;
    step(&format!(
        "every cluster knows gcp's payments is down ({:.0} ms): only aws-us-east-1 has healthy payments",
        ms(t)
    ));

    println!("\n-- payments recovers in gcp-europe-west1");
    gcp.set_health("payments", "payments-gcp-1", true).await?;
    gcp.set_health("payments", "payments-gcp-2", true).await?;
    let t = Instant::now();
    expect(
        &apis,
        "payments in gcp-europe-west1 healthy again everywhere",
        |v| has(v, "payments", "gcp-europe-west1", 2),
    )
    .await?;
    step(&format!(
        "gcp's payments is back in every cluster ({:.0} ms)",
        ms(t)
    ));

    println!("\n-- the vm-onprem gateway crashes");
    gateways[2].kill();
    let t = Instant::now();
    expect(
        &apis[..2],
        "aws and gcp mark vm-onprem's imports stale",
        |v| {
            v.iter()
                .any(|(s, c, _, _, stale)| s == "orders" && c == "vm-onprem" && *stale)
        },
    )
    .await?;
    step(&format!(
        "aws and gcp marked vm-onprem's orders stale after {:.1} s of silence (kept, flagged)",
        t.elapsed().as_secs_f64()
    ));
    gateways[2].respawn()?;
    gateways[2].wait_ready().await?;
    let t = Instant::now();
    expect(&apis, "vm-onprem's imports fresh again everywhere", |v| {
        v.iter()
            .any(|(s, c, h, _, stale)| s == "orders" && c == "vm-onprem" && *h == 1 && !*stale)
    })
    .await?;
    step(&format!(
        "vm-onprem restarted; its services are fresh again everywhere ({:.0} ms)",
        ms(t)
    ));
    show(&clusters, &apis).await?;

    println!(
        "\nNot shown yet: calls between services through sidecars (the data plane is being built)."
    );
    if once {
        println!("demo: every step happened as expected");
        return Ok(());
    }
    println!(
        "\nThe mesh keeps running; try: meshgw status --config {}/aws-us-east-1.toml   (Ctrl-C stops everything)",
        dir.display()
    );
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn step(s: &str) {
    println!("  ✓ {s}");
}

fn has(v: &View, svc: &str, cluster: &str, healthy: u32) -> bool {
    v.iter()
        .any(|(s, c, h, _, stale)| s == svc && c == cluster && *h == healthy && !*stale)
}

/// Waits until every API's view satisfies `ok`; fails naming the step.
async fn expect(apis: &[Api], what: &str, ok: impl Fn(&View) -> bool) -> Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let mut all = true;
        for api in apis {
            all &= api.view().await.is_ok_and(|v| ok(&v));
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("step failed after {STEP_TIMEOUT:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints what each cluster sees.
async fn show(clusters: &[DemoCluster], apis: &[Api]) -> Result<()> {
    for (c, api) in clusters.iter().zip(apis) {
        println!("\n  seen from {}:", c.name);
        for (svc, src, h, t, stale) in api.view().await? {
            let whose = if src == c.name {
                "local   "
            } else {
                "imported"
            };
            let st = if stale { "  (stale)" } else { "" };
            println!("    {:<12} {:<18} {whose} {h}/{t} healthy{st}", svc, src);
        }
    }
    Ok(())
}
