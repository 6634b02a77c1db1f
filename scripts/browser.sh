#!/usr/bin/env bash
# Installs what the headless-browser SSO test (tests/sso_browser.rs, tests/browser/sso.mjs) needs:
#   Debian's chromium (/usr/bin/chromium; playwright-core drives it, it downloads no browser)
#   the Node packages of tests/browser (npm ci from the committed package-lock.json)
# Idempotent: does nothing when both are there and node_modules is newer than the lock file.
# `make test` runs it (target `browser`). Needs Node 20+ and npm on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/browser"

as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "browser.sh: $* needs root (no sudo here)" >&2
    exit 1
  fi
}

if [[ ! -x /usr/bin/chromium ]]; then
  echo "browser.sh: installing Debian's chromium" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || {
    echo "browser.sh: $tool is missing: install Node.js 20+ (with npm)" >&2
    exit 1
  }
done

# npm ci leaves node_modules/.package-lock.json; older than the lock file means a stale install.
if [[ ! -f "$DIR/node_modules/.package-lock.json" || "$DIR/package-lock.json" -nt "$DIR/node_modules/.package-lock.json" ]]; then
  echo "browser.sh: npm ci in tests/browser" >&2
  (cd "$DIR" && npm ci --no-audit --no-fund)
fi
