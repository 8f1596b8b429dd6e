//! `meshgw demo`: a three-cluster mesh on this machine.
//!
//! Generates a PKI and commented configs in a directory it prints, starts
//! three gateways on the embedded store (named like real clusters), registers
//! sample services, and walks through federation, a health failure, recovery,
//! and a gateway crash (imports go stale, then return) — showing what every
//! cluster sees at each step. `--once` checks each step and exits 0 or 1;
//! otherwise it keeps showing the mesh until Ctrl-C. Either way it stops every
//! process and removes the directory (unless `--keep`).

mod apps;
mod client;
mod config;
mod procs;
mod traffic;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use meshgw_config::{GatewayConfig, SidecarConfig};
use meshgw_identity::pki;

use self::apps::Call;
use self::client::Api;
use self::config::{DemoCluster, DemoWorkload};
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
/// Time between rounds of live traffic once the script is done.
const LIVE_EVERY: Duration = Duration::from_secs(3);
/// Rounds of live traffic (about 15 minutes) before the demo only idles.
const LIVE_ROUNDS: usize = 300;
const ORDERS: &str = "orders   @ vm-onprem     → payments ";
const CHECKOUT: &str = "checkout @ aws-us-east-1 → payments ";
const INVENTORY: &str = "orders   @ vm-onprem     → inventory";

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

    // Sample services, each behind a real sidecar: payments (HTTP) in aws and
    // gcp, orders in vm-onprem and checkout in aws calling it, and inventory
    // (plain TCP) in gcp, which orders reaches through an upstream listener.
    let inventory_via = free_tcp()?;
    let mut apps_running = Vec::new();
    let mut sidecars = Vec::new();
    let mut workloads = Vec::new();
    for (ci, svc, protocol) in [
        (0usize, "payments", "http"),
        (1, "payments", "http"),
        (2, "orders", "http"),
        (0, "checkout", "http"),
        (1, "inventory", "tcp"),
    ] {
        let c = &clusters[ci];
        let app = match protocol {
            "tcp" => apps::tcp(svc, c.name).await?,
            _ => apps::http(svc, c.name).await?,
        };
        pki::issue_workload(&pki_dir, c.name, "default", svc)?;
        let w = DemoWorkload {
            service: svc,
            protocol,
            upstreams: match svc {
                "orders" => vec![(inventory_via, "default/inventory")],
                _ => Vec::new(),
            },
            app: app.addr,
            inbound: free_tcp()?,
            outbound: free_tcp()?,
            admin: free_tcp()?,
        };
        let cfg = dir.join(format!("{}-{svc}-sidecar.toml", c.name));
        std::fs::write(&cfg, config::render_sidecar(c, &w, &dir, TD))?;
        SidecarConfig::load(&cfg)
            .map_err(|e| anyhow::anyhow!("generated sidecar config is invalid:\n{e}"))?;
        let mut p = Gateway::sidecar(
            &cfg,
            &dir.join(format!("{}-{svc}-sidecar.log", c.name)),
            w.admin,
        )?;
        p.wait_ready().await?;
        apps_running.push(app);
        sidecars.push(p);
        workloads.push((ci, w));
    }
    let t = Instant::now();
    expect(
        &apis,
        "every cluster sees payments (aws + gcp), orders (vm-onprem), checkout (aws), inventory (gcp)",
        |v| {
            has(v, "payments", "aws-us-east-1", 1)
                && has(v, "payments", "gcp-europe-west1", 1)
                && has(v, "orders", "vm-onprem", 1)
                && has(v, "checkout", "aws-us-east-1", 1)
                && has(v, "inventory", "gcp-europe-west1", 1)
        },
    )
    .await?;
    step(&format!(
        "5 workloads with sidecars registered (configs pass `meshgw check`); every cluster's catalog has them after {:.0} ms",
        ms(t)
    ));
    show(&clusters, &apis).await?;

    let orders = apps::Caller::new(workloads[2].1.outbound).to("payments.default.mesh");
    let checkout = apps::Caller::new(workloads[3].1.outbound).to("payments.default.mesh");
    let inventory = apps::TcpCall { via: inventory_via };
    println!(
        "\n-- traffic: orders (vm-onprem) and checkout (aws-us-east-1) call http://payments.default.mesh/,"
    );
    println!("   orders calls inventory (TCP) at {inventory_via}, its sidecar's upstream listener");
    batch(
        &orders,
        ORDERS,
        20,
        &["aws-us-east-1", "gcp-europe-west1"],
        "orders' calls all cross to aws or gcp",
    )
    .await?;
    batch(
        &checkout,
        CHECKOUT,
        20,
        &["aws-us-east-1"],
        "checkout's calls all stay in aws (local first)",
    )
    .await?;
    batch(
        &inventory,
        INVENTORY,
        10,
        &["gcp-europe-west1"],
        "orders' TCP connections to inventory all reach gcp",
    )
    .await?;
    step(
        "cross-cluster calls (HTTP and TCP) go through both gateways and a QUIC tunnel; local calls stay local",
    );

    println!("\n-- payments crashes in aws-us-east-1 (its sidecar is killed)");
    sidecars[0].kill();
    let t = Instant::now();
    let f =
        traffic::until_served_by(&checkout, CHECKOUT, "gcp-europe-west1", 10, STEP_TIMEOUT).await?;
    step(&format!(
        "checkout's calls failed over to gcp-europe-west1 in {:.0} ms, {} call(s) failed on the way",
        ms(t),
        f.failed
    ));
    println!("  {CHECKOUT}: calls until then: {}", f.line());

    println!("\n-- payments comes back in aws-us-east-1");
    sidecars[0].respawn()?;
    sidecars[0].wait_ready().await?;
    let t = Instant::now();
    let b =
        traffic::until_served_by(&checkout, CHECKOUT, "aws-us-east-1", 10, STEP_TIMEOUT).await?;
    step(&format!(
        "checkout's calls are local again after {:.0} ms (the crashed endpoint is retried once outlier detection's 10 s ejection ends)",
        ms(t)
    ));
    println!("  {CHECKOUT}: calls until then: {}", b.line());

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

    if once {
        println!("demo: every step happened as expected");
        return Ok(());
    }
    let exe = std::env::current_exe().map_or("meshgw".into(), |p| p.display().to_string());
    println!(
        "\nThe mesh keeps running; try: {exe} status --config {}/aws-us-east-1.toml   (Ctrl-C stops everything)",
        dir.display()
    );
    println!("live traffic, one round of calls every {LIVE_EVERY:?}:");
    for _ in 0..LIVE_ROUNDS {
        let started = Instant::now();
        let o = traffic::drive(&orders, ORDERS, 5).await;
        let k = traffic::drive(&checkout, CHECKOUT, 5).await;
        let i = traffic::drive(&inventory, INVENTORY, 2).await;
        println!("  {ORDERS}: {}", o.line());
        println!("  {CHECKOUT}: {}", k.line());
        println!("  {INVENTORY}: {}", i.line());
        tokio::time::sleep(LIVE_EVERY.saturating_sub(started.elapsed())).await;
    }
    println!(
        "live traffic stopped after {LIVE_ROUNDS} rounds; the mesh keeps running until Ctrl-C"
    );
    std::future::pending::<Result<()>>().await
}

/// Makes `n` calls under `label`, prints what they saw, and fails the step
/// `what` unless all succeeded and were served only by `by`.
async fn batch(c: &impl Call, label: &str, n: usize, by: &[&str], what: &str) -> Result<()> {
    let s = traffic::drive(c, label, n).await;
    println!("  {label}: {}", s.line());
    if s.ok != n || !s.served_only_by(by) {
        bail!("step failed: {what} (saw: {})", s.line());
    }
    Ok(())
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
