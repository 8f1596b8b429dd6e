# meshgw gateways in one GCP region: a regional MIG of gateway_count
# instances across the zones, booted by the cloud-init that gateway-config
# renders; an external passthrough network load balancer (one address, a UDP
# forwarding rule for the QUIC tunnel and a TCP one for the API and forward
# ports); firewall rules opening exactly those ports; a service account that
# may read only the PKI secrets.
#
# Not validated in this repository's CI (the Google provider cannot be
# downloaded there): see ../../README.md, "First real apply".

locals {
  tag = "${var.name}-gateway"
  # Each instance reads its zone from the metadata server.
  zone_command = "curl -fsS -H 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/instance/zone | awk -F/ '{print $NF}'"
  fetch_pki = [for path, id in var.pki_secrets :
    "mkdir -p \"$(dirname '/etc/meshgw/${path}')\" && gcloud secrets versions access latest --project '${var.project}' --secret '${id}' > '/etc/meshgw/${path}'"
  ]
  labels = merge(var.labels, { meshgw-cluster = var.cluster_name })
  # Google's health-check ranges for external passthrough load balancers.
  health_check_ranges = ["35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22"]
}

module "config" {
  source = "../gateway-config"

  cluster_name       = var.cluster_name
  cloud              = "gcp"
  region             = var.region
  zones              = var.zones
  trust_domain       = var.trust_domain
  peers              = var.peers
  exports            = var.exports
  store              = var.store
  ports              = var.ports
  bind_address       = var.bind_address
  admin_bind_address = var.admin_bind_address
  tls                = var.tls
  sync               = var.sync
  timeouts           = var.timeouts
  workers            = var.workers
  api_admins         = var.api_admins
  sidecars           = var.sidecars
  config_dir         = "/etc/meshgw"
  zone_command       = local.zone_command
  bootstrap_commands = local.fetch_pki
  binary_url         = var.binary_url
  binary_sha256      = var.binary_sha256
}

check "replicas_need_etcd" {
  assert {
    condition     = var.gateway_count == 1 || var.store.kind == "etcd"
    error_message = "gateway_count > 1 needs store.kind = \"etcd\": replicas share one catalog."
  }
}

# --- Identity: a service account reading the PKI secrets, nothing else.

resource "google_service_account" "gateway" {
  project      = var.project
  account_id   = substr("${var.name}-gw", 0, 30)
  display_name = "meshgw gateways of cluster ${var.cluster_name}"
}

resource "google_secret_manager_secret_iam_member" "pki" {
  for_each  = toset(distinct(values(var.pki_secrets)))
  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.gateway.email}"
}

# --- Firewall: tunnel (UDP) from peers, API and forward (TCP) from sidecars,
# the API from the load balancer's health checks.

resource "google_compute_firewall" "tunnel" {
  project       = var.project
  name          = "${var.name}-tunnel"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = var.peer_cidrs
  target_tags   = [local.tag]
  allow {
    protocol = "udp"
    ports    = [tostring(var.ports.tunnel)]
  }
}

resource "google_compute_firewall" "sidecars" {
  project       = var.project
  name          = "${var.name}-sidecars"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = var.sidecar_cidrs
  target_tags   = [local.tag]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.ports.api), tostring(var.ports.forward)]
  }
}

resource "google_compute_firewall" "health_checks" {
  project       = var.project
  name          = "${var.name}-health"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = local.health_check_ranges
  target_tags   = [local.tag]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.ports.api)]
  }
}

# --- Instances.

resource "google_compute_instance_template" "gateway" {
  project      = var.project
  name_prefix  = "${var.name}-gw-"
  machine_type = var.machine_type
  region       = var.region
  tags         = [local.tag]
  labels       = local.labels

  disk {
    source_image = var.source_image
    boot         = true
    auto_delete  = true
  }

  network_interface {
    subnetwork = var.subnetwork
    # Egress to peers, etcd and Google APIs goes through Cloud NAT; add an
    # access_config block here for a public IP per instance instead.
  }

  metadata = {
    user-data              = module.config.cloud_init
    block-project-ssh-keys = "true"
  }

  service_account {
    email  = google_service_account.gateway.email
    scopes = ["cloud-platform"] # IAM, not scopes, limits it: secret access only
  }

  shielded_instance_config {
    enable_secure_boot = true
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_region_health_check" "api" {
  project = var.project
  name    = "${var.name}-api"
  region  = var.region
  tcp_health_check {
    port = var.ports.api
  }
}

resource "google_compute_region_instance_group_manager" "gateway" {
  project                   = var.project
  name                      = "${var.name}-gw"
  region                    = var.region
  base_instance_name        = "${var.name}-gw"
  distribution_policy_zones = var.zones
  target_size               = var.gateway_count

  version {
    instance_template = google_compute_instance_template.gateway.self_link_unique
  }

  # A new rendering is a new template: replace instances one at a time.
  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    max_surge_fixed       = length(var.zones)
    max_unavailable_fixed = var.gateway_count > 1 ? 1 : 0
  }

  auto_healing_policies {
    health_check      = google_compute_region_health_check.api.id
    initial_delay_sec = 180
  }
}

# --- External passthrough network load balancer: one address, UDP for the
# tunnel, TCP for the API and forward ports.

resource "google_compute_address" "gateway" {
  project = var.project
  name    = "${var.name}-gw"
  region  = var.region
}

resource "google_compute_region_backend_service" "this" {
  for_each              = toset(["UDP", "TCP"])
  project               = var.project
  name                  = "${var.name}-${lower(each.key)}"
  region                = var.region
  protocol              = each.key
  load_balancing_scheme = "EXTERNAL"
  health_checks         = [google_compute_region_health_check.api.id]
  backend {
    group          = google_compute_region_instance_group_manager.gateway.instance_group
    balancing_mode = "CONNECTION"
  }
}

resource "google_compute_forwarding_rule" "tunnel" {
  project               = var.project
  name                  = "${var.name}-tunnel"
  region                = var.region
  ip_address            = google_compute_address.gateway.address
  ip_protocol           = "UDP"
  ports                 = [tostring(var.ports.tunnel)]
  load_balancing_scheme = "EXTERNAL"
  backend_service       = google_compute_region_backend_service.this["UDP"].id
}

resource "google_compute_forwarding_rule" "api" {
  project               = var.project
  name                  = "${var.name}-api"
  region                = var.region
  ip_address            = google_compute_address.gateway.address
  ip_protocol           = "TCP"
  ports                 = [tostring(var.ports.api), tostring(var.ports.forward)]
  load_balancing_scheme = "EXTERNAL"
  backend_service       = google_compute_region_backend_service.this["TCP"].id
}
