//! `meshgw status`: the mesh as one gateway sees it, from its catalog API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use meshgw_config::GatewayConfig;
use meshgw_federation::api::client::{self, ApiAddress};
use meshgw_federation::api::pb::{ListPeersRequest, ListServicesRequest, PeerView, ServiceView};
use meshgw_identity::{Identity, SpiffeServerVerifier, client_config, load_certs};
use serde_json::json;

use super::status_error::{Cause, cause, chain};
use crate::peers::unix_ms;

/// Arguments of `meshgw status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The gateway's config file: its API address, CA and certificate are used
    /// to reach it (run this on the gateway's host).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// API address, when not using --config (then --ca, --cert, --key and --cluster are needed too).
    #[arg(long, requires_all = ["ca", "cert", "key", "cluster"], conflicts_with = "config")]
    api: Option<String>,
    /// Trust bundle for the gateway's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (any workload or gateway certificate of the mesh).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Cluster of the gateway (its SPIFFE ID is checked).
    #[arg(long)]
    cluster: Option<String>,
    /// Prints JSON instead of tables.
    #[arg(long)]
    json: bool,
}

struct Target {
    api: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    gateway_id: String,
}

fn target(a: &StatusArgs) -> Result<Target> {
    if let Some(path) = &a.config {
        let cfg = GatewayConfig::load(path)
            .map_err(|e| anyhow::anyhow!("cannot use the config file:\n{e}"))?;
        return Ok(Target {
            api: cfg.listen.api.to_string(),
            ca: cfg.tls.ca.clone(),
            cert: cfg.tls.cert.clone(),
            key: cfg.tls.key.clone(),
            gateway_id: format!(
                "spiffe://{}/cluster/{}/gateway",
                cfg.mesh.trust_domain, cfg.cluster.name
            ),
        });
    }
    let (Some(api), Some(ca), Some(cert), Some(key), Some(cluster)) =
        (&a.api, &a.ca, &a.cert, &a.key, &a.cluster)
    else {
        anyhow::bail!(
            "say which gateway: --config FILE, or --api ADDR --ca FILE --cert FILE --key FILE --cluster NAME"
        );
    };
    let id = Identity::load(cert, key)?;
    let td = id
        .spiffe_id
        .strip_prefix("spiffe://")
        .and_then(|r| r.split('/').next())
        .context("the client certificate has no SPIFFE ID")?
        .to_string();
    Ok(Target {
        api: api.clone(),
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
        gateway_id: format!("spiffe://{td}/cluster/{cluster}/gateway"),
    })
}

/// Runs `meshgw status`.
pub fn run(a: StatusArgs) -> Result<()> {
    let t = target(&a)?;
    let rt = tokio::runtime::Runtime::new()?;
    let (peers, services) = rt.block_on(fetch(&t))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&peers, &services))?
        );
    } else {
        print!("{}", render(&t.api, &peers, &services));
    }
    Ok(())
}

async fn fetch(t: &Target) -> Result<(Vec<PeerView>, Vec<ServiceView>)> {
    let id = Identity::load(&t.cert, &t.key)?;
    let verifier = SpiffeServerVerifier::new("gateway", load_certs(&t.ca)?, t.gateway_id.clone())?;
    let tls = client_config(&id, Arc::new(verifier), &[b"h2"])?;
    let addr = ApiAddress::parse(&t.api)?;
    probe(t, &addr, tls.clone()).await?;
    let connect = client::connect(&t.api, Some(tls));
    let mut c = tokio::time::timeout(STAGE, connect)
        .await
        .map_err(|_| silent(t, "the gRPC connection was not up"))?
        .map_err(|e| explain(t, &e))?;
    let peers = c
        .list_peers(ListPeersRequest {})
        .await
        .map_err(|e| explain(t, &e))?;
    let services = c
        .list_services(ListServicesRequest {})
        .await
        .map_err(|e| explain(t, &e))?;
    Ok((peers.into_inner().peers, services.into_inner().services))
}

/// Time allowed to each stage of reaching the API (TCP, TLS, first frame, gRPC).
const STAGE: Duration = Duration::from_secs(5);

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Opens one TLS connection to the API, says hello in HTTP/2, and waits for
/// the gateway's first frame, each stage with its own time limit and
/// message: a gateway that refuses this certificate sends a TLS alert (or
/// closes) at this point, which a gRPC call would only report as a broken pipe.
async fn probe(t: &Target, addr: &ApiAddress, tls: rustls::ClientConfig) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::time::timeout(STAGE, tokio::net::TcpStream::connect(&addr.authority))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot talk to the gateway API at {}: no TCP connection within {STAGE:?}\n  is the host up, and does a firewall let TCP to {} through?",
                t.api,
                addr.authority
            )
        })?
        .map_err(|e| explain(t, &e))?;
    let handshake =
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(addr.server_name.clone(), tcp);
    let mut s = tokio::time::timeout(STAGE, handshake)
        .await
        .map_err(|_| silent(t, "TCP connected, but the TLS handshake did not finish"))?
        .map_err(|e| explain(t, &e))?;
    let first_frame = async {
        s.write_all(H2_PREFACE).await?;
        s.flush().await?;
        let mut buf = [0u8; 9];
        s.read(&mut buf).await
    };
    match tokio::time::timeout(STAGE, first_frame).await {
        Err(_) => Err(silent(t, "TLS is up, but no HTTP/2 frame came back")),
        Ok(Ok(0)) => Err(anyhow::anyhow!(
            "cannot talk to the gateway API at {}: it closed the connection right after the TLS handshake\n  {}",
            t.api,
            refused(t, "it closed the connection")
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(explain(t, &e)),
    }
}

/// A stage that got no answer in time, after the connection was made.
fn silent(t: &Target, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot talk to the gateway API at {}: {what} within {STAGE:?}\n  is {} a meshgw gateway's listen.api, and is the gateway overloaded or stuck (see its log)?",
        t.api,
        t.api
    )
}

