#!/usr/bin/env bash
# Start-to-ready (init) and first answer of every function in template.yaml, each measured with
# scripts/coldstart.py: scripts/coldstart/run.py creates what the template creates on an emulator of
# this run's own (scripts/emulator.sh run), gives each function its template environment, and sends
# it scripts/coldstart/events/<crate>.json. The binaries are built for this host with the profile of
# `make build` (Lambda's arm64 bootstraps do not run on x86_64).
# Usage: scripts/coldstart-all.sh [RUNS] [CRATE...]   (after `make tools`; RUNS defaults to 20)
#   CARGO_TARGET_DIR  where the binaries are built (default target/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The profile the Makefile's `cargo lambda build` uses.
PROFILE="$(make -s --no-print-directory print-lambda-profile)"
runs="${1:-20}"
shift || true
crates=("$@")
if ((${#crates[@]} == 0)); then
  mapfile -t crates < <(ls functions)
fi
target="${CARGO_TARGET_DIR:-$ROOT/target}"
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
echo "coldstart: cargo build --profile $PROFILE (${#crates[@]} functions) into $target" >&2
cargo build --locked --profile "$PROFILE" "${args[@]}" >&2
echo "coldstart: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $runs runs per function" >&2
bash scripts/emulator.sh run "$ROOT/.venv/bin/python" scripts/coldstart/run.py \
  "$target/$PROFILE" "$runs" "${crates[@]}"
