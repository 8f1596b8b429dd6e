//! `meshgw-bench instructions`: user-space instructions each proxy process
//! executes per request, counted by valgrind's callgrind. Unlike time, the
//! count does not depend on what else the machine is doing: it is the
//! noise-free measure of a proxy's own work (the kernel's share — syscalls,
//! wake-ups — is not in it).
//!
//! Every gateway and sidecar of a two-cluster mesh, HAProxy, two plaintext
//! HAProxy hops in a row, and the HAProxy pair doing what two sidecars do
//! (mTLS and HTTP/2 between them, see `HaProxyPair`) run under callgrind.
//! For each path one keep-alive HTTP/1.1 connection sends `--warmup`
//! requests, then the path's processes' counters are zeroed
//! (`callgrind_control -z`, acknowledged before it returns), `--requests`
//! requests are sent one after another, and the counters are dumped (`-d`):
//! their totals over the requests sent are the instructions per request,
//! background work (timers, heartbeats) during the run included.
//!
//! `meshgw-bench syscalls` runs the same paths without valgrind and counts
//! the kernel's side instead: system calls, context switches and CPU time
//! (user and kernel) per request, with `perf stat` switched on and off the
//! same way (see [`super::perfstat`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use meshgw_tests::apps;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use tokio::net::TcpStream;

use super::tools::{HaProxy, HaProxyPair, PairTls, Tools};
use super::{perfstat, procs};

const HOST: &str = "payments.default.mesh";

/// What is counted per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// User-space instructions, under valgrind's callgrind.
    Callgrind,
    /// Syscalls, context switches and CPU time, with `perf stat`.
    Perf,
}

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Opts {
    /// What is counted.
    pub counter: Counter,
    /// Requests counted per path.
    pub requests: u64,
    /// Requests sent before counting, per path.
    pub warmup: u64,
    /// Response body size.
    pub size: usize,
    /// Where to write the Markdown report.
    pub markdown: Option<PathBuf>,
    /// Where to keep the callgrind dumps (for `callgrind_annotate`), or,
    /// for `syscalls`, a `perf record` profile of each process
    /// (`perf report -i DIR/NAME.data`); a temporary directory, removed
    /// at the end, when unset.
    pub keep_dumps: Option<PathBuf>,
}

/// Usage line.
pub const USAGE: &str = "meshgw-bench instructions [--requests N] [--warmup N] [--size BYTES] [--markdown FILE] [--keep-dumps DIR]";

/// Usage line of `syscalls`.
pub const SYSCALLS_USAGE: &str = "meshgw-bench syscalls [--requests N] [--warmup N] [--size BYTES] [--markdown FILE] [--profiles DIR]";

impl Opts {
    /// Parses the arguments after `instructions` (`Callgrind`) or
    /// `syscalls` (`Perf`).
    pub fn parse(counter: Counter, args: &[String]) -> Result<Self> {
        let usage = match counter {
            Counter::Callgrind => USAGE,
            Counter::Perf => SYSCALLS_USAGE,
        };
        let mut o = Opts {
            counter,
            requests: 1000,
            warmup: 200,
            size: 1024,
            markdown: None,
            keep_dumps: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .with_context(|| format!("{a} needs a value; usage: {usage}"))
            };
            match a.as_str() {
                "--requests" => o.requests = val()?.parse()?,
                "--warmup" => o.warmup = val()?.parse()?,
                "--size" => o.size = val()?.parse()?,
                "--markdown" => o.markdown = Some(val()?.into()),
                "--keep-dumps" if counter == Counter::Callgrind => {
                    o.keep_dumps = Some(val()?.into());
                }
                "--profiles" if counter == Counter::Perf => o.keep_dumps = Some(val()?.into()),
                other => bail!("unknown argument {other}; usage: {usage}"),
            }
        }
        ensure!(o.requests > 0, "--requests must be positive");
        Ok(o)
    }
}

/// One measured process: its name and pid.
struct Counted {
    name: String,
    pid: u32,
}

