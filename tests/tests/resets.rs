//! Resets propagate: a TCP connection that breaks on one side reaches the
//! other side as a reset (ECONNRESET), never as a clean end of stream that
//! would pass a truncated reply for a whole one. Checked on the same-cluster
//! path (sidecar to sidecar) and across clusters (two gateways and a QUIC
//! tunnel); a clean half-close still arrives as a clean EOF.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshgw_tests::apps::{self, TcpEnd};
use meshgw_tests::mesh::{Mesh, MeshBuilder};
use meshgw_tests::sidecar::SidecarProc;
use meshgw_tests::{ports, wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

const LIMIT: Duration = Duration::from_secs(10);

/// What one connection through an upstream listener saw.
async fn read_until_end(s: &mut TcpStream) -> Result<std::io::Result<Vec<u8>>> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(LIMIT, s.read_to_end(&mut got))
        .await
        .context("the connection neither ended nor broke")?;
    Ok(r.map(|_| got))
}

/// Writes `hi`, reads the echo back: the pipe is up end to end.
async fn open_echoed(upstream: SocketAddr) -> Result<TcpStream> {
    let mut s = TcpStream::connect(upstream).await?;
    s.write_all(b"hi").await?;
    let mut two = [0u8; 2];
    tokio::time::timeout(LIMIT, s.read_exact(&mut two))
        .await
        .context("no echo")??;
    ensure!(&two == b"hi", "echo was {two:?}");
    Ok(s)
}

/// The next connection end the app reports, past its sidecar's health
/// checks (which connect and close without a byte).
async fn next_end(ends: &mut UnboundedReceiver<TcpEnd>) -> Result<TcpEnd> {
    loop {
        let end = tokio::time::timeout(LIMIT, ends.recv())
            .await
            .context("the app never saw its connection end")?
            .context("app stopped")?;
        if end != TcpEnd::Eof(0) {
            return Ok(end);
        }
    }
}

/// Runs the three cases through `upstream`, a caller's listener for the echo.
async fn check_path(
    path: &str,
    upstream: SocketAddr,
    ends: &mut UnboundedReceiver<TcpEnd>,
) -> Result<()> {
    // A clean half-close: the echo answers and closes; both see a clean EOF.
    // Retried until the caller's sidecar routes (a refusal resets at once).
    wait::until(
        &format!("{path}: a clean echo"),
        Duration::from_secs(20),
        || async {
            let Ok(mut s) = open_echoed(upstream).await else {
                return Ok(None);
            };
            s.shutdown().await?;
            match read_until_end(&mut s).await? {
                Ok(rest) if rest.is_empty() => Ok(Some(())),
                other => bail!("{path}: a clean half-close ended with {other:?}"),
            }
        },
    )
    .await?;
    let end = next_end(ends).await?;
    ensure!(
        end == TcpEnd::Eof(2),
        "{path}: the app saw the clean close as {end:?}"
    );

    // The app resets: the caller must read an error, not an EOF.
    let mut s = open_echoed(upstream).await?;
    s.write_all(b"!").await?;
    let end = next_end(ends).await?;
    ensure!(
        end == TcpEnd::ResetByApp,
        "{path}: the app ended with {end:?}"
    );
    match read_until_end(&mut s).await? {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => bail!("{path}: the app's reset reached the caller as {other:?}, not a reset"),
    }

    // The caller resets: the app must read an error, not an EOF.
    let s = open_echoed(upstream).await?;
    s.set_zero_linger()?;
    drop(s);
    let end = next_end(ends).await?;
    ensure!(
        end == TcpEnd::Failed(std::io::ErrorKind::ConnectionReset),
        "{path}: the caller's reset reached the app as {end:?}, not a reset"
    );
    Ok(())
}

/// The echo runs in a; callers in a (same cluster) and b (across the tunnel)
/// each have an upstream listener for it.
async fn start() -> Result<(Mesh, Vec<SidecarProc>, SocketAddr, SocketAddr)> {
    let m = MeshBuilder::two_clusters("a").start().await?;
    let mut sidecars = Vec::new();
    let mut upstreams = Vec::new();
    for c in ["a", "b"] {
        // The callers front a port nothing listens on: their own health
        // check fails, which does not stop them calling out.
        let mut spec = m.sidecar_spec(c, "default/caller", "tcp", ports::tcp())?;
        let upstream = ports::tcp();
        spec.upstreams = vec![(upstream, "default/echo".into())];
        sidecars.push(SidecarProc::start(spec, m.dir.path()).await?);
        upstreams.push(upstream);
    }
    Ok((m, sidecars, upstreams[0], upstreams[1]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_reach_the_other_side_as_resets_locally_and_across_the_tunnel() -> Result<()> {
    let (m, mut sidecars, same, cross) = start().await?;
    let (echo, mut ends) = apps::tcp_echo_reporting().await?;
    sidecars.push(m.sidecar("a", "default/echo", "tcp", echo.addr).await?);
    m.sees("b", "default/echo", "a", 1, None).await?;
    let logs = |sidecars: &[SidecarProc]| {
        sidecars
            .iter()
            .map(|s| s.log_text())
            .collect::<Vec<_>>()
            .join("\n")
    };
    check_path("same cluster", same, &mut ends)
        .await
        .map_err(|e| e.context(logs(&sidecars)))?;
    check_path("cross cluster", cross, &mut ends)
        .await
        .map_err(|e| e.context(format!("{}\n{}", logs(&sidecars), m.logs())))?;
    Ok(())
}
