//! rustls configurations for mesh mTLS: TLS 1.3 only, ring provider,
//! SPIFFE verifiers on both sides.

use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::WantsServerCert;
use rustls::{ClientConfig, ConfigBuilder, ServerConfig};

use crate::error::IdentityError;
use crate::load::Identity;
use crate::rotating::RotatingCert;
use crate::verify::{SpiffeClientVerifier, SpiffeServerVerifier};

/// The crypto provider of every mesh TLS configuration and certified key.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 on the ring provider, requiring client certificates `verifier` accepts.
fn server_builder(
    verifier: Arc<SpiffeClientVerifier>,
) -> Result<ConfigBuilder<ServerConfig, WantsServerCert>, IdentityError> {
    Ok(ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier))
}

/// TLS 1.3 on the ring provider, accepting only a server `verifier` accepts.
fn client_builder(
    verifier: Arc<SpiffeServerVerifier>,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, IdentityError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

/// Returns a server configuration presenting `id` and requiring client
/// certificates accepted by `verifier`, offering `alpn` protocols.
///
/// Fails if the key does not match the certificate.
pub fn server_config(
    id: &Identity,
    verifier: Arc<SpiffeClientVerifier>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, IdentityError> {
    let mut config =
        server_builder(verifier)?.with_single_cert(id.chain.clone(), id.key.clone_key())?;
    config.alpn_protocols = alpn_list(alpn);
    Ok(config)
}

/// Returns a client configuration presenting `id` and accepting only a server
/// accepted by `verifier`, offering `alpn` protocols.
///
/// The server name passed to rustls when connecting is not checked; any valid
/// name (e.g. the peer's cluster name) will do.
pub fn client_config(
    id: &Identity,
    verifier: Arc<SpiffeServerVerifier>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, IdentityError> {
    let mut config =
        client_builder(verifier)?.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?;
    config.alpn_protocols = alpn_list(alpn);
    Ok(config)
}

/// Like [`server_config`], presenting the certificate `cert` holds at each
/// handshake (a replaced one from the next handshake on).
///
/// Sessions are never resumed: a resumed handshake verifies no certificate,
/// so a peer admitted before a rotation (or before its root left a
/// reloaded bundle, see [`SpiffeClientVerifier::replace`]) could otherwise
/// reconnect on its ticket for as long as the ticket lives.
pub fn rotating_server_config(
    cert: Arc<RotatingCert>,
    verifier: Arc<SpiffeClientVerifier>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, IdentityError> {
    let mut config = server_builder(verifier)?.with_cert_resolver(cert);
    config.alpn_protocols = alpn_list(alpn);
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// Like [`client_config`], presenting the certificate `cert` holds at each
/// handshake; like [`rotating_server_config`], it never resumes a session,
/// so every handshake checks the server against the current bundle.
pub fn rotating_client_config(
    cert: Arc<RotatingCert>,
    verifier: Arc<SpiffeServerVerifier>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, IdentityError> {
    let mut config = client_builder(verifier)?.with_client_cert_resolver(cert);
    config.alpn_protocols = alpn_list(alpn);
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}