/// Sends `n` GET requests one after another on one keep-alive connection
/// and checks each response's status and length.
async fn drive(addr: SocketAddr, path: &str, n: u64, size: usize) -> Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    for i in 0..n {
        let req = Request::get(path)
            .header(http::header::HOST, HOST)
            .body(Empty::<Bytes>::new())?;
        send.ready().await?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        ensure!(
            status == 200 && body.len() == size,
            "request {i} to {addr}: status {status}, {} of {size} bytes",
            body.len()
        );
    }
    Ok(())
}

fn callgrind_control(arg: &str, pid: u32) -> Result<()> {
    let out = Command::new("callgrind_control")
        .args([arg, &pid.to_string()])
        .output()
        .context("running callgrind_control (install valgrind: scripts/install-bench-deps.sh)")?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "callgrind_control {arg} {pid}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Returns the instruction total of `pid`'s newest callgrind dump in `dir`.
fn last_dump_total(dir: &Path, pid: u32) -> Result<u64> {
    let prefix = format!("cg.{pid}.");
    let newest = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let part: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((part, e.path()))
        })
        .max()
        .with_context(|| format!("no callgrind dump of pid {pid} in {}", dir.display()))?;
    let text = std::fs::read_to_string(&newest.1)?;
    parse_total(&text).with_context(|| format!("no totals in {}", newest.1.display()))
}

