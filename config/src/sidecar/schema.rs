//! The schema of the sidecar config file: every allowed key, its type, its
//! default and its meaning. This table is the one place defaults live.

use crate::schema::Need::{Default, Optional, Required};
use crate::schema::{KeySpec, TableSpec};

/// The schema of `meshgw sidecar --config FILE`.
pub static SIDECAR_SCHEMA: TableSpec = TableSpec {
    header: "",
    keys: &[
        KeySpec::table(
            "mesh",
            &MESH,
            Required,
            "The mesh this workload belongs to.",
        ),
        KeySpec::table("locality", &LOCALITY, Required, "Where this workload runs."),
        KeySpec::table(
            "gateway",
            &GATEWAY,
            Required,
            "The local gateway: its catalog API and forward listener.",
        ),
        KeySpec::table(
            "service",
            &SERVICE,
            Required,
            "The service this workload is an instance of, and where the app listens.",
        ),
        KeySpec::table(
            "inbound",
            &INBOUND,
            Required,
            "The mTLS listener other sidecars connect to.",
        ),
        KeySpec::table(
            "outbound",
            &OUTBOUND,
            Optional,
            "Listeners the local app calls other services through.",
        ),
        KeySpec::tables(
            "upstreams",
            &UPSTREAM,
            "TCP listeners, each bound to one service.",
        ),
        KeySpec::table(
            "health",
            &HEALTH,
            Optional,
            "Health checks of the local app.",
        ),
        KeySpec::table(
            "tls",
            &TLS,
            Required,
            "The workload's certificate and the mesh trust bundle.",
        ),
        KeySpec::table("admin", &ADMIN, Optional, "The admin HTTP server."),
        KeySpec::table("timeouts", &TIMEOUTS, Optional, "Proxy timeouts."),
        KeySpec::table(
            "telemetry",
            &TELEMETRY,
            Optional,
            "OpenTelemetry traces of the requests the sidecar proxies.",
        ),
        KeySpec::table(
            "authz",
            &AUTHZ,
            Optional,
            "Which callers may reach this workload; without it, every caller with a certificate of the mesh.",
        ),
        KeySpec::table(
            "outlier",
            &OUTLIER,
            Optional,
            "Outlier detection: when a failing target leaves load balancing.",
        ),
        KeySpec::table(
            "runtime",
            &RUNTIME,
            Optional,
            "The threads the sidecar runs on.",
        ),
    ],
};

static MESH: TableSpec = TableSpec {
    header: "[mesh]",
    keys: &[KeySpec::value(
        "trust_domain",
        "string",
        Required,
        "SPIFFE trust domain of the mesh; callers' certificates must carry an ID in it.",
    )],
};

static LOCALITY: TableSpec = TableSpec {
    header: "[locality]",
    keys: &[
        KeySpec::value(
            "cluster",
            "string (DNS label)",
            Required,
            "The cluster this workload runs in (the local gateway's `cluster.name`).",
        ),
        KeySpec::value(
            "region",
            "string",
            Required,
            "Region of the cluster (the local gateway's `cluster.region`).",
        ),
        KeySpec::value(
            "zone",
            "string",
            Required,
            "Zone this workload runs in; registered with the instance.",
        ),
    ],
};

static GATEWAY: TableSpec = TableSpec {
    header: "[gateway]",
    keys: &[
        KeySpec::value(
            "api",
            "\"host:port\"",
            Required,
            "The local gateway's catalog API (its `listen.api`).",
        ),
        KeySpec::value(
            "forward",
            "\"host:port\"",
            Required,
            "The local gateway's forward listener (its `listen.forward`), for other clusters.",
        ),
        KeySpec::value(
            "spiffe_id",
            "string",
            Required,
            "SPIFFE ID the gateway's certificate must carry, e.g. `spiffe://mesh.example/cluster/a/gateway`.",
        ),
    ],
};

