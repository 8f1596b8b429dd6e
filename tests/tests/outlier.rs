//! Outlier detection on answers: an instance whose app answers 5xx while
//! its health check passes is ejected by its callers after five in a row,
//! their calls fail over to another cluster, and once the ejection ends a
//! single failed probe ejects it again. gRPC calls count the same way by
//! their `grpc-status`, and requests that time out like 5xx answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use meshgw_tests::apps::{self, App};
use meshgw_tests::mesh::{Mesh, MeshBuilder};
use meshgw_tests::metrics;
use meshgw_tests::sidecar::SidecarProc;

/// `GET /` for `payments` through the caller's sidecar: (status, body).
fn call(sc: &SidecarProc) -> Result<(u16, String)> {
    let (status, _, body) = sc.curl("payments.default.mesh", "/", &[])?;
    Ok((status, body.trim_end().to_string()))
}

/// A caller in a, and `default/<name>` running broken in a and working in
/// b (exported); fields drop in order.
struct Failover {
    client: SidecarProc,
    _copies: [SidecarProc; 2],
    _caller_app: App,
    _mesh: Mesh,
}

/// `default/<name>` (`protocol`) runs in a fronting `broken`, whose
/// `health` check passes, and in b fronting `good`; the caller in a, with
/// `timeouts.request` = `request_timeout` and `caller_extra` appended to
/// its config, starts once a's catalog lists both copies: its sidecar is
/// ready only after the catalog snapshot, which then lists both, so its
/// first calls cannot miss one.
async fn failover(
    name: &str,
    protocol: &str,
    broken: SocketAddr,
    health: &str,
    good: SocketAddr,
    request_timeout: &str,
    caller_extra: &str,
) -> Result<Failover> {
    let m = MeshBuilder::two_clusters("b").start().await?;
    let svc = format!("default/{name}");
    let mut spec = m.sidecar_spec("a", &svc, protocol, broken)?;
    spec.health = health.into();
    let sa = SidecarProc::start(spec, m.dir.path()).await?;
    let sb = m.sidecar("b", &svc, protocol, good).await?;
    m.sees("a", &svc, "a", 1, Some(1)).await?;
    m.sees("a", &svc, "b", 1, None).await?;
    let orders = apps::http("orders").await?;
    let mut spec = m.sidecar_spec("a", "default/orders", "http", orders.addr)?;
    spec.request_timeout = request_timeout.into();
    spec.extra = caller_extra.into();
    let client = SidecarProc::start(spec, m.dir.path()).await?;
    Ok(Failover {
        client,
        _copies: [sa, sb],
        _caller_app: orders,
        _mesh: m,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_5xx_in_a_row_eject_the_local_instance_calls_fail_over_and_one_probe_ejects_it_again()
-> Result<()> {
    // a's copy is broken (503 to every call) but healthy by its health
    // check; b's copy works.
    let broken = apps::http_failing("payments-a", 503).await?;
    let good = apps::http("payments-b").await?;
    let f = failover(
        "payments",
        "http",
        broken.addr,
        "http",
        good.addr,
        "60s",
        "",
    )
    .await?;
    let client = &f.client;
    // Calls go to the local copy first (locality) and pass its 503 on.
    let first = call(client)?;
    ensure!(
        first == (503, "name=payments-a failing".to_string()),
        "the first call should reach the local (broken) copy: {first:?}"
    );
    let mut outcomes = vec![first];
    let mut ejected_at = None;
    for _ in 0..40 {
        outcomes.push(call(client)?);
        if outcomes.len() == 5 {
            ejected_at = Some(Instant::now());
        }
    }
    let ejected_at = ejected_at.context("fewer than 5 calls")?;
    let failed = outcomes.iter().filter(|(s, _)| *s != 200).count();
    let first_ok = outcomes
        .iter()
        .position(|(s, _)| *s == 200)
        .context("no call ever succeeded")?;
    ensure!(
        failed == 5 && first_ok == 5,
        "expected exactly the first 5 calls to fail, then b to answer: {outcomes:?}\n{}",
        client.log_text()
    );
    ensure!(
        outcomes[5..]
            .iter()
            .all(|(s, b)| *s == 200 && b.starts_with("name=payments-b")),
        "after the ejection every call should cross to b: {outcomes:?}"
    );
    let log = client.log_text();
    ensure!(
        log.contains("ejecting target after consecutive failures") && log.contains("ServerErrors"),
        "the caller's sidecar does not log the ejection:\n{log}"
    );

    // The ejection lasts 10 s; then the still broken copy is on probation:
    // one call probes it, fails, and ejects it again (for 20 s), so from
    // 9 s to 13 s after the ejection exactly one call fails.
    tokio::time::sleep_until((ejected_at + Duration::from_secs(9)).into()).await;
    let mut around = Vec::new();
    while ejected_at.elapsed() < Duration::from_secs(13) {
        around.push(call(client)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probes = around.iter().filter(|(s, _)| *s == 503).count();
    ensure!(
        probes == 1 && around.len() >= 20,
        "expected one failed probe of the broken copy between 9 s and 13 s after its ejection: {around:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_settings_come_from_the_config_and_ejections_are_counted() -> Result<()> {
    // Two 5xx in a row eject, for a minute: the third call already crosses
    // to b, and no probe returns to a within this test.
    let broken = apps::http_failing("payments-a", 503).await?;
    let good = apps::http("payments-b").await?;
    let outlier = "[outlier]\nconsecutive_5xx = 2\nbase_ejection_time = \"1m\"\n";
    let f = failover(
        "payments",
        "http",
        broken.addr,
        "http",
        good.addr,
        "60s",
        outlier,
    )
    .await?;
    let client = &f.client;
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        outcomes.push(call(client)?);
    }
    let failed: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].0 != 200)
        .collect();
    ensure!(
        failed == [0, 1]
            && outcomes[2..]
                .iter()
                .all(|(s, b)| *s == 200 && b.starts_with("name=payments-b")),
        "expected exactly the first 2 calls to fail, then b to answer: {outcomes:?}\n{}",
        client.log_text()
    );
    ensure!(
        client.log_text().contains("ejection=Some(60s)"),
        "the ejection's length is not logged:\n{}",
        client.log_text()
    );
    let (_, text) = client.admin_get("/metrics")?;
    let ejections = |cause: &str| {
        metrics::sum(
            &text,
            "meshgw_sidecar_outlier_ejections_total",
            &[
                "service=\"default/payments\"",
                "target=\"local/",
                &format!("cause=\"{cause}\""),
            ],
        )
    };
    ensure!(
        ejections("server_errors") == 1 && ejections("connect_failures") == 0,
        "expected one ejection of a's copy for server errors:\n{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_grpc_unavailable_calls_eject_the_local_instance_status_in_head_or_trailers()
-> Result<()> {
    grpc_failover(false).await.context("status in trailers")?;
    grpc_failover(true).await.context("trailers-only answers")
}

/// a's `inventory` fails every call with UNAVAILABLE (in trailers, or in a
/// trailers-only head); b's works: 5 failed calls, then b, counted by status.
async fn grpc_failover(trailers_only: bool) -> Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    // a's copy fails every call with UNAVAILABLE while its TCP health
    // check passes; b's copy works.
    let broken = apps::grpc_failing(14, trailers_only).await?;
    let good = apps::grpc("inventory").await?;
    let f = failover(
        "inventory",
        "grpc",
        broken.addr,
        "tcp",
        good.addr,
        "60s",
        "",
    )
    .await?;
    let client = &f.client;
    let mut health = HealthClient::new(client.grpc_channel("inventory.default.mesh").await?);
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let r = health
            .check(HealthCheckRequest {
                service: "inventory".into(),
            })
            .await;
        outcomes.push(match r {
            Ok(resp) => Ok(resp.into_inner().status),
            Err(status) => Err(status.code()),
        });
    }
    let unavailable = Err(tonic::Code::Unavailable);
    let serving = Ok(ServingStatus::Serving as i32);
    ensure!(
        outcomes[..5].iter().all(|o| *o == unavailable)
            && outcomes[5..].iter().all(|o| *o == serving),
        "expected exactly the first 5 calls to fail with UNAVAILABLE (the local copy), then b to serve: {outcomes:?}\n{}",
        client.log_text()
    );
    ensure!(
        client
            .log_text()
            .contains("ejecting target after consecutive failures"),
        "the caller's sidecar does not log the ejection:\n{}",
        client.log_text()
    );
    // Every call answered HTTP 200; the gRPC counter tells them apart.
    let (_, metrics) = client.admin_get("/metrics")?;
    let calls = |dst: &str, code: &str| -> u64 {
        metrics::sum(
            &metrics,
            "meshgw_sidecar_grpc_calls_total",
            &[
                &format!("dst_cluster=\"{dst}\""),
                "service=\"default/inventory\"",
                &format!("grpc_status=\"{code}\""),
            ],
        )
    };
    ensure!(
        calls("a", "14") == 5 && calls("b", "0") == 15,
        "expected 5 UNAVAILABLE calls counted in a and 15 OK in b:\n{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_timeouts_in_a_row_eject_a_hanging_local_instance_and_calls_fail_over() -> Result<()> {
    // a's copy accepts requests and never answers; its TCP health check
    // passes. b's copy works.
    let hanging = apps::http_hanging().await?;
    let good = apps::http("payments-b").await?;
    let f = failover(
        "payments",
        "http",
        hanging.addr,
        "tcp",
        good.addr,
        "500ms",
        "",
    )
    .await?;
    let client = &f.client;
    let mut outcomes = Vec::new();
    for _ in 0..12 {
        outcomes.push(call(client)?.0);
    }
    ensure!(
        outcomes[..5].iter().all(|s| *s == 504) && outcomes[5..].iter().all(|s| *s == 200),
        "expected exactly the first 5 calls to time out (504), then b to answer: {outcomes:?}\n{}",
        client.log_text()
    );
    Ok(())
}
