# The cluster's mesh settings: copied verbatim from
# modules/gateway-config/variables.tf (tests/tests/terraform.rs checks they
# stay identical) and passed through unchanged.

variable "cluster_name" {
  description = "Unique name of this cluster in the mesh (a DNS label): `cluster.name` of its gateways, `locality.cluster` of its sidecars."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be a DNS label: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'."
  }
}

variable "region" {
  description = "Region of the cluster, e.g. \"us-east-1\" (`cluster.region`)."
  type        = string
}

variable "zones" {
  description = "Zones the cluster's gateways run in. One gateway config is rendered per zone; a host picks its own at boot (see zone_command)."
  type        = list(string)
  validation {
    condition     = length(var.zones) > 0
    error_message = "zones must name at least one zone."
  }
}

variable "trust_domain" {
  description = "SPIFFE trust domain of this cluster (`mesh.trust_domain`), e.g. \"mesh.example\"."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$", var.trust_domain))
    error_message = "trust_domain must be dot-separated DNS labels (lowercase letters, digits, '-')."
  }
}

variable "peers" {
  description = <<-EOT
    Gateways of other clusters to federate with (`[[peers]]`). `addresses` are
    the peer's tunnel endpoints ("host:port", e.g. another region module's
    `endpoint` output); empty means the peer dials us. `spiffe_id` defaults to
    spiffe://<trust_domain or this cluster's>/cluster/<name>/gateway;
    `trust_bundle` is a path on the gateway host (relative paths are relative
    to config_dir).
  EOT
  type = list(object({
    name         = string
    addresses    = optional(list(string), [])
    trust_domain = optional(string)
    spiffe_id    = optional(string)
    trust_bundle = optional(string, "pki/root.pem")
    server_name  = optional(string)
  }))
  default = []
  validation {
    condition     = length(distinct([for p in var.peers : p.name])) == length(var.peers)
    error_message = "peers must have distinct names."
  }
}

variable "exports" {
  description = "Local services offered to peers (`[[exports]]`): `service` is \"namespace/name\" or \"namespace/*\", `to` lists peer names or \"*\"."
  type = list(object({
    service = string
    to      = list(string)
  }))
  default = []
}

variable "store" {
  description = <<-EOT
    The catalog store (`[store]`). kind = "embedded" (one gateway; `data_dir`,
    relative to config_dir unless absolute) or "etcd" (several replicas;
    `endpoints` required, optional `tls` and `auth` with paths on the host).
  EOT
  type = object({
    kind            = optional(string, "embedded")
    data_dir        = optional(string, "data")
    endpoints       = optional(list(string), [])
    prefix          = optional(string, "/meshgw")
    dial_timeout    = optional(string)
    request_timeout = optional(string)
    tls = optional(object({
      ca   = string
      cert = optional(string)
      key  = optional(string)
    }))
    auth = optional(object({
      username      = string
      password_file = string
    }))
  })
  default = {}
  validation {
    condition     = contains(["embedded", "etcd"], var.store.kind)
    error_message = "store.kind must be \"embedded\" or \"etcd\"."
  }
  validation {
    condition     = var.store.kind != "etcd" || length(var.store.endpoints) > 0
    error_message = "store.endpoints must list at least one etcd endpoint when store.kind = \"etcd\"."
  }
}

variable "ports" {
  description = "Gateway ports: `tunnel` (UDP, QUIC from peers), `api` (TCP, catalog API for sidecars), `admin` (TCP, /healthz /readyz /metrics), `forward` (TCP, sidecars' cross-cluster connections)."
  type = object({
    tunnel  = optional(number, 7443)
    api     = optional(number, 7444)
    admin   = optional(number, 7445)
    forward = optional(number, 7446)
  })
  default = {}
  validation {
    condition     = length(distinct([var.ports.api, var.ports.admin, var.ports.forward])) == 3
    error_message = "ports.api, ports.admin and ports.forward must differ."
  }
}

variable "bind_address" {
  description = "Address the tunnel, API and forward listeners bind to: \"0.0.0.0\" on a cloud host, \"127.0.0.1\" for a mesh on one machine."
  type        = string
  default     = "0.0.0.0"
}