static SERVICE: TableSpec = TableSpec {
    header: "[service]",
    keys: &[
        KeySpec::value(
            "namespace",
            "string (DNS label)",
            Required,
            "Namespace of the service.",
        ),
        KeySpec::value(
            "name",
            "string (DNS label)",
            Required,
            "Name of the service; callers reach it as `name.namespace.mesh`.",
        ),
        KeySpec::value(
            "protocol",
            "`\"http\"`, `\"grpc\"` or `\"tcp\"`",
            Required,
            "What the app speaks: HTTP/1.1, gRPC (HTTP/2 cleartext) or opaque TCP.",
        ),
        KeySpec::value(
            "app",
            "\"ip:port\"",
            Required,
            "Where the local app listens; inbound traffic is forwarded there.",
        ),
        KeySpec::value(
            "weight",
            "integer",
            Default("1"),
            "Relative load-balancing weight of this instance, 1-10000.",
        ),
        KeySpec::value(
            "labels",
            "table of strings",
            Optional,
            "Labels of this instance, e.g. `version = \"v1\"`, for subset routing.",
        ),
    ],
};

static INBOUND: TableSpec = TableSpec {
    header: "[inbound]",
    keys: &[
        KeySpec::value(
            "listen",
            "\"ip:port\"",
            Required,
            "TCP address of the mTLS listener other sidecars and gateways connect to.",
        ),
        KeySpec::value(
            "advertise",
            "\"host:port\"",
            Optional,
            "Address registered in the catalog; defaults to `listen` (required if `listen` is a wildcard address).",
        ),
    ],
};

static OUTBOUND: TableSpec = TableSpec {
    header: "[outbound]",
    keys: &[KeySpec::value(
        "http",
        "\"ip:port\"",
        Optional,
        "HTTP listener for the app, routing by `Host: name.namespace.mesh` (HTTP/1.1, including WebSocket and other `Upgrade` requests, and cleartext HTTP/2 for gRPC); unset means none.",
    )],
};

static UPSTREAM: TableSpec = TableSpec {
    header: "[[upstreams]]",
    keys: &[
        KeySpec::value(
            "listen",
            "\"ip:port\"",
            Required,
            "TCP address the app connects to in order to reach `service`.",
        ),
        KeySpec::value(
            "service",
            "string",
            Required,
            "Target service as `namespace/name`.",
        ),
        KeySpec::value(
            "port",
            "integer",
            Default("0"),
            "Target port; 0 means the port the service's instances registered.",
        ),
    ],
};

static HEALTH: TableSpec = TableSpec {
    header: "[health]",
    keys: &[
        KeySpec::value(
            "kind",
            "`\"http\"`, `\"tcp\"` or `\"none\"`",
            Default("tcp"),
            "How the app is checked: HTTP GET expecting 2xx, a TCP connect, or not at all (always healthy).",
        ),
        KeySpec::value(
            "path",
            "string",
            Default("/healthz"),
            "Path of the HTTP check, starting with `/`. HTTP only.",
        ),
        KeySpec::value(
            "interval",
            "duration",
            Default("1s"),
            "Time between checks.",
        ),
        KeySpec::value(
            "timeout",
            "duration",
            Default("500ms"),
            "Timeout of one check; at most `interval`.",
        ),
        KeySpec::value(
            "unhealthy_after",
            "integer",
            Default("2"),
            "Consecutive failures that mark the instance unhealthy, 1-100.",
        ),
        KeySpec::value(
            "healthy_after",
            "integer",
            Default("1"),
            "Consecutive successes that mark it healthy again, 1-100.",
        ),
    ],
};

static TLS: TableSpec = TableSpec {
    header: "[tls]",
    keys: &[
        KeySpec::value(
            "ca",
            "path",
            Required,
            "PEM trust bundle (the mesh root) for callers, other sidecars and the gateway.",
        ),
        KeySpec::value(
            "cert",
            "path",
            Required,
            "PEM certificate chain of this workload, leaf first (`meshgw ca workload`).",
        ),
        KeySpec::value(
            "key",
            "path",
            Required,
            "PEM private key of `cert`; must not be readable by group or others (mode 0600).",
        ),
    ],
};

static ADMIN: TableSpec = TableSpec {
    header: "[admin]",
    keys: &[KeySpec::value(
        "listen",
        "\"ip:port\"",
        Default("127.0.0.1:15000"),
        "TCP address of the admin HTTP server: `/healthz`, `/readyz`, `/metrics`.",
    )],
};

static RUNTIME: TableSpec = TableSpec {
    header: "[runtime]",
    keys: &[KeySpec::value(
        "workers",
        "integer",
        Default("1"),
        "Threads that run the proxy, 1 to 64. 1 runs everything on one thread: the least CPU and added latency per request, and up to one core of proxying; raise it for a workload whose traffic needs more.",
    )],
};

