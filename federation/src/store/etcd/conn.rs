//! One etcd client per endpoint, with failover: a call that cannot reach its
//! endpoint moves on to the next one, and a client whose endpoint failed is
//! rebuilt before it is used again.
//!
//! etcd-client's balanced channel can wait forever once its only endpoint has
//! failed (the balancer drops it and never gets it back), so each client here
//! talks to a single endpoint and every call carries the request timeout.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use etcd_client::{Client, ConnectOptions};

use super::{EtcdOptions, errors};
use crate::store::StoreError;

/// Whether a call may be sent again to another endpoint after it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating it is harmless (reads, puts, deletes, lease calls).
    Idempotent,
    /// Only when the endpoint could not be reached; a timeout is ambiguous
    /// (it may have been applied), so it is reported, not repeated.
    OnlyUnreached,
}

/// The endpoints and their clients.
pub(crate) struct Conn {
    opts: EtcdOptions,
    clients: Mutex<Vec<Option<Client>>>,
    current: AtomicUsize,
}

impl Conn {
    pub(crate) fn new(opts: EtcdOptions) -> Self {
        let n = opts.endpoints.len();
        Self {
            opts,
            clients: Mutex::new(vec![None; n]),
            current: AtomicUsize::new(0),
        }
    }

    pub(crate) fn opts(&self) -> &EtcdOptions {
        &self.opts
    }

    fn connect_options(&self) -> ConnectOptions {
        let o = &self.opts;
        let mut c = ConnectOptions::new()
            .with_connect_timeout(o.dial_timeout)
            .with_timeout(o.request_timeout)
            .with_keep_alive(o.request_timeout, o.request_timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some((user, password)) = &o.credentials {
            c = c.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &o.tls {
            let mut t = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.client {
                t = t.identity(etcd_client::Identity::from_pem(cert, key));
            }
            c = c.with_tls(t);
        }
        c
    }

    /// Returns the client for endpoint `i`, connecting it if needed.
    async fn client(&self, i: usize) -> Result<Client, etcd_client::Error> {
        if let Some(c) = self.clients.lock().expect("clients lock")[i].clone() {
            return Ok(c);
        }
        let opts = self.connect_options();
        let ep = &self.opts.endpoints[i];
        let fut = Client::connect([ep.as_str()], Some(opts));
        let c = match tokio::time::timeout(self.opts.dial_timeout, fut).await {
            Ok(r) => r?,
            Err(_) => return Err(etcd_client::Error::EndpointError("dial timed out".into())),
        };
        self.clients.lock().expect("clients lock")[i] = Some(c.clone());
        Ok(c)
    }

    fn forget(&self, i: usize) {
        self.clients.lock().expect("clients lock")[i] = None;
    }

    /// Runs `f` against the current endpoint, failing over to the others.
    pub(crate) async fn call<T, F, Fut>(&self, retry: Retry, f: F) -> Result<T, StoreError>
    where
        F: Fn(Client, String) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.opts.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for attempt in 0..n {
            let i = (start + attempt) % n;
            let ep = &self.opts.endpoints[i];
            let client = match self.client(i).await {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{ep}: {}", errors::describe(&e)));
                    continue;
                }
            };
            let res = tokio::time::timeout(self.opts.request_timeout, f(client, ep.clone())).await;
            let err = match res {
                Ok(Ok(v)) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Ok(Err(e)) if !errors::is_unreachable(&e) => return Err(errors::map(e, ep)),
                Ok(Err(e)) => errors::describe(&e),
                Err(_) if retry == Retry::OnlyUnreached => {
                    self.forget(i);
                    return Err(StoreError::Unavailable(format!(
                        "etcd at {ep} did not answer within {:?}; the write may or may not \
                         have been applied — re-read before retrying; check etcd's health",
                        self.opts.request_timeout
                    )));
                }
                Err(_) => format!("no answer within {:?}", self.opts.request_timeout),
            };
            self.forget(i);
            failures.push(format!("{ep}: {err}"));
        }
        Err(StoreError::Unavailable(format!(
            "etcd at {} unreachable: {} — is etcd running? check store.endpoints",
            self.opts.endpoints.join(", "),
            failures.join("; ")
        )))
    }
}