fn refused(t: &Target, how: &str) -> String {
    format!(
        "the gateway refused this client certificate, {} ({how}): use a certificate issued under the mesh root the gateway trusts (its tls.ca), e.g. the gateway's own tls.cert, or one from `meshgw ca workload`",
        t.cert.display()
    )
}

/// Turns an error reaching the API into a message naming the cause and what to check.
fn explain(t: &Target, err: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    let (what, next) = match cause(err) {
        Cause::NotListening => (
            chain(err),
            format!(
                "nothing is listening there: is the gateway running, and is its listen.api {}?",
                t.api
            ),
        ),
        Cause::CertificateRefused(alert) => (
            format!("TLS alert {alert}"),
            refused(t, &format!("TLS alert {alert}")),
        ),
        Cause::NotTheApi(why) => (
            why,
            format!(
                "this port does not serve the catalog API over TLS: is {} the gateway's listen.api (not listen.admin, listen.forward or another service)?",
                t.api
            ),
        ),
        Cause::GatewayNotTrusted(why) => (
            format!("the gateway's certificate was not accepted: {why}"),
            format!(
                "check that {} holds the root that signed the gateway's certificate and that the gateway's SPIFFE ID is {} (--cluster names the cluster)",
                t.ca.display(),
                t.gateway_id
            ),
        ),
        Cause::Answered(what) => {
            return anyhow::anyhow!(
                "the gateway API at {} answered with an error: {what}\n  the gateway is up; see its log and its admin /readyz for the cause (is its catalog store reachable?)",
                t.api
            );
        }
        Cause::Other => (
            chain(err),
            format!(
                "is the gateway running and listening there (listen.api)? does it trust this certificate ({}), and is its SPIFFE ID {}?",
                t.cert.display(),
                t.gateway_id
            ),
        ),
    };
    anyhow::anyhow!(
        "cannot talk to the gateway API at {}: {what}\n  {next}",
        t.api
    )
}

fn ago(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let s = unix_ms().saturating_sub(ms) / 1000;
    format!("{s}s ago")
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Renders the human-readable tables.
fn render(api: &str, peers: &[PeerView], services: &[ServiceView]) -> String {
    let mut out = format!("gateway {api}\n\nPEERS\n");
    out += &format!(
        "{:<20} {:<6} {:<22} {:>9} {:>6} {:>10} {:>10} {:<10} {:<12} {}\n",
        "NAME",
        "TUNNEL",
        "ADDRESS",
        "RTT",
        "LOST",
        "SENT",
        "RECEIVED",
        "LAST SYNC",
        "IMPORTS",
        "LAST ERROR"
    );
    for p in peers {
        out += &format!(
            "{:<20} {:<6} {:<22} {:>9} {:>6} {:>10} {:>10} {:<10} {:<12} {}\n",
            p.name,
            if p.connected { "up" } else { "down" },
            if p.address.is_empty() {
                "-"
            } else {
                &p.address
            },
            if p.connected {
                format!("{:.2} ms", p.rtt_ms)
            } else {
                "-".into()
            },
            p.lost_packets,
            bytes(p.bytes_sent),
            bytes(p.bytes_received),
            ago(p.last_sync_ms),
            format!("{} ({} stale)", p.imports, p.stale_imports),
            p.last_error
        );
    }
    out += "\nSERVICES\n";
    out += &format!(
        "{:<32} {:<20} {:<9} {:>8} {:<24} {}\n",
        "SERVICE", "CLUSTER", "WHERE", "HEALTHY", "ZONES", "STATE"
    );
    for s in services {
        for (i, c) in s.clusters.iter().enumerate() {
            let name = if i == 0 {
                format!("{}/{}", s.namespace, s.name)
            } else {
                String::new()
            };
            let state = if c.stale {
                format!("stale since {}", ago(c.stale_since_ms))
            } else {
                "fresh".into()
            };
            out += &format!(
                "{:<32} {:<20} {:<9} {:>8} {:<24} {}\n",
                name,
                c.cluster,
                if c.local { "local" } else { "imported" },
                format!("{}/{}", c.healthy, c.total),
                c.zones.join(","),
                state
            );
        }
    }
    out
}

fn to_json(peers: &[PeerView], services: &[ServiceView]) -> serde_json::Value {
    json!({
        "peers": peers.iter().map(|p| json!({
            "name": p.name, "connected": p.connected, "address": p.address, "rtt_ms": p.rtt_ms,
            "lost_packets": p.lost_packets, "bytes_sent": p.bytes_sent, "bytes_received": p.bytes_received,
            "last_sync_ms": p.last_sync_ms, "imports": p.imports, "stale_imports": p.stale_imports,
            "last_error": p.last_error,
        })).collect::<Vec<_>>(),
        "services": services.iter().map(|s| json!({
            "namespace": s.namespace, "name": s.name,
            "clusters": s.clusters.iter().map(|c| json!({
                "cluster": c.cluster, "local": c.local, "healthy": c.healthy, "total": c.total,
                "weight": c.weight, "zones": c.zones, "stale": c.stale,
                "stale_since_ms": c.stale_since_ms, "updated_at_ms": c.updated_at_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
