# Test helper: renders two clusters' files with gateway-config (one on the
# embedded store with a sidecar, one on etcd), writes them next to a PKI made
# by `meshgw ca`, and runs `meshgw check` on every file. Used by
# ../check.tftest.hcl; needs the meshgw binary (meshgw_bin).

terraform {
  required_version = ">= 1.6.0"
}

variable "meshgw_bin" {
  description = "Path of the meshgw binary (or a name on PATH)."
  type        = string
  default     = "meshgw"
}

variable "work_dir" {
  description = "Scratch directory for the PKI and the rendered files; null means .terraform/meshgw-check in the working directory."
  type        = string
  default     = null
}

locals {
  dir = coalesce(var.work_dir, "${abspath(path.cwd)}/.terraform/meshgw-check")
}

module "east" {
  source       = "../.."
  cluster_name = "east"
  cloud        = "aws"
  region       = "us-east-1"
  zones        = ["us-east-1a", "us-east-1b"]
  trust_domain = "mesh.example"
  config_dir   = "${local.dir}/east"
  peers        = [{ name = "west", addresses = ["west.example:7443"] }]
  exports      = [{ service = "default/*", to = ["west"] }]
  sync         = { heartbeat_interval = "500ms", peer_timeout = "3s" }
  timeouts     = { connect = "1s", idle = "10m" }
  workers      = 1
  api_admins   = ["spiffe://mesh.test/ns/ops/*"]
  sidecars = {
    payments = {
      service        = "default/payments"
      app            = "127.0.0.1:8080"
      inbound_listen = "127.0.0.1:15006"
      outbound_http  = "127.0.0.1:15001"
      labels         = { version = "v1" }
      upstreams      = [{ listen = "127.0.0.1:16000", service = "default/ledger" }]
      health         = { kind = "http", path = "/healthz", interval = "2s", unhealthy_after = 3 }
    }
  }
}

module "west" {
  source       = "../.."
  cluster_name = "west"
  cloud        = "gcp"
  region       = "europe-west1"
  zones        = ["europe-west1-b"]
  trust_domain = "mesh.example"
  config_dir   = "${local.dir}/west"
  store        = { kind = "etcd", endpoints = ["http://127.0.0.1:2379"], dial_timeout = "2s" }
  peers        = [{ name = "east", addresses = ["east.example:7443"], server_name = "gw.east.example" }]
  exports      = [{ service = "billing/*", to = ["*"] }]
}

locals {
  files = merge(
    { for p, c in module.east.files : "east/${p}" => c if endswith(p, ".toml") },
    { for p, c in module.west.files : "west/${p}" => c if endswith(p, ".toml") },
  )
  write = join("\n", [for p, c in local.files :
  "mkdir -p \"$(dirname '${p}')\" && printf '%s' '${base64encode(c)}' | base64 -d > '${p}'"])
}

resource "terraform_data" "check" {
  input            = { dir = local.dir }
  triggers_replace = local.files

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = { WRITE_FILES = local.write }
    command     = <<-EOT
      set -eu
      bin='${var.meshgw_bin}'
      command -v "$bin" >/dev/null || { echo "meshgw binary '$bin' not found: build it (cargo build --bin meshgw) and pass -var meshgw_bin=PATH" >&2; exit 1; }
      rm -rf '${local.dir}' && mkdir -p '${local.dir}' && cd '${local.dir}'
      "$bin" ca init --dir ca --trust-domain mesh.example >/dev/null
      for c in east west; do
        "$bin" ca cluster --dir ca --name $c >/dev/null && "$bin" ca gateway --dir ca --cluster $c >/dev/null
        mkdir -p $c/pki && cp ca/root.pem $c/pki/root.pem && cp ca/$c/gateway.pem ca/$c/gateway.key $c/pki/
      done
      "$bin" ca workload --dir ca --cluster east --namespace default --service payments >/dev/null
      cp ca/east/default.payments.pem ca/east/default.payments.key east/pki/
      eval "$WRITE_FILES"
      ok=0
      for f in $(find . -name '*.toml' | sort); do "$bin" check --config "$f" || ok=1; done
      exit $ok
    EOT
  }

  provisioner "local-exec" {
    when    = destroy
    command = "rm -rf '${self.input.dir}'"
  }
}

output "checked" {
  description = "Rendered files that passed `meshgw check`."
  value       = sort(keys(local.files))
}
