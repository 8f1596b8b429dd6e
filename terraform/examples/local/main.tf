# A three-cluster mesh on this machine, built only from terraform_data and
# local-exec: a development PKI, one gateway per cluster on its embedded
# store (full-mesh peers over loopback), the sample app `payments` behind a
# sidecar in one cluster and a client sidecar in another. `apply` starts the
# processes (supervised by meshgwctl), `destroy` stops them.

locals {
  dir      = trimsuffix(var.work_dir, "/")
  names    = sort(keys(var.clusters))
  index    = { for i, n in local.names : n => i }
  ctl      = "${local.dir}/meshgwctl"
  run      = "${local.dir}/run"
  logs     = "${local.dir}/logs"
  pki      = "${local.dir}/pki"
  ports    = { for n, i in local.index : n => { tunnel = var.base_port + 10 * i, api = var.base_port + 10 * i + 1, admin = var.base_port + 10 * i + 2, forward = var.base_port + 10 * i + 3 } }
  app      = "127.0.0.1:${var.base_port + 30}"
  outbound = "127.0.0.1:${var.base_port + 35}"

  sidecars = {
    (var.payments_cluster) = {
      payments = {
        service        = "default/payments"
        app            = local.app
        inbound_listen = "127.0.0.1:${var.base_port + 31}"
        admin_listen   = "127.0.0.1:${var.base_port + 32}"
        labels         = { version = "v1" }
        tls            = { cert = "${local.pki}/${var.payments_cluster}/default.payments.pem", key = "${local.pki}/${var.payments_cluster}/default.payments.key" }
      }
    }
    (var.client_cluster) = {
      client = {
        service        = "default/client"
        app            = "127.0.0.1:${var.base_port + 36}"
        inbound_listen = "127.0.0.1:${var.base_port + 33}"
        admin_listen   = "127.0.0.1:${var.base_port + 34}"
        outbound_http  = local.outbound
        health         = { kind = "none" }
        tls            = { cert = "${local.pki}/${var.client_cluster}/default.client.pem", key = "${local.pki}/${var.client_cluster}/default.client.key" }
      }
    }
  }
}

module "cluster" {
  source   = "../../modules/gateway-config"
  for_each = var.clusters

  cluster_name       = each.key
  cloud              = each.value.cloud
  region             = each.value.region
  zones              = [each.value.zone]
  trust_domain       = var.trust_domain
  config_dir         = "${local.dir}/clusters/${each.key}"
  bind_address       = "127.0.0.1"
  admin_bind_address = "127.0.0.1"
  ports              = local.ports[each.key]
  tls = {
    ca   = "${local.pki}/root.pem"
    cert = "${local.pki}/${each.key}/gateway.pem"
    key  = "${local.pki}/${each.key}/gateway.key"
  }
  peers = [for n in local.names : {
    name         = n
    addresses    = ["127.0.0.1:${local.ports[n].tunnel}"]
    trust_bundle = "${local.pki}/root.pem"
  } if n != each.key]
  exports = [{ service = "default/*", to = ["*"] }]
  sync = {
    heartbeat_interval = "500ms"
    peer_timeout       = "3s"
    stale_after        = "3s"
    backoff_initial    = "100ms"
    backoff_max        = "2s"
  }
  sidecars    = lookup(local.sidecars, each.key, {})
  binary_path = var.meshgw_bin
}

# The PKI and the supervisor script. Replaced (PKI made anew) when the
# clusters or the trust domain change.
resource "terraform_data" "pki" {
  triggers_replace = [local.dir, var.trust_domain, local.names, var.payments_cluster, var.client_cluster]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = { MESHGWCTL = module.cluster[local.names[0]].meshgwctl }
    command     = <<-EOT
      set -eu
      bin='${var.meshgw_bin}'
      [ -x "$bin" ] || { echo "meshgw_bin: $bin is not an executable (build it: cargo build --bin meshgw)" >&2; exit 1; }
      mkdir -p '${local.dir}' '${local.run}' '${local.logs}' '${local.dir}/www'
      printf '%s' "$MESHGWCTL" > '${local.ctl}' && chmod 0755 '${local.ctl}'
      printf 'payments: hello from ${var.payments_cluster}\n' > '${local.dir}/www/index.html'
      rm -rf '${local.pki}'
      "$bin" ca init --dir '${local.pki}' --trust-domain '${var.trust_domain}'
      for c in ${join(" ", local.names)}; do
        "$bin" ca cluster --dir '${local.pki}' --name "$c" && "$bin" ca gateway --dir '${local.pki}' --cluster "$c"
      done
      "$bin" ca workload --dir '${local.pki}' --cluster '${var.payments_cluster}' --service payments
      "$bin" ca workload --dir '${local.pki}' --cluster '${var.client_cluster}' --service client
    EOT
  }
}

