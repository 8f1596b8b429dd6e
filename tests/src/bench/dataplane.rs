//! `meshgw-bench dataplane`: the request path through meshgw against a
//! direct call and against HAProxy, in one run on loopback.
//!
//! Paths, all ending at the same in-process HTTP app (`GET /download?n=1024`):
//! 1. **direct**: client → app;
//! 2. **haproxy**: client → HAProxy (`nbthread 1`, http mode, keep-alive) → app;
//!    and, for comparison, **haproxy chain**: two plaintext HTTP/1.1 HAProxy
//!    hops in a row (the least two proxies on a path can do), and **haproxy
//!    pair**: two HAProxy processes doing what two sidecars do (HTTP/1.1 in,
//!    pooled HTTP/2 over mutual TLS between them, HTTP/1.1 to the app);
//! 3. **same cluster**: client → client sidecar (outbound HTTP, `Host:
//!    payments.default.mesh`) → server sidecar (inbound, mTLS, h2) → app;
//! 4. **cross cluster**: the client sidecar is in cluster b, the service only
//!    in a: client sidecar → gateway b → QUIC → gateway a → server sidecar → app.
//!
//! Phases, each over every path in turn: fixed rate (open loop, corrected for
//! coordinated omission, see [`super::loadgen`]), maximum rate (wrk), a bulk
//! download (curl). CPU time and peak RSS of every proxy process are taken
//! over each phase of each path (see [`super::procs`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshgw_tests::apps;
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, Mesh, MeshBuilder};
use meshgw_tests::sidecar::SidecarProc;
use meshgw_tests::wait;

use super::loadgen::{self, LoadResult, LoadSpec};
use super::procs::{self, Meter, Proc, Usage};
use super::report::render;
use super::tools::{self, HaProxy, HaProxyPair, PairTls, Tools, Transfer, WrkResult};

pub(super) const HOST: &str = "payments.default.mesh";
/// The sidecar memory target at the fixed rate.
pub(super) const SIDECAR_RSS_TARGET_MIB: f64 = 20.0;

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Fixed-rate requests per second.
    pub rate: u32,
    /// Fixed-rate measured seconds per path.
    pub duration: u64,
    /// Fixed-rate warm-up seconds per path and round (not recorded).
    pub warmup: u64,
    /// Fixed-rate rounds: each path's measured time is split into this many
    /// slices, run in turn with the other paths' (direct, haproxy, same,
    /// cross, direct, …), so a noisy stretch of the machine lands on every
    /// path instead of on one.
    pub rounds: u64,
    /// Fixed-rate client connections.
    pub connections: usize,
    /// Response body size.
    pub size: usize,
    /// wrk seconds per path.
    pub wrk_secs: u32,
    /// wrk connections.
    pub wrk_conns: u32,
    /// Bulk download size.
    pub transfer: u64,
    /// Where to write the Markdown report.
    pub markdown: Option<PathBuf>,
    /// Which paths besides direct to measure (`haproxy`, `haproxy-chain`,
    /// `haproxy-pair`, `same`, `cross`);
    /// all by default. A partial run is for profiling and quick checks.
    pub paths: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            rate: 1000,
            duration: 30,
            warmup: 1,
            rounds: 10,
            connections: 16,
            size: 1024,
            wrk_secs: 10,
            wrk_conns: 32,
            transfer: 1 << 30,
            markdown: None,
            paths: PATH_KEYS[1..].iter().map(|k| k.to_string()).collect(),
        }
    }
}

pub const USAGE: &str = "meshgw-bench dataplane [--rate N] [--duration SECS] [--warmup SECS] [--rounds N] [--connections N] \
[--size BYTES] [--wrk-duration SECS] [--wrk-connections N] [--transfer BYTES] [--markdown FILE] [--paths haproxy,haproxy-chain,haproxy-pair,same,cross]";

/// The paths' short names, as `--paths` takes them; direct is always measured.
const PATH_KEYS: [&str; 6] = [
    "direct",
    "haproxy",
    "haproxy-chain",
    "haproxy-pair",
    "same",
    "cross",
];