/// Reads the `summary:` (or `totals:`) line of a callgrind dump.
fn parse_total(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// One process's figures per request.
#[derive(Clone, Copy, Debug)]
enum PerRequest {
    /// User-space instructions (callgrind).
    Instructions(f64),
    /// System calls, context switches and CPU µs, user and kernel (perf).
    Kernel {
        syscalls: f64,
        switches: f64,
        cpu_us: f64,
    },
}

/// Counts what `opts.counter` counts per request of `procs` while
/// `opts.requests` requests go to `addr`, after `opts.warmup` uncounted.
async fn measure(
    dir: &Path,
    label: &str,
    addr: SocketAddr,
    path: &str,
    procs: &[Counted],
    opts: &Opts,
) -> Result<Vec<PerRequest>> {
    let n = opts.requests as f64;
    if opts.counter == Counter::Perf {
        let mut perf = procs
            .iter()
            .map(|p| perfstat::PerfStat::attach(p.pid))
            .collect::<Result<Vec<_>>>()?;
        drive(addr, path, opts.warmup, opts.size).await?;
        for p in &mut perf {
            p.enable()?;
        }
        drive(addr, path, opts.requests, opts.size).await?;
        for p in &mut perf {
            p.disable()?;
        }
        if let Some(dir) = &opts.keep_dumps {
            // A second pass, profiled (sampling would skew the counts).
            let mut rec = procs
                .iter()
                .map(|p| {
                    // A process serves more than one path: name the file by both.
                    let stem = format!("{label}-{}", p.name);
                    let file = format!("{}.data", stem.replace([' ', '(', ')', '/'], ""));
                    perfstat::PerfStat::record(p.pid, &dir.join(file))
                })
                .collect::<Result<Vec<_>>>()?;
            drive(addr, path, opts.warmup.min(50), opts.size).await?;
            for r in &mut rec {
                r.enable()?;
            }
            drive(addr, path, opts.requests, opts.size).await?;
            for r in &mut rec {
                r.disable()?;
                r.stop()?;
            }
        }
        return perf
            .into_iter()
            .map(|p| {
                let c = p.finish()?;
                Ok(PerRequest::Kernel {
                    syscalls: c.syscalls as f64 / n,
                    switches: c.switches as f64 / n,
                    cpu_us: c.cpu_ms * 1000.0 / n,
                })
            })
            .collect();
    }
    drive(addr, path, opts.warmup, opts.size).await?;
    for p in procs {
        callgrind_control("-z", p.pid)?;
    }
    drive(addr, path, opts.requests, opts.size).await?;
    for p in procs {
        callgrind_control("-d", p.pid)?;
    }
    procs
        .iter()
        .map(|p| {
            Ok(PerRequest::Instructions(
                last_dump_total(dir, p.pid)? as f64 / n,
            ))
        })
        .collect()
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub async fn run(opts: Opts, command: String) -> Result<()> {
    let tools = Tools::find()?;
    let needed: &[(&str, &str)] = match opts.counter {
        Counter::Callgrind => &[("valgrind", "valgrind"), ("callgrind_control", "valgrind")],
        Counter::Perf => &[("perf", "linux-perf"), ("mkfifo", "coreutils")],
    };
    for (tool, pkg) in needed {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?
                .status
                .success(),
            "{tool} not found: install the Debian package {pkg} (scripts/install-bench-deps.sh)"
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("meshgw-bench-callgrind-")
        .tempdir()?;
    let dir_path = match &opts.keep_dumps {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let wrap = match opts.counter {
        Counter::Callgrind => vec![
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            "--quiet".into(),
            "--compress-strings=no".into(),
            format!("--callgrind-out-file={}/cg.%p", dir_path.display()),
        ],
        Counter::Perf => Vec::new(),
    };
    if !wrap.is_empty() {
        meshgw_tests::bin::set_wrapper(wrap.clone())?;
    }

    let app = apps::http("payments-a").await?;
    let haproxy = HaProxy::start(&tools, app.addr, &wrap)?;
    eprintln!("starting the mesh...");
    let mesh = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        // One thread per gateway, as in the dataplane benchmark.
        .workers(1)
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let client_app = apps::http("bench-client").await?;
    let server = mesh
        .sidecar("a", "default/payments", "http", app.addr)
        .await?;
    let client_a = mesh
        .sidecar("a", "default/bench-client", "http", client_app.addr)
        .await?;
    let client_b = mesh
        .sidecar("b", "default/bench-client", "http", client_app.addr)
        .await?;
    let tls = |s: &meshgw_tests::sidecar::SidecarProc| (s.spec.tls.1.clone(), s.spec.tls.2.clone());
    let pair_tls = PairTls {
        ca: server.spec.tls.0.clone(),
        client: tls(&client_a),
        server: tls(&server),
    };
    let pair = HaProxyPair::start(&tools, app.addr, &pair_tls, &wrap)?;
    // Two plaintext hops in a row: the least two proxies on a path can do.
    let chain_2 = HaProxy::start(&tools, app.addr, &wrap)?;
    let chain_1 = HaProxy::start(&tools, chain_2.addr, &wrap)?;
    let pid = |config: &Path| procs::find_by_arg(config);
    let gw = |c: &str| mesh.clusters[c].gateways[0].config.clone();
    let counted = |name: &str, pid: u32| Counted {
        name: name.into(),
        pid,
    };
    let paths = [
        (
            "haproxy",
            haproxy.addr,
            vec![counted("haproxy", haproxy.pid)],
        ),
        (
            "haproxy chain (2 plaintext hops)",
            chain_1.addr,
            vec![
                counted("haproxy chain 1", chain_1.pid),
                counted("haproxy chain 2", chain_2.pid),
            ],
        ),
        (
            "haproxy pair (mTLS, h2)",
            pair.front.addr,
            vec![
                counted("haproxy front", pair.front.pid),
                counted("haproxy back", pair.back.pid),
            ],
        ),
        (
            "meshgw same cluster",
            client_a.spec.outbound_http,
            vec![
                counted("client sidecar (a)", pid(&client_a.config)?),
                counted("server sidecar (a)", pid(&server.config)?),
            ],
        ),
        (
            "meshgw cross cluster",
            client_b.spec.outbound_http,
            vec![
                counted("client sidecar (b)", pid(&client_b.config)?),
                counted("gateway b", pid(&gw("b"))?),
                counted("gateway a", pid(&gw("a"))?),
                counted("server sidecar (a)", pid(&server.config)?),
            ],
        ),
    ];
    let url_path = format!("/download?n={}", opts.size);
    // Every path answers before anything is counted (imports take a while
    // under callgrind).
    for (name, addr, _) in &paths {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        while let Err(e) = drive(*addr, &url_path, 1, opts.size).await {
            ensure!(
                std::time::Instant::now() < deadline,
                "{name} does not answer: {e:#}\n{}",
                mesh.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mut rows: Vec<(&str, &Vec<Counted>, Vec<PerRequest>)> = Vec::new();
    for (name, addr, procs) in &paths {
        eprintln!("{name}: {} requests...", opts.requests);
        let per = measure(&dir_path, name, *addr, &url_path, procs, &opts).await?;
        rows.push((*name, procs, per));
    }
    let md = match opts.counter {
        Counter::Callgrind => {
            let rows: Vec<_> = rows
                .iter()
                .map(|(name, procs, per)| {
                    let v = per
                        .iter()
                        .map(|p| match p {
                            PerRequest::Instructions(v) => *v,
                            PerRequest::Kernel { .. } => f64::NAN,
                        })
                        .collect();
                    (*name, *procs, v)
                })
                .collect();
            render(&opts, &command, &rows)
        }
        Counter::Perf => render_kernel(&opts, &command, &rows),
    };
    println!("{md}");
    if let Some(p) = &opts.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    drop((haproxy, pair, chain_1, chain_2));
    Ok(())
}

fn render(opts: &Opts, command: &str, rows: &[(&str, &Vec<Counted>, Vec<f64>)]) -> String {
    let mut s = String::new();
    writeln!(s, "# Instructions per request\n").unwrap();
    writeln!(
        s,
        "User-space instructions each proxy process executed per request (valgrind callgrind), {} sequential \
         `GET /download?n={}` requests ({}-byte chunked responses) on one keep-alive connection per path, after {} \
         unrecorded ones. The count does not depend on the machine's load, unlike the latencies in \
         [benchmarks.md](benchmarks.md); it leaves out the kernel's share (syscalls, wake-ups), about half of each \
         proxy's CPU time there. Background work during the run (timers, heartbeats) is included.\n",
        opts.requests, opts.size, opts.size, opts.warmup
    )
    .unwrap();
    writeln!(
        s,
        "```sh\ncargo build --release -p meshgw-gateway -p meshgw-tests\n{command}\n```\n"
    )
    .unwrap();
    writeln!(s, "| path | process | instructions per request |").unwrap();
    writeln!(s, "| --- | --- | ---: |").unwrap();
    let hap = rows
        .iter()
        .find(|r| r.0 == "haproxy")
        .map(|r| r.2.iter().sum::<f64>());
    let mut totals = Vec::new();
    for (path, procs, per) in rows {
        for (p, v) in procs.iter().zip(per) {
            writeln!(s, "| {path} | {} | {v:.0} |", p.name).unwrap();
        }
        let total: f64 = per.iter().sum();
        totals.push((*path, total, procs.len()));
    }
    writeln!(
        s,
        "\n| path | processes | total per request | × HAProxy | per process × HAProxy |"
    )
    .unwrap();
    writeln!(s, "| --- | ---: | ---: | ---: | ---: |").unwrap();
    for (path, total, n) in totals {
        let (x, per) = match hap {
            Some(h) if h > 0.0 => (
                format!("{:.2}×", total / h),
                format!("{:.2}×", total / h / n as f64),
            ),
            _ => ("–".into(), "–".into()),
        };
        writeln!(s, "| {path} | {n} | {total:.0} | {x} | {per} |").unwrap();
    }
    s
}

/// The `syscalls` report: per process and per path, syscalls, context
/// switches and CPU µs per request, and each path's total next to HAProxy's.
fn render_kernel(
    opts: &Opts,
    command: &str,
    rows: &[(&str, &Vec<Counted>, Vec<PerRequest>)],
) -> String {
    let kernel = |p: &PerRequest| match *p {
        PerRequest::Kernel {
            syscalls,
            switches,
            cpu_us,
        } => (syscalls, switches, cpu_us),
        PerRequest::Instructions(_) => (f64::NAN, f64::NAN, f64::NAN),
    };
    let mut s = String::new();
    writeln!(
        s,
        "# System calls per request
"
    )
    .unwrap();
    writeln!(
        s,
        "System calls (`raw_syscalls:sys_enter`), context switches and CPU time (user and kernel, `task-clock`) \
         of each proxy process per request, counted by `perf stat` over {} sequential `GET /download?n={}` \
         requests on one keep-alive connection per path, after {} uncounted ones. Counts do not depend on the \
         machine's load; CPU time does, a little. Background work during the run (timers, heartbeats, health \
         checks) is included.\n",
        opts.requests, opts.size, opts.warmup
    )
    .unwrap();
    writeln!(
        s,
        "```sh\ncargo build --release -p meshgw-gateway -p meshgw-tests\n{command}\n```\n"
    )
    .unwrap();
    writeln!(
        s,
        "| path | process | syscalls per request | context switches per request | CPU µs per request |"
    )
    .unwrap();
    writeln!(s, "| --- | --- | ---: | ---: | ---: |").unwrap();
    let mut totals = Vec::new();
    for (path, procs, per) in rows {
        let mut sum = (0.0, 0.0, 0.0);
        for (p, v) in procs.iter().zip(per) {
            let (sc, sw, cpu) = kernel(v);
            writeln!(s, "| {path} | {} | {sc:.1} | {sw:.1} | {cpu:.1} |", p.name).unwrap();
            sum = (sum.0 + sc, sum.1 + sw, sum.2 + cpu);
        }
        totals.push((*path, procs.len(), sum));
    }
    let hap = totals.iter().find(|t| t.0 == "haproxy").map(|t| t.2);
    writeln!(
        s,
        "\n| path | processes | syscalls | × HAProxy | context switches | CPU µs | × HAProxy |"
    )
    .unwrap();
    writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |").unwrap();
    let ratio = |v: f64, h: Option<f64>| match h {
        Some(h) if h > 0.0 => format!("{:.2}×", v / h),
        _ => "–".into(),
    };
    for (path, n, (sc, sw, cpu)) in &totals {
        writeln!(
            s,
            "| {path} | {n} | {sc:.1} | {} | {sw:.1} | {cpu:.1} | {} |",
            ratio(*sc, hap.map(|h| h.0)),
            ratio(*cpu, hap.map(|h| h.2)),
        )
        .unwrap();
    }
    // One sentence per sidecar of the same-cluster path, next to HAProxy.
    let same = rows.iter().find(|r| r.0 == "meshgw same cluster");
    if let (Some((_, procs, per)), Some(h)) = (same, hap) {
        writeln!(s).unwrap();
        for (p, v) in procs.iter().zip(per) {
            let (sc, sw, cpu) = kernel(v);
            writeln!(
                s,
                "- {}: {sc:.1} syscalls and {sw:.1} context switches per request (HAProxy: {:.1} and {:.1}); \
                 CPU {cpu:.1} µs per request, {} HAProxy's.",
                p.name,
                h.0,
                h.1,
                ratio(cpu, Some(h.2)),
            )
            .unwrap();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_totals_are_read_from_summary_or_totals() {
        let dump = "# callgrind format\nevents: Ir\nsummary: 12345\n\nfl=x\n";
        assert_eq!(parse_total(dump), Some(12345));
        assert_eq!(parse_total("events: Ir\ntotals: 77\n"), Some(77));
        assert_eq!(parse_total("events: Ir\n"), None);
    }

    #[test]
    fn options_parse() {
        let args: Vec<String> = "--requests 50 --warmup 5"
            .split(' ')
            .map(String::from)
            .collect();
        let o = Opts::parse(Counter::Callgrind, &args).unwrap();
        assert_eq!((o.requests, o.warmup, o.size), (50, 5, 1024));
        assert!(Opts::parse(Counter::Callgrind, &["--requests".into(), "0".into()]).is_err());
        assert!(Opts::parse(Counter::Callgrind, &["--bogus".into()]).is_err());
        let keep = ["--keep-dumps".to_string(), "d".into()];
        assert!(Opts::parse(Counter::Callgrind, &keep).is_ok());
        assert!(
            Opts::parse(Counter::Perf, &keep).is_err(),
            "no dumps to keep"
        );
    }
}
