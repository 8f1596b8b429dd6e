//! The cross-cluster data plane with real processes: apps call services by
//! name through their sidecar; calls cross both gateways and the QUIC tunnel
//! when the service runs elsewhere, stay local when it runs here, fail over
//! when the local copy dies, and the gateways never see application bytes.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use meshgw_tests::apps;
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use meshgw_tests::relay;
use meshgw_tests::sidecar::{SidecarProc, curl_via};
use meshgw_tests::wait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_grpc_and_tcp_cross_clusters_by_name_intact() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Etcd(1), 1)
        .cluster("b", Backend::Etcd(1), 1)
        // One-thread gateways (`[runtime] workers = 1`), as the benchmark
        // runs them; the other suites run the default, one per core.
        .workers(1)
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    let pay = apps::http("payments-a").await?;
    let inv = apps::grpc("inventory").await?;
    let echo = apps::tcp_echo().await?;
    let orders = apps::http("orders-b").await?;
    let _s1 = m.sidecar("a", "default/payments", "http", pay.addr).await?;
    let _s2 = m
        .sidecar("a", "default/inventory", "grpc", inv.addr)
        .await?;
    let _s3 = m.sidecar("a", "default/echo", "tcp", echo.addr).await?;
    let mut spec = m.sidecar_spec("b", "default/orders", "http", orders.addr)?;
    let upstream = meshgw_tests::ports::tcp();
    spec.upstreams = vec![(upstream, "default/echo".into())];
    let client = SidecarProc::start(spec, m.dir.path()).await?;
    for s in ["default/payments", "default/inventory", "default/echo"] {
        m.sees("b", s, "a", 1, None).await?;
    }
    let r: Result<()> = async {
        // HTTP by name, with the caller's identity and source cluster passed on.
        let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
        ensure!(
            status == 200 && body.contains("name=payments-a"),
            "{status} {body}"
        );
        ensure!(
            body.contains("x-meshgw-caller=spiffe://mesh.test/ns/default/sa/orders"),
            "caller identity not passed: {body}"
        );
        ensure!(
            body.contains("x-meshgw-source-cluster=b"),
            "source cluster not passed: {body}"
        );
        ensure!(
            m.forwarded("b")? >= 1 && m.forwarded("a")? >= 1,
            "the call did not cross both gateways"
        );
        // The caller's sidecar counts it by source and destination cluster, service and status class.
        let (_, metrics) = client.admin_get("/metrics")?;
        let labels = [
            "src_cluster=\"b\"",
            "dst_cluster=\"a\"",
            "service=\"default/payments\"",
            "status_class=\"2xx\"",
        ];
        ensure!(
            metrics
                .lines()
                .any(|l| l.starts_with("meshgw_sidecar_requests")
                    && labels.iter().all(|x| l.contains(x))),
            "no request metric labelled {labels:?}:\n{metrics}"
        );
        ensure!(
            metrics
                .lines()
                .any(|l| l.contains("request_duration_seconds_bucket")
                    && l.contains("dst_cluster=\"a\"")),
            "no latency histogram:\n{metrics}"
        );

        // gRPC with a real tonic client, through the same listener (h2c).
        let ch = client.grpc_channel("inventory.default.mesh").await?;
        let resp = tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "inventory".into(),
            })
            .await?;
        ensure!(
            resp.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );

        // TCP through an upstream listener, with half-close.
        let mut s = tokio::net::TcpStream::connect(upstream).await?;
        s.write_all(b"ping across clusters").await?;
        s.shutdown().await?;
        let mut got = Vec::new();
        tokio::time::timeout(T, s.read_to_end(&mut got)).await??;
        ensure!(
            got == b"ping across clusters",
            "tcp echo: {:?}",
            String::from_utf8_lossy(&got)
        );

        // 100 MiB up and down, checksums compared.
        let n: u64 = 100 * 1024 * 1024;
        let file = m.dir.path().join("upload.bin");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
            let mut buf = vec![0u8; 1 << 20];
            for chunk in 0..100u64 {
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = apps::pattern(chunk * (1 << 20) + j as u64);
                }
                std::io::Write::write_all(&mut f, &buf)?;
            }
        }
        let want = apps::pattern_sha256(n);
        let (status, _, body) = client.curl(
            "payments.default.mesh",
            "/upload",
            &["--data-binary", &format!("@{}", file.display())],
        )?;
        ensure!(
            status == 200 && body.trim() == format!("{want} {n}"),
            "upload: {status} {body}"
        );
        let out = m.dir.path().join("download.bin");
        let (status, _, _) = client.curl(
            "payments.default.mesh",
            &format!("/download?n={n}"),
            &["-o", out.to_str().unwrap()],
        )?;
        let sum = Command::new("sha256sum").arg(&out).output()?;
        let got = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        ensure!(
            status == 200 && got == want,
            "download: {status}, sha {got} != {want}"
        );
        Ok(())
    }
    .await;
    r.map_err(|e| {
        e.context(format!(
            "{}\n===== client sidecar =====\n{}",
            m.logs(),
            client.log_text()
        ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_cluster_calls_never_touch_a_gateway() -> Result<()> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    let pay = apps::http("payments-a").await?;
    let orders = apps::http("orders-a").await?;
    let _s = m.sidecar("a", "default/payments", "http", pay.addr).await?;
    let client = m
        .sidecar("a", "default/orders", "http", orders.addr)
        .await?;
    m.sees("a", "default/payments", "a", 1, None).await?;
    let fwd_before = m.forwarded("a")?;
    for _ in 0..20 {
        let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
        ensure!(
            status == 200 && body.contains("name=payments-a"),
            "{status} {body}"
        );
    }
    ensure!(
        m.forwarded("a")? == fwd_before && m.forwarded("b")? == 0,
        "a same-cluster call went through a gateway"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_copy_dies_calls_fail_over_then_return() -> Result<()> {
    let m = MeshBuilder::two_clusters("b").start().await?;
    let pay_a = apps::http("payments-a").await?;
    // Both copies stay up as long as `two` lives.
    let mut two = m.payments_here_and_in_b(pay_a.addr).await?;
    let (client, local) = (&two.client, &mut two.local);
    for _ in 0..10 {
        let (_, _, body) = client.curl("payments.default.mesh", "/", &[])?;
        ensure!(
            body.contains("name=payments-a"),
            "a local copy is healthy, yet: {body}"
        );
    }
    // The only local copy dies (its sidecar crashes) with calls in flight
    // from three more callers: calls move to b.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background: Vec<_> = (0..3)
        .map(|_| {
            let (stop, out) = (stop.clone(), client.spec.outbound_http);
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, 0u32);
                // Bounded: at most 2000 calls per thread.
                for _ in 0..2000 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    match curl_via(out, "payments.default.mesh", "/", &[]) {
                        Ok((200, _, _)) => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    local.kill();
    let mut failures = 0;
    let deadline = Instant::now() + T;
    let mut served_by_b = 0;
    while served_by_b < 10 {
        ensure!(
            Instant::now() < deadline,
            "calls did not fail over to b ({failures} failures)"
        );
        match client.curl("payments.default.mesh", "/", &[]) {
            Ok((200, _, body)) if body.contains("name=payments-b") => served_by_b += 1,
            _ => failures += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut concurrent = 0;
    for t in background {
        let (ok, failed) = t.join().expect("caller thread");
        ensure!(ok > 0, "a concurrent caller got no answer at all");
        concurrent += failed;
    }
    // Bounded: a connect failure is retried elsewhere, a bodiless GET in
    // flight on the dead connection is sent again, and the outlier
    // detector ejects a dead endpoint after 3 connect failures.
    ensure!(
        failures + concurrent <= 3,
        "{failures} sequential and {concurrent} concurrent calls failed during failover (at most 3 expected)"
    );
    // The local copy returns: calls come back home.
    let spec = local.spec.clone();
    let _back = SidecarProc::start(spec, m.dir.path()).await?;
    wait::until("calls to return to a", T, || {
        let r = client.curl("payments.default.mesh", "/", &[]);
        async move { Ok(r?.2.contains("name=payments-a").then_some(())) }
    })
    .await?;
    println!("failover: {failures} sequential and {concurrent} concurrent calls failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_never_see_application_bytes() -> Result<()> {
    let mut m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        .unreachable("b")
        .export("a", "default/*", &["*"])
        .start()
        .await?;
    // b reaches a only through a UDP relay that records the tunnel's datagrams.
    let tunnel = relay::udp(m.clusters["a"].gateways[0].spec.tunnel).await?;
    let mut spec = m.gw("b").spec.clone();
    spec.peers[0].addresses = vec![tunnel.addr];
    m.gw("b").reconfigure(spec).await?;
    let pay = apps::http("payments-a").await?;
    let orders = apps::http("orders-b").await?;
    let _s = m.sidecar("a", "default/payments", "http", pay.addr).await?;
    // b's sidecar reaches its gateway's forward port through a recording TCP relay.
    let hop = relay::tcp(m.clusters["b"].gateways[0].spec.forward).await?;
    let mut spec = m.sidecar_spec("b", "default/orders", "http", orders.addr)?;
    spec.gateway.1 = hop.addr;
    let client = SidecarProc::start(spec, m.dir.path()).await?;
    m.sees("b", "default/payments", "a", 1, None).await?;
    let marker = "MARKER-7f3a9c-never-in-clear";
    let (status, _, body) = client.curl(
        "payments.default.mesh",
        &format!("/{marker}"),
        &["-H", &format!("x-secret: {marker}")],
    )?;
    ensure!(
        status == 200 && body.contains("name=payments-a"),
        "{status} {body}"
    );
    ensure!(
        hop.carried() > 0,
        "nothing crossed the sidecar-to-gateway hop"
    );
    ensure!(tunnel.carried() > 0, "nothing crossed the tunnel relay");
    ensure!(
        !relay::contains(&hop.seen(), marker.as_bytes()),
        "the marker crossed the sidecar-to-gateway hop in clear"
    );
    ensure!(
        !relay::contains(&tunnel.seen(), marker.as_bytes()),
        "the marker crossed the tunnel in clear"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_verified_at_the_inbound_port_and_unknown_services_get_503() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let pay = apps::http("payments-a").await?;
    let orders = apps::http("orders-a").await?;
    let server = m.sidecar("a", "default/payments", "http", pay.addr).await?;
    let client = m
        .sidecar("a", "default/orders", "http", orders.addr)
        .await?;
    // No client certificate at all: the inbound port refuses.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--max-time",
            "5",
            "--http2",
            &format!("https://{}/", server.spec.inbound),
        ])
        .output()?;
    ensure!(
        !out.status.success(),
        "the inbound port served a caller without a certificate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The refusal is logged with the reason, and the sidecar keeps serving.
    wait::until("the refusal in the log", T, || {
        let log = server.log_text();
        async move {
            Ok(log
                .lines()
                .any(|l| l.contains("refus") || l.contains("reject"))
                .then_some(()))
        }
    })
    .await?;
    let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
    ensure!(
        status == 200 && body.contains("name=payments-a"),
        "{status} {body}"
    );

    // A workload of cluster a with a valid certificate, bypassing its
    // sidecar, cannot pass itself off as cluster b: the app is told the
    // cluster whose CA issued the certificate.
    let (cert, key) = m.pki.workload("a", "default", "rogue")?;
    let port = server.spec.inbound.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--http2", "--cacert"])
        .arg(m.pki.root())
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-H", "x-meshgw-source-cluster: b"])
        .arg(format!("https://localhost:{port}/"))
        .output()?;
    let body = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && body.contains("name=payments-a"),
        "a mesh caller was not served at the inbound port: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        body.contains("x-meshgw-source-cluster=a")
            && body.contains("x-meshgw-caller=spiffe://")
            && body.contains("/sa/rogue"),
        "the app was not told the certificate's cluster and caller: {body}"
    );
    wait::until("the forged cluster in the log", T, || {
        let log = server.log_text();
        async move {
            Ok(log
                .lines()
                .any(|l| l.contains("runs in cluster b, but the CA of cluster a issued"))
                .then_some(()))
        }
    })
    .await?;

    // An unknown service: 503, a header and a body naming the service and the reason.
    let (status, head, body) = client.curl("nope.default.mesh", "/", &[])?;
    ensure!(status == 503, "unknown service answered {status}");
    let header = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("x-meshgw-error:"))
        .unwrap_or_default();
    ensure!(
        header.contains("default/nope"),
        "no x-meshgw-error naming the service: {head}"
    );
    ensure!(
        body.contains("default/nope"),
        "503 body does not name the service: {body}"
    );
    Ok(())
}

/// A hop that times out is the one named: the only instance of `slow`, in a,
/// swallows connects, so a's gateway gives up on it within its
/// `timeouts.connect`, and the caller in b gets a 504 whose `x-meshgw-error`
/// names a's gateway, not its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_reported_at_the_hop_that_timed_out() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        .export("a", "default/slow", &["*"])
        .timeout("connect", "500ms")
        .start()
        .await?;
    // A listener that never accepts, its one-slot queue filled: the kernel
    // drops further SYNs, so connects to it hang.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let hole = socket.listen(0)?;
    let hole_addr = hole.local_addr()?;
    let _filler = tokio::net::TcpStream::connect(hole_addr).await?;
    let mut a = Api::connect(&m, "a").await?;
    a.register_at("default/slow", "s1", "127.0.0.1", hole_addr.port(), 60)
        .await?;
    m.sees("b", "default/slow", "a", 1, None).await?;
    let orders = apps::http("orders-b").await?;
    let client = m
        .sidecar("b", "default/orders", "http", orders.addr)
        .await?;
    let (status, head, body) = wait::until("a 504 from the sidecar in b", T, || {
        let r = client.curl("slow.default.mesh", "/", &[]);
        async move {
            let r = r?;
            ensure!(r.0 == 504, "answered {}: {}\n{}", r.0, r.1, r.2);
            Ok(Some(r))
        }
    })
    .await?;
    let header = head
        .lines()
        .find_map(|l| l.strip_prefix("x-meshgw-error: "))
        .unwrap_or_default();
    ensure!(
        header == "connect_timeout; service=default/slow; hop=peer-gateway:a",
        "{status}: the timeout is not blamed on a's gateway: {head}\n{body}"
    );
    ensure!(body.contains("timed out"), "{body}");
    drop(hole);
    Ok(())
}

/// One caller's requests to a service that runs only in another cluster
/// spread over that cluster's instances: the caller's sidecar keeps one
/// HTTP/2 connection per remote healthy instance and uses them in turn, and
/// the remote gateway places each connection on its least-loaded instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callers_requests_spread_over_a_remote_clusters_instances() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        .export("a", "default/payments", &["*"])
        .start()
        .await?;
    let mut servers = Vec::new();
    for i in 1..=3 {
        let app = apps::http(&format!("payments-a{i}")).await?;
        let sc = m.sidecar("a", "default/payments", "http", app.addr).await?;
        servers.push((app, sc));
    }
    m.sees("b", "default/payments", "a", 3, None).await?;
    let orders = apps::http("orders-b").await?;
    let client = m
        .sidecar("b", "default/orders", "http", orders.addr)
        .await?;
    let mut served = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..15 {
        let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
        ensure!(status == 200, "{status} {body}");
        let name = body
            .lines()
            .find_map(|l| l.strip_prefix("name="))
            .context("no name= in the answer")?;
        *served.entry(name.to_owned()).or_default() += 1;
    }
    ensure!(
        served.len() == 3,
        "15 requests reached only {served:?} of 3 instances in a"
    );
    Ok(())
}
