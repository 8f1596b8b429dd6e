//! A client of a gateway's forward listener that speaks the route header
//! itself, as a sidecar does, for testing the gateways' data path alone.

use std::sync::Arc;

use anyhow::{Context, Result};
use meshgw_identity::{Identity, SpiffeServerVerifier, client_config, load_certs};
use meshgw_proxy::route::{self, RouteAnswer, RouteHeader};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::gateway::GatewayProc;
use crate::pki::Pki;

/// Opens a forward connection through `gw` for `ns/name`, returning the
/// gateway's answer and, if it is Ok, the open pipe.
pub async fn open(
    gw: &GatewayProc,
    pki: &Pki,
    ns: &str,
    name: &str,
    target: Option<&str>,
) -> Result<(RouteAnswer, TlsStream<TcpStream>)> {
    let cluster = &gw.spec.cluster;
    let (cert, key) = pki.workload(cluster, "default", "forward-client")?;
    let id = Identity::load(&cert, &key)?;
    let v = SpiffeServerVerifier::new(
        cluster.clone(),
        load_certs(&pki.root())?,
        gw.spec.spiffe_id(),
    )?;
    let tls = client_config(&id, Arc::new(v), &[b"meshgw-forward"])?;
    let tcp = TcpStream::connect(gw.spec.forward)
        .await
        .context("connecting to the forward listener")?;
    let mut s = TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from("gateway")?, tcp)
        .await?;
    let h = RouteHeader {
        namespace: ns.into(),
        service: name.into(),
        port: 0,
        source_cluster: cluster.clone(),
        target_cluster: target.map(str::to_string),
        traceparent: None,
    };
    s.write_all(&route::encode_header(&h)?).await?;
    let mut buf = Vec::new();
    loop {
        if let Some((a, n)) = route::decode_answer(&buf)? {
            anyhow::ensure!(
                n == buf.len(),
                "bytes after the answer before any were sent"
            );
            return Ok((a, s));
        }
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await?;
        anyhow::ensure!(n == 1, "forward connection closed before the answer");
        buf.push(b[0]);
    }
}
