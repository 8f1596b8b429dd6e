variable "meshgw_bin" {
  description = "Absolute path of the meshgw binary, e.g. $PWD/target/release/meshgw."
  type        = string
  validation {
    condition     = startswith(var.meshgw_bin, "/")
    error_message = "meshgw_bin must be an absolute path."
  }
}

variable "work_dir" {
  description = "Absolute path of a directory for the PKI, configs, stores, pid files and logs (created; kept after destroy for the logs)."
  type        = string
  validation {
    condition     = startswith(var.work_dir, "/") && length(trimsuffix(var.work_dir, "/")) > 1
    error_message = "work_dir must be an absolute path other than /."
  }
}

variable "base_port" {
  description = "First of 40 consecutive loopback ports used: cluster i takes base_port + 10*i + 0..3 (tunnel UDP, api, admin, forward), the sample app and sidecars take base_port + 30..36."
  type        = number
  default     = 27000
  validation {
    condition     = var.base_port >= 1024 && var.base_port <= 65495
    error_message = "base_port must be between 1024 and 65495."
  }
}

variable "trust_domain" {
  description = "SPIFFE trust domain of the local mesh."
  type        = string
  default     = "mesh.local"
}

variable "clusters" {
  description = "The clusters (at most three: the port plan has room for three), by name: cloud, region and zone are labels only here. Every cluster federates with every other."
  type = map(object({
    cloud  = string
    region = string
    zone   = string
  }))
  default = {
    "aws-us-east-1"    = { cloud = "aws", region = "us-east-1", zone = "us-east-1a" }
    "gcp-europe-west1" = { cloud = "gcp", region = "europe-west1", zone = "europe-west1-b" }
    "vm-lab"           = { cloud = "vm", region = "lab", zone = "rack-1" }
  }
  validation {
    condition     = length(var.clusters) >= 2 && length(var.clusters) <= 3
    error_message = "clusters must name two or three clusters."
  }
}

variable "payments_cluster" {
  description = "Cluster running the sample `payments` app (python3 -m http.server) behind a sidecar."
  type        = string
  default     = "aws-us-east-1"
}

variable "client_cluster" {
  description = "Cluster running the client sidecar whose outbound HTTP listener reaches payments.default.mesh."
  type        = string
  default     = "gcp-europe-west1"
}
