//! Authorization at the destination sidecar: with `[authz] allow`, only the
//! listed callers (by the SPIFFE ID their certificate proves) reach the app,
//! whether they call from the same cluster or through both gateways; the
//! others get HTTP 403, gRPC PERMISSION_DENIED, or a reset TCP connection,
//! each refusal counted; with `[[authz.rules]]`, a caller gets only the
//! methods and paths its rules name.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshgw_tests::apps::{self, TcpEnd};
use meshgw_tests::mesh::{Backend, Mesh, MeshBuilder};
use meshgw_tests::sidecar::SidecarProc;
use meshgw_tests::{metrics, wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(20);

/// Starts payments (HTTP), inventory (gRPC) and echo (TCP) in cluster a in
/// front of `apps`, each sidecar's config ending with `authz`; `echo_health`
/// replaces echo's TCP health check when given.
async fn servers(
    m: &Mesh,
    authz: &str,
    apps: [SocketAddr; 3],
    echo_health: Option<&str>,
) -> Result<Vec<SidecarProc>> {
    let mut servers = Vec::new();
    let services = [
        ("default/payments", "http"),
        ("default/inventory", "grpc"),
        ("default/echo", "tcp"),
    ];
    for ((svc, proto), addr) in services.into_iter().zip(apps) {
        let mut spec = m.sidecar_spec("a", svc, proto, addr)?;
        spec.extra = authz.into();
        if let (Some(health), "tcp") = (echo_health, proto) {
            spec.health = health.into();
        }
        servers.push(SidecarProc::start(spec, m.dir.path()).await?);
    }
    Ok(servers)
}

/// Only `default/orders`, of any cluster.
const AUTHZ: &str = "[authz]\nallow = [\"spiffe://mesh.test/ns/default/sa/orders\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_callers_reach_the_app_locally_and_across_clusters() -> Result<()> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    // Three services in a, each allowing only orders.
    let pay = apps::http("payments-a").await?;
    let inv = apps::grpc("inventory").await?;
    let (echo, mut ends) = apps::tcp_echo_reporting().await?;
    // No TCP health check on echo: the app reports only callers.
    let servers = servers(&m, AUTHZ, [pay.addr, inv.addr, echo.addr], Some("none")).await?;
    // Callers: orders (allowed) and checkout (not), in a and in b, each
    // with an upstream listener for echo.
    let mut callers = Vec::new();
    let caller_app = apps::http("caller").await?;
    for cluster in ["a", "b"] {
        for svc in ["default/orders", "default/checkout"] {
            let mut spec = m.sidecar_spec(cluster, svc, "http", caller_app.addr)?;
            spec.upstreams = vec![(meshgw_tests::ports::tcp(), "default/echo".into())];
            callers.push((cluster, svc, SidecarProc::start(spec, m.dir.path()).await?));
        }
    }
    for s in ["default/payments", "default/inventory", "default/echo"] {
        m.sees("b", s, "a", 1, None).await?;
    }

    for (cluster, svc, caller) in &callers {
        let allowed = *svc == "default/orders";
        let who = format!("{svc} in {cluster}");
        let id = format!(
            "spiffe://mesh.test/ns/default/sa/{}",
            svc.trim_start_matches("default/")
        );
        // HTTP.
        let (status, head, body) = caller.curl("payments.default.mesh", "/", &[])?;
        if allowed {
            ensure!(
                status == 200 && body.contains("name=payments-a"),
                "{who}: {status} {body}"
            );
        } else {
            ensure!(
                status == 403
                    && head.to_ascii_lowercase().contains(&format!(
                        "x-meshgw-error: forbidden; service=default/payments; caller={id}"
                    ))
                    && body.contains(&format!("caller {id} may not call default/payments"))
                    && !body.contains("name=payments-a"),
                "{who} should get the sidecar's 403: {status}\n{head}\n{body}"
            );
        }
        // gRPC: PERMISSION_DENIED for a refused caller.
        let ch = caller.grpc_channel("inventory.default.mesh").await?;
        let r = tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "inventory".into(),
            })
            .await;
        match (allowed, r) {
            (true, Ok(_)) => {}
            (false, Err(s)) if s.code() == tonic::Code::PermissionDenied => {
                ensure!(s.message().contains("not in [authz] allow"), "{who}: {s:?}");
            }
            (_, r) => anyhow::bail!("{who}: gRPC answered {r:?}"),
        }
        // TCP through the upstream listener: echoed, or reset before the app.
        let upstream = caller.spec.upstreams[0].0;
        let mut s = tokio::net::TcpStream::connect(upstream).await?;
        let _ = s.write_all(b"hello").await;
        let _ = s.shutdown().await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(T, s.read_to_end(&mut got))
            .await
            .with_context(|| format!("{who}: the TCP connection neither echoed nor closed"))?;
        if allowed {
            ensure!(got == b"hello", "{who}: echo {got:?} ({read:?})");
            let end = tokio::time::timeout(T, ends.recv()).await?;
            ensure!(end == Some(TcpEnd::Eof(5)), "{who}: the app saw {end:?}");
        } else {
            ensure!(got.is_empty(), "{who}: a refused caller got {got:?}");
        }
    }
    // Two allowed TCP callers reached the echo app, the refused ones never did.
    ensure!(
        ends.try_recv().is_err(),
        "a refused caller's connection reached the app"
    );
    let text = |i: usize| -> Result<String> { Ok(servers[i].admin_get("/metrics")?.1) };
    let checkout = "caller=\"spiffe://mesh.test/ns/default/sa/checkout\"";
    let orders = "caller=\"spiffe://mesh.test/ns/default/sa/orders\"";
    for (i, what) in [
        (0, "HTTP requests"),
        (1, "gRPC calls"),
        (2, "TCP connections"),
    ] {
        let t = text(i)?;
        let denied = |who: &str| metrics::sum(&t, "meshgw_sidecar_authz_denied_total", &[who]);
        ensure!(
            denied(checkout) == 2 && denied(orders) == 0,
            "{what}: expected 2 refusals of checkout (from a and b), none of orders:\n{t}"
        );
    }
    ensure!(
        servers[0]
            .log_text()
            .contains("refused caller: not in [authz] allow"),
        "the refusal is not logged:\n{}",
        servers[0].log_text()
    );
    Ok(())
}

