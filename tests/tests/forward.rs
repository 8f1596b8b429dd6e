//! The gateways' data path on its own: a connection handed to B's gateway
//! with a route header crosses the QUIC tunnel to A's gateway, which connects
//! it to a healthy instance registered in A; bytes flow both ways intact,
//! half-close propagates, and failures answer with a status and a reason
//! naming the hop.

use std::time::Duration;

use anyhow::{Result, ensure};
use meshgw_proxy::route::RouteStatus;
use meshgw_tests::client::Api;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use meshgw_tests::{forward, wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP echo server on loopback; returns its port.
async fn echo_server() -> Result<u16> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cross_the_tunnel_to_an_instance_and_failures_name_the_hop() -> Result<()> {
    let mut m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        .export("a", "default/echo", &["*"])
        .start()
        .await?;
    let port = echo_server().await?;
    let mut a = Api::connect(&m, "a").await?;
    let b = Api::connect(&m, "b").await?;
    a.register_at("default/echo", "e1", "127.0.0.1", port, 60)
        .await?;
    wait::until("b imports echo", Duration::from_secs(15), || {
        let mut b = b.clone();
        async move {
            Ok(b.cluster_view("default/echo", "a")
                .await?
                .filter(|v| v.healthy == 1)
                .map(|_| ()))
        }
    })
    .await?;

    let r: Result<()> = async {
        // Bytes cross both ways, intact, and EOF propagates.
        let (ans, mut pipe) = forward::open(
            &m.clusters["b"].gateways[0],
            &m.pki,
            "default",
            "echo",
            None,
        )
        .await?;
        ensure!(ans.status == RouteStatus::Ok, "forward refused: {ans:?}");
        let payload: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let (mut rd, mut wr) = tokio::io::split(&mut pipe);
        let send = async {
            wr.write_all(&payload).await?;
            wr.shutdown().await?;
            Ok::<_, anyhow::Error>(())
        };
        let recv = async {
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await?;
            Ok::<_, anyhow::Error>(got)
        };
        let (s, got) = tokio::join!(send, recv);
        s?;
        let got = got?;
        ensure!(
            got.len() == payload.len() && got == payload,
            "echo came back different: {} of {} bytes",
            got.len(),
            payload.len()
        );
        let (_, metrics) = m.clusters["b"].gateways[0].admin_get("/metrics")?;
        ensure!(
            metrics
                .lines()
                .any(|l| l.starts_with("meshgw_forwarded_connections_total")
                    && l.contains("outcome=\"ok\"")
                    && l.ends_with(" 1")),
            "b did not count the forward:\n{metrics}"
        );

        // An unknown service: no peer exports it.
        let (ans, _) = forward::open(
            &m.clusters["b"].gateways[0],
            &m.pki,
            "default",
            "nope",
            None,
        )
        .await?;
        ensure!(
            ans.status == RouteStatus::NoInstance
                && ans.reason.contains("gateway b")
                && ans.reason.contains("default/nope"),
            "{ans:?}"
        );

        // A's gateway dies: the tunnel is down, and b says so.
        m.gw("a").kill();
        let ans = wait::until("b to report a unreachable", Duration::from_secs(15), || {
            let f = forward::open(
                &m.clusters["b"].gateways[0],
                &m.pki,
                "default",
                "echo",
                Some("a"),
            );
            async move {
                let (ans, _) = f.await?;
                Ok((ans.status == RouteStatus::PeerUnreachable).then_some(ans))
            }
        })
        .await?;
        ensure!(
            ans.reason.contains("gateway b") && ans.reason.contains("a"),
            "{ans:?}"
        );
        Ok(())
    }
    .await;
    r.map_err(|e| e.context(m.logs()))
}

/// A forwarded connection silent both ways for the gateway's `timeouts.idle`
/// is closed by the gateway (the echo app would keep it open forever), and
/// not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_forwarded_connection_is_closed_after_the_gateway_idle_timeout() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .cluster("b", Backend::Embedded, 1)
        .export("a", "default/echo", &["*"])
        .timeout("idle", "1s")
        .start()
        .await?;
    let port = echo_server().await?;
    let mut a = Api::connect(&m, "a").await?;
    let b = Api::connect(&m, "b").await?;
    a.register_at("default/echo", "e1", "127.0.0.1", port, 60)
        .await?;
    wait::until("b imports echo", Duration::from_secs(15), || {
        let mut b = b.clone();
        async move {
            Ok(b.cluster_view("default/echo", "a")
                .await?
                .filter(|v| v.healthy == 1)
                .map(|_| ()))
        }
    })
    .await?;
    let gw_b = &m.clusters["b"].gateways[0];
    let (ans, mut pipe) = forward::open(gw_b, &m.pki, "default", "echo", None).await?;
    ensure!(ans.status == RouteStatus::Ok, "forward refused: {ans:?}");
    // The gateway's last activity (relaying the echo back) comes after
    // this instant, so the idle close cannot come before it plus 1 s (the
    // instant after the echo arrives could be later than that activity).
    let sent = std::time::Instant::now();
    pipe.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    pipe.read_exact(&mut buf).await?;
    ensure!(&buf == b"ping", "echo answered {buf:?}");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(20), pipe.read_to_end(&mut rest)).await;
    let waited = sent.elapsed();
    ensure!(
        end.is_ok(),
        "the idle connection was still open after {waited:?}"
    );
    ensure!(rest.is_empty(), "unexpected bytes after the echo: {rest:?}");
    ensure!(
        waited >= Duration::from_secs(1),
        "closed after {waited:?}, before timeouts.idle (1s)"
    );
    Ok(())
}
