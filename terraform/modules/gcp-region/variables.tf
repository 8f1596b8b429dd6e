# GCP inputs; the mesh settings (same as gateway-config) are in variables_mesh.tf.

variable "name" {
  description = "Prefix of every GCP resource name, e.g. \"meshgw-euw1\" (lowercase letters, digits, '-'; at most 30 characters)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,29}$", var.name))
    error_message = "name must be 1-30 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "project" {
  description = "GCP project id."
  type        = string
}

variable "network" {
  description = "VPC network (name or self link) of the gateways."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork (in `region`) of the gateways."
  type        = string
}

variable "source_image" {
  description = "Boot image of the gateways: a Linux with systemd, cloud-init (reads the `user-data` metadata key), curl and gcloud, e.g. \"ubuntu-os-cloud/ubuntu-2404-lts-amd64\"."
  type        = string
}

variable "machine_type" {
  description = "Machine type of the gateways."
  type        = string
  default     = "e2-small"
}

variable "gateway_count" {
  description = "Number of gateway instances (MIG size), spread over `zones`. More than one needs store.kind = \"etcd\"."
  type        = number
  default     = 1
}

variable "peer_cidrs" {
  description = "CIDRs allowed to reach the tunnel port (UDP): the other regions' gateway egress addresses."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "sidecar_cidrs" {
  description = "CIDRs of the workloads whose sidecars use these gateways: allowed to the api and forward ports (TCP)."
  type        = list(string)
}

variable "pki_secrets" {
  description = "Certificates fetched at boot from Secret Manager: path under /etc/meshgw (e.g. \"pki/gateway.key\") => secret id (latest version = the PEM). The gateways' service account may read exactly these secrets."
  type        = map(string)
}

variable "binary_url" {
  description = "URL the instances download the meshgw binary from; null if the image has it at /usr/local/bin/meshgw."
  type        = string
  default     = null
}

variable "binary_sha256" {
  description = "SHA-256 of the binary at binary_url."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels added to the resources that take them."
  type        = map(string)
  default     = {}
}
