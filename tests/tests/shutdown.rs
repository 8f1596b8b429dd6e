//! A sidecar stopped with SIGTERM, as a rolling restart does it: it finishes
//! the requests in flight, deregisters, and its callers move to the other
//! instance without a failed request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use meshgw_tests::apps;
use meshgw_tests::mesh::{Backend, MeshBuilder};
use meshgw_tests::wait;

const HOST: &str = "payments.default.mesh";

/// A keep-alive HTTP/1.1 connection to a sidecar's outbound listener, as an
/// app holds one.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn get(
    sender: &mut SendRequest<Empty<Bytes>>,
    path: &str,
) -> Result<http::Response<Incoming>> {
    sender.ready().await?;
    let req = http::Request::get(path)
        .header(http::header::HOST, HOST)
        .body(Empty::new())?;
    Ok(sender.send_request(req).await?)
}

/// What the load loop saw: requests answered by each app, and failures.
#[derive(Debug, Default)]
struct Tally {
    by_app: Vec<(String, u32)>,
    failures: Vec<String>,
}

/// Sends quick requests one after another on one keep-alive connection
/// (a new one if the sidecar closes it) until `stop` or 3000 requests.
async fn load(addr: SocketAddr, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut sender = None;
    for _ in 0..3000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if sender
            .as_ref()
            .is_none_or(|s: &SendRequest<_>| s.is_closed())
        {
            match connect(addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    t.failures.push(format!("connect: {e:#}"));
                    continue;
                }
            }
        }
        let s = sender.as_mut().expect("connected above");
        let outcome = async {
            let resp = get(s, "/").await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            let text = String::from_utf8_lossy(&body).into_owned();
            ensure!(status == 200, "{status}: {text}");
            Ok(text.lines().next().unwrap_or_default().to_string())
        }
        .await;
        match outcome {
            Ok(app) => match t.by_app.iter_mut().find(|(a, _)| *a == app) {
                Some((_, n)) => *n += 1,
                None => t.by_app.push((app, 1)),
            },
            Err(e) => t.failures.push(format!("{e:#}")),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t
}

/// Sends `GET /slow?ms=…` on a connection of its own; returns the task that
/// reads its body (and when it ended) and the app that answered the head.
async fn slow(
    out: SocketAddr,
    ms: u64,
) -> Result<(tokio::task::JoinHandle<Result<(Bytes, Instant)>>, String)> {
    let mut conn = connect(out).await?;
    let resp = get(&mut conn, &format!("/slow?ms={ms}")).await?;
    ensure!(resp.status() == 200, "slow request: {}", resp.status());
    let app = resp
        .headers()
        .get("x-app")
        .and_then(|v| v.to_str().ok())
        .context("the slow answer names its app")?
        .to_string();
    let body = tokio::spawn(async move {
        let _conn = conn;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((body, Instant::now()))
    });
    Ok((body, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_callers_lose_none() -> Result<()> {
    let m = MeshBuilder::new()
        .cluster("a", Backend::Embedded, 1)
        .start()
        .await?;
    let apps = [
        apps::http("payments-1").await?,
        apps::http("payments-2").await?,
    ];
    let mut servers = Vec::new();
    for app in &apps {
        servers.push(Some(
            m.sidecar("a", "default/payments", "http", app.addr).await?,
        ));
    }
    let orders = apps::http("orders").await?;
    let mut client = m
        .sidecar("a", "default/orders", "http", orders.addr)
        .await?;
    m.sees("a", "default/payments", "a", 2, Some(2)).await?;
    let out = client.spec.outbound_http;
    // The caller's sidecar follows the catalog: wait until it uses both.
    wait::until(
        "the caller reaches both payments instances",
        Duration::from_secs(20),
        || async move {
            let mut probe = connect(out).await?;
            let mut seen = [false, false];
            for _ in 0..20 {
                let resp = get(&mut probe, "/").await?;
                let body = resp.into_body().collect().await?.to_bytes();
                if body.starts_with(b"name=payments-1") {
                    seen[0] = true;
                } else if body.starts_with(b"name=payments-2") {
                    seen[1] = true;
                }
            }
            Ok((seen == [true, true]).then_some(()))
        },
    )
    .await?;

    // A slow request in flight on each instance (the balancer sends the
    // second to the instance without one), so the quick requests of the
    // load below tie and keep going to both until the SIGTERM.
    let (victim_slow, victim_app) = slow(out, 1500).await?;
    let (other_slow, other_app) = slow(out, 3000).await?;
    ensure!(
        victim_app != other_app,
        "both slow requests went to {victim_app}"
    );
    let victim = usize::from(victim_app == "payments-2");
    let stop = Arc::new(AtomicBool::new(false));
    // Four callers at once, so requests are often queued on a pooled
    // connection at the moment the stopped instance closes it.
    let load_tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(load(out, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // SIGTERM the victim's sidecar.
    let mut sidecar = servers[victim].take().context("victim")?;
    let status = sidecar.terminate().await?;
    let exited = Instant::now();
    ensure!(status.success(), "the sidecar exited with {status}");
    for (task, app) in [(victim_slow, &victim_app), (other_slow, &other_app)] {
        let (body, finished) = task
            .await?
            .with_context(|| format!("the request in flight to {app} was cut"))?;
        ensure!(
            body == format!("name={app}\n").as_bytes(),
            "the request in flight to {app} was cut: {:?}",
            String::from_utf8_lossy(&body)
        );
        ensure!(
            *app != victim_app || finished <= exited,
            "the sidecar exited before its request in flight had ended"
        );
    }
    m.sees("a", "default/payments", "a", 1, Some(1)).await?;

    // Keep the load going a while on the remaining instance, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for task in load_tasks {
        let t = task.await?;
        tally.failures.extend(t.failures);
        for (app, n) in t.by_app {
            match tally.by_app.iter_mut().find(|(a, _)| *a == app) {
                Some((_, total)) => *total += n,
                None => tally.by_app.push((app, n)),
            }
        }
    }
    eprintln!("load across the SIGTERM: {tally:?}");
    let answered: u32 = tally.by_app.iter().map(|(_, n)| n).sum();
    ensure!(
        tally.failures.is_empty(),
        "{} of {} requests failed across the SIGTERM: {:?}\nlog of the stopped sidecar:\n{}",
        tally.failures.len(),
        answered as usize + tally.failures.len(),
        tally.failures,
        sidecar.log_text()
    );
    let served = |app: &str| {
        tally
            .by_app
            .iter()
            .find(|(a, _)| *a == format!("name={app}"))
            .map_or(0, |(_, n)| *n)
    };
    ensure!(
        answered >= 50 && served(&victim_app) > 0 && served(&other_app) > 0,
        "the load did not reach both instances around the SIGTERM: {tally:?}"
    );
    let log = sidecar.log_text();
    ensure!(
        log.contains("instance deregistered"),
        "the stopped sidecar did not deregister (its lease would have to expire):\n{log}"
    );

    // The caller's own sidecar, stopped with a request in flight, finishes it too.
    let mut conn = connect(out).await?;
    let slow = get(&mut conn, "/slow?ms=1000").await?;
    ensure!(slow.status() == 200, "slow request: {}", slow.status());
    let body = tokio::spawn(async move { slow.into_body().collect().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = client.terminate().await?;
    ensure!(
        status.success(),
        "the caller's sidecar exited with {status}"
    );
    let body = body
        .await?
        .context("the caller's sidecar cut its request in flight")?
        .to_bytes();
    ensure!(
        body == format!("name={other_app}\n").as_bytes(),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}
