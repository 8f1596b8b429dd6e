# Renders a cluster's meshgw files from its inputs: one gateway config per
# zone, sidecar configs, systemd units, a supervisor script for hosts without
# systemd, and a cloud-init document that installs all of it. No provider,
# no resource: outputs only.

locals {
  spiffe_id = "spiffe://${var.trust_domain}/cluster/${var.cluster_name}/gateway"

  listen = {
    tunnel  = "${var.bind_address}:${var.ports.tunnel}"
    api     = "${var.bind_address}:${var.ports.api}"
    admin   = "${var.admin_bind_address}:${var.ports.admin}"
    forward = "${var.bind_address}:${var.ports.forward}"
  }

  # Every path in the rendered files is absolute (relative inputs are taken
  # relative to config_dir), so a file means the same wherever it is copied.
  cd = trimsuffix(var.config_dir, "/")

  peers = [for p in var.peers : merge(p, {
    spiffe_id    = coalesce(p.spiffe_id, "spiffe://${coalesce(p.trust_domain, var.trust_domain)}/cluster/${p.name}/gateway")
    trust_bundle = startswith(p.trust_bundle, "/") ? p.trust_bundle : "${local.cd}/${p.trust_bundle}"
  })]

  data_dir = startswith(var.store.data_dir, "/") ? var.store.data_dir : "${local.cd}/${var.store.data_dir}"

  tls = { for k, p in var.tls : k => startswith(p, "/") ? p : "${local.cd}/${p}" }

  store = merge(var.store, {
    data_dir = local.data_dir
    tls = var.store.tls == null ? null : {
      for k, p in var.store.tls : k => p == null ? null : startswith(p, "/") ? p : "${local.cd}/${p}"
    }
    auth = var.store.auth == null ? null : merge(var.store.auth, {
      password_file = startswith(var.store.auth.password_file, "/") ? var.store.auth.password_file : "${local.cd}/${var.store.auth.password_file}"
    })
  })

  gateway_configs = {
    for zone in var.zones : zone => templatefile("${path.module}/templates/gateway.toml.tftpl", {
      cluster_name = var.cluster_name
      cloud        = var.cloud
      region       = var.region
      zone         = zone
      trust_domain = var.trust_domain
      listen       = local.listen
      store        = local.store
      tls          = local.tls
      sync         = var.sync
      timeouts     = var.timeouts
      workers      = var.workers
      api_admins   = var.api_admins
      peers        = local.peers
      exports      = var.exports
    })
  }

  # Sidecars reach the gateway's api and forward listeners on gateway_host.
  sidecar_configs = {
    for id, s in var.sidecars : id => templatefile("${path.module}/templates/sidecar.toml.tftpl", {
      id                = id
      s                 = s
      namespace         = split("/", s.service)[0]
      name              = split("/", s.service)[1]
      cluster_name      = var.cluster_name
      region            = var.region
      zone              = coalesce(s.zone, var.zones[0])
      trust_domain      = var.trust_domain
      gateway_api       = "${s.gateway_host}:${var.ports.api}"
      gateway_forward   = "${s.gateway_host}:${var.ports.forward}"
      gateway_spiffe_id = local.spiffe_id
      tls = { for k, p in {
        ca   = coalesce(s.tls.ca, var.tls.ca)
        cert = coalesce(s.tls.cert, "pki/${replace(s.service, "/", ".")}.pem")
        key  = coalesce(s.tls.key, "pki/${replace(s.service, "/", ".")}.key")
      } : k => startswith(p, "/") ? p : "${local.cd}/${p}" }
    })
  }

  unit_vars = {
    cluster_name = var.cluster_name
    run_user     = var.run_user
    config_dir   = local.cd
    binary_path  = var.binary_path
    data_dir     = local.data_dir
  }
  systemd_unit         = templatefile("${path.module}/templates/gateway.service.tftpl", local.unit_vars)
  sidecar_systemd_unit = templatefile("${path.module}/templates/sidecar.service.tftpl", local.unit_vars)
  meshgwctl            = file("${path.module}/files/meshgwctl.sh")

  bootstrap = templatefile("${path.module}/templates/bootstrap.sh.tftpl", merge(local.unit_vars, {
    zones              = var.zones
    zone_command       = var.zone_command
    binary_url         = var.binary_url
    binary_sha256      = var.binary_sha256
    bootstrap_commands = var.bootstrap_commands
    sidecar_ids        = sort(keys(var.sidecars))
  }))

  # Everything a host needs under config_dir, by relative path.
  files = merge(
    { for zone, c in local.gateway_configs : "zones/${zone}.toml" => c },
    { for id, c in local.sidecar_configs : "sidecars/${id}.toml" => c },
    { "meshgwctl" = local.meshgwctl },
  )

  abs = { for p, _ in local.files : p => "${var.config_dir}/${p}" }

  cloud_init = "#cloud-config\n${yamlencode({
    write_files = concat(
      [for p, c in local.files : {
        path        = local.abs[p]
        content     = base64encode(c)
        encoding    = "b64"
        permissions = p == "meshgwctl" ? "0755" : "0644"
      }],
      [for p, f in var.extra_files : {
        path        = startswith(p, "/") ? p : "${var.config_dir}/${p}"
        content     = base64encode(f.content)
        encoding    = "b64"
        permissions = f.mode
      }],
      [
        { path = "/etc/systemd/system/meshgw.service", content = base64encode(local.systemd_unit), encoding = "b64", permissions = "0644" },
        { path = "/etc/systemd/system/meshgw-sidecar@.service", content = base64encode(local.sidecar_systemd_unit), encoding = "b64", permissions = "0644" },
        { path = "${var.config_dir}/bootstrap.sh", content = base64encode(local.bootstrap), encoding = "b64", permissions = "0755" },
      ],
    )
    runcmd = [["sh", "${var.config_dir}/bootstrap.sh"]]
  })}"
}

check "binary_sha256_with_url" {
  assert {
    condition     = var.binary_url == null || var.binary_sha256 != null
    error_message = "binary_url is set without binary_sha256: cloud-init will not install an unverified binary."
  }
}
