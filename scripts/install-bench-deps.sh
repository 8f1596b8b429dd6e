#!/usr/bin/env bash
# Installs what `meshgw-bench dataplane` needs beyond scripts/install-deps.sh:
# haproxy (the baseline proxy), wrk (maximum request rate), valgrind
# (`meshgw-bench instructions`) and perf (`meshgw-bench syscalls`), from Debian.
# Kept apart from install-deps.sh so CI stays lean. Idempotent; needs root
# (or sudo).
set -euo pipefail
need=()
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v valgrind >/dev/null || need+=(valgrind)
command -v perf >/dev/null || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
v=$(PATH="$PATH:/usr/sbin" haproxy -v)
echo "${v%%$'\n'*}"
v=$(wrk -v 2>&1 || true)
echo "${v%%$'\n'*}"
