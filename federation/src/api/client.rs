//! A typed client of a gateway's catalog API.
//!
//! With TLS, the channel dials TCP itself and runs tokio-rustls with the
//! caller's [`rustls::ClientConfig`], so the mesh's SPIFFE verifiers decide
//! whom to trust (tonic's own TLS would check DNS names instead).

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use super::ApiError;
pub use super::pb::catalog_client::CatalogClient;

/// Largest message the client accepts: a Watch snapshot of a big catalog is one message.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A catalog API address as an operator writes it: `host:port`, or an
/// `http://` / `https://` URI (the scheme is ignored; TLS is the caller's).
#[derive(Debug, Clone)]
pub struct ApiAddress {
    /// What was given.
    pub given: String,
    /// `host:port` to dial.
    pub authority: String,
    /// The host as the TLS server name (the SPIFFE verifiers ignore it).
    pub server_name: ServerName<'static>,
}

impl ApiAddress {
    /// Parses `addr`; the error names what is missing (`host:port` expected).
    pub fn parse(addr: &str) -> Result<Self, ApiError> {
        let authority = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("https://"))
            .unwrap_or(addr)
            .trim_end_matches('/');
        let invalid = |reason: String| ApiError::InvalidAddress {
            addr: addr.to_string(),
            reason,
        };
        let uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|e| invalid(format!("{e}")))?;
        let host = uri.host().ok_or_else(|| invalid("no host".into()))?;
        if uri.port_u16().is_none() {
            return Err(invalid("no port".into()));
        }
        let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| invalid(format!("host is not a valid TLS server name: {e}")))?;
        Ok(Self {
            given: addr.to_string(),
            authority: authority.to_string(),
            server_name,
        })
    }

    fn invalid(&self, reason: String) -> ApiError {
        ApiError::InvalidAddress {
            addr: self.given.clone(),
            reason,
        }
    }
}

/// Connects to the catalog API at `addr` (`host:port`, or an `http://` /
/// `https://` URI whose scheme is ignored in favour of `tls`).
///
/// With `tls`, ALPN `h2` is set on the config and the server is verified by
/// the config's verifier only; the host in `addr` is used as the TLS server
/// name (the SPIFFE verifiers ignore it).
pub async fn connect(
    addr: &str,
    tls: Option<rustls::ClientConfig>,
) -> Result<CatalogClient<Channel>, ApiError> {
    let target = ApiAddress::parse(addr)?;
    // Always `http://`: tonic would otherwise add its own TLS for `https://`.
    let uri: Uri = format!("http://{}", target.authority)
        .parse()
        .map_err(|e| target.invalid(format!("{e}")))?;
    let endpoint = Endpoint::from(uri);
    let connected = match tls {
        None => endpoint.connect().await,
        Some(mut config) => {
            if !config.alpn_protocols.iter().any(|p| p == b"h2") {
                config.alpn_protocols.push(b"h2".to_vec());
            }
            let server_name = target.server_name.clone();
            let connector = TlsConnector::from(Arc::new(config));
            endpoint
                .connect_with_connector(tower::service_fn(move |uri: Uri| {
                    let (connector, server_name) = (connector.clone(), server_name.clone());
                    async move {
                        let authority = uri.authority().map(|a| a.as_str().to_string());
                        let tcp = TcpStream::connect(authority.unwrap_or_default()).await?;
                        tcp.set_nodelay(true)?;
                        let tls = connector.connect(server_name, tcp).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(tls))
                    }
                }))
                .await
        }
    };
    let channel = connected.map_err(|source| ApiError::Connect {
        addr: addr.to_string(),
        detail: crate::error_text::chain(&source),
        source,
    })?;
    Ok(CatalogClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
}
