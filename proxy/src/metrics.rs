//! Prometheus metrics of the sidecar, served on its admin port as
//! OpenMetrics text. Request metrics carry `src_cluster`, `dst_cluster` and
//! `service`; connection and byte metrics carry the `direction`.

use std::sync::Mutex;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use meshgw_federation::model::ServiceName;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which side of the sidecar traffic passes through.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// From other sidecars (or gateways) to the local app.
    Inbound,
    /// From the local app to other services.
    Outbound,
}

/// Labels of one route: who called whom.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The caller's cluster.
    pub src_cluster: String,
    /// The callee's cluster.
    pub dst_cluster: String,
    /// The called service, `namespace/name`.
    pub service: String,
}

/// Labels of a request count: the route and the status class (`2xx`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The caller's cluster.
    pub src_cluster: String,
    /// The callee's cluster.
    pub dst_cluster: String,
    /// The called service, `namespace/name`.
    pub service: String,
    /// `1xx` to `5xx`.
    pub status_class: String,
}

/// Labels of a finished gRPC call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// The caller's cluster.
    pub src_cluster: String,
    /// The callee's cluster.
    pub dst_cluster: String,
    /// The called service, `namespace/name`.
    pub service: String,
    /// The call's `grpc-status` code, `0` (OK) to `16`.
    pub grpc_status: String,
}

/// Labels of an outlier ejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EjectionLabels {
    /// The called service, `namespace/name`.
    pub service: String,
    /// The ejected target: `local/<instance id>` or `cluster/<name>`.
    pub target: String,
    /// `connect_failures` or `server_errors`.
    pub cause: String,
}

/// Labels of an authorization refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    /// The refused caller's SPIFFE ID.
    pub caller: String,
}

/// Labels naming a direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// Inbound or outbound.
    pub direction: Direction,
}

/// Routes whose series handles are kept; a sidecar talks to few services
/// (the oldest is dropped beyond this, its series stay in the families).
const MAX_CACHED_ROUTES: usize = 256;

/// The series of one route: its latency histogram and, once used, a
/// request counter per status class (`1xx` to `5xx`).
struct RouteSeries {
    labels: RouteLabels,
    latency: Histogram,
    classes: [Option<Counter>; 5],
}

