# Pure rendering checks: plan only, no provider, no binary. Run with
# `terraform init && terraform test` in modules/gateway-config.

variables {
  cluster_name = "aws-us-east-1"
  cloud        = "aws"
  region       = "us-east-1"
  zones        = ["us-east-1a", "us-east-1b"]
  trust_domain = "mesh.example"
  peers = [
    { name = "gcp-europe-west1", addresses = ["gw.eu.example:7443"] },
    { name = "onprem-dc1", trust_domain = "dc1.example", trust_bundle = "pki/dc1-root.pem" },
  ]
  exports = [{ service = "default/payments", to = ["*"] }]
  sidecars = {
    payments = {
      service        = "default/payments"
      app            = "127.0.0.1:8080"
      inbound_listen = "0.0.0.0:15006"
      labels         = { version = "v1" }
    }
  }
}

run "one_gateway_config_per_zone" {
  command = plan

  assert {
    condition     = keys(output.gateway_configs) == ["us-east-1a", "us-east-1b"]
    error_message = "expected one gateway config per zone"
  }
  assert {
    condition     = strcontains(output.gateway_configs["us-east-1b"], "zone = \"us-east-1b\"")
    error_message = "the us-east-1b config must carry its zone"
  }
  assert {
    condition     = output.gateway_config == output.gateway_configs["us-east-1a"]
    error_message = "gateway_config is the first zone's config"
  }
  assert {
    condition     = strcontains(output.gateway_config, "tunnel = \"0.0.0.0:7443\"") && strcontains(output.gateway_config, "admin = \"127.0.0.1:7445\"")
    error_message = "default listeners: tunnel on 0.0.0.0:7443, admin on loopback"
  }
  assert {
    condition     = strcontains(output.gateway_config, "kind = \"embedded\"\ndata_dir = \"/etc/meshgw/data\"")
    error_message = "default store is embedded in config_dir/data, paths absolute"
  }
}

run "peers_get_spiffe_ids_from_their_trust_domain" {
  command = plan

  assert {
    condition     = strcontains(output.gateway_config, "spiffe_id = \"spiffe://mesh.example/cluster/gcp-europe-west1/gateway\"")
    error_message = "a peer without trust_domain gets an ID in ours"
  }
  assert {
    condition     = strcontains(output.gateway_config, "spiffe_id = \"spiffe://dc1.example/cluster/onprem-dc1/gateway\"")
    error_message = "a peer with trust_domain gets an ID in its own"
  }
  assert {
    condition     = strcontains(output.gateway_config, "name = \"onprem-dc1\"\nspiffe_id")
    error_message = "a peer without addresses has no addresses key (it dials us)"
  }
  assert {
    condition     = strcontains(output.gateway_config, "[[exports]]\nservice = \"default/payments\"\nto = [\"*\"]")
    error_message = "exports rendered"
  }
}

run "etcd_store" {
  command = plan

  variables {
    store = {
      kind            = "etcd"
      endpoints       = ["https://etcd-0:2379", "https://etcd-1:2379"]
      request_timeout = "3s"
      tls             = { ca = "pki/etcd-ca.pem" }
      auth            = { username = "meshgw", password_file = "secrets/etcd" }
    }
  }

  assert {
    condition     = strcontains(output.gateway_config, "endpoints = [\"https://etcd-0:2379\",\"https://etcd-1:2379\"]") && !strcontains(output.gateway_config, "data_dir")
    error_message = "etcd store: endpoints, no data_dir"
  }
  assert {
    condition     = strcontains(output.gateway_config, "[store.tls]\nca = \"/etc/meshgw/pki/etcd-ca.pem\"\n\n[store.auth]")
    error_message = "store.tls without a client cert, then store.auth"
  }
}

