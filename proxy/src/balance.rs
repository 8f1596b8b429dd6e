//! Choosing where a request goes, without I/O: healthy local endpoints first
//! (same zone, then same region, then any), picked by power of two choices
//! over least outstanding requests; failing that, the remote cluster with
//! the lowest tunnel RTT, reached through the local gateway.
//!
//! The [`Balancer`] keeps per-target state across calls: requests in flight
//! (counted by [`InFlight`] guards) and outlier detection
//! ([`crate::outlier`]: consecutive connect failures or 5xx responses eject
//! a target for a while). Ejected targets are used only when nothing else
//! is left, so an ejection never turns into an outage of its own. Time is
//! passed in as `now`, and the random choice comes from a seedable RNG, so
//! tests are deterministic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshgw_federation::model::ServiceName;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::FastMap;
use crate::catalog::{LocalEndpoint, View};
use crate::metrics::Metrics;
pub use crate::outlier::OutlierPolicy;
use crate::outlier::{Health, Outcome};

/// Where a connection for a service goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A healthy local instance, reached directly at its sidecar's inbound
    /// (shared with the catalog view: a pick copies no endpoint).
    Local(Arc<LocalEndpoint>),
    /// Another cluster, reached through the local gateway.
    ViaGateway {
        /// The target cluster's name.
        cluster: String,
    },
}

impl Target {
    /// Returns a key naming this target within a service: `local/<id>` or `cluster/<name>`.
    pub fn key(&self) -> String {
        match self {
            Target::Local(ep) => format!("local/{}", ep.id),
            Target::ViaGateway { cluster } => format!("cluster/{cluster}"),
        }
    }
}

/// This sidecar's locality, which local endpoints are ranked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Here {
    /// Region, e.g. `eu-west1`.
    pub region: String,
    /// Zone, e.g. `eu-west1-b`.
    pub zone: String,
}

#[derive(Debug, Default)]
struct Stats {
    in_flight: AtomicUsize,
}

/// What the balancer remembers of one service's targets, by local
/// instance id and by cluster name (looked up without building keys).
#[derive(Debug, Default)]
struct PerService {
    load: FastMap<String, Arc<Stats>>,
    local: FastMap<String, Health>,
    clusters: FastMap<String, Health>,
}

impl PerService {
    fn health_mut(&mut self, target: &Target) -> &mut Health {
        let (map, name) = match target {
            Target::Local(ep) => (&mut self.local, &ep.id),
            Target::ViaGateway { cluster } => (&mut self.clusters, cluster),
        };
        if !map.contains_key(name) {
            map.insert(name.clone(), Health::default());
        }
        map.get_mut(name).expect("just inserted")
    }

    fn is_empty(&self) -> bool {
        self.load.is_empty() && self.local.is_empty() && self.clusters.is_empty()
    }
}

#[derive(Debug)]
struct Inner {
    rng: StdRng,
    services: FastMap<ServiceName, PerService>,
    /// The catalog revision the maps were last pruned against.
    pruned_at: i64,
}

/// Whether `exclude` (target keys) names local instance `id`.
fn excludes_local(exclude: &[String], id: &str) -> bool {
    exclude.iter().any(|k| k.strip_prefix("local/") == Some(id))
}

/// Whether `exclude` (target keys) names `cluster`.
fn excludes_cluster(exclude: &[String], cluster: &str) -> bool {
    exclude
        .iter()
        .any(|k| k.strip_prefix("cluster/") == Some(cluster))
}

/// Counts one request in flight to a target until dropped.
#[derive(Debug)]
pub struct InFlight(Option<Arc<Stats>>);