# One gateway per cluster: write its config, `meshgw check` it, start it and
# wait for /readyz. A changed config replaces (restarts) it.
resource "terraform_data" "gateway" {
  for_each = var.clusters

  triggers_replace = {
    config = sha256(module.cluster[each.key].gateway_config)
    binary = var.meshgw_bin
    pki    = terraform_data.pki.id
  }
  input = { ctl = local.ctl, run = local.run, name = "gateway-${each.key}" }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = { CONFIG = module.cluster[each.key].gateway_config }
    command     = <<-EOT
      set -eu
      d='${local.dir}/clusters/${each.key}'
      mkdir -p "$d" && printf '%s' "$CONFIG" > "$d/gateway.toml"
      '${var.meshgw_bin}' check --config "$d/gateway.toml"
      '${local.ctl}' start '${local.run}' 'gateway-${each.key}' '${local.logs}/gateway-${each.key}.log' \
        '${var.meshgw_bin}' gateway --config "$d/gateway.toml"
      '${local.ctl}' wait 'http://127.0.0.1:${local.ports[each.key].admin}/readyz' 30 \
        || { tail -n 30 '${local.logs}/gateway-${each.key}.log' >&2; exit 1; }
    EOT
  }

  provisioner "local-exec" {
    when    = destroy
    command = "'${self.input.ctl}' stop '${self.input.run}' '${self.input.name}'"
  }
}

# The sample app: a static HTTP server on loopback.
resource "terraform_data" "app" {
  triggers_replace = [local.app, terraform_data.pki.id]
  input            = { ctl = local.ctl, run = local.run, name = "app-payments" }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      '${local.ctl}' start '${local.run}' app-payments '${local.logs}/app-payments.log' \
        python3 -m http.server ${var.base_port + 30} --bind 127.0.0.1 --directory '${local.dir}/www'
      '${local.ctl}' wait 'http://${local.app}/' 20
    EOT
  }

  provisioner "local-exec" {
    when    = destroy
    command = "'${self.input.ctl}' stop '${self.input.run}' '${self.input.name}'"
  }
}

locals {
  sidecar_list = merge([for c, m in local.sidecars : {
    for id, s in m : id => { cluster = c, admin = s.admin_listen, config = module.cluster[c].sidecar_configs[id] }
  }]...)
}

# The sidecars: payments next to the app, client in another cluster.
resource "terraform_data" "sidecar" {
  for_each   = local.sidecar_list
  depends_on = [terraform_data.gateway, terraform_data.app]

  triggers_replace = {
    config  = sha256(each.value.config)
    gateway = terraform_data.gateway[each.value.cluster].id
  }
  input = { ctl = local.ctl, run = local.run, name = "sidecar-${each.key}" }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = { CONFIG = each.value.config }
    command     = <<-EOT
      set -eu
      f='${local.dir}/clusters/${each.value.cluster}/sidecars/${each.key}.toml'
      mkdir -p "$(dirname "$f")" && printf '%s' "$CONFIG" > "$f"
      '${var.meshgw_bin}' check --config "$f"
      '${local.ctl}' start '${local.run}' 'sidecar-${each.key}' '${local.logs}/sidecar-${each.key}.log' \
        '${var.meshgw_bin}' sidecar --config "$f"
      '${local.ctl}' wait 'http://${each.value.admin}/readyz' 30 \
        || { tail -n 30 '${local.logs}/sidecar-${each.key}.log' >&2; exit 1; }
    EOT
  }

  provisioner "local-exec" {
    when    = destroy
    command = "'${self.input.ctl}' stop '${self.input.run}' '${self.input.name}'"
  }
}
