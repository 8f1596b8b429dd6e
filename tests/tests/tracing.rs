//! OpenTelemetry traces: with `[telemetry] otlp_endpoint`, both sidecars of
//! a cross-cluster call export a span of it to a real OTLP/gRPC collector,
//! chained by the W3C `traceparent` from the calling app through the
//! caller's sidecar and the destination's to the destination app.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshgw_tests::apps;
use meshgw_tests::mesh::MeshBuilder;
use meshgw_tests::otlp::{Collector, Received};
use meshgw_tests::sidecar::SidecarProc;
use meshgw_tests::wait;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const APP_SPAN: &str = "00f067aa0ba902b7";
/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// The spans of `trace` from `service`.
fn of(spans: &[Received], trace: &str, service: &str) -> Vec<Received> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace && s.service == service)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sidecars_export_a_span_of_a_call_chained_by_traceparent() -> Result<()> {
    let collector = Collector::start().await?;
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = {:?}\nsample_percent = 100\n",
        collector.endpoint()
    );
    let m = MeshBuilder::two_clusters("a").start().await?;
    let pay = apps::http("payments-a").await?;
    let mut spec = m.sidecar_spec("a", "default/payments", "http", pay.addr)?;
    spec.extra = telemetry.clone();
    let _server = SidecarProc::start(spec, m.dir.path()).await?;
    let orders = apps::http("orders").await?;
    let mut spec = m.sidecar_spec("b", "default/orders", "http", orders.addr)?;
    spec.extra = telemetry;
    let client = SidecarProc::start(spec, m.dir.path()).await?;
    m.sees("b", "default/payments", "a", 1, None).await?;

    // The calling app is in a trace already (its span APP_SPAN, sampled).
    let sampled = format!("traceparent: 00-{TRACE}-{APP_SPAN}-01");
    let (status, _, body) = client.curl("payments.default.mesh", "/v1/pay", &["-H", &sampled])?;
    ensure!(status == 200, "{status} {body}");
    let got = wait::until(
        "both sidecars' spans reach the collector",
        Duration::from_secs(20),
        || async {
            let spans = collector.spans();
            let (c, s) = (of(&spans, TRACE, "orders"), of(&spans, TRACE, "payments"));
            Ok((c.len() == 1 && s.len() == 1).then(|| (c[0].clone(), s[0].clone())))
        },
    )
    .await
    .with_context(|| format!("received: {:?}\n{}", collector.spans(), m.logs()))?;
    let (c, s) = got;
    ensure!(
        c.kind == CLIENT && c.parent_span_id == APP_SPAN && c.name == "GET default/payments",
        "the caller's span: {c:?}"
    );
    ensure!(
        c.attr("http.response.status_code") == Some("200")
            && c.attr("url.path") == Some("/v1/pay")
            && c.attr("meshgw.src_cluster") == Some("b"),
        "the caller's span: {c:?}"
    );
    ensure!(
        s.kind == SERVER && s.parent_span_id == c.span_id,
        "the destination's span should be the caller span's child: {s:?} {c:?}"
    );
    ensure!(
        s.attr("meshgw.caller") == Some("spiffe://mesh.test/ns/default/sa/orders")
            && s.attr("meshgw.src_cluster") == Some("b")
            && s.attr("meshgw.dst_cluster") == Some("a")
            && s.attr("http.response.status_code") == Some("200"),
        "the destination's span: {s:?}"
    );
    // The destination app is handed the destination sidecar's span as parent.
    let handed = format!("traceparent=00-{TRACE}-{}-01", s.span_id);
    ensure!(
        body.contains(&handed),
        "the app should get {handed}:\n{body}"
    );

    // A trace the app did not sample is recorded by no sidecar, and its
    // flag travels on; a call without a traceparent starts a trace (100%).
    let unsampled = "4bf92f3577b34da6a3ce929d0e0e4799";
    let flag = format!("traceparent: 00-{unsampled}-{APP_SPAN}-00");
    let (status, _, body) = client.curl("payments.default.mesh", "/", &["-H", &flag])?;
    ensure!(
        status == 200
            && body.contains(&format!("traceparent=00-{unsampled}-"))
            && body.contains("-00\n"),
        "an unsampled trace should reach the app unsampled: {body}"
    );
    let (status, _, body) = client.curl("payments.default.mesh", "/", &[])?;
    ensure!(status == 200, "{status} {body}");
    let fresh = body
        .lines()
        .find_map(|l| l.strip_prefix("traceparent=00-"))
        .and_then(|l| l.split('-').next())
        .context("no traceparent reached the app")?
        .to_string();
    wait::until(
        "the new trace's spans reach the collector",
        Duration::from_secs(20),
        || async {
            let spans = collector.spans();
            Ok((of(&spans, &fresh, "orders").len() == 1
                && of(&spans, &fresh, "payments").len() == 1)
                .then_some(()))
        },
    )
    .await?;
    // Spans are exported in the order they end: the unsampled call's would
    // have arrived by now.
    ensure!(
        collector.spans().iter().all(|s| s.trace_id != unsampled),
        "an unsampled call was recorded: {:?}",
        collector.spans()
    );

    // A collector that is not there never holds up traffic: a caller whose
    // endpoint refuses connections starts, and its calls succeed.
    let nobody = meshgw_tests::ports::tcp();
    let mut spec = m.sidecar_spec("b", "default/checkout", "http", orders.addr)?;
    spec.extra =
        format!("[telemetry]\notlp_endpoint = \"http://{nobody}\"\nsample_percent = 100\n");
    let lone = SidecarProc::start(spec, m.dir.path()).await?;
    let began = std::time::Instant::now();
    for i in 0..20 {
        let (status, _, body) = lone.curl("payments.default.mesh", "/", &[])?;
        ensure!(
            status == 200 && body.contains("name=payments-a"),
            "call {i} with the collector down: {status} {body}"
        );
    }
    // A call that waited on the exporter would wait its 5 s timeout: 20
    // calls in under 10 s means at most one could have (they take ~1 s).
    ensure!(
        began.elapsed() < Duration::from_secs(10),
        "20 calls took {:?} with the collector down",
        began.elapsed()
    );
    // The failing export is reported in the sidecar's log.
    let failed = "exporting request spans failed";
    wait::until(
        "the sidecar reports the failing export",
        Duration::from_secs(20),
        || async { Ok(lone.log_text().contains(failed).then_some(())) },
    )
    .await
    .map_err(|e| e.context(lone.log_text()))?;
    Ok(())
}