impl Opts {
    /// Parses the arguments after `dataplane`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .with_context(|| format!("{a} needs a value; usage: {USAGE}"))
            };
            match a.as_str() {
                "--rate" => o.rate = val()?.parse()?,
                "--duration" => o.duration = val()?.parse()?,
                "--warmup" => o.warmup = val()?.parse()?,
                "--rounds" => o.rounds = val()?.parse()?,
                "--connections" => o.connections = val()?.parse()?,
                "--size" => o.size = val()?.parse()?,
                "--wrk-duration" => o.wrk_secs = val()?.parse()?,
                "--wrk-connections" => o.wrk_conns = val()?.parse()?,
                "--transfer" => o.transfer = val()?.parse()?,
                "--markdown" => o.markdown = Some(val()?.into()),
                "--paths" => {
                    o.paths = val()?.split(',').map(|p| p.trim().to_string()).collect();
                    if let Some(bad) = o
                        .paths
                        .iter()
                        .find(|p| !PATH_KEYS[1..].contains(&p.as_str()))
                    {
                        bail!(
                            "unknown path {bad:?} in --paths: expected some of haproxy,haproxy-chain,haproxy-pair,same,cross"
                        );
                    }
                }
                other => bail!("unknown argument {other}; usage: {USAGE}"),
            }
        }
        ensure!(
            o.rate > 0 && o.duration > 0 && o.connections > 0 && o.rounds > 0,
            "rate, duration, rounds and connections must be positive"
        );
        ensure!(
            o.duration % o.rounds == 0,
            "--duration ({}) must be a multiple of --rounds ({})",
            o.duration,
            o.rounds
        );
        Ok(o)
    }
}

/// One path under test.
pub(super) struct PathDef {
    /// Short name, as `--paths` takes it.
    pub(super) key: &'static str,
    pub(super) name: &'static str,
    pub(super) addr: SocketAddr,
    /// Indices into the process list of the proxies on this path.
    pub(super) procs: Vec<usize>,
}

/// Everything measured on one path.
#[derive(Default)]
pub(super) struct PathResult {
    pub(super) fixed: LoadResult,
    /// p99 of each fixed-rate round, µs, in round order.
    pub(super) round_p99: Vec<Option<u64>>,
    pub(super) fixed_use: Vec<Usage>,
    /// CPU seconds other processes used during the fixed-rate phase.
    pub(super) fixed_others: f64,
    /// Hypervisor steal share during the fixed-rate phase.
    pub(super) fixed_steal: f64,
    pub(super) wrk: WrkResult,
    pub(super) wrk_use: Vec<Usage>,
    pub(super) transfer: Option<Transfer>,
    pub(super) transfer_use: Vec<Usage>,
}

