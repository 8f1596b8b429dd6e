//! Many connections share one tunnel, and a slow reader makes the whole chain
//! push back instead of buffering: bytes in flight stay bounded and the
//! gateways' memory does not grow with what the writer tries to send.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use meshgw_tests::apps;
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, Mesh, MeshBuilder};
use meshgw_tests::sidecar::SidecarProc;
use meshgw_tests::{metrics, ports, relay, wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// a runs a TCP echo behind its sidecar; b's client sidecar has an upstream
/// listener for it. Returns the mesh, the apps, the sidecars and the upstream address.
async fn setup() -> Result<(Mesh, Vec<apps::App>, Vec<SidecarProc>, std::net::SocketAddr)> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        .unreachable("b")
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let echo = apps::tcp_echo().await?;
    let client_app = apps::http("orders-b").await?;
    let server = m.sidecar("a", "default/echo", "tcp", echo.addr).await?;
    let mut spec = m.sidecar_spec("b", "default/orders", "http", client_app.addr)?;
    let upstream = ports::tcp();
    spec.upstreams = vec![(upstream, "default/echo".into())];
    let client = SidecarProc::start(spec, m.dir.path()).await?;
    let api = Api::connect(&m, "b").await?;
    wait::until("b imports echo", Duration::from_secs(20), || {
        let mut api = api.clone();
        async move {
            Ok(api
                .cluster_view("default/echo", "a")
                .await?
                .filter(|v| v.healthy == 1)
                .map(|_| ()))
        }
    })
    .await?;
    Ok((m, vec![echo, client_app], vec![server, client], upstream))
}

