output "client_outbound_http" {
  description = "The client sidecar's outbound HTTP listener: requests with `Host: payments.default.mesh` cross the mesh to the payments app."
  value       = local.outbound
}

output "try" {
  description = "A request across the mesh."
  value       = "curl -H 'Host: payments.default.mesh' http://${local.outbound}/"
}

output "gateways" {
  description = "Per cluster: its config file and listeners (tunnel is UDP)."
  value = { for n, p in local.ports : n => {
    config  = "${local.dir}/clusters/${n}/gateway.toml"
    tunnel  = "127.0.0.1:${p.tunnel}"
    api     = "127.0.0.1:${p.api}"
    admin   = "127.0.0.1:${p.admin}"
    forward = "127.0.0.1:${p.forward}"
  } }
}

output "status" {
  description = "Commands showing each cluster's view of the mesh."
  value       = { for n in local.names : n => "${var.meshgw_bin} status --config ${local.dir}/clusters/${n}/gateway.toml" }
}

output "logs" {
  description = "Directory of every process's log."
  value       = local.logs
}
