variable "trust_domain" {
  description = "SPIFFE trust domain of the mesh (one root for all three clusters)."
  type        = string
  default     = "mesh.example"
}

variable "meshgw_binary_url" {
  description = "URL of the linux/amd64 meshgw release binary the cloud instances download."
  type        = string
}

variable "meshgw_binary_sha256" {
  description = "SHA-256 of the binary at meshgw_binary_url."
  type        = string
}

variable "meshgw_bin" {
  description = "Local path of the same binary, uploaded to the VM hosts."
  type        = string
}

variable "aws" {
  description = "AWS us-east-1: VPC, instance and load balancer subnets, AMI, workload CIDRs, and Secrets Manager ARNs of pki/root.pem, pki/gateway.pem, pki/gateway.key."
  type = object({
    vpc_id          = string
    subnet_ids      = list(string)
    lb_subnet_ids   = list(string)
    ami_id          = string
    sidecar_cidrs   = list(string)
    pki_secret_arns = map(string)
    etcd_endpoints  = list(string)
  })
}

variable "gcp_project" {
  description = "GCP project of the europe-west1 cluster."
  type        = string
}

variable "gcp" {
  description = "GCP europe-west1: network, subnetwork, image, workload CIDRs, and Secret Manager ids of pki/root.pem, pki/gateway.pem, pki/gateway.key."
  type = object({
    network       = string
    subnetwork    = string
    source_image  = string
    sidecar_cidrs = list(string)
    pki_secrets   = map(string)
  })
}

variable "vm_hosts" {
  description = "The on-prem VM group (one host: embedded store): SSH address, port, user, zone and host key."
  type = list(object({
    address  = string
    port     = optional(number, 22)
    user     = optional(string, "root")
    zone     = optional(string)
    host_key = optional(string)
  }))
}

variable "vm_pki_files" {
  description = "Local PKI files for the VM cluster: path under install_dir => local file (pki/root.pem, pki/gateway.pem, pki/gateway.key)."
  type        = map(string)
}