impl InFlight {
    /// Returns a guard that counts nothing (for targets not tracked).
    pub fn none() -> Self {
        InFlight(None)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A chosen target and the guard counting the request on it.
#[derive(Debug)]
pub struct Pick {
    /// Where to connect.
    pub target: Target,
    /// Keeps the target's in-flight count raised while held.
    pub guard: InFlight,
}

/// The load balancer of one sidecar, shared by all its listeners.
#[derive(Debug)]
pub struct Balancer {
    here: Here,
    policy: OutlierPolicy,
    inner: Mutex<Inner>,
    /// Where ejections are counted, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

impl Balancer {
    /// Creates a balancer for a sidecar at `here`; `seed` fixes the random
    /// choices (tests), `None` seeds from the OS.
    pub fn new(here: Here, policy: OutlierPolicy, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Balancer {
            here,
            policy,
            metrics: None,
            inner: Mutex::new(Inner {
                rng,
                services: FastMap::default(),
                pruned_at: 0,
            }),
        }
    }

    /// Chooses a target for `svc` from `view`, skipping targets whose key is in
    /// `exclude` (a retry's failed target) and ejected targets. Returns `None`
    /// when nothing healthy is known. Ejected targets are still used as a
    /// last resort when nothing else is left (local instances first, then
    /// remote clusters): an ejection moves traffic, it never stops it.
    pub fn choose(
        &self,
        view: &View,
        svc: &ServiceName,
        now: Instant,
        exclude: &[String],
    ) -> Option<Pick> {
        let mut inner = self.inner.lock().expect("balancer lock");
        if view.revision != inner.pruned_at {
            inner.prune(view);
        }
        let mut live: Vec<&Arc<LocalEndpoint>> = Vec::new();
        let mut ejected: Vec<&Arc<LocalEndpoint>> = Vec::new();
        for e in view.local.get(svc).into_iter().flatten() {
            if !e.healthy || excludes_local(exclude, &e.id) {
                continue;
            }
            if inner.is_ejected(svc, &Side::Local, &e.id, now) {
                ejected.push(e);
            } else {
                live.push(e);
            }
        }
        // Nearest tier first: same zone, same region, anywhere. A tier is
        // only collected when it is a strict part of the live ones.
        let here = &self.here;
        let same_zone = |e: &LocalEndpoint| e.region == here.region && e.zone == here.zone;
        let same_region = |e: &LocalEndpoint| e.region == here.region;
        let tiers: [&dyn Fn(&LocalEndpoint) -> bool; 2] = [&same_zone, &same_region];
        for in_tier in tiers {
            let n = live.iter().filter(|e| in_tier(e)).count();
            if n == live.len() {
                break;
            }
            if n > 0 {
                let tier: Vec<_> = live.iter().copied().filter(|e| in_tier(e)).collect();
                return Some(inner.p2c(svc, &tier));
            }
        }
        if !live.is_empty() {
            return Some(inner.p2c(svc, &live));
        }
        let remote = |cluster| Pick {
            target: Target::ViaGateway { cluster },
            guard: InFlight::none(),
        };
        if let Some(cluster) = self.best_remote(&inner, view, svc, now, exclude, false) {
            return Some(remote(cluster));
        }
        if !ejected.is_empty() {
            return Some(inner.p2c(svc, &ejected));
        }
        self.best_remote(&inner, view, svc, now, exclude, true)
            .map(remote)
    }

    fn best_remote(
        &self,
        inner: &Inner,
        view: &View,
        svc: &ServiceName,
        now: Instant,
        exclude: &[String],
        even_ejected: bool,
    ) -> Option<String> {
        let mut usable: Vec<(Option<Duration>, &str)> = view
            .remote
            .get(svc)?
            .iter()
            .filter(|c| c.healthy > 0 && !c.stale)
            .filter(|c| {
                !excludes_cluster(exclude, &c.cluster)
                    && (even_ejected || !inner.is_ejected(svc, &Side::Cluster, &c.cluster, now))
            })
            .map(|c| (view.peer_rtt.get(&c.cluster).copied(), c.cluster.as_str()))
            .collect();
        // Known RTTs first, lowest first; unknown last; then by name.
        usable.sort_by_key(|(rtt, name)| (rtt.is_none(), *rtt, *name));
        usable.first().map(|(_, c)| (*c).to_owned())
    }

    /// Counts ejections in `metrics` (`meshgw_sidecar_outlier_ejections_total`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Records the outcome of connecting to `target` for `svc` at `now`: a
    /// success clears its failure count; the `max_failures`-th failure in a
    /// row ejects it for the ejection window.
    pub fn report(&self, svc: &ServiceName, target: &Target, ok: bool, now: Instant) {
        let outcome = if ok {
            Outcome::Connected
        } else {
            Outcome::ConnectFailed
        };
        self.record(svc, target, outcome, now);
    }

    /// Records the status of a response from `target` for `svc` at `now`:
    /// the `max_server_errors`-th 5xx in a row ejects it; an answer below
    /// 500 clears its record, ejection included.
    pub fn report_response(&self, svc: &ServiceName, target: &Target, status: u16, now: Instant) {
        let outcome = if status >= 500 {
            Outcome::ServerError
        } else {
            Outcome::Answered
        };
        self.record(svc, target, outcome, now);
    }

    fn record(&self, svc: &ServiceName, target: &Target, outcome: Outcome, now: Instant) {
        let mut inner = self.inner.lock().expect("balancer lock");
        let good = matches!(outcome, Outcome::Connected | Outcome::Answered);
        if good && inner.is_healthy(svc, target) {
            return;
        }
        let h = inner.service_mut(svc).health_mut(target);
        if let Some(why) = h.record(outcome, now, &self.policy) {
            let ejection = h.ejected_until().map(|until| until - now);
            tracing::warn!(service = %svc, target = %target.key(), ?ejection,
                cause = ?why, "ejecting target after consecutive failures");
            drop(inner);
            if let Some(m) = &self.metrics {
                m.ejection(svc, &target.key(), why);
            }
        }
    }

    /// Returns the number of requests in flight to `target` of `svc`.
    pub fn in_flight(&self, svc: &ServiceName, target: &Target) -> usize {
        let inner = self.inner.lock().expect("balancer lock");
        let Target::Local(ep) = target else {
            return 0;
        };
        inner
            .services
            .get(svc)
            .and_then(|p| p.load.get(&ep.id))
            .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    }
}

/// Which of a service's target maps a name is looked up in.
enum Side {
    Local,
    Cluster,
}

impl Inner {
    /// Forgets the load and health of targets the catalog no longer lists
    /// (instances that went away, clusters no longer importing the
    /// service), so that churn does not grow the maps without bound. Load
    /// counters still held by a request in flight are kept until it ends.
    fn prune(&mut self, view: &View) {
        self.services.retain(|svc, per| {
            let local = |id: &String| {
                view.local
                    .get(svc)
                    .is_some_and(|eps| eps.iter().any(|e| &e.id == id))
            };
            let cluster = |name: &String| {
                view.remote
                    .get(svc)
                    .is_some_and(|cs| cs.iter().any(|c| &c.cluster == name))
            };
            per.load
                .retain(|id, s| Arc::strong_count(s) > 1 || local(id));
            per.local.retain(|id, _| local(id));
            per.clusters.retain(|name, _| cluster(name));
            !per.is_empty()
        });
        self.pruned_at = view.revision;
    }

    fn service_mut(&mut self, svc: &ServiceName) -> &mut PerService {
        if !self.services.contains_key(svc) {
            self.services.insert(svc.clone(), PerService::default());
        }
        self.services.get_mut(svc).expect("just inserted")
    }

    /// Whether `target` has no failures on record (nothing to clear).
    fn is_healthy(&self, svc: &ServiceName, target: &Target) -> bool {
        let Some(per) = self.services.get(svc) else {
            return true;
        };
        let h = match target {
            Target::Local(ep) => per.local.get(&ep.id),
            Target::ViaGateway { cluster } => per.clusters.get(cluster),
        };
        h.is_none_or(Health::is_clear)
    }

    fn is_ejected(&self, svc: &ServiceName, side: &Side, name: &str, now: Instant) -> bool {
        self.services
            .get(svc)
            .and_then(|per| match side {
                Side::Local => per.local.get(name),
                Side::Cluster => per.clusters.get(name),
            })
            .is_some_and(|h| h.is_ejected(now))
    }

    fn load(&mut self, svc: &ServiceName, ep: &LocalEndpoint) -> Arc<Stats> {
        let per = self.service_mut(svc);
        if let Some(s) = per.load.get(&ep.id) {
            return s.clone();
        }
        per.load.entry(ep.id.clone()).or_default().clone()
    }

    /// Power of two choices: two distinct random candidates, the one with
    /// fewer requests in flight wins, then the heavier weight, then the first.
    fn p2c(&mut self, svc: &ServiceName, tier: &[&Arc<LocalEndpoint>]) -> Pick {
        let a = self.rng.random_range(0..tier.len());
        let chosen = if tier.len() == 1 {
            a
        } else {
            let mut b = self.rng.random_range(0..tier.len() - 1);
            if b >= a {
                b += 1;
            }
            let score = |i: usize, inner: &mut Inner| {
                let n = inner.load(svc, tier[i]).in_flight.load(Ordering::Relaxed);
                (n, std::cmp::Reverse(tier[i].weight))
            };
            if score(b, self) < score(a, self) {
                b
            } else {
                a
            }
        };
        let stats = self.load(svc, tier[chosen]);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Pick {
            target: Target::Local(Arc::clone(tier[chosen])),
            guard: InFlight(Some(stats)),
        }
    }
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
