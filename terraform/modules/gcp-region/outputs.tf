output "endpoint" {
  description = "Tunnel endpoint (\"ip:port\", UDP) to hand to peers: put it in their peers[].addresses."
  value       = "${google_compute_address.gateway.address}:${var.ports.tunnel}"
}

output "api_endpoint" {
  description = "Catalog API (TCP, mTLS) behind the load balancer, for sidecars' gateway.api and `meshgw status --api`."
  value       = "${google_compute_address.gateway.address}:${var.ports.api}"
}

output "forward_endpoint" {
  description = "Forward listener (TCP, mTLS) behind the load balancer, for sidecars' gateway.forward."
  value       = "${google_compute_address.gateway.address}:${var.ports.forward}"
}

output "cluster_name" {
  description = "The cluster name, for peers' peers[].name."
  value       = var.cluster_name
}

output "spiffe_id" {
  description = "SPIFFE ID of these gateways."
  value       = module.config.spiffe_id
}

output "service_account" {
  description = "The gateways' service account (reads the PKI secrets only)."
  value       = google_service_account.gateway.email
}

output "instance_group" {
  description = "The gateways' regional managed instance group."
  value       = google_compute_region_instance_group_manager.gateway.instance_group
}
