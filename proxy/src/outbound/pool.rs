//! HTTP/2 connections to targets, reused while open and re-created when
//! closed: one per (service, port, local instance), and up to
//! [`MAX_REMOTE_CONNS`] per (service, port, remote cluster), one per healthy
//! instance there. The gateways place each connection on the least-loaded
//! remote instance but never see the requests inside it, so several
//! connections, used in turn, are what spreads one caller's requests over
//! a remote cluster's instances.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use meshgw_federation::model::ServiceName;

use crate::balance::Target;
use crate::body::Coalesce;

/// The request handle of one HTTP/2 mesh connection.
pub(crate) type Sender = SendRequest<Coalesce<Incoming>>;

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
    conns: Mutex<HashMap<ServiceName, Vec<(Key, Sender)>>>,
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
            list.retain(|(k, s)| !s.is_closed() && *k != key);
            !list.is_empty()
        });
        conns.entry(svc.clone()).or_default().push((key, sender));
    }

    /// Forgets connection `slot` to `target` for `svc` on `port`.
    pub(crate) fn remove(&self, svc: &ServiceName, port: u16, target: &Target, slot: u32) {
        if let Some(list) = self.conns.lock().expect("pool lock").get_mut(svc) {
            list.retain(|(k, _)| !k.is(port, target, slot));
        }
    }
}
