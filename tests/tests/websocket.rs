//! WebSocket through the mesh with real processes: a tokio-tungstenite
//! client opens `ws://chat.default.mesh/echo` through its sidecar's
//! `outbound.http`, in the service's cluster and in another one (through
//! both gateways and the QUIC tunnel); the app gets the caller's identity
//! with the handshake (`[[authz.rules]]` that allow only GET let it
//! through), messages of every size come back intact, the close
//! handshake completes, the bytes are counted; an upgrade the app refuses
//! comes back as its answer, one it ignores (a 200) as a 502.

use std::time::Duration;

use anyhow::{Result, ensure};
use meshgw_tests::apps;
use meshgw_tests::mesh::MeshBuilder;
use meshgw_tests::{metrics, wait, ws};
use tokio_tungstenite::tungstenite::{Error, Message};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_cross_the_mesh_by_name_and_refusals_come_back() -> Result<()> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    let chat = ws::echo_app("chat-a").await?;
    let orders_a = apps::http("orders-a").await?;
    let orders_b = apps::http("orders-b").await?;
    // The callers may only GET: a WebSocket is checked as the GET it is.
    let mut spec = m.sidecar_spec("a", "default/chat", "http", chat.addr)?;
    spec.extra = "[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/default/sa/orders\"]\nmethods = [\"GET\"]\npaths = [\"/echo\", \"/nope\", \"/\"]\n".into();
    let server = meshgw_tests::sidecar::SidecarProc::start(spec, m.dir.path()).await?;
    let here = m
        .sidecar("a", "default/orders", "http", orders_a.addr)
        .await?;
    let there = m
        .sidecar("b", "default/orders", "http", orders_b.addr)
        .await?;
    m.sees("b", "default/chat", "a", 1, None).await?;

    for (client, cluster) in [(&here, "a"), (&there, "b")] {
        let outbound = client.spec.outbound_http;
        let (mut chat, resp) =
            tokio::time::timeout(T, ws::connect(outbound, "chat.default.mesh", "/echo")).await??;
        ensure!(resp.status() == 101, "from {cluster}: {}", resp.status());
        ensure!(
            resp.headers().get("x-app").is_some_and(|v| v == "ws-echo"),
            "from {cluster}: the app's handshake headers did not come back: {:?}",
            resp.headers()
        );
        let r: Result<()> = tokio::time::timeout(T, async {
            let seen = ws::next_data(&mut chat).await?.into_text()?;
            ensure!(
                seen.contains("x-meshgw-caller=spiffe://mesh.test/ns/default/sa/orders")
                    && seen.contains(&format!("x-meshgw-source-cluster={cluster}")),
                "from {cluster}: the app saw {seen:?}"
            );
            for i in 0..20 {
                let text = format!("message {i} from {cluster}");
                let back = ws::round_trip(&mut chat, Message::text(text.clone())).await?;
                ensure!(back == Message::text(text), "from {cluster}: {back:?}");
            }
            // 1 MiB in one message: many frames of the mesh's HTTP/2 stream.
            let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
            let back = ws::round_trip(&mut chat, Message::binary(big.clone())).await?;
            ensure!(
                back.into_data() == big,
                "from {cluster}: the 1 MiB message came back changed"
            );
            // The close handshake goes through and ends the stream.
            chat.close(None).await?;
            let mut replied = false;
            while let Some(m) = futures::StreamExt::next(&mut chat).await {
                replied |= matches!(m?, Message::Close(_));
            }
            ensure!(replied, "from {cluster}: the app's close reply never came");
            Ok(())
        })
        .await?;
        r?;
    }

    // Each closed upgraded connection is counted in the proxied bytes of
    // the caller's and the app's sidecars: two 1 MiB messages each way, and
    // more (the counters are updated when a connection ends).
    let mib2 = 2 << 20;
    for (who, sidecar, direction) in [
        ("the callers' sidecar in a", &here, "Outbound"),
        ("the callers' sidecar in b", &there, "Outbound"),
        ("the app's sidecar", &server, "Inbound"),
    ] {
        wait::until(&format!("{who} to count the bytes"), T, || {
            let text = sidecar.admin_get("/metrics").map(|r| r.1);
            async move {
                let label = format!("direction=\"{direction}\"");
                let n = metrics::sum(&text?, "meshgw_sidecar_bytes_total", &[&label]);
                Ok((n >= mib2).then_some(()))
            }
        })
        .await?;
    }

    // An app that ignores the upgrade and answers 200: the caller gets a
    // 502 naming it, not a 101 over a tunnel that is not there.
    let (status, head, body) = here.curl(
        "chat.default.mesh",
        "/echo",
        &["-H", "Connection: Upgrade", "-H", "Upgrade: websocket"],
    )?;
    ensure!(
        status == 502 && head.contains("upgrade_not_switched") && body.contains("200 OK"),
        "an upgrade the app ignored answered {status}: {head} {body}"
    );

    // An upgrade the app refuses: its 404 comes back as it sent it.
    match ws::connect(here.spec.outbound_http, "chat.default.mesh", "/nope").await {
        Err(Error::Http(resp)) => {
            ensure!(
                resp.status() == 404,
                "refused upgrade answered {}",
                resp.status()
            );
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            ensure!(body.contains("no websocket here"), "body {body:?}");
        }
        Ok(_) => anyhow::bail!("an upgrade to a path the app refuses was accepted"),
        Err(e) => anyhow::bail!("refused upgrade: {e}"),
    }
    // The sidecar still serves plain HTTP on the same listener.
    let (status, _, body) = here.curl("chat.default.mesh", "/", &[])?;
    ensure!(
        status == 200 && body.contains("name=chat-a"),
        "{status} {body}"
    );
    Ok(())
}