variable "admin_bind_address" {
  description = "Address the admin listener binds to (keep it private: metrics and readiness only)."
  type        = string
  default     = "127.0.0.1"
}

variable "tls" {
  description = "The gateway's certificate files on the host (`[tls]`): mesh trust bundle, certificate chain and 0600 key. Relative paths are relative to config_dir."
  type = object({
    ca   = optional(string, "pki/root.pem")
    cert = optional(string, "pki/gateway.pem")
    key  = optional(string, "pki/gateway.key")
  })
  default = {}
}

variable "sync" {
  description = "Overrides of the `[sync]` timers as humantime strings, e.g. { heartbeat_interval = \"1s\" }; unset keys keep the binary's defaults."
  type        = map(string)
  default     = {}
  validation {
    condition = alltrue([for k in keys(var.sync) : contains([
      "heartbeat_interval", "peer_timeout", "stale_after", "import_ttl",
      "connect_timeout", "backoff_initial", "backoff_max",
    ], k)])
    error_message = "sync keys must be among heartbeat_interval, peer_timeout, stale_after, import_ttl, connect_timeout, backoff_initial, backoff_max."
  }
}

variable "timeouts" {
  description = "Overrides of the gateway's `[timeouts]` for forwarded connections (connect, idle) as humantime strings, e.g. { idle = \"1h\" }; unset keys keep the binary's defaults."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.timeouts) : contains(["connect", "idle"], k)])
    error_message = "timeouts keys must be among connect, idle."
  }
}

variable "workers" {
  description = "Threads that run each gateway (`[runtime] workers`, 0 to 256); null keeps the binary's default, one per CPU core. 1 uses the least CPU and added latency per forwarded request, up to one core of forwarding."
  type        = number
  default     = null
  validation {
    condition     = var.workers == null || (floor(coalesce(var.workers, 0)) == coalesce(var.workers, 0) && coalesce(var.workers, 0) >= 0 && coalesce(var.workers, 0) <= 256)
    error_message = "workers must be a whole number from 0 to 256 (0: one thread per CPU core)."
  }
}

variable "api_admins" {
  description = "Callers that may register, update and remove instances of any service through each gateway's catalog API (`[api] admins`): SPIFFE IDs, or prefixes ending in /* such as \"spiffe://mesh.example/ns/ops/*\". Every other caller (a sidecar) may change only its own service. Empty: none."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.api_admins : can(regex("^spiffe://[a-z0-9.-]+/[^*]+$", a)) || can(regex("^spiffe://[a-z0-9.-]+/([^*]*/)?\\*$", a))])
    error_message = "api_admins entries must be spiffe://<trust domain>/<path> IDs, or prefixes ending in /* (a * only at the end, after a /)."
  }
}

variable "sidecars" {
  description = <<-EOT
    Sidecar configs to render, one per workload, keyed by an id used in file
    names ("<id>.toml", unit meshgw-sidecar@<id>). `service` is
    "namespace/name"; `gateway_host` is where the workload reaches the
    gateway's api and forward ports (default 127.0.0.1: the same host);
    `tls` defaults to pki/<namespace>.<name>.pem/.key; `upstreams` are TCP
    listeners bound to one service each.
  EOT
  type = map(object({
    service           = string
    protocol          = optional(string, "http")
    app               = string
    zone              = optional(string)
    weight            = optional(number)
    labels            = optional(map(string), {})
    inbound_listen    = string
    inbound_advertise = optional(string)
    outbound_http     = optional(string)
    upstreams = optional(list(object({
      listen  = string
      service = string
      port    = optional(number)
    })), [])
    health = optional(object({
      kind            = optional(string, "tcp")
      path            = optional(string)
      interval        = optional(string)
      timeout         = optional(string)
      unhealthy_after = optional(number)
      healthy_after   = optional(number)
    }), {})
    admin_listen = optional(string)
    gateway_host = optional(string, "127.0.0.1")
    tls = optional(object({
      ca   = optional(string)
      cert = optional(string)
      key  = optional(string)
    }), {})
  }))
  default = {}
  validation {
    condition     = alltrue([for s in values(var.sidecars) : can(regex("^[a-z0-9-]+/[a-z0-9-]+$", s.service))])
    error_message = "each sidecar's service must be \"namespace/name\" (DNS labels)."
  }
}