async fn sees(m: &Mesh, viewer: &str, svc: &str, src: &str) -> Result<()> {
    let api = Api::connect(m, viewer).await?;
    wait::until(
        &format!("{viewer} to see {svc} healthy in {src}"),
        Duration::from_secs(30),
        || {
            let mut api = api.clone();
            async move {
                Ok(api
                    .cluster_view(svc, src)
                    .await?
                    .filter(|v| v.healthy >= 1 && !v.stale)
                    .map(|_| ()))
            }
        },
    )
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task")?
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub async fn run(opts: Opts, command: String) -> Result<()> {
    let tools = Tools::find()?;
    let log_level = std::env::var("MESHGW_TEST_LOG").unwrap_or_else(|_| "info".into());

    // The app, HAProxy in front of it, a two-cluster mesh with the service in a.
    let app = apps::http("payments-a").await?;
    let haproxy = HaProxy::start(&tools, app.addr, &[])?;
    eprintln!("starting the mesh (two gateways, three sidecars)...");
    let mesh = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        // One thread per gateway, as every sidecar (their default) and the
        // HAProxy compared with (nbthread 1).
        .workers(1)
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let client_app_a = apps::http("bench-client-a").await?;
    let client_app_b = apps::http("bench-client-b").await?;
    let server = mesh
        .sidecar("a", "default/payments", "http", app.addr)
        .await?;
    let client_a = mesh
        .sidecar("a", "default/bench-client", "http", client_app_a.addr)
        .await?;
    let client_b = mesh
        .sidecar("b", "default/bench-client", "http", client_app_b.addr)
        .await?;
    let tls = |s: &SidecarProc| (s.spec.tls.1.clone(), s.spec.tls.2.clone());
    let pair_tls = PairTls {
        ca: server.spec.tls.0.clone(),
        client: tls(&client_a),
        server: tls(&server),
    };
    let pair = HaProxyPair::start(&tools, app.addr, &pair_tls, &[])?;
    // Two plaintext hops: the second in front of the app, the first in front of it.
    let chain_2 = HaProxy::start(&tools, app.addr, &[])?;
    let chain_1 = HaProxy::start(&tools, chain_2.addr, &[])?;
    let r = measure(
        &opts,
        &tools,
        &mesh,
        [&haproxy, &pair.front, &pair.back, &chain_1, &chain_2],
        app.addr,
        [&client_a, &server, &client_b],
    )
    .await;
    let results = match r {
        Ok(r) => r,
        Err(e) => {
            let tail = |s: &SidecarProc| {
                let t = s.log_text();
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            };
            return Err(e.context(format!(
                "{}\n===== client sidecar a =====\n{}\n===== server sidecar a =====\n{}\n===== client sidecar b =====\n{}",
                mesh.logs(),
                tail(&client_a),
                tail(&server),
                tail(&client_b)
            )));
        }
    };
    let (paths, names, results) = results;
    let md = render(
        &opts, &tools, &command, &log_level, &paths, &names, &results,
    );
    println!("{md}");
    if let Some(p) = &opts.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    drop((haproxy, pair, chain_1, chain_2));
    Ok(())
}

type Measured = (Vec<PathDef>, Vec<String>, Vec<PathResult>);

async fn measure(
    opts: &Opts,
    tools: &Tools,
    mesh: &Mesh,
    [haproxy, front, back, chain_1, chain_2]: [&HaProxy; 5],
    app: SocketAddr,
    [client_a, server, client_b]: [&SidecarProc; 3],
) -> Result<Measured> {
    sees(mesh, "a", "default/payments", "a").await?;
    sees(mesh, "b", "default/payments", "a").await?;

    let gw = |c: &str| &mesh.clusters[c].gateways[0];
    let procs = vec![
        Proc {
            name: "haproxy".into(),
            pid: haproxy.pid,
        },
        Proc {
            name: "client sidecar (a)".into(),
            pid: procs::find_by_arg(&client_a.config)?,
        },
        Proc {
            name: "server sidecar (a)".into(),
            pid: procs::find_by_arg(&server.config)?,
        },
        Proc {
            name: "client sidecar (b)".into(),
            pid: procs::find_by_arg(&client_b.config)?,
        },
        Proc {
            name: "gateway b".into(),
            pid: procs::find_by_arg(&gw("b").config)?,
        },
        Proc {
            name: "gateway a".into(),
            pid: procs::find_by_arg(&gw("a").config)?,
        },
        Proc {
            name: "haproxy front".into(),
            pid: front.pid,
        },
        Proc {
            name: "haproxy back".into(),
            pid: back.pid,
        },
        Proc {
            name: "haproxy chain 1".into(),
            pid: chain_1.pid,
        },
        Proc {
            name: "haproxy chain 2".into(),
            pid: chain_2.pid,
        },
    ];
    let names: Vec<String> = procs.iter().map(|p| p.name.clone()).collect();
    let paths = vec![
        PathDef {
            key: "direct",
            name: "direct",
            addr: app,
            procs: vec![],
        },
        PathDef {
            key: "haproxy",
            name: "haproxy",
            addr: haproxy.addr,
            procs: vec![0],
        },
        PathDef {
            key: "haproxy-chain",
            name: "haproxy chain (2 plaintext hops)",
            addr: chain_1.addr,
            procs: vec![8, 9],
        },
        PathDef {
            key: "haproxy-pair",
            name: "haproxy pair (mTLS, h2)",
            addr: front.addr,
            procs: vec![6, 7],
        },
        PathDef {
            key: "same",
            name: "meshgw same cluster",
            addr: client_a.spec.outbound_http,
            procs: vec![1, 2],
        },
        PathDef {
            key: "cross",
            name: "meshgw cross cluster",
            addr: client_b.spec.outbound_http,
            procs: vec![3, 4, 5, 2],
        },
    ];
    let paths: Vec<PathDef> = paths
        .into_iter()
        .filter(|p| p.key == "direct" || opts.paths.iter().any(|k| k == p.key))
        .collect();

    // Every path answers before anything is measured.
    let path = format!("/download?n={}", opts.size);
    for p in &paths {
        let url = format!("http://{}{path}", p.addr);
        let (t, size) = (tools.clone(), opts.size as u64);
        wait::until(
            &format!("{} to answer {url}", p.name),
            Duration::from_secs(30),
            || {
                let (t, url) = (t.clone(), url.clone());
                async move {
                    Ok(blocking(move || tools::download(&t, &url, HOST, size))
                        .await
                        .ok()
                        .map(|_| ()))
                }
            },
        )
        .await?;
    }

    let mut results: Vec<PathResult> = paths.iter().map(|_| PathResult::default()).collect();
    let settle = || tokio::time::sleep(Duration::from_secs(1));

    // 1. Fixed rate, in rounds that take the paths in turn.
    let slice = opts.duration / opts.rounds;
    let mut steal = vec![(0u64, 0u64); paths.len()];
    for round in 1..=opts.rounds {
        for ((p, r), st) in paths.iter().zip(results.iter_mut()).zip(steal.iter_mut()) {
            settle().await;
            eprintln!(
                "fixed rate, round {round}/{}: {} at {} req/s for {slice} s (+{} s warm-up)...",
                opts.rounds, p.name, opts.rate, opts.warmup
            );
            let fwd_a = mesh.forwarded("a").unwrap_or(0);
            let spec = LoadSpec {
                target: p.addr,
                host: HOST.into(),
                path: path.clone(),
                expect_len: opts.size,
                rate: opts.rate,
                duration: Duration::from_secs(slice),
                warmup: Duration::from_secs(opts.warmup),
                connections: opts.connections,
                grace: Duration::from_secs(10),
            };
            let meter = Meter::start(&procs)?;
            let skip: Vec<u32> = procs.iter().map(|p| p.pid).collect();
            let (o0, s0) = (procs::others_cpu(&skip), procs::steal_ticks()?);
            let got = blocking(move || loadgen::run(&spec)).await?;
            let (o1, s1) = (procs::others_cpu(&skip), procs::steal_ticks()?);
            r.round_p99.push(got.pct(0.99));
            r.fixed.merge(got);
            r.fixed_others += procs::others_delta(&o0, &o1);
            *st = (st.0 + (s1.0 - s0.0), st.1 + (s1.1 - s0.1));
            r.fixed_steal = st.0 as f64 / st.1.max(1) as f64;
            let used = meter.finish()?;
            if r.fixed_use.is_empty() {
                r.fixed_use = used;
            } else {
                for (a, b) in r.fixed_use.iter_mut().zip(used) {
                    a.add(b);
                }
            }
            if p.key == "same" {
                ensure!(
                    mesh.forwarded("a").unwrap_or(0) == fwd_a,
                    "the same-cluster path went through a gateway"
                );
            }
        }
    }
    ensure!(
        !paths.iter().any(|p| p.key == "cross")
            || (mesh.forwarded("b")? >= 1 && mesh.forwarded("a")? >= 1),
        "the cross-cluster path did not cross both gateways"
    );

    // 2. Maximum rate.
    for (p, r) in paths.iter().zip(results.iter_mut()) {
        settle().await;
        eprintln!(
            "max rate: {} with wrk -t1 -c{} -d{}s...",
            p.name, opts.wrk_conns, opts.wrk_secs
        );
        let url = format!("http://{}{path}", p.addr);
        let (t, c, s) = (tools.clone(), opts.wrk_conns, opts.wrk_secs);
        let meter = Meter::start(&procs)?;
        r.wrk = blocking(move || tools::wrk(&t, &url, HOST, c, s)).await?;
        r.wrk_use = meter.finish()?;
    }

    // 3. Bulk download.
    for (p, r) in paths.iter().zip(results.iter_mut()) {
        settle().await;
        eprintln!("transfer: {} bytes through {}...", opts.transfer, p.name);
        let url = format!("http://{}/download?n={}", p.addr, opts.transfer);
        let (t, n) = (tools.clone(), opts.transfer);
        let meter = Meter::start(&procs)?;
        r.transfer = Some(blocking(move || tools::download(&t, &url, HOST, n)).await?);
        r.transfer_use = meter.finish()?;
    }
    Ok((paths, names, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Opts> {
        let v: Vec<String> = args.split_whitespace().map(String::from).collect();
        Opts::parse(&v)
    }

    #[test]
    fn options_parse_and_rounds_must_divide_the_duration() {
        let o = parse("--duration 12 --rounds 3 --rate 500").unwrap();
        assert_eq!((o.duration, o.rounds, o.rate), (12, 3, 500));
        let d = parse("").unwrap();
        assert_eq!(d.duration % d.rounds, 0, "the defaults must be valid");
        let e = parse("--duration 10 --rounds 4").unwrap_err().to_string();
        assert!(e.contains("multiple of --rounds"), "{e}");
        assert!(parse("--rounds 0").is_err());
        let e = parse("--bogus 1").unwrap_err().to_string();
        assert!(e.contains("unknown argument --bogus"), "{e}");
        assert_eq!(
            d.paths,
            ["haproxy", "haproxy-chain", "haproxy-pair", "same", "cross"]
        );
        assert_eq!(
            parse("--paths same,cross").unwrap().paths,
            ["same", "cross"]
        );
        let e = parse("--paths same,direkt").unwrap_err().to_string();
        assert!(e.contains("unknown path \"direkt\""), "{e}");
    }
}
