//! QUIC endpoint and TLS settings for gateway-to-gateway tunnels.
//!
//! Both directions are mutually authenticated: the dialer checks the peer's
//! chain against that peer's trust bundle and its SPIFFE ID against the one
//! configured; the listener accepts a client only if its chain validates to
//! some configured peer's bundle and its SPIFFE ID is that peer's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use meshgw_config::GatewayConfig;
use meshgw_identity::{RotatingCert, rotating_client_config, rotating_server_config};

use crate::trust::Trust;

/// Our ALPN for the tunnel protocol, version 1.
pub const ALPN: &[u8] = b"meshgw/1";

/// Returns QUIC transport settings: keep-alives well inside the idle timeout.
fn transport(cfg: &GatewayConfig) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let idle = cfg.sync.peer_timeout.max(Duration::from_secs(2));
    t.keep_alive_interval(Some(idle / 4));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).expect("idle timeout fits a VarInt"),
    ));
    t.max_concurrent_bidi_streams(4096u32.into());
    Arc::new(t)
}

/// Returns the listener's QUIC server config.
pub fn server(
    cfg: &GatewayConfig,
    cert: &Arc<RotatingCert>,
    trust: &Trust,
) -> Result<quinn::ServerConfig> {
    let tls = rotating_server_config(cert.clone(), trust.tunnel_in.clone(), &[ALPN])?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .context("TLS settings unusable for QUIC")?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    sc.transport_config(transport(cfg));
    Ok(sc)
}

/// Returns one QUIC client config per peer, keyed by peer name.
pub fn clients(
    cfg: &GatewayConfig,
    cert: &Arc<RotatingCert>,
    trust: &Trust,
) -> Result<HashMap<String, quinn::ClientConfig>> {
    let mut out = HashMap::new();
    for p in &cfg.peers {
        let verifier = trust.tunnel_out[&p.name].clone();
        let tls = rotating_client_config(cert.clone(), verifier, &[ALPN])?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .context("TLS settings unusable for QUIC")?;
        let mut cc = quinn::ClientConfig::new(Arc::new(crypto));
        cc.transport_config(transport(cfg));
        out.insert(p.name.clone(), cc);
    }
    Ok(out)
}

/// Returns the SPIFFE ID the peer of an established connection presented.
pub fn peer_id(conn: &quinn::Connection) -> Option<String> {
    let any = conn.peer_identity()?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    meshgw_identity::peer_spiffe_id(Some(&certs))
}
