#!/usr/bin/env bash
# Installs what building and testing meshgw needs and a fresh Debian machine
# lacks: protoc (tonic/etcd-client code generation) and etcd (the e2e tests
# start real etcd servers). Idempotent; needs root (or sudo).
set -euo pipefail
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v etcd >/dev/null || need+=(etcd-server)
command -v curl >/dev/null || need+=(curl)
command -v sshd >/dev/null || test -x /usr/sbin/sshd || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
protoc --version
v=$(etcd --version)
echo "${v%%$'\n'*}"