/// The sidecar's metrics. Shared by the inbound and outbound sides.
pub struct Metrics {
    cluster: String,
    routes: Mutex<Vec<RouteSeries>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    grpc_calls: Family<GrpcLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    open: Family<DirectionLabels, Gauge>,
    conns: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    handshake_failures: Family<DirectionLabels, Counter>,
    ejections: Family<EjectionLabels, Counter>,
    authz_denied: Family<CallerLabels, Counter>,
    app_healthy: Gauge<i64, AtomicI64>,
    registered: Gauge<i64, AtomicI64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// Creates and registers every metric; `cluster` is this sidecar's
    /// cluster (the `src_cluster` of outbound requests).
    pub fn new(cluster: &str) -> Self {
        let mut registry = Registry::with_prefix("meshgw_sidecar");
        let m = Metrics {
            cluster: cluster.to_string(),
            routes: Mutex::new(Vec::new()),
            registry: Registry::default(),
            requests: Family::default(),
            grpc_calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            open: Family::default(),
            conns: Family::default(),
            bytes: Family::default(),
            handshake_failures: Family::default(),
            ejections: Family::default(),
            authz_denied: Family::default(),
            app_healthy: Gauge::default(),
            registered: Gauge::default(),
        };
        registry.register(
            "requests",
            "HTTP and gRPC requests by route and status class",
            m.requests.clone(),
        );
        registry.register(
            "grpc_calls",
            "Outbound gRPC calls by route and grpc-status (an HTTP 200 answer can carry any)",
            m.grpc_calls.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to response headers, by route",
            m.latency.clone(),
        );
        registry.register(
            "open_connections",
            "Proxied connections open now",
            m.open.clone(),
        );
        registry.register(
            "connections",
            "Proxied connections accepted",
            m.conns.clone(),
        );
        registry.register(
            "bytes",
            "Bytes proxied (both ways) on closed connections",
            m.bytes.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Refused TLS handshakes (no client certificate, untrusted CA, wrong ID)",
            m.handshake_failures.clone(),
        );
        registry.register(
            "outlier_ejections",
            "Targets ejected from load balancing by outlier detection ([outlier]), by service, target and cause",
            m.ejections.clone(),
        );
        registry.register(
            "authz_denied",
            "Inbound HTTP requests and TCP connections refused by [authz], by caller SPIFFE ID",
            m.authz_denied.clone(),
        );
        registry.register(
            "app_healthy",
            "1 while the local app passes its health checks",
            m.app_healthy.clone(),
        );
        registry.register(
            "registered",
            "1 while the instance is registered with the gateway",
            m.registered.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts an outbound gRPC call to `service` in `dst_cluster` that
    /// ended with `grpc-status: code`.
    pub fn grpc_call(&self, dst_cluster: &str, service: &ServiceName, code: u32) {
        self.grpc_calls
            .get_or_create(&GrpcLabels {
                src_cluster: self.cluster.clone(),
                dst_cluster: dst_cluster.to_string(),
                service: service.to_string(),
                grpc_status: code.to_string(),
            })
            .inc();
    }

    /// Counts one ejection of `target` (a [`crate::balance::Target::key`])
    /// of `service`.
    pub fn ejection(&self, service: &ServiceName, target: &str, why: crate::outlier::Ejected) {
        let cause = match why {
            crate::outlier::Ejected::ConnectFailures => "connect_failures",
            crate::outlier::Ejected::ServerErrors => "server_errors",
        };
        self.ejections
            .get_or_create(&EjectionLabels {
                service: service.to_string(),
                target: target.to_string(),
                cause: cause.into(),
            })
            .inc();
    }

    /// Counts one inbound request or TCP connection of `caller` refused by `[authz]`.
    pub fn authz_denied(&self, caller: &str) {
        self.authz_denied
            .get_or_create(&CallerLabels {
                caller: caller.to_string(),
            })
            .inc();
    }

    /// Returns this sidecar's cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Records an outbound request from this cluster to `service` in
    /// `dst_cluster` that got `status` after `elapsed`.
    pub fn request(
        &self,
        dst_cluster: &str,
        service: &ServiceName,
        status: u16,
        elapsed: Duration,
    ) {
        let same = |s: &str| {
            s.len() == service.namespace.len() + 1 + service.name.len()
                && s.starts_with(service.namespace.as_str())
                && s.ends_with(service.name.as_str())
                && s.as_bytes()[service.namespace.len()] == b'/'
        };
        self.observe(
            &self.cluster,
            dst_cluster,
            same,
            || service.to_string(),
            status,
            elapsed,
        );
    }

    /// Records a request from `src_cluster` to `dst_cluster`.
    pub fn request_between(
        &self,
        src_cluster: &str,
        dst_cluster: &str,
        service: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let same = |s: &str| s == service;
        self.observe(
            src_cluster,
            dst_cluster,
            same,
            || service.to_string(),
            status,
            elapsed,
        );
    }

    /// Records one request on its route's series, found in the cache (no
    /// labels built) or created there; routes beyond the cache's size are
    /// recorded through the families directly.
    fn observe(
        &self,
        src: &str,
        dst: &str,
        is_service: impl Fn(&str) -> bool,
        service: impl FnOnce() -> String,
        status: u16,
        elapsed: Duration,
    ) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        let mut cache = self.routes.lock().expect("metrics cache lock");
        let found = cache.iter().position(|r| {
            r.labels.src_cluster == src
                && r.labels.dst_cluster == dst
                && is_service(&r.labels.service)
        });
        let i = match found {
            Some(i) => i,
            None => {
                let labels = RouteLabels {
                    src_cluster: src.to_string(),
                    dst_cluster: dst.to_string(),
                    service: service(),
                };
                let latency = self.latency.get_or_create(&labels).clone();
                cache.push(RouteSeries {
                    labels,
                    latency,
                    classes: Default::default(),
                });
                cache.len() - 1
            }
        };
        let route = &mut cache[i];
        route.latency.observe(elapsed.as_secs_f64());
        let counter = route.classes[class].get_or_insert_with(|| {
            self.requests
                .get_or_create(&RequestLabels {
                    src_cluster: route.labels.src_cluster.clone(),
                    dst_cluster: route.labels.dst_cluster.clone(),
                    service: route.labels.service.clone(),
                    status_class: format!("{}xx", class + 1),
                })
                .clone()
        });
        counter.inc();
        if cache.len() > MAX_CACHED_ROUTES {
            cache.remove(0);
        }
    }

    /// Records a proxied connection opening.
    pub fn conn_open(&self, direction: Direction) {
        let l = DirectionLabels { direction };
        self.open.get_or_create(&l).inc();
        self.conns.get_or_create(&l).inc();
    }

    /// Records a proxied connection closing.
    pub fn conn_close(&self, direction: Direction) {
        self.open
            .get_or_create(&DirectionLabels { direction })
            .dec();
    }

    /// Adds `n` proxied bytes.
    pub fn bytes(&self, direction: Direction, n: u64) {
        self.bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(n);
    }

    /// Counts a refused TLS handshake.
    pub fn handshake_failed(&self, direction: Direction) {
        self.handshake_failures
            .get_or_create(&DirectionLabels { direction })
            .inc();
    }

    /// Returns how many handshakes were refused in `direction`.
    pub fn handshake_failures(&self, direction: Direction) -> u64 {
        self.handshake_failures
            .get_or_create(&DirectionLabels { direction })
            .get()
    }

    /// Records whether the app passes its checks.
    pub fn set_app_healthy(&self, healthy: bool) {
        self.app_healthy.set(i64::from(healthy));
    }

    /// Records whether the instance is registered.
    pub fn set_registered(&self, registered: bool) {
        self.registered.set(i64::from(registered));
    }

    /// Returns every metric as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
