output "gateways" {
  description = "Per host: its address, zone and the tunnel endpoint (\"address:port\") peers dial."
  value = [for k, h in local.hosts : {
    address  = h.address
    zone     = h.zone
    endpoint = "${h.address}:${var.ports.tunnel}"
  }]
}

output "endpoints" {
  description = "Tunnel endpoints of this cluster's gateways: put them in the other clusters' peers[].addresses."
  value       = [for k, h in local.hosts : "${h.address}:${var.ports.tunnel}"]
}

output "spiffe_id" {
  description = "SPIFFE ID of this cluster's gateways."
  value       = module.config.spiffe_id
}

output "cluster_name" {
  description = "The cluster name, for the other clusters' peers[].name."
  value       = var.cluster_name
}

output "config_path" {
  description = "The gateway config on each host (for `meshgw status --config`)."
  value       = "${local.dir}/gateway.toml"
}