static TELEMETRY: TableSpec = TableSpec {
    header: "[telemetry]",
    keys: &[
        KeySpec::value(
            "otlp_endpoint",
            "string",
            Optional,
            "OTLP/gRPC collector the sidecar exports a span per proxied HTTP or gRPC request to, e.g. `\"http://127.0.0.1:4317\"`. Without it no span is recorded; the W3C `traceparent` is propagated either way.",
        ),
        KeySpec::value(
            "sample_percent",
            "number",
            Default("1"),
            "Percentage of new traces recorded, 0 to 100. A request that arrives with a `traceparent` (from the app, or from the calling sidecar) follows its sampled flag, so one decision holds across every hop.",
        ),
    ],
};

static AUTHZ: TableSpec = TableSpec {
    header: "[authz]",
    keys: &[
        KeySpec::value(
            "allow",
            "array of strings",
            Optional,
            "Callers allowed every request, by the SPIFFE ID their certificate proves: an ID such as `\"spiffe://mesh.example/ns/shop/sa/cart\"`, or a prefix ending in `/*` such as `\"spiffe://mesh.example/ns/shop/*\"` (a namespace) or `\"spiffe://mesh.example/*\"` (a trust domain). A caller neither here nor in a rule gets HTTP 403 (a TCP connection is reset). `[]` (and no rules) allows nobody.",
        ),
        KeySpec::tables(
            "rules",
            &AUTHZ_RULE,
            "Requests allowed to some callers: by HTTP method and path.",
        ),
    ],
};

static AUTHZ_RULE: TableSpec = TableSpec {
    header: "[[authz.rules]]",
    keys: &[
        KeySpec::value(
            "callers",
            "array of strings",
            Required,
            "Who the rule is for: SPIFFE IDs or prefixes ending in `/*`, as in `allow`.",
        ),
        KeySpec::value(
            "methods",
            "array of strings",
            Optional,
            "HTTP methods allowed, in capitals (`\"GET\"`, `\"POST\"`); left out: any. gRPC calls are `POST`.",
        ),
        KeySpec::value(
            "paths",
            "array of strings",
            Optional,
            "Request paths allowed (the query is not matched): a path such as `\"/orders\"`, or a prefix ending in `*` such as `\"/catalog/*\"`; a gRPC method is `/package.Service/Method`. Left out: any.",
        ),
    ],
};

static OUTLIER: TableSpec = TableSpec {
    header: "[outlier]",
    keys: &[
        KeySpec::value(
            "consecutive_connect_failures",
            "integer",
            Default("3"),
            "Failed connection attempts in a row that eject a target (a local instance, or a remote cluster through the gateway) from load balancing, 1 to 1000.",
        ),
        KeySpec::value(
            "consecutive_5xx",
            "integer",
            Default("5"),
            "Server errors in a row that eject a target, 1 to 1000: HTTP 5xx; gRPC UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS and DEADLINE_EXCEEDED; no response head within timeouts.request.",
        ),
        KeySpec::value(
            "base_ejection_time",
            "duration",
            Default("10s"),
            "How long a first ejection lasts. A target whose ejection ended is on probation: its next failure ejects it again, for one more base_ejection_time each time, until a success clears its record.",
        ),
        KeySpec::value(
            "max_ejection_time",
            "duration",
            Default("5m"),
            "The longest an ejection lasts; at least base_ejection_time. Ejected targets are still used when nothing else is left.",
        ),
    ],
};

static TIMEOUTS: TableSpec = TableSpec {
    header: "[timeouts]",
    keys: &[
        KeySpec::value(
            "connect",
            "duration",
            Default("2s"),
            "Timeout of one TCP (and TLS) connect: to the app, another sidecar or the gateway.",
        ),
        KeySpec::value(
            "idle",
            "duration",
            Default("5m"),
            "A proxied connection with no bytes either way for this long is closed.",
        ),
        KeySpec::value(
            "request",
            "duration",
            Default("30s"),
            "Timeout of one HTTP or gRPC request, until the response headers.",
        ),
        KeySpec::value(
            "drain",
            "duration",
            Default("5s"),
            "On SIGTERM, how long in-flight connections may finish before the sidecar exits.",
        ),
    ],
};