run "sidecar_points_at_the_local_gateway" {
  command = plan

  variables {
    ports = { api = 9444, forward = 9446 }
  }

  assert {
    condition     = strcontains(output.sidecar_configs["payments"], "api = \"127.0.0.1:9444\"\nforward = \"127.0.0.1:9446\"\nspiffe_id = \"spiffe://mesh.example/cluster/aws-us-east-1/gateway\"")
    error_message = "sidecar's [gateway] follows the gateway's ports and SPIFFE ID"
  }
  assert {
    condition     = strcontains(output.sidecar_configs["payments"], "cert = \"/etc/meshgw/pki/default.payments.pem\"") && strcontains(output.sidecar_configs["payments"], "\"version\" = \"v1\"")
    error_message = "sidecar default certificate paths and labels"
  }
}

run "units_and_cloud_init" {
  command = plan

  variables {
    zone_command = "cat /run/zone"
  }

  assert {
    condition     = strcontains(output.systemd_unit, "ExecStart=/usr/local/bin/meshgw gateway --config /etc/meshgw/gateway.toml") && strcontains(output.systemd_unit, "ReadWritePaths=/etc/meshgw/data")
    error_message = "systemd unit runs the gateway and may write its store"
  }
  assert {
    condition     = startswith(nonsensitive(output.cloud_init), "#cloud-config\n") && strcontains(nonsensitive(output.cloud_init), "/etc/meshgw/zones/us-east-1b.toml")
    error_message = "cloud-init writes every zone's config"
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "zone=$(cat /run/zone)") && strcontains(output.bootstrap_script, "systemctl enable --now meshgw-sidecar@payments.service")
    error_message = "boot script picks the zone and starts the sidecars"
  }
}

run "rejects_a_bad_cluster_name" {
  command = plan
  variables {
    cluster_name = "US_East"
  }
  expect_failures = [var.cluster_name]
}

run "rejects_etcd_without_endpoints" {
  command = plan
  variables {
    store = { kind = "etcd" }
  }
  expect_failures = [var.store]
}

run "rejects_unknown_sync_keys" {
  command = plan
  variables {
    sync = { heartbeat = "1s" }
  }
  expect_failures = [var.sync]
}

run "renders_forward_timeouts" {
  command = plan
  variables {
    timeouts = { idle = "1h", connect = "3s" }
  }
  assert {
    condition     = strcontains(output.gateway_config, "[timeouts]\nconnect = \"3s\"\nidle = \"1h\"\n")
    error_message = "timeouts render as a [timeouts] table, keys sorted"
  }
}

run "rejects_unknown_timeout_keys" {
  command = plan
  variables {
    timeouts = { request = "1s" }
  }
  expect_failures = [var.timeouts]
}

run "renders_runtime_workers" {
  command = plan
  variables {
    workers = 1
  }
  assert {
    condition     = strcontains(output.gateway_config, "[runtime]\nworkers = 1\n")
    error_message = "workers renders as [runtime] workers"
  }
}

run "leaves_runtime_out_by_default" {
  command = plan
  assert {
    condition     = !strcontains(output.gateway_config, "[runtime]")
    error_message = "no [runtime] table unless workers is set"
  }
}

run "rejects_an_out_of_range_worker_count" {
  command = plan
  variables {
    workers = 300
  }
  expect_failures = [var.workers]
}

run "renders_api_admins" {
  command = plan
  variables {
    api_admins = ["spiffe://mesh.example/ns/ops/*", "spiffe://mesh.example/ns/ci/sa/deploy"]
  }
  assert {
    condition     = strcontains(output.gateway_config, "[api]\nadmins = [\"spiffe://mesh.example/ns/ops/*\",\"spiffe://mesh.example/ns/ci/sa/deploy\"]\n")
    error_message = "api_admins renders as [api] admins"
  }
}

run "leaves_api_out_by_default" {
  command = plan
  assert {
    condition     = !strcontains(output.gateway_config, "[api]")
    error_message = "no [api] table unless api_admins is set"
  }
}

run "rejects_an_admin_that_is_not_a_spiffe_pattern" {
  command = plan
  variables {
    api_admins = ["spiffe://mesh.example/ns/*/sa/x"]
  }
  expect_failures = [var.api_admins]
}
