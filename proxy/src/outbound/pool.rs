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

/// The request handle of one HTTP/2 mesh connection.
pub(crate) type Sender = SendRequest<Incoming>;

/// The most connections kept to one remote cluster for one service and port.
pub(crate) const MAX_REMOTE_CONNS: u32 = 8;

/// Open HTTP/2 connections by target.
#[derive(Default)]
pub(crate) struct Pool {
    conns: Mutex<HashMap<String, Sender>>,
    turn: AtomicUsize,
}

/// Returns the pool key of connection `slot` to `target` for `svc` on `port`.
pub(crate) fn key(svc: &ServiceName, port: u16, target: &Target, slot: u32) -> String {
    format!("{svc}:{port}/{}#{slot}", target.key())
}

impl Pool {
    /// Returns the slot the next request uses among `slots` connections
    /// (`slots` at least 1), taking them in turn.
    pub(crate) fn next_slot(&self, slots: u32) -> u32 {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        u32::try_from(turn % slots.max(1) as usize).expect("below slots")
    }

    /// Returns a handle to the open connection under `key`, forgetting it if it closed.
    pub(crate) fn get(&self, key: &str) -> Option<Sender> {
        let mut conns = self.conns.lock().expect("pool lock");
        match conns.get(key) {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                conns.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores the handle of a new connection under `key` (replacing an older one).
    pub(crate) fn put(&self, key: String, sender: Sender) {
        let mut conns = self.conns.lock().expect("pool lock");
        conns.retain(|_, s| !s.is_closed());
        conns.insert(key, sender);
    }

    /// Forgets the connection under `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.conns.lock().expect("pool lock").remove(key);
    }
}
