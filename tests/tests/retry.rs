//! Requests in flight when their instance dies: an idempotent one without a
//! body is sent again, to another instance (here in another cluster), and
//! the app calling gets that instance's answer; one that is not idempotent
//! is not, and its caller gets the error.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshgw_tests::apps;
use meshgw_tests::mesh::MeshBuilder;
use meshgw_tests::sidecar::curl_via;
use meshgw_tests::wait;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_whose_instance_dies_is_sent_again_elsewhere() -> Result<()> {
    let m = MeshBuilder::two_clusters("b").start().await?;
    let (stalling, seen) = apps::http_stalling().await?;
    // Both copies stay up as long as `two` lives.
    let mut two = m.payments_here_and_in_b(stalling.addr).await?;
    let (client, local) = (&two.client, &mut two.local);

    // A GET and a POST go to the local instance (nearest first), whose app
    // holds them; then the instance dies with both in flight.
    let out = client.spec.outbound_http;
    let host = "payments.default.mesh";
    let get = std::thread::spawn(move || curl_via(out, host, "/", &[]));
    let post = std::thread::spawn(move || curl_via(out, host, "/", &["-d", "order=1"]));
    wait::until("both requests at the local app", T, || {
        let n = seen.load(Ordering::SeqCst);
        async move { Ok((n >= 2).then_some(())) }
    })
    .await?;
    local.kill();

    let (status, _, body) = get.join().expect("curl thread").context("the GET")?;
    ensure!(
        status == 200 && body.contains("name=payments-b"),
        "the GET in flight was not sent again to b: {status} {body}"
    );
    let (status, head, body) = post.join().expect("curl thread").context("the POST")?;
    ensure!(
        status >= 500 && !body.contains("name=payments-b"),
        "the POST in flight was sent again: {status} {body}"
    );
    ensure!(
        head.to_ascii_lowercase().contains("x-meshgw-error:"),
        "the failed POST has no x-meshgw-error: {head}"
    );
    ensure!(
        seen.load(Ordering::SeqCst) == 2,
        "the local app got more requests than the two sent"
    );
    Ok(())
}
