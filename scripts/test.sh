#!/usr/bin/env bash
# Runs every check and test of meshgw: formatting, clippy, unit tests, store
# contract tests against real etcd, and end-to-end tests with real gateway
# processes. Needs protoc and etcd: scripts/install-deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
command -v protoc >/dev/null || { echo "protoc missing: run scripts/install-deps.sh" >&2; exit 1; }
command -v etcd >/dev/null || { echo "etcd missing: run scripts/install-deps.sh" >&2; exit 1; }

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== build";  cargo build --workspace --all-targets --all-features
# The e2e tests run the binary built above (target/debug/meshgw); nextest runs
# them at most two at a time (.config/nextest.toml), the machine's core count.
echo "== test"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi
