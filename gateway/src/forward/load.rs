//! Which local instance a peer's stream goes to: the one with the fewest
//! forwarded connections open through this gateway, ties broken at random.
//!
//! The gateway never sees requests, only connections (a caller's sidecar
//! multiplexes its HTTP/2 requests over a few of them), so it balances
//! connections: a caller that opens N connections to this cluster reaches N
//! different instances when there are that many.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::seq::SliceRandom;

/// Open forwarded connections per instance address (`host:port`).
#[derive(Debug, Default)]
pub struct InstanceLoad {
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// Counts one open connection to an instance until dropped.
#[derive(Debug)]
pub struct LoadGuard {
    open: Arc<Mutex<HashMap<String, usize>>>,
    addr: String,
}

impl InstanceLoad {
    /// Orders `addrs` by fewest open connections first, shuffling equals.
    pub fn order(&self, addrs: &mut [String]) {
        addrs.shuffle(&mut rand::rng());
        let open = self.open.lock().expect("load lock");
        addrs.sort_by_key(|a| open.get(a).copied().unwrap_or(0));
    }

    /// Counts a connection to `addr` as open until the guard is dropped.
    pub fn open(&self, addr: &str) -> LoadGuard {
        *self
            .open
            .lock()
            .expect("load lock")
            .entry(addr.to_owned())
            .or_default() += 1;
        LoadGuard {
            open: self.open.clone(),
            addr: addr.to_owned(),
        }
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("load lock");
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_first_and_guards_release() {
        let load = InstanceLoad::default();
        let a = load.open("a:1");
        let _a2 = load.open("a:1");
        let _b = load.open("b:1");
        let mut addrs = vec!["a:1".to_string(), "b:1".into(), "c:1".into()];
        load.order(&mut addrs);
        assert_eq!(addrs, ["c:1", "b:1", "a:1"]);
        drop(a);
        drop(_a2);
        load.order(&mut addrs);
        assert_eq!(addrs[2], "b:1");
        assert!(!load.open.lock().unwrap().contains_key("a:1"));
    }
}
