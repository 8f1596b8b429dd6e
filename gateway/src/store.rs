//! Opens the catalog store the config names.

use std::sync::Arc;

use anyhow::{Context, Result};
use meshgw_config::{GatewayConfig, StoreConfig};
use meshgw_federation::store::CatalogStore;
use meshgw_federation::store::embedded::EmbeddedStore;
use meshgw_federation::store::etcd::{EtcdOptions, EtcdStore, EtcdTls};

/// Opens the embedded store or connects to etcd.
pub async fn open(cfg: &GatewayConfig) -> Result<Arc<dyn CatalogStore>> {
    match &cfg.store {
        StoreConfig::Embedded { data_dir, .. } => {
            let s = EmbeddedStore::open(data_dir)
                .await
                .with_context(|| format!("opening the embedded store in {}", data_dir.display()))?;
            Ok(Arc::new(s))
        }
        StoreConfig::Etcd(e) => {
            let mut opts = EtcdOptions::new(e.endpoints.clone());
            opts.dial_timeout = e.dial_timeout;
            opts.request_timeout = e.request_timeout;
            if let Some(a) = &e.auth {
                let pw = std::fs::read_to_string(&a.password_file).with_context(|| {
                    format!(
                        "reading store.auth.password_file {}",
                        a.password_file.display()
                    )
                })?;
                opts.credentials = Some((a.username.clone(), pw.trim_end().to_string()));
            }
            if let Some(t) = &e.tls {
                let ca = std::fs::read(&t.ca)
                    .with_context(|| format!("reading store.tls.ca {}", t.ca.display()))?;
                let pair = match (&t.cert, &t.key) {
                    (Some(c), Some(k)) => Some((
                        std::fs::read(c)
                            .with_context(|| format!("reading store.tls.cert {}", c.display()))?,
                        std::fs::read(k)
                            .with_context(|| format!("reading store.tls.key {}", k.display()))?,
                    )),
                    _ => None,
                };
                opts.tls = Some(EtcdTls {
                    ca_pem: ca,
                    client: pair,
                });
            }
            // Connecting must not block start-up forever: the gateway serves
            // its tunnels and retries the store in the background.
            let s = EtcdStore::connect(&opts).await.with_context(|| {
                format!(
                    "connecting to etcd at {}: is etcd running? check store.endpoints",
                    e.endpoints.join(",")
                )
            })?;
            Ok(Arc::new(s))
        }
    }
}