/// `ops` may do anything; `web` only what its rules say.
const RULES: &str = "[authz]\nallow = [\"spiffe://mesh.test/ns/default/sa/ops\"]\n\n\
[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/default/sa/web\"]\n\
methods = [\"GET\"]\npaths = [\"/\", \"/download*\"]\n\n\
[[authz.rules]]\ncallers = [\"spiffe://mesh.test/ns/default/*\"]\n\
methods = [\"POST\"]\npaths = [\"/grpc.health.v1.Health/Check\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_limit_a_caller_to_methods_and_paths() -> Result<()> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    let pay = apps::http("payments-a").await?;
    let inv = apps::grpc("inventory").await?;
    let echo = apps::tcp_echo().await?;
    let servers = servers(&m, RULES, [pay.addr, inv.addr, echo.addr], None).await?;
    let caller_app = apps::http("caller").await?;
    // web calls from b (through both gateways), ops from a.
    let mut spec = m.sidecar_spec("b", "default/web", "http", caller_app.addr)?;
    spec.upstreams = vec![(meshgw_tests::ports::tcp(), "default/echo".into())];
    let web = SidecarProc::start(spec, m.dir.path()).await?;
    let ops = m
        .sidecar("a", "default/ops", "http", caller_app.addr)
        .await?;
    for s in ["default/payments", "default/inventory", "default/echo"] {
        m.sees("b", s, "a", 1, None).await?;
    }

    // Within its rule: GET / and GET /download (the query is not matched).
    let (status, _, body) = web.curl("payments.default.mesh", "/", &[])?;
    ensure!(
        status == 200 && body.contains("name=payments-a"),
        "{status} {body}"
    );
    let (status, _, body) = web.curl("payments.default.mesh", "/download?n=10", &[])?;
    ensure!(
        status == 200 && !body.contains("forbidden"),
        "{status} {body:?}"
    );
    // Outside it: another path, another method.
    let id = "spiffe://mesh.test/ns/default/sa/web";
    for (path, extra, said) in [
        ("/slow?ms=1", &[][..], "GET /slow"),
        ("/upload", &["-d", "x=1"][..], "POST /upload"),
    ] {
        let (status, head, body) = web.curl("payments.default.mesh", path, extra)?;
        ensure!(
            status == 403
                && head.to_ascii_lowercase().contains(&format!(
                    "x-meshgw-error: forbidden; service=default/payments; caller={id}"
                ))
                && body.contains(&format!("caller {id} may not {said} on default/payments"))
                && body.contains("[[authz.rules]]"),
            "web {said} should get the sidecar's 403: {status}\n{head}\n{body}"
        );
    }
    // A path a rule's prefix would match, but that an app could resolve to
    // another path: refused, whatever the rules say.
    for odd in [
        "/download/../slow",
        "/download/%2e%2e/slow",
        "/download//x",
        "/download/..;/slow",
    ] {
        let (status, _, body) = web.curl("payments.default.mesh", odd, &["--path-as-is"])?;
        ensure!(
            status == 403 && body.contains("normal paths only"),
            "web GET {odd} should be refused: {status} {body}"
        );
    }
    // A method override would run another method than the one checked: it
    // is taken off a rule-limited caller's requests, not off others'.
    let over = ["-H", "X-HTTP-Method-Override: DELETE"];
    let (status, _, body) = web.curl("payments.default.mesh", "/", &over)?;
    ensure!(
        status == 200 && !body.contains("x-http-method-override"),
        "web's method override reached the app: {status} {body}"
    );
    let (status, _, body) = ops.curl("payments.default.mesh", "/", &over)?;
    ensure!(
        status == 200 && body.contains("x-http-method-override=DELETE"),
        "ops's header was taken off: {status} {body}"
    );
    // ops is in allow: everything.
    let (status, _, body) = ops.curl("payments.default.mesh", "/upload", &["-d", "x=1"])?;
    ensure!(
        status == 200 && body.ends_with(" 3"),
        "ops POST: {status} {body}"
    );

    // gRPC: the rule allows Check; Watch is refused.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        web.grpc_channel("inventory.default.mesh").await?,
    );
    let req = || tonic_health::pb::HealthCheckRequest {
        service: "inventory".into(),
    };
    health
        .check(req())
        .await
        .context("Check, which a rule allows")?;
    match health.watch(req()).await {
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            ensure!(
                s.message()
                    .contains("may not POST /grpc.health.v1.Health/Watch"),
                "{s:?}"
            );
        }
        r => anyhow::bail!("Watch, which no rule allows, answered {r:?}"),
    }

    // TCP: web's rules limit methods and paths, which a TCP connection has
    // none of: reset, nothing echoed.
    let mut s = tokio::net::TcpStream::connect(web.spec.upstreams[0].0).await?;
    let _ = s.write_all(b"hello").await;
    let _ = s.shutdown().await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut got))
        .await
        .context("the TCP connection neither echoed nor closed")?;
    ensure!(
        got.is_empty(),
        "a caller limited to HTTP rules got {got:?} over TCP"
    );

    let denied = |i: usize| -> Result<u64> {
        let t = servers[i].admin_get("/metrics")?.1;
        let web = "caller=\"spiffe://mesh.test/ns/default/sa/web\"";
        Ok(metrics::sum(
            &t,
            "meshgw_sidecar_authz_denied_total",
            &[web],
        ))
    };
    ensure!(denied(0)? == 6, "payments: expected 6 refusals of web");
    ensure!(denied(1)? == 1, "inventory: expected 1 refusal of web");
    ensure!(denied(2)? == 1, "echo: expected 1 refusal of web");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_changes_apply_to_a_running_sidecar_and_a_bad_file_changes_nothing() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let pay = apps::http("payments-a").await?;
    let mut spec = m.sidecar_spec("a", "default/payments", "http", pay.addr)?;
    spec.extra = AUTHZ.into();
    let server = SidecarProc::start(spec, m.dir.path()).await?;
    let caller_app = apps::http("caller").await?;
    let checkout = m
        .sidecar("a", "default/checkout", "http", caller_app.addr)
        .await?;
    m.sees("a", "default/payments", "a", 1, None).await?;
    let status = || -> Result<u16> { Ok(checkout.curl("payments.default.mesh", "/", &[])?.0) };
    let becomes = |want: u16, what: &'static str| {
        wait::until(what, T, move || {
            let s = status();
            async move { Ok((s? == want).then_some(())) }
        })
    };
    becomes(403, "checkout refused").await?;

    // checkout is allowed too: the running sidecar takes the new file, and
    // judges again the connection checkout already has open.
    let original = std::fs::read_to_string(&server.config)?;
    let both = "\"spiffe://mesh.test/ns/default/sa/orders\", \"spiffe://mesh.test/ns/default/sa/checkout\"";
    let widened = original.replace("\"spiffe://mesh.test/ns/default/sa/orders\"", both);
    ensure!(
        widened != original,
        "the test's edit found nothing to change"
    );
    std::fs::write(&server.config, &widened)?;
    becomes(200, "checkout allowed without a restart").await?;

    // A file that does not load is reported with its key, and the policy in
    // force stays.
    let broken = widened.replace(
        "\"spiffe://mesh.test/ns/default/sa/checkout\"",
        "\"checkout\"",
    );
    std::fs::write(&server.config, &broken)?;
    wait::until("the refused reload in the log", T, || {
        let log = server.log_text();
        async move {
            Ok(log
                .lines()
                .any(|l| l.contains("do not load") && l.contains("authz.allow[1]"))
                .then_some(()))
        }
    })
    .await?;
    ensure!(
        status()? == 200,
        "a file that does not load changed the policy"
    );

    // Back to orders only.
    std::fs::write(&server.config, &original)?;
    becomes(403, "checkout refused again").await?;
    ensure!(
        server.log_text().contains(
            "sidecar config files changed: new connections and requests use the new [authz]"
        ),
        "the reload is not logged:\n{}",
        server.log_text()
    );
    Ok(())
}
