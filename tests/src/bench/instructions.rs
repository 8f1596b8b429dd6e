//! `meshgw-bench instructions`: user-space instructions each proxy process
//! executes per request, counted by valgrind's callgrind. Unlike time, the
//! count does not depend on what else the machine is doing: it is the
//! noise-free measure of a proxy's own work (the kernel's share — syscalls,
//! wake-ups — is not in it).
//!
//! Every gateway and sidecar of a two-cluster mesh, HAProxy, and the
//! HAProxy pair doing what two sidecars do (mTLS and HTTP/2 between them,
//! see `HaProxyPair`) run under callgrind. For each path one keep-alive
//! HTTP/1.1 connection sends `--warmup` requests, then the path's
//! processes' counters are zeroed (`callgrind_control -z`,
//! acknowledged before it returns), `--requests` requests are sent one after
//! another, and the counters are dumped (`-d`): their totals over the
//! requests sent are the instructions per request, background work (timers,
//! heartbeats) during the run included.

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

use super::procs;
use super::tools::{HaProxy, HaProxyPair, PairTls, Tools};

const HOST: &str = "payments.default.mesh";

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Requests counted per path.
    pub requests: u64,
    /// Requests sent before counting, per path.
    pub warmup: u64,
    /// Response body size.
    pub size: usize,
    /// Where to write the Markdown report.
    pub markdown: Option<PathBuf>,
    /// Where to keep the callgrind dumps (for `callgrind_annotate`); a
    /// temporary directory, removed at the end, when unset.
    pub keep_dumps: Option<PathBuf>,
}

/// Usage line.
pub const USAGE: &str = "meshgw-bench instructions [--requests N] [--warmup N] [--size BYTES] [--markdown FILE] [--keep-dumps DIR]";

impl Opts {
    /// Parses the arguments after `instructions`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut o = Opts {
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
                    .with_context(|| format!("{a} needs a value; usage: {USAGE}"))
            };
            match a.as_str() {
                "--requests" => o.requests = val()?.parse()?,
                "--warmup" => o.warmup = val()?.parse()?,
                "--size" => o.size = val()?.parse()?,
                "--markdown" => o.markdown = Some(val()?.into()),
                "--keep-dumps" => o.keep_dumps = Some(val()?.into()),
                other => bail!("unknown argument {other}; usage: {USAGE}"),
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

/// Counts the instructions per request of `procs` while `n` requests go to
/// `addr`.
async fn measure(
    dir: &Path,
    addr: SocketAddr,
    path: &str,
    procs: &[Counted],
    opts: &Opts,
) -> Result<Vec<f64>> {
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
        .map(|p| Ok(last_dump_total(dir, p.pid)? as f64 / opts.requests as f64))
        .collect()
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub async fn run(opts: Opts, command: String) -> Result<()> {
    let tools = Tools::find()?;
    for tool in ["valgrind", "callgrind_control"] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?
                .status
                .success(),
            "{tool} not found: install valgrind (scripts/install-bench-deps.sh)"
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
    let wrap = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        "--compress-strings=no".into(),
        format!("--callgrind-out-file={}/cg.%p", dir_path.display()),
    ];
    meshgw_tests::bin::set_wrapper(wrap.clone())?;

    let app = apps::http("payments-a").await?;
    let haproxy = HaProxy::start(&tools, app.addr, &wrap)?;
    eprintln!("starting the mesh under callgrind (slow)...");
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
    let mut rows = Vec::new();
    for (name, addr, procs) in &paths {
        eprintln!("{name}: {} requests...", opts.requests);
        let per = measure(&dir_path, *addr, &url_path, procs, &opts).await?;
        rows.push((*name, procs, per));
    }
    let md = render(&opts, &command, &rows);
    println!("{md}");
    if let Some(p) = &opts.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    drop((haproxy, pair));
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
        let o = Opts::parse(&args).unwrap();
        assert_eq!((o.requests, o.warmup, o.size), (50, 5, 1024));
        assert!(Opts::parse(&["--requests".into(), "0".into()]).is_err());
        assert!(Opts::parse(&["--bogus".into()]).is_err());
    }
}
