//! The schema of the gateway config file: every allowed key, its type, its
//! default and its meaning. This table is the one place defaults live.

use crate::schema::Need::{Default, Optional, Required, RequiredWhen};
use crate::schema::{KeySpec, TableSpec};

/// The schema of `meshgw gateway --config FILE`.
pub static GATEWAY_SCHEMA: TableSpec = TableSpec {
    header: "",
    keys: &[
        KeySpec::table("mesh", &MESH, Required, "The mesh this gateway belongs to."),
        KeySpec::table(
            "cluster",
            &CLUSTER,
            Required,
            "The cluster this gateway serves.",
        ),
        KeySpec::table("listen", &LISTEN, Optional, "Listening addresses."),
        KeySpec::table(
            "store",
            &STORE,
            Optional,
            "Where the cluster catalog is kept; with the default `kind`, `data_dir` must be set.",
        ),
        KeySpec::table(
            "tls",
            &TLS,
            Required,
            "The gateway's own certificate and trust bundle.",
        ),
        KeySpec::table("sync", &SYNC, Optional, "Catalog federation timers."),
        KeySpec::table(
            "timeouts",
            &TIMEOUTS,
            Optional,
            "Timeouts of the connections the gateway forwards between sidecars and clusters.",
        ),
        KeySpec::table(
            "runtime",
            &RUNTIME,
            Optional,
            "How many threads run the gateway.",
        ),
        KeySpec::table(
            "api",
            &API,
            Optional,
            "Who may change which service through the catalog API.",
        ),
        KeySpec::tables(
            "peers",
            &PEER,
            "Gateways of other clusters to federate with.",
        ),
        KeySpec::tables(
            "exports",
            &EXPORT,
            "Which local services are offered to which peers.",
        ),
    ],
};

static MESH: TableSpec = TableSpec {
    header: "[mesh]",
    keys: &[KeySpec::value(
        "trust_domain",
        "string",
        Required,
        "SPIFFE trust domain of this cluster, DNS-like: lowercase letters, digits, `.` and `-`.",
    )],
};

static CLUSTER: TableSpec = TableSpec {
    header: "[cluster]",
    keys: &[
        KeySpec::value(
            "name",
            "string (DNS label)",
            Required,
            "Unique name of this cluster in the mesh.",
        ),
        KeySpec::value(
            "cloud",
            "string",
            Required,
            "Free text, e.g. `aws`, `gcp`, `vm`; used for locality and metrics.",
        ),
        KeySpec::value(
            "region",
            "string",
            Required,
            "Region of this cluster, e.g. `us-east-1`.",
        ),
        KeySpec::value(
            "zone",
            "string",
            Required,
            "Zone of this gateway, e.g. `us-east-1a`.",
        ),
    ],
};

static LISTEN: TableSpec = TableSpec {
    header: "[listen]",
    keys: &[
        KeySpec::value(
            "tunnel",
            "\"ip:port\"",
            Default("0.0.0.0:7443"),
            "UDP address of the QUIC tunnel that peers dial.",
        ),
        KeySpec::value(
            "api",
            "\"ip:port\"",
            Default("127.0.0.1:7444"),
            "TCP address of the gRPC catalog API (mTLS) for sidecars and operators.",
        ),
        KeySpec::value(
            "admin",
            "\"ip:port\"",
            Default("127.0.0.1:7445"),
            "TCP address of the admin HTTP server: `/healthz`, `/readyz`, `/metrics`.",
        ),
        KeySpec::value(
            "forward",
            "\"ip:port\"",
            Default("127.0.0.1:7446"),
            "TCP address (mTLS) where local sidecars hand the gateway connections for other clusters.",
        ),
    ],
};

static STORE: TableSpec = TableSpec {
    header: "[store]",
    keys: &[
        KeySpec::value(
            "kind",
            "`\"embedded\"` or `\"etcd\"`",
            Default("embedded"),
            "Catalog backend: a single-node store on disk, or an etcd cluster shared by several gateway replicas.",
        ),
        KeySpec::value(
            "data_dir",
            "path",
            RequiredWhen("kind = \"embedded\""),
            "Directory of the embedded store; created if absent. Embedded only.",
        ),
        KeySpec::value(
            "endpoints",
            "array of strings",
            RequiredWhen("kind = \"etcd\""),
            "etcd endpoints, e.g. `[\"http://127.0.0.1:2379\"]`; non-empty. etcd only.",
        ),
        KeySpec::value(
            "prefix",
            "string",
            Default("/meshgw"),
            "Key prefix for everything meshgw stores; starts with `/`, no trailing `/`.",
        ),
        KeySpec::value(
            "dial_timeout",
            "duration",
            Default("5s"),
            "Timeout to connect to etcd. etcd only.",
        ),
        KeySpec::value(
            "request_timeout",
            "duration",
            Default("5s"),
            "Timeout of one etcd request. etcd only.",
        ),
        KeySpec::table("tls", &STORE_TLS, Optional, "TLS to etcd. etcd only."),
        KeySpec::table(
            "auth",
            &STORE_AUTH,
            Optional,
            "Username/password authentication to etcd. etcd only.",
        ),
    ],
};

