# Three federated clusters: AWS us-east-1 (two gateways on etcd), GCP
# europe-west1 (one gateway, embedded store) and an on-prem VM group. Each
# cluster's tunnel endpoint output is wired into the others' peers; every
# cluster exports default/* to every peer. Adding a region is one more
# module block and one more entry in local.endpoints (terraform/README.md).

locals {
  # Cluster name => its tunnel endpoints.
  endpoints = {
    "aws-us-east-1"    = [module.aws_us_east_1.endpoint]
    "gcp-europe-west1" = [module.gcp_europe_west1.endpoint]
    "vm-onprem"        = module.vm_onprem.endpoints
  }
  # The peers of cluster c: every other cluster.
  peers = { for c in keys(local.endpoints) : c => [
    for name, addrs in local.endpoints : { name = name, addresses = addrs } if name != c
  ] }
  exports = [{ service = "default/*", to = ["*"] }]
}

module "aws_us_east_1" {
  source = "../../modules/aws-region"

  name            = "meshgw-use1"
  cluster_name    = "aws-us-east-1"
  region          = "us-east-1"
  zones           = ["us-east-1a", "us-east-1b"]
  trust_domain    = var.trust_domain
  peers           = local.peers["aws-us-east-1"]
  exports         = local.exports
  store           = { kind = "etcd", endpoints = var.aws.etcd_endpoints }
  gateway_count   = 2
  vpc_id          = var.aws.vpc_id
  subnet_ids      = var.aws.subnet_ids
  lb_subnet_ids   = var.aws.lb_subnet_ids
  ami_id          = var.aws.ami_id
  sidecar_cidrs   = var.aws.sidecar_cidrs
  pki_secret_arns = var.aws.pki_secret_arns
  binary_url      = var.meshgw_binary_url
  binary_sha256   = var.meshgw_binary_sha256
}

module "gcp_europe_west1" {
  source = "../../modules/gcp-region"

  name          = "meshgw-euw1"
  project       = var.gcp_project
  cluster_name  = "gcp-europe-west1"
  region        = "europe-west1"
  zones         = ["europe-west1-b"]
  trust_domain  = var.trust_domain
  peers         = local.peers["gcp-europe-west1"]
  exports       = local.exports
  network       = var.gcp.network
  subnetwork    = var.gcp.subnetwork
  source_image  = var.gcp.source_image
  sidecar_cidrs = var.gcp.sidecar_cidrs
  pki_secrets   = var.gcp.pki_secrets
  binary_url    = var.meshgw_binary_url
  binary_sha256 = var.meshgw_binary_sha256
}

module "vm_onprem" {
  source = "../../modules/vm"

  cluster_name = "vm-onprem"
  region       = "dc1"
  zones        = ["rack-1"]
  trust_domain = var.trust_domain
  peers        = local.peers["vm-onprem"]
  exports      = local.exports
  hosts        = var.vm_hosts
  meshgw_bin   = var.meshgw_bin
  pki_files    = var.vm_pki_files
}
