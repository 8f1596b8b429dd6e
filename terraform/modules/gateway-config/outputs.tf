output "gateway_configs" {
  description = "Gateway config (TOML) per zone: zone => file content. Each passes `meshgw check` once its certificate files exist."
  value       = local.gateway_configs
}

output "gateway_config" {
  description = "Gateway config (TOML) for the first zone: the one file a single-host cluster needs."
  value       = local.gateway_configs[var.zones[0]]
}

output "sidecar_configs" {
  description = "Sidecar config (TOML) per sidecar id."
  value       = local.sidecar_configs
}

output "systemd_unit" {
  description = "systemd unit meshgw.service running `meshgw gateway --config <config_dir>/gateway.toml`."
  value       = local.systemd_unit
}

output "sidecar_systemd_unit" {
  description = "systemd template unit meshgw-sidecar@.service: instance ID runs <config_dir>/sidecars/ID.toml."
  value       = local.sidecar_systemd_unit
}

output "meshgwctl" {
  description = "Supervisor script for hosts without systemd (start/stop/status of one process, restarted when it exits)."
  value       = local.meshgwctl
}

output "bootstrap_script" {
  description = "The boot script cloud-init runs: install the binary, run bootstrap_commands, pick the zone's config, `meshgw check`, start the units."
  value       = local.bootstrap
}

output "files" {
  description = "Every rendered file to install under config_dir, by relative path (zones/<zone>.toml, sidecars/<id>.toml, meshgwctl)."
  value       = local.files
}

output "cloud_init" {
  description = "cloud-init user data (#cloud-config) writing the files and units and running the boot script."
  value       = local.cloud_init
  sensitive   = true
}

output "spiffe_id" {
  description = "SPIFFE ID of this cluster's gateways: what peers put in their `spiffe_id` for it."
  value       = local.spiffe_id
}

output "ports" {
  description = "The gateway ports (tunnel, api, admin, forward)."
  value       = var.ports
}

output "cluster_name" {
  description = "The cluster name, for peers' `name`."
  value       = var.cluster_name
}
