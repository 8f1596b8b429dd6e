//! [`EtcdStore`]: the [`CatalogStore`] over an etcd cluster (v3 API).
//!
//! - `conn`: one client per endpoint, request timeouts, failover to the next
//!   endpoint when one is unreachable;
//! - `watch`: forwards an etcd watch, split into one batch per revision;
//! - `convert`, `errors`: type and error mapping.
//!
//! Connecting does not contact etcd: the first call that cannot reach any
//! endpoint fails with [`StoreError::Unavailable`], and later calls retry.

mod conn;
mod convert;
mod errors;
mod watch;

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{CompactionOptions, DeleteOptions, GetOptions, PutOptions};

use self::conn::{Conn, Retry};
use self::errors::with_lease;
use super::{CatalogStore, KeyValue, LeaseId, Revision, StoreError, Txn, TxnResult, WatchStream};

/// TLS settings for talking to etcd over `https://` endpoints.
#[derive(Clone)]
pub struct EtcdTls {
    /// PEM of the CA that signed etcd's server certificates.
    pub ca_pem: Vec<u8>,
    /// PEM certificate and key for client-certificate authentication, if etcd asks for one.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("client_cert", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures an [`EtcdStore`].
#[derive(Clone)]
pub struct EtcdOptions {
    /// Client URLs of the etcd members, e.g. `http://10.0.0.5:2379`.
    pub endpoints: Vec<String>,
    /// Time allowed to open a connection to one member.
    pub dial_timeout: Duration,
    /// Time allowed for each request to one member; after it the next member is tried.
    pub request_timeout: Duration,
    /// Username and password, when etcd has authentication enabled.
    pub credentials: Option<(String, String)>,
    /// TLS settings for `https://` endpoints.
    pub tls: Option<EtcdTls>,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("dial_timeout", &self.dial_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("credentials", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .finish()
    }
}

impl EtcdOptions {
    /// Returns options for `endpoints` with a 5 s dial and request timeout.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            credentials: None,
            tls: None,
        }
    }
}

/// A catalog store backed by an etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    conn: std::sync::Arc<Conn>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.conn.opts().endpoints)
            .finish()
    }
}

fn prefix_opts() -> GetOptions {
    GetOptions::new().with_prefix()
}

impl EtcdStore {
    /// Validates `cfg` and prepares the clients; does not contact etcd.
    pub async fn connect(cfg: &EtcdOptions) -> Result<Self, StoreError> {
        if cfg.endpoints.is_empty() {
            return Err(StoreError::Other(
                "no etcd endpoints configured; set store.endpoints".into(),
            ));
        }
        for ep in &cfg.endpoints {
            let https = ep.starts_with("https://");
            if !https && !ep.starts_with("http://") {
                return Err(StoreError::Other(format!(
                    "etcd endpoint {ep:?} must start with http:// or https://; fix store.endpoints"
                )));
            }
            if https != cfg.tls.is_some() {
                return Err(StoreError::Other(format!(
                    "etcd endpoint {ep} {} TLS settings: use https:// endpoints exactly when store TLS is configured",
                    if https { "needs" } else { "cannot use" }
                )));
            }
        }
        Ok(Self {
            conn: std::sync::Arc::new(Conn::new(cfg.clone())),
        })
    }

    /// Compacts etcd's history up to `rev` (watches from older revisions then
    /// fail with `Compacted`). Operators and tests use it; the gateway does not.
    pub async fn compact(&self, rev: Revision) -> Result<(), StoreError> {
        self.conn
            .call(Retry::Idempotent, |mut c, _| async move {
                c.compact(rev, Some(CompactionOptions::new().with_physical()))
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn delete_with(
        &self,
        key: &str,
        opts: Option<DeleteOptions>,
    ) -> Result<(u64, Revision), StoreError> {
        let resp = self
            .conn
            .call(Retry::Idempotent, |mut c, _| {
                let (key, opts) = (key.to_string(), opts.clone());
                async move { c.delete(key, opts).await }
            })
            .await?;
        Ok((resp.deleted().max(0) as u64, header_rev(resp.header())))
    }
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map_or(0, |h| h.revision())
}

#[async_trait]
impl CatalogStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .conn
            .call(Retry::Idempotent, |mut c, _| async move {
                c.get(key, None).await
            })
            .await?;
        resp.kvs().first().map(convert::kv).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let resp = self
            .conn
            .call(Retry::Idempotent, |mut c, _| async move {
                c.get(prefix, Some(prefix_opts())).await
            })
            .await?;
        let kvs = resp
            .kvs()
            .iter()
            .map(convert::kv)
            .collect::<Result<_, _>>()?;
        Ok((kvs, header_rev(resp.header())))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        let resp = self
            .conn
            .call(Retry::Idempotent, |mut c, _| {
                let (value, opts) = (value.clone(), opts.clone());
                async move { c.put(key, value, opts).await }
            })
            .await
            .map_err(|e| with_lease(e, lease.unwrap_or(0)))?;
        Ok(header_rev(resp.header()))
    }

    async fn delete(&self, key: &str) -> Result<(u64, Revision), StoreError> {
        self.delete_with(key, None).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(u64, Revision), StoreError> {
        self.delete_with(prefix, Some(DeleteOptions::new().with_prefix()))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        let etxn = etcd_client::Txn::new()
            .when(txn.compare.iter().map(convert::compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(convert::op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(convert::op).collect::<Vec<_>>());
        let resp = self
            .conn
            .call(Retry::OnlyUnreached, |mut c, _| {
                let etxn = etxn.clone();
                async move { c.txn(etxn).await }
            })
            .await
            .map_err(|e| {
                let lease = txn
                    .success
                    .iter()
                    .chain(&txn.failure)
                    .find_map(|o| match o {
                        super::Op::Put { lease, .. } => *lease,
                        _ => None,
                    });
                with_lease(e, lease.unwrap_or(0))
            })?;
        Ok(TxnResult {
            succeeded: resp.succeeded(),
            revision: header_rev(resp.header()),
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1) as i64;
        let resp = self
            .conn
            .call(Retry::Idempotent, |mut c, _| async move {
                c.lease_grant(secs, None).await
            })
            .await?;
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let ttl = self
            .conn
            .call(Retry::Idempotent, |mut c, _| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(resp) => Ok(resp.ttl()),
                    None => Err(etcd_client::Error::LeaseKeepAliveError(
                        "keep-alive stream closed before answering".into(),
                    )),
                }
            })
            .await
            .map_err(|e| with_lease(e, lease))?;
        if ttl <= 0 {
            return Err(StoreError::LeaseNotFound(lease));
        }
        Ok(Duration::from_secs(ttl as u64))
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.conn
            .call(Retry::Idempotent, |mut c, _| async move {
                c.lease_revoke(lease).await
            })
            .await
            .map(|_| ())
            .map_err(|e| with_lease(e, lease))
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, StoreError> {
        watch::start(&self.conn, prefix, from).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let resp = self
            .conn
            .call(Retry::Idempotent, |mut c, _| async move {
                c.get("\0", Some(GetOptions::new().with_count_only())).await
            })
            .await?;
        Ok(header_rev(resp.header()))
    }
}
