//! Serving the catalog API on a TCP listener, plaintext or TLS.
//!
//! With TLS, a task accepts TCP connections and runs one rustls handshake per
//! connection (a failed handshake is logged and dropped, it never stops the
//! server); finished TLS streams are handed to tonic, which sees each caller's
//! address and SPIFFE ID as a [`PeerInfo`] request extension.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

use super::{ApiError, CatalogApi};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on idle connections, so dead sidecars' streams are noticed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// Who is calling: available as a request extension on TLS connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The caller's TCP address.
    pub remote_addr: Option<SocketAddr>,
    /// The SPIFFE ID of the caller's verified client certificate, if it sent one.
    pub spiffe_id: Option<String>,
}

impl PeerInfo {
    /// Returns who sent `req`: the TLS peer, or for plaintext just its address.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<PeerInfo> {
        if let Some(p) = req.extensions().get::<PeerInfo>() {
            return Some(p.clone());
        }
        req.extensions().get::<TcpConnectInfo>().map(|t| PeerInfo {
            remote_addr: t.remote_addr(),
            spiffe_id: None,
        })
    }
}

/// A server-side TLS connection that tells tonic who is on the other end.
struct TlsConn {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves `api` on `listener` until `shutdown` completes.
///
/// With `tls`, every connection is TLS (ALPN `h2` is added to the config if
/// missing); without, plaintext HTTP/2 (tests, local development). On
/// shutdown, open Watch and KeepAlive streams end with `UNAVAILABLE` (see
/// [`CatalogApi::close_streams`]) so the graceful drain does not wait on them.
pub async fn serve(
    api: CatalogApi,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let closer = api.clone();
    let shutdown = async move {
        shutdown.await;
        closer.close_streams();
    };
    let mut server = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL));
    let router = server.add_service(api.into_service());
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, tls = tls.is_some(), "catalog API listening");
    }
    match tls {
        None => router
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
            .await
            .map_err(ApiError::Serve),
        Some(config) => {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(accept_tls(listener, with_h2(config), tx));
            router
                .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
                .await
                .map_err(ApiError::Serve)
        }
    }
}

fn with_h2(config: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    if config.alpn_protocols.iter().any(|p| p == b"h2") {
        return config;
    }
    let mut c = (*config).clone();
    c.alpn_protocols.push(b"h2".to_vec());
    Arc::new(c)
}

/// Accepts TCP connections and hands finished TLS handshakes to `tx` until
/// the server stops (drops the receiver).
async fn accept_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    tx: mpsc::Sender<Result<TlsConn, io::Error>>,
) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(error = %e, "catalog API accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(inner)) => {
                    let spiffe_id =
                        meshgw_identity::peer_spiffe_id(inner.get_ref().1.peer_certificates());
                    let info = PeerInfo {
                        remote_addr: Some(remote),
                        spiffe_id,
                    };
                    tracing::debug!(%remote, spiffe_id = ?info.spiffe_id, "catalog API client connected");
                    let _ = tx.send(Ok(TlsConn { inner, info })).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "catalog API TLS handshake failed; is the client using a certificate from a trusted mesh CA?");
                }
                Err(_) => {
                    tracing::warn!(%remote, "catalog API TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}");
                }
            }
        });
    }
}
