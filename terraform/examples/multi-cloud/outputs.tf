output "endpoints" {
  description = "Tunnel endpoints per cluster."
  value       = local.endpoints
}
