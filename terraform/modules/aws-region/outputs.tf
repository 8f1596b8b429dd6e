output "endpoint" {
  description = "Tunnel endpoint (\"host:port\", UDP) to hand to peers: put it in their peers[].addresses."
  value       = "${aws_lb.gateway.dns_name}:${var.ports.tunnel}"
}

output "api_endpoint" {
  description = "Catalog API (TCP, mTLS) behind the NLB, for sidecars' gateway.api and `meshgw status --api`."
  value       = "${aws_lb.gateway.dns_name}:${var.ports.api}"
}

output "forward_endpoint" {
  description = "Forward listener (TCP, mTLS) behind the NLB, for sidecars' gateway.forward."
  value       = "${aws_lb.gateway.dns_name}:${var.ports.forward}"
}

output "cluster_name" {
  description = "The cluster name, for peers' peers[].name."
  value       = var.cluster_name
}

output "spiffe_id" {
  description = "SPIFFE ID of these gateways."
  value       = module.config.spiffe_id
}

output "security_group_id" {
  description = "Security group of the gateway instances."
  value       = aws_security_group.gateway.id
}

output "autoscaling_group_name" {
  description = "The gateways' Auto Scaling group."
  value       = aws_autoscaling_group.gateway.name
}

output "role_arn" {
  description = "The gateways' IAM role (reads the PKI secrets only)."
  value       = aws_iam_role.gateway.arn
}
