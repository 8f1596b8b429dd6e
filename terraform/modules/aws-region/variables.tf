# AWS inputs; the mesh settings (same as gateway-config) are in variables_mesh.tf.

variable "name" {
  description = "Prefix of every AWS resource name, e.g. \"meshgw-us-east-1\"; at most 20 characters (load balancer and target group names are limited to 32)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,20}$", var.name))
    error_message = "name must be 1-20 letters, digits or '-'."
  }
}

variable "vpc_id" {
  description = "VPC the gateways run in."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the gateway instances, one per zone in `zones` (the ASG spreads across them)."
  type        = list(string)
}

variable "lb_subnet_ids" {
  description = "Subnets of the network load balancer: public subnets for an internet-facing NLB (peers in other clouds), private ones when lb_internal."
  type        = list(string)
}

variable "lb_internal" {
  description = "Whether the NLB is internal (peers reach it over VPN/peering) rather than internet-facing."
  type        = bool
  default     = false
}

variable "ami_id" {
  description = "AMI of the gateway instances: a Linux with systemd, cloud-init, curl and the AWS CLI (e.g. Amazon Linux 2023)."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the gateways."
  type        = string
  default     = "t3.small"
}

variable "gateway_count" {
  description = "Number of gateway instances (ASG size). More than one needs store.kind = \"etcd\"."
  type        = number
  default     = 1
}

variable "peer_cidrs" {
  description = "CIDRs allowed to reach the tunnel port (UDP): the other regions' gateway egress addresses. The tunnel is mutually authenticated, but narrow this when you can."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "sidecar_cidrs" {
  description = "CIDRs of the workloads whose sidecars use these gateways: allowed to the api and forward ports (TCP)."
  type        = list(string)
}

variable "pki_secret_arns" {
  description = "Certificates fetched at boot from Secrets Manager: path under /etc/meshgw (e.g. \"pki/gateway.key\") => secret ARN (SecretString = the PEM). The instance role may read exactly these secrets."
  type        = map(string)
}

variable "binary_url" {
  description = "URL the instances download the meshgw binary from; null if the AMI has it at /usr/local/bin/meshgw."
  type        = string
  default     = null
}

variable "binary_sha256" {
  description = "SHA-256 of the binary at binary_url."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
