//! meshgw-bench: benchmarks on real processes.
//!
//! `propagation`: latency from "instance registered in cluster A" (the
//! Register call returns) to "visible in cluster B's store" (B's catalog API
//! Watch, which streams B's store, reports the import), one registration at a
//! time, for the etcd and the embedded store. Prints p50, p90, p99 and max.
//!
//! Run: `cargo build --release -p meshgw-gateway -p meshgw-tests && target/release/meshgw-bench propagation --count 200`
//!
//! `dataplane`: latency at a fixed rate (open loop, corrected for coordinated
//! omission), maximum rate (wrk) and bulk transfer (curl) of direct calls,
//! HAProxy, and meshgw same- and cross-cluster, with CPU and peak RSS of each
//! proxy process; see `tests/src/bench/dataplane.rs` and docs/benchmarks.md.
//! Needs `haproxy` and `wrk` (scripts/install-bench-deps.sh).
//!
//! Run: `target/release/meshgw-bench dataplane --markdown docs/benchmarks.md`
//!
//! `instructions`: user-space instructions per request of each proxy
//! process (HAProxy, meshgw same- and cross-cluster) under valgrind's
//! callgrind: the noise-free measure of the proxies' own work; see
//! `tests/src/bench/instructions.rs` and docs/instructions.md. Needs
//! `valgrind` (scripts/install-bench-deps.sh).
//!
//! Run: `target/release/meshgw-bench instructions --markdown docs/instructions.md`
//!
//! `syscalls`: the same paths without valgrind; system calls, context
//! switches and CPU time (kernel included) per request of each proxy
//! process, counted by `perf stat`; docs/syscalls.md. Needs `perf`
//! (scripts/install-bench-deps.sh).
//!
//! Run: `target/release/meshgw-bench syscalls --markdown docs/syscalls.md`

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meshgw_federation::api::pb::WatchRequest;
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use tokio_stream::StreamExt;

#[path = "../bench/mod.rs"]
mod bench;

const USAGE: &str = "usage: meshgw-bench propagation [--count N] | meshgw-bench dataplane [--help] | meshgw-bench instructions [--help] | meshgw-bench syscalls [--help]";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn propagation(backend: Backend, count: usize) -> Result<Vec<Duration>> {
    let m = MeshBuilder::new()
        .cluster("a", backend, 1)
        .cluster("b", backend, 1)
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let mut a = Api::connect(&m, "a").await?;
    let b = Api::connect(&m, "b").await?;
    let mut watch = b
        .raw()
        .watch(WatchRequest { resume_revision: 0 })
        .await?
        .into_inner();
    // The first response is the snapshot.
    watch.next().await.context("watch ended")??;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let svc = format!("default/bench-{i}");
        let t0 = Instant::now();
        a.register(&svc, "i0", 60).await?;
        let deadline = t0 + Duration::from_secs(10);
        'seen: loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let resp = tokio::time::timeout(left, watch.next())
                .await
                .with_context(|| format!("{svc} not visible in b after 10s"))?
                .context("watch ended")??;
            for imp in &resp.imports_upserted {
                let name = imp
                    .summary
                    .as_ref()
                    .and_then(|s| s.service.as_ref())
                    .map(|s| s.name.as_str());
                if imp.peer == "a" && name == Some(&svc["default/".len()..]) {
                    out.push(t0.elapsed());
                    break 'seen;
                }
            }
        }
    }
    drop(m);
    Ok(out)
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<10} n={:<5} p50={:>7.2} ms  p90={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        v.len(),
        ms(percentile(&v, 0.50)),
        ms(percentile(&v, 0.90)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().expect("samples")),
    );
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        bail!("{USAGE}");
    };
    let rt = tokio::runtime::Runtime::new()?;
    match cmd.as_str() {
        "propagation" => rt.block_on(run_propagation(&args[1..])),
        "dataplane" => {
            if args[1..].iter().any(|a| a == "--help" || a == "-h") {
                println!("usage: {}", bench::dataplane::USAGE);
                return Ok(());
            }
            let opts = bench::dataplane::Opts::parse(&args[1..])?;
            let command = format!("target/release/meshgw-bench {}", args.join(" "));
            rt.block_on(bench::dataplane::run(opts, command))
        }
        "instructions" => {
            if args[1..].iter().any(|a| a == "--help" || a == "-h") {
                println!("usage: {}", bench::instructions::USAGE);
                return Ok(());
            }
            let opts = bench::instructions::Opts::parse(
                bench::instructions::Counter::Callgrind,
                &args[1..],
            )?;
            let command = format!("target/release/meshgw-bench {}", args.join(" "));
            rt.block_on(bench::instructions::run(opts, command))
        }
        "syscalls" => {
            if args[1..].iter().any(|a| a == "--help" || a == "-h") {
                println!("usage: {}", bench::instructions::SYSCALLS_USAGE);
                return Ok(());
            }
            let opts =
                bench::instructions::Opts::parse(bench::instructions::Counter::Perf, &args[1..])?;
            let command = format!("target/release/meshgw-bench {}", args.join(" "));
            rt.block_on(bench::instructions::run(opts, command))
        }
        other => bail!("unknown benchmark {other}; {USAGE}"),
    }
}

async fn run_propagation(args: &[String]) -> Result<()> {
    let mut count = 200;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--count" => count = it.next().context("--count needs a number")?.parse()?,
            other => bail!("unknown argument {other}: usage: meshgw-bench propagation [--count N]"),
        }
    }
    println!(
        "propagation latency, register in A -> visible in B's store, {count} registrations, loopback"
    );
    report("etcd", propagation(Backend::Etcd(1), count).await?);
    report("embedded", propagation(Backend::Embedded, count).await?);
    Ok(())
}
