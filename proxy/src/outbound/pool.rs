//! HTTP/2 connections to targets, one per (service, port, target), reused
//! while open and re-created when closed.

use std::collections::HashMap;
use std::sync::Mutex;

use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use meshgw_federation::model::ServiceName;

use crate::balance::Target;

/// The request handle of one HTTP/2 mesh connection.
pub(crate) type Sender = SendRequest<Incoming>;

/// Open HTTP/2 connections by target.
#[derive(Default)]
pub(crate) struct Pool {
    conns: Mutex<HashMap<String, Sender>>,
}

/// Returns the pool key of `target` for `svc` on `port`.
pub(crate) fn key(svc: &ServiceName, port: u16, target: &Target) -> String {
    format!("{svc}:{port}/{}", target.key())
}

impl Pool {
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
