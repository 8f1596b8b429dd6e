//! Helpers shared by the identity integration tests: PKIs in temp dirs and
//! real TLS handshakes over an in-memory duplex pipe.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use meshgw_identity::{
    Identity, IssuedCert, SpiffeClientVerifier, SpiffeMatch, SpiffeServerVerifier, TrustEntry,
    client_config, init_root, issue_cluster_ca, issue_gateway, load_certs, peer_spiffe_id,
    server_config,
};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A PKI directory with a root for `td` and CAs for `clusters`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub td: String,
}

impl Pki {
    pub fn new(td: &str, clusters: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        init_root(dir.path(), td, false).unwrap();
        for cluster in clusters {
            issue_cluster_ca(dir.path(), cluster).unwrap();
        }
        Pki {
            dir,
            td: td.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> Vec<CertificateDer<'static>> {
        load_certs(&self.path().join("root.pem")).unwrap()
    }

    pub fn gateway(&self, cluster: &str) -> Identity {
        load(&issue_gateway(self.path(), cluster).unwrap())
    }

    pub fn gateway_id(&self, cluster: &str) -> String {
        format!("spiffe://{}/cluster/{cluster}/gateway", self.td)
    }
}

pub fn load(issued: &IssuedCert) -> Identity {
    Identity::load(&issued.cert, &issued.key).unwrap()
}

/// What one side of a handshake saw: the peer's SPIFFE ID, or the error text.
pub type Outcome = Result<Option<String>, String>;

/// Runs a real TLS handshake between `client` (expecting the server to be
/// `expected`, trusting `server_bundle`) and `server` (trusting `entries`),
/// then exchanges a few bytes so that a refusal by either side surfaces on
/// both. Returns (client outcome, server outcome).
pub async fn handshake(
    client: &Identity,
    server_peer: &str,
    server_bundle: Vec<CertificateDer<'static>>,
    expected: &str,
    server: &Identity,
    entries: Vec<TrustEntry>,
) -> (Outcome, Outcome) {
    let server_verifier =
        Arc::new(SpiffeServerVerifier::new(server_peer, server_bundle, expected).unwrap());
    let client_verifier = Arc::new(SpiffeClientVerifier::new(entries).unwrap());
    let ccfg = client_config(client, server_verifier, &[b"meshgw/1"]).unwrap();
    let scfg = server_config(server, client_verifier, &[b"meshgw/1"]).unwrap();
    let (c_io, s_io) = tokio::io::duplex(64 * 1024);

    let client_side = async move {
        let connector = TlsConnector::from(Arc::new(ccfg));
        let name = ServerName::try_from("peer.mesh").unwrap();
        let mut tls = connector
            .connect(name, c_io)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"hello");
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(&b"meshgw/1"[..]));
        Ok(peer_spiffe_id(conn.peer_certificates()))
    };
    let server_side = async move {
        let acceptor = TlsAcceptor::from(Arc::new(scfg));
        let mut tls = acceptor.accept(s_io).await.map_err(|e| e.to_string())?;
        tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let id = peer_spiffe_id(tls.get_ref().1.peer_certificates());
        // Keep the stream open until the client has read.
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        Ok(id)
    };
    tokio::join!(client_side, server_side)
}

/// A trust entry accepting exactly `id` from the roots of `pki`.
pub fn exact(name: &str, pki: &Pki, id: &str) -> TrustEntry {
    TrustEntry {
        name: name.into(),
        bundle: pki.root(),
        allowed: SpiffeMatch::Exact(id.into()),
    }
}
