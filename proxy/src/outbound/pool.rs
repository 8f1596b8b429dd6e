//! HTTP/2 connections to targets, reused while open and re-created when
//! closed: one per (service, port, local instance), and up to
//! [`MAX_REMOTE_CONNS`] per (service, port, remote cluster), one per healthy
//! instance there. The gateways place each connection on the least-loaded
//! remote instance but never see the requests inside it, so several
//! connections, used in turn, are what spreads one caller's requests over
//! a remote cluster's instances.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use meshgw_federation::model::ServiceName;

use crate::FastMap;
use crate::balance::Target;
use crate::body::Coalesce;

/// The body of a request sent over a mesh connection: the app's, or none
/// (a resent idempotent request).
pub(crate) type MeshBody = Coalesce<Either<Incoming, Empty<Bytes>>>;

/// The request handle of one HTTP/2 mesh connection.
pub(crate) type Sender = SendRequest<MeshBody>;

/// The most connections kept to one remote cluster for one service and port.
pub(crate) const MAX_REMOTE_CONNS: u32 = 8;

/// Which connection of a service: port, target and slot. Compared with a
/// [`Target`] in place, so a lookup builds no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    port: u16,
    slot: u32,
    target: TargetKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TargetKey {
    Local(String),
    Cluster(String),
}

impl TargetKey {
    fn is(&self, target: &Target) -> bool {
        match (self, target) {
            (TargetKey::Local(id), Target::Local(ep)) => *id == ep.id,
            (TargetKey::Cluster(c), Target::ViaGateway { cluster }) => c == cluster,
            _ => false,
        }
    }
}

impl Key {
    fn is(&self, port: u16, target: &Target, slot: u32) -> bool {
        self.port == port && self.slot == slot && self.target.is(target)
    }
}

/// Open HTTP/2 connections by service, then by [`Key`].
#[derive(Default)]
pub(crate) struct Pool {
    conns: Mutex<FastMap<ServiceName, Vec<(Key, Sender)>>>,
    turn: AtomicUsize,
}

impl Pool {
    /// Returns the slot the next request uses among `slots` connections
    /// (`slots` at least 1), taking them in turn.
    pub(crate) fn next_slot(&self, slots: u32) -> u32 {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        u32::try_from(turn % slots.max(1) as usize).expect("below slots")
    }

    /// Returns a handle to the open connection `slot` to `target` for `svc`
    /// on `port`, forgetting it if it closed.
    pub(crate) fn get(
        &self,
        svc: &ServiceName,
        port: u16,
        target: &Target,
        slot: u32,
    ) -> Option<Sender> {
        let mut conns = self.conns.lock().expect("pool lock");
        let list = conns.get_mut(svc)?;
        let i = list.iter().position(|(k, _)| k.is(port, target, slot))?;
        if list[i].1.is_closed() {
            list.swap_remove(i);
            return None;
        }
        Some(list[i].1.clone())
    }

    /// Stores the handle of a new connection (replacing an older one), and
    /// forgets connections that closed.
    pub(crate) fn put(
        &self,
        svc: &ServiceName,
        port: u16,
        target: &Target,
        slot: u32,
        sender: Sender,
    ) {
        let key = Key {
            port,
            slot,
            target: match target {
                Target::Local(ep) => TargetKey::Local(ep.id.clone()),
                Target::ViaGateway { cluster } => TargetKey::Cluster(cluster.clone()),
            },
        };
        let mut conns = self.conns.lock().expect("pool lock");
        conns.retain(|_, list| {
            list.retain(|(_, s)| !s.is_closed());
            !list.is_empty()
        });
        let list = conns.entry(svc.clone()).or_default();
        list.retain(|(k, _)| *k != key);
        list.push((key, sender));
    }

    /// Forgets connection `slot` to `target` for `svc` on `port`.
    pub(crate) fn remove(&self, svc: &ServiceName, port: u16, target: &Target, slot: u32) {
        if let Some(list) = self.conns.lock().expect("pool lock").get_mut(svc) {
            list.retain(|(k, _)| !k.is(port, target, slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    use super::*;
    use crate::catalog::LocalEndpoint;

    /// A real HTTP/2 connection over an in-memory pipe.
    async fn sender() -> Sender {
        let (a, b) = tokio::io::duplex(1 << 16);
        let svc = service_fn(|_| async {
            Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
        });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(b), svc),
        );
        let (s, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(a))
                .await
                .unwrap();
        tokio::spawn(conn);
        s
    }

    #[tokio::test]
    async fn connections_of_different_services_do_not_replace_each_other() {
        let pool = Pool::default();
        let (a, b) = (
            ServiceName::new("default", "a"),
            ServiceName::new("default", "b"),
        );
        let east = Target::ViaGateway {
            cluster: "east".into(),
        };
        pool.put(&a, 0, &east, 0, sender().await);
        pool.put(&b, 0, &east, 0, sender().await);
        assert!(
            pool.get(&a, 0, &east, 0).is_some(),
            "b's connection evicted a's"
        );
        assert!(pool.get(&b, 0, &east, 0).is_some());
        assert!(pool.get(&a, 0, &east, 1).is_none(), "another slot");
        assert!(pool.get(&a, 80, &east, 0).is_none(), "another port");
        let local = Target::Local(Arc::new(LocalEndpoint {
            id: "east".into(),
            addr: "127.0.0.1:1".into(),
            zone: String::new(),
            region: String::new(),
            healthy: true,
            weight: 1,
            labels: Default::default(),
            protocol: meshgw_federation::model::Protocol::Http,
        }));
        assert!(
            pool.get(&a, 0, &local, 0).is_none(),
            "a local instance named like the cluster"
        );
        // A new connection for the same key replaces the old one.
        pool.put(&a, 0, &east, 0, sender().await);
        assert_eq!(pool.conns.lock().unwrap()[&a].len(), 1);
        pool.remove(&a, 0, &east, 0);
        assert!(pool.get(&a, 0, &east, 0).is_none());
        assert!(pool.get(&b, 0, &east, 0).is_some());
    }
}