/// Writes `payload` through `upstream` (the echo), half-closes, reads
/// everything back, and checks it came back whole; `k` names the stream.
async fn echo_intact(upstream: std::net::SocketAddr, k: usize, payload: Vec<u8>) -> Result<()> {
    let s = tokio::net::TcpStream::connect(upstream).await?;
    let (mut r, mut w) = s.into_split();
    let p2 = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&p2).await?;
        w.shutdown().await?;
        Ok::<_, std::io::Error>(())
    });
    let mut got = Vec::with_capacity(payload.len());
    r.read_to_end(&mut got).await?;
    writer.await??;
    ensure!(
        got == payload,
        "stream {k}: {} of {} bytes came back, or different",
        got.len(),
        payload.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_share_one_tunnel_intact() -> Result<()> {
    let (m, _apps, _sc, upstream) = setup().await?;
    // b cannot be dialled: every stream rides the one connection b opened to a.
    let streams = 32;
    let size = 2 * 1024 * 1024;
    let mut tasks = Vec::new();
    for k in 0..streams {
        tasks.push(tokio::spawn(async move {
            let payload: Vec<u8> = (0..size).map(|i| ((i * 7 + k * 13) % 251) as u8).collect();
            let t0 = Instant::now();
            echo_intact(upstream, k, payload).await?;
            Ok::<_, anyhow::Error>(t0.elapsed())
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(60), t).await??;
        let client_log = _sc[1].log_text();
        times.push(
            r.map_err(|e| e.context(format!("client sidecar log:\n{client_log}\n{}", m.logs())))?,
        );
    }
    times.sort();
    let (fast, slow) = (times[0], times[times.len() - 1]);
    println!("{streams} streams x {size} bytes: fastest {fast:?}, slowest {slow:?}");
    let (_, metrics) = m.clusters["b"].gateways[0].admin_get("/metrics")?;
    let ok = metrics::sum(
        &metrics,
        "meshgw_forwarded_connections_total",
        &["outcome=\"ok\""],
    );
    ensure!(
        ok >= streams as u64,
        "b forwarded {ok} streams, expected {streams}"
    );
    Ok(())
}

/// The largest buffer (third figure) of a TCP buffer sysctl such as `net/ipv4/tcp_rmem`.
fn sysctl_max(name: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/sys/{name}"))?;
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected {name}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_pushes_back_instead_of_gateways_buffering() -> Result<()> {
    let (m, _apps, _sc, upstream) = setup().await?;
    let rss_before: u64 = ["a", "b"]
        .iter()
        .filter_map(|c| m.clusters[*c].gateways[0].rss_kib())
        .sum();
    // Write without reading: the echo's replies back up, and everything
    // upstream of it must stop accepting bytes. What may be in flight is
    // the kernel's: 8 TCP connection-directions on the path (client, sidecar
    // b, gateway a to sidecar a, the echo; there and back), each up to its
    // sender's and receiver's autotuned buffers, plus the QUIC stream
    // windows (1.25 MB each, both ends, both ways) and the proxies' copy
    // buffers. Nothing more may be accepted.
    let kernel = 8 * (sysctl_max("net/ipv4/tcp_wmem")? + sysctl_max("net/ipv4/tcp_rmem")?);
    let bound = kernel + 8 * 1024 * 1024;
    let s = tokio::net::TcpStream::connect(upstream).await?;
    let (mut r, mut w) = s.into_split();
    let chunk = vec![0x5au8; 256 * 1024];
    let limit: u64 = bound + 64 * 1024 * 1024;
    let mut written: u64 = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while written < limit && Instant::now() < deadline {
        // One `write` at a time, so `written` counts exactly what was accepted.
        match tokio::time::timeout(Duration::from_secs(2), w.write(&chunk)).await {
            Ok(r) => written += r? as u64,
            Err(_) => break, // the writer is blocked: backpressure reached it
        }
    }
    let rss_after: u64 = ["a", "b"]
        .iter()
        .filter_map(|c| m.clusters[*c].gateways[0].rss_kib())
        .sum();
    println!(
        "blocked after {} MiB (the path's buffers hold up to {} MiB); gateways' RSS {} -> {} MiB",
        written >> 20,
        bound >> 20,
        rss_before >> 10,
        rss_after >> 10
    );
    ensure!(
        written < limit,
        "the writer was never pushed back: {} MiB accepted",
        written >> 20
    );
    ensure!(
        written <= bound,
        "{} MiB in flight before backpressure, over the {} MiB the path's buffers hold: something buffers without bound",
        written >> 20,
        bound >> 20
    );
    ensure!(
        rss_after < rss_before + 64 * 1024,
        "gateways grew by {} MiB while the reader was stalled",
        (rss_after - rss_before) >> 10
    );
    // The reader resumes: every byte written comes back.
    w.shutdown().await?;
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), r.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        ensure!(buf[..n].iter().all(|&b| b == 0x5a), "corrupted echo");
        total += n as u64;
    }
    ensure!(total == written, "wrote {written} bytes, got {total} back");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_data_over_a_narrow_lossy_link_arrives_intact_and_the_tunnel_stays_up() -> Result<()> {
    let (mut m, _apps, _sc, upstream) = setup().await?;
    // b reaches a over a 2 MB/s link whose queue drops what would wait over
    // 50 ms: QUIC recovers the losses, the streams share the link, and the
    // sync session stays up while data fills it for seconds.
    let link = relay::udp_link(
        m.clusters["a"].gateways[0].spec.tunnel,
        2_000_000,
        Duration::from_millis(50),
    )
    .await?;
    let mut spec = m.gw("b").spec.clone();
    spec.peers[0].addresses = vec![link.addr];
    m.gw("b").reconfigure(spec).await?;
    m.sees("b", "default/echo", "a", 1, None).await?;
    // a ends its tunnel to b's previous process first.
    wait::until(
        "a drops the tunnel to b's old process",
        Duration::from_secs(10),
        || async {
            Ok(m.clusters["a"].gateways[0]
                .log_text()
                .contains("tunnel closed")
                .then_some(()))
        },
    )
    .await?;
    let before: Vec<usize> = ["a", "b"]
        .iter()
        .map(|c| {
            m.clusters[*c].gateways[0]
                .log_text()
                .matches("tunnel closed")
                .count()
        })
        .collect();
    let streams = 12;
    let size = 512 * 1024;
    let mut tasks = Vec::new();
    for k in 0..streams {
        tasks.push(tokio::spawn(async move {
            let payload: Vec<u8> = (0..size).map(|i| ((i * 11 + k * 5) % 253) as u8).collect();
            echo_intact(upstream, k, payload).await
        }));
    }
    let t0 = Instant::now();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await??
            .map_err(|e| e.context(m.logs()))?;
    }
    println!(
        "{streams} x {size} bytes each way over the link in {:?}, {} datagrams dropped",
        t0.elapsed(),
        link.dropped()
    );
    ensure!(
        link.dropped() > 0,
        "the link never dropped a datagram: not a lossy test"
    );
    for (i, c) in ["a", "b"].iter().enumerate() {
        let log = m.clusters[*c].gateways[0].log_text();
        ensure!(
            log.matches("tunnel closed").count() == before[i],
            "gateway {c} closed the tunnel during the transfer:\n{}",
            m.logs()
        );
    }
    Ok(())
}
