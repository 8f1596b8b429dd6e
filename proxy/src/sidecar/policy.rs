//! The `[authz]` policy in force, and its reload: the sidecar's config file
//! is watched (as certificates are, [`super::rotate::watch`]), and when it
//! changes and loads, a changed `[authz]` replaces the one in force without
//! a restart (as Istio pushes a changed AuthorizationPolicy to running
//! proxies). New connections are judged by it at once; an open HTTP/2
//! connection's caller is judged again at its next request. A file that
//! does not load is logged with its errors and changes nothing; changes to
//! other tables are logged as needing a restart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use meshgw_config::{Access, AuthzConfig, SidecarConfig};
use tokio::sync::watch;

/// The `[authz]` in force (`None`: every caller of the mesh) and how many
/// times it has been replaced.
#[derive(Debug)]
pub struct Policy {
    authz: RwLock<Option<Arc<AuthzConfig>>>,
    generation: AtomicU64,
}

impl Policy {
    /// A policy holding `authz`.
    pub fn new(authz: Option<AuthzConfig>) -> Arc<Self> {
        Arc::new(Self {
            authz: RwLock::new(authz.map(Arc::new)),
            generation: AtomicU64::new(0),
        })
    }

    /// Bumped by every replacement: a caller judged at another generation
    /// is judged again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// What `caller` may do now, and the generation that says so.
    pub fn access(&self, caller: &str) -> (Access, u64) {
        let authz = self.authz.read().unwrap_or_else(PoisonError::into_inner);
        // Read under the lock, so the pair is consistent with `replace`.
        let generation = self.generation();
        let access = authz.as_ref().map_or(Access::All, |a| a.access(caller));
        (access, generation)
    }

    /// Puts `authz` in force; returns whether it differs from the current.
    pub fn replace(&self, authz: Option<AuthzConfig>) -> bool {
        let mut current = self.authz.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_deref() == authz.as_ref() {
            return false;
        }
        *current = authz.map(Arc::new);
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }
}

/// Reloads `[authz]` from `running.source` whenever the file changes, until
/// `stop` turns true.
pub async fn run(
    running: Arc<SidecarConfig>,
    policy: Arc<Policy>,
    mut stop: watch::Receiver<bool>,
) {
    let path: PathBuf = running.source.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // Whether the file that loaded last differs from the running config
    // outside [authz] (said once per change, and again when undone).
    let mut outside = false;
    super::rotate::watch(
        vec![path.clone()],
        stopped,
        "sidecar config",
        "new connections and requests",
        "[authz]",
        move || {
            // Every error (file:line: key: problem) on the log's one line.
            let cfg = SidecarConfig::load(&path)
                .map_err(|e| e.to_string().lines().collect::<Vec<_>>().join("; "))?;
            let mut others = cfg.clone();
            others.authz.clone_from(&running.authz);
            let differs = others != *running;
            if differs != outside {
                if differs {
                    tracing::warn!(config = %path.display(), "the sidecar config differs from the running one outside [authz]: those changes take effect at the next restart");
                } else {
                    tracing::info!(config = %path.display(), "the sidecar config matches the running one outside [authz] again");
                }
                outside = differs;
            }
            Ok::<bool, String>(policy.replace(cfg.authz))
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use meshgw_config::CallerPattern;

    use super::*;

    #[test]
    fn a_replaced_policy_judges_callers_anew() {
        let orders = "spiffe://m.test/ns/default/sa/orders";
        let only = |id: &str| AuthzConfig {
            allow: vec![CallerPattern::parse(id).unwrap()],
            rules: vec![],
        };
        let p = Policy::new(Some(only(orders)));
        assert_eq!(
            p.access("spiffe://m.test/ns/default/sa/x"),
            (Access::Denied, 0)
        );
        assert_eq!(p.access(orders), (Access::All, 0));
        assert!(
            !p.replace(Some(only(orders))),
            "the same policy is no change"
        );
        assert_eq!(p.generation(), 0);
        assert!(p.replace(Some(only("spiffe://m.test/ns/default/sa/x"))));
        assert_eq!(p.access(orders), (Access::Denied, 1));
        assert!(p.replace(None), "no [authz]: every caller");
        assert_eq!(p.access(orders), (Access::All, 2));
    }
}
