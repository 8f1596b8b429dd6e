# Installs meshgw on existing hosts over SSH, without a provider: for each
# host a terraform_data whose triggers are content hashes (binary, rendered
# files, certificates), so any change reinstalls and restarts that host.
# Create: upload the binary and an install script (files base64-encoded),
# run it (meshgw check, then systemd or meshgwctl). Destroy: stop the
# processes (files and the store are kept).

module "config" {
  source = "../gateway-config"

  cluster_name       = var.cluster_name
  cloud              = var.cloud
  region             = var.region
  zones              = var.zones
  trust_domain       = var.trust_domain
  peers              = var.peers
  exports            = var.exports
  store              = var.store
  ports              = var.ports
  bind_address       = var.bind_address
  admin_bind_address = var.admin_bind_address
  tls                = var.tls
  sync               = var.sync
  timeouts           = var.timeouts
  workers            = var.workers
  api_admins         = var.api_admins
  sidecars           = var.sidecars
  config_dir         = local.dir
  binary_path        = "${local.dir}/bin/meshgw"
  run_user           = var.run_user
}

locals {
  dir         = trimsuffix(var.install_dir, "/")
  sidecar_ids = sort(keys(var.sidecars))

  hosts = { for i, h in var.hosts : tostring(i) => merge(h, {
    zone = coalesce(h.zone, var.zones[i % length(var.zones)])
  }) }

  # What every host gets, by path relative to install_dir.
  common_files = merge(
    { for id, c in module.config.sidecar_configs : "sidecars/${id}.toml" => c },
    { for p, src in var.pki_files : p => file(src) },
    {
      "meshgwctl"                     = module.config.meshgwctl
      "units/meshgw.service"          = module.config.systemd_unit
      "units/meshgw-sidecar@.service" = module.config.sidecar_systemd_unit
    },
  )

  install = { for k, h in local.hosts : k => templatefile("${path.module}/templates/install.sh.tftpl", {
    dir             = local.dir
    files           = merge(local.common_files, { "gateway.toml" = module.config.gateway_configs[h.zone] })
    sidecar_ids     = local.sidecar_ids
    service_manager = var.service_manager
    run_user        = var.run_user
    admin           = "127.0.0.1:${var.ports.admin}"
  }) }
}

check "replicas_need_etcd" {
  assert {
    condition     = length(var.hosts) == 1 || var.store.kind == "etcd"
    error_message = "several hosts in one cluster share a catalog: set store.kind = \"etcd\" (the embedded store is for one gateway)."
  }
}

resource "terraform_data" "host" {
  for_each = local.hosts

  triggers_replace = {
    binary  = filesha256(var.meshgw_bin)
    install = sha256(local.install[each.key])
    host    = "${each.value.user}@${each.value.address}:${each.value.port}${local.dir}"
  }

  # Only what the destroy-time provisioner needs: it may reference self alone.
  input = {
    address     = each.value.address
    port        = each.value.port
    user        = each.value.user
    host_key    = each.value.host_key
    private_key = var.ssh_private_key
    dir         = local.dir
    sidecar_ids = local.sidecar_ids
  }

  connection {
    type        = "ssh"
    host        = self.input.address
    port        = self.input.port
    user        = self.input.user
    host_key    = self.input.host_key
    private_key = self.input.private_key
    agent       = self.input.private_key == null
    timeout     = "1m"
  }

  provisioner "remote-exec" {
    inline = ["mkdir -p '${local.dir}/bin'"]
  }

  provisioner "file" {
    source      = var.meshgw_bin
    destination = "${local.dir}/bin/meshgw.new"
  }

  provisioner "file" {
    content     = local.install[each.key]
    destination = "${local.dir}/install.sh"
  }

  provisioner "remote-exec" {
    inline = ["sh '${local.dir}/install.sh'"]
  }

  provisioner "remote-exec" {
    when       = destroy
    on_failure = continue
    inline = [
      "if [ -f '${self.input.dir}/.managed-by-systemd' ]; then systemctl disable --now meshgw.service ${join(" ", [for id in self.input.sidecar_ids : "meshgw-sidecar@${id}.service"])}; else for p in ${join(" ", concat([for id in self.input.sidecar_ids : "sidecar-${id}"], ["gateway"]))}; do '${self.input.dir}/meshgwctl' stop '${self.input.dir}/run' \"$p\"; done; fi",
    ]
  }
}
