#!/usr/bin/env bash
# Creates the project's tool venv (.venv) with pinned versions of the local AWS tooling:
#   moto[server]  DynamoDB + SQS emulator for the adapter tests (scripts/emulator.sh runs it)
#   cfn-lint, aws-sam-cli   template validation (`sam validate --lint`) and `sam build`
#   cargo-lambda  Lambda builds (prebuilt binary, brings zig)
#   cargo-zigbuild  the static musl binaries of `make dist` (x86_64 and aarch64), linked by that zig
# Idempotent: does nothing when the venv's stamp matches the pinned list below.
# Usage: scripts/tools.sh            then e.g. PATH="$PWD/.venv/bin:$PATH"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KOOGALLERY_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

# Exact versions that install together on Debian 12 / Python 3.11 (checked with pip, 2026-11).
PINNED=(
  "moto[server]==5.2.5"
  "flask-cors==6.0.5"
  "cfn-lint==1.58.0"
  "aws-sam-cli==1.170.0"
  "cargo-lambda==1.9.2"
  "cargo-zigbuild==0.24.0"
)

STAMP="$VENV/.koogallery-tools-stamp"
WANT="$(printf '%s\n' "${PINNED[@]}")"

if [[ -f "$STAMP" && -x "$VENV/bin/python" ]] && [[ "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "tools: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi

echo "tools: installing ${PINNED[*]}" >&2
start=$SECONDS
# -q keeps the output short; pip still prints errors (and the resolver's conflicts) to stderr.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input "${PINNED[@]}"

# Sanity: the entry points the Makefile and the other scripts use.
for tool in moto_server cfn-lint sam cargo-lambda cargo-zigbuild; do
  if [[ ! -x "$VENV/bin/$tool" ]]; then
    echo "tools: $tool missing from $VENV/bin after install" >&2
    exit 1
  fi
done

printf '%s\n' "$WANT" >"$STAMP"
echo "tools: ready in $((SECONDS - start)) s (add $VENV/bin to PATH)" >&2
