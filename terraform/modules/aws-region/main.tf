# meshgw gateways in one AWS region: an ASG of gateway_count instances across
# the zones, booted by the cloud-init that gateway-config renders; an NLB
# with a UDP listener for the QUIC tunnel and TCP listeners for the catalog
# API and the forward port; security groups opening exactly those ports; an
# instance role that may read only the PKI secrets.
#
# Not validated in this repository's CI (the AWS provider cannot be
# downloaded there): see ../../README.md, "First real apply".

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  imds = "http://169.254.169.254/latest"
  # Each instance reads its zone from IMDSv2 and picks zones/<zone>.toml.
  zone_command = "t=$(curl -fsS -X PUT ${local.imds}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); curl -fsS -H \"X-aws-ec2-metadata-token: $t\" ${local.imds}/meta-data/placement/availability-zone"
  fetch_pki = [for path, arn in var.pki_secret_arns :
    "mkdir -p \"$(dirname '/etc/meshgw/${path}')\" && aws secretsmanager get-secret-value --region ${var.region} --secret-id '${arn}' --query SecretString --output text > '/etc/meshgw/${path}'"
  ]
  tags = merge(var.tags, { "meshgw:cluster" = var.cluster_name })
}

module "config" {
  source = "../gateway-config"

  cluster_name       = var.cluster_name
  cloud              = "aws"
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

# --- Security groups: the tunnel (UDP) from peers, API and forward (TCP)
# from sidecars, the API from the NLB's health checks. Nothing else in.

resource "aws_security_group" "gateway" {
  name_prefix = "${var.name}-gw-"
  description = "meshgw gateways of cluster ${var.cluster_name}"
  vpc_id      = var.vpc_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "tunnel" {
  for_each          = toset(var.peer_cidrs)
  security_group_id = aws_security_group.gateway.id
  description       = "QUIC tunnel from peer gateways"
  ip_protocol       = "udp"
  from_port         = var.ports.tunnel
  to_port           = var.ports.tunnel
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each          = toset(distinct(concat(var.sidecar_cidrs, [data.aws_vpc.this.cidr_block])))
  security_group_id = aws_security_group.gateway.id
  description       = "catalog API from sidecars and NLB health checks"
  ip_protocol       = "tcp"
  from_port         = var.ports.api
  to_port           = var.ports.api
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "forward" {
  for_each          = toset(var.sidecar_cidrs)
  security_group_id = aws_security_group.gateway.id
  description       = "cross-cluster connections from sidecars"
  ip_protocol       = "tcp"
  from_port         = var.ports.forward
  to_port           = var.ports.forward
  cidr_ipv4         = each.value
}

# Outbound: peers' tunnels, etcd, Secrets Manager, the binary download.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.gateway.id
  description       = "peers, etcd, AWS APIs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# --- IAM: read the listed PKI secrets, nothing else.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "pki" {
  statement {
    sid       = "ReadMeshgwPki"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = distinct(values(var.pki_secret_arns))
  }
}

resource "aws_iam_role" "gateway" {
  name_prefix        = "${var.name}-gw-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "pki" {
  name   = "meshgw-pki"
  role   = aws_iam_role.gateway.id
  policy = data.aws_iam_policy_document.pki.json
}

resource "aws_iam_instance_profile" "gateway" {
  name_prefix = "${var.name}-gw-"
  role        = aws_iam_role.gateway.name
  tags        = local.tags
}

# --- Instances.

resource "aws_launch_template" "gateway" {
  name_prefix            = "${var.name}-gw-"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  user_data              = base64encode(module.config.cloud_init)
  vpc_security_group_ids = [aws_security_group.gateway.id]
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.gateway.arn
  }

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-gateway" })
  }
  tags = local.tags
}

resource "aws_autoscaling_group" "gateway" {
  name_prefix               = "${var.name}-gw-"
  vpc_zone_identifier       = var.subnet_ids
  min_size                  = var.gateway_count
  max_size                  = var.gateway_count
  desired_capacity          = var.gateway_count
  health_check_type         = "ELB"
  health_check_grace_period = 180
  target_group_arns         = [for tg in aws_lb_target_group.this : tg.arn]

  launch_template {
    id      = aws_launch_template.gateway.id
    version = aws_launch_template.gateway.latest_version
  }

  # A new rendering (config, peers, exports) is a new launch template
  # version: replace the instances one at a time.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = var.gateway_count > 1 ? 50 : 0
    }
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

# --- Network load balancer.

locals {
  listeners = {
    tunnel  = { protocol = "UDP", port = var.ports.tunnel }
    api     = { protocol = "TCP", port = var.ports.api }
    forward = { protocol = "TCP", port = var.ports.forward }
  }
}

resource "aws_lb" "gateway" {
  name                             = "${var.name}-gw"
  load_balancer_type               = "network"
  internal                         = var.lb_internal
  subnets                          = var.lb_subnet_ids
  enable_cross_zone_load_balancing = true
  tags                             = local.tags
}

resource "aws_lb_target_group" "this" {
  for_each    = local.listeners
  name        = "${var.name}-${each.key}"
  protocol    = each.value.protocol
  port        = each.value.port
  vpc_id      = var.vpc_id
  target_type = "instance"

  # UDP targets cannot be checked over UDP: every group checks the API port.
  health_check {
    protocol            = "TCP"
    port                = tostring(var.ports.api)
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "this" {
  for_each          = local.listeners
  load_balancer_arn = aws_lb.gateway.arn
  protocol          = each.value.protocol
  port              = each.value.port

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[each.key].arn
  }

  tags = local.tags
}
