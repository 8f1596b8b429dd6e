# Host and installation inputs; the mesh settings are in variables_mesh.tf.

variable "cloud" {
  description = "Free text naming where these hosts run (`cluster.cloud`), e.g. \"vm\" or \"onprem\"."
  type        = string
  default     = "vm"
}

variable "hosts" {
  description = <<-EOT
    The existing hosts of this cluster, reached over SSH: address, SSH port
    (default 22) and user (default root), and the zone the host is in
    (default: zones[i % length(zones)]).
    One gateway per host; more than one host needs store.kind = "etcd".
    host_key, when set, is the host's public key (e.g. the content of
    /etc/ssh/ssh_host_ed25519_key.pub) and is verified.
  EOT
  type = list(object({
    address  = string
    port     = optional(number, 22)
    user     = optional(string, "root")
    zone     = optional(string)
    host_key = optional(string)
  }))
  validation {
    condition     = length(var.hosts) > 0
    error_message = "hosts must list at least one host."
  }
}

variable "ssh_private_key" {
  description = "PEM/OpenSSH private key for the SSH connections; null uses the local ssh-agent ($SSH_AUTH_SOCK)."
  type        = string
  default     = null
  sensitive   = true
}

variable "install_dir" {
  description = "Directory on each host holding the binary (bin/meshgw), configs, PKI, store, pid files and logs; the rendered config_dir."
  type        = string
  default     = "/opt/meshgw"
  validation {
    condition     = startswith(var.install_dir, "/") && length(trimsuffix(var.install_dir, "/")) > 1
    error_message = "install_dir must be an absolute path other than /."
  }
}

variable "meshgw_bin" {
  description = "Local path of the meshgw binary to upload (built for the hosts' OS and architecture). A new binary (by content hash) reinstalls and restarts."
  type        = string
}

variable "pki_files" {
  description = "Certificates to install: path on the host relative to install_dir => local file. The defaults of `tls` expect pki/root.pem, pki/gateway.pem and pki/gateway.key; sidecars expect pki/<namespace>.<name>.pem/.key. Files ending in .key are installed 0600."
  type        = map(string)
}

variable "service_manager" {
  description = "How the processes are run: \"systemd\" (units meshgw.service and meshgw-sidecar@ID), \"meshgwctl\" (a supervised process, for hosts without systemd), or \"auto\" (systemd when the host runs it)."
  type        = string
  default     = "auto"
  validation {
    condition     = contains(["auto", "systemd", "meshgwctl"], var.service_manager)
    error_message = "service_manager must be \"auto\", \"systemd\" or \"meshgwctl\"."
  }
}

variable "run_user" {
  description = "User the processes run as under systemd (created if absent). Under meshgwctl they run as the SSH user."
  type        = string
  default     = "meshgw"
}