static STORE_TLS: TableSpec = TableSpec {
    header: "[store.tls]",
    keys: &[
        KeySpec::value(
            "ca",
            "path",
            Required,
            "PEM CA bundle that etcd's server certificate must validate to.",
        ),
        KeySpec::value(
            "cert",
            "path",
            Optional,
            "PEM client certificate; set together with `key`.",
        ),
        KeySpec::value(
            "key",
            "path",
            Optional,
            "PEM client private key; set together with `cert`; mode 0600.",
        ),
    ],
};

static STORE_AUTH: TableSpec = TableSpec {
    header: "[store.auth]",
    keys: &[
        KeySpec::value("username", "string", Required, "etcd user name."),
        KeySpec::value(
            "password_file",
            "path",
            Required,
            "File holding the etcd password; keep it private.",
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
            "PEM trust bundle for local sidecars and operators calling the API.",
        ),
        KeySpec::value(
            "cert",
            "path",
            Required,
            "PEM certificate chain of this gateway, leaf first, with its SPIFFE ID.",
        ),
        KeySpec::value(
            "key",
            "path",
            Required,
            "PEM private key of `cert`; must not be readable by group or others (mode 0600).",
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
            "Timeout of each step that sets up a forwarded connection: a sidecar's TLS handshake and route header, the connect to a local instance; the wait for a peer gateway's answer is twice this, as it includes the peer's own connect.",
        ),
        KeySpec::value(
            "idle",
            "duration",
            Default("5m"),
            "A forwarded connection with no bytes either way for this long is closed.",
        ),
    ],
};

static API: TableSpec = TableSpec {
    header: "[api]",
    keys: &[KeySpec::value(
        "admins",
        "array of strings",
        Optional,
        "Callers that may register, update and remove instances of any service, by SPIFFE ID or a prefix ending in `/*` (e.g. `\"spiffe://mesh.example/ns/ops/*\"`). Every other caller (a sidecar) may change only the service its own ID names, `spiffe://<trust domain>/ns/<namespace>/sa/<name>`.",
    )],
};

static RUNTIME: TableSpec = TableSpec {
    header: "[runtime]",
    keys: &[KeySpec::value(
        "workers",
        "integer",
        Default("0"),
        "Threads that run the gateway, 0 to 256; 0 is one per CPU core. 1 runs everything on one thread: the least CPU and added latency per forwarded request (about 10% less CPU than several threads at 1000 requests/s), and up to one core of forwarding.",
    )],
};

static SYNC: TableSpec = TableSpec {
    header: "[sync]",
    keys: &[
        KeySpec::value(
            "heartbeat_interval",
            "duration",
            Default("1s"),
            "How often a sync session sends a heartbeat.",
        ),
        KeySpec::value(
            "peer_timeout",
            "duration",
            Default("5s"),
            "A session is declared dead after no frame for this long; greater than `heartbeat_interval`.",
        ),
        KeySpec::value(
            "stale_after",
            "duration",
            Default("5s"),
            "A peer's imports are marked stale this long after its last live session; greater than `heartbeat_interval`.",
        ),
        KeySpec::value(
            "import_ttl",
            "duration",
            Default("5m"),
            "Stale imports are removed after this long.",
        ),
        KeySpec::value(
            "connect_timeout",
            "duration",
            Default("5s"),
            "Timeout of one tunnel connection attempt.",
        ),
        KeySpec::value(
            "backoff_initial",
            "duration",
            Default("200ms"),
            "Reconnect delay after the first failed connection; grows up to `backoff_max`.",
        ),
        KeySpec::value(
            "backoff_max",
            "duration",
            Default("10s"),
            "Largest reconnect delay; at least `backoff_initial`.",
        ),
    ],
};

static PEER: TableSpec = TableSpec {
    header: "[[peers]]",
    keys: &[
        KeySpec::value(
            "name",
            "string (DNS label)",
            Required,
            "The peer cluster's `cluster.name`; unique; not this cluster's own name.",
        ),
        KeySpec::value(
            "addresses",
            "array of \"host:port\"",
            Optional,
            "Tunnel addresses to dial; empty or absent means we never dial it, it dials us.",
        ),
        KeySpec::value(
            "spiffe_id",
            "string",
            Required,
            "SPIFFE ID the peer gateway's certificate must carry; starts with `spiffe://`.",
        ),
        KeySpec::value(
            "trust_bundle",
            "path",
            Required,
            "PEM CA certificates the peer's chain must validate to.",
        ),
        KeySpec::value(
            "server_name",
            "string",
            Optional,
            "TLS SNI to send when dialing; defaults to the peer's `name`.",
        ),
    ],
};

static EXPORT: TableSpec = TableSpec {
    header: "[[exports]]",
    keys: &[
        KeySpec::value(
            "service",
            "string",
            Required,
            "`namespace/name`, or `namespace/*` for every service in the namespace.",
        ),
        KeySpec::value(
            "to",
            "array of strings",
            Required,
            "Non-empty; peer names, or `\"*\"` for all peers.",
        ),
    ],
};
