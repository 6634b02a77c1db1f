#!/usr/bin/env bash
# `make image`: the container image of the host (local/dist/Containerfile) from a tarball of
# `make dist` (DIST_ARCH's, default this machine's), with buildah (installed from Debian when missing). The build context is made
# here: the tarball's bin/, this machine's CA bundle (Debian's ca-certificates) and an empty data/
# for the volume. tests/dist.rs runs the image with `buildah run --isolation chroot`.
# Environment: DIST_DIR (default dist/), DIST_ARCH (x86_64 or aarch64), IMAGE (default koogallery:latest), BUILDAH (default
# buildah), BUILDAH_ARGS (global buildah flags; default --storage-driver vfs, which works without
# overlayfs, e.g. inside another container).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST_DIR="${DIST_DIR:-$ROOT/dist}"
IMAGE="${IMAGE:-koogallery:latest}"
BUILDAH="${BUILDAH:-buildah}"
read -r -a buildah_args <<<"${BUILDAH_ARGS:---storage-driver vfs}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
name="koogallery-$version-${DIST_ARCH:-$(uname -m)}-linux-musl"
tarball="$DIST_DIR/$name.tar.gz"
[[ -f "$tarball" ]] || { echo "image: $tarball missing: make dist" >&2; exit 1; }
[[ -f "$CA_BUNDLE" ]] || { echo "image: no CA bundle at $CA_BUNDLE (apt-get install ca-certificates)" >&2; exit 1; }
# Debian's buildah, as scripts/browser.sh installs chromium.
if [[ "$BUILDAH" == buildah ]] && ! command -v buildah >/dev/null; then
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "image: install buildah (Debian: apt-get install buildah)" >&2
    exit 1
  fi
  echo "image: installing Debian's buildah" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi
command -v "$BUILDAH" >/dev/null || { echo "image: $BUILDAH not found" >&2; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
tar -xzf "$tarball" -C "$context" --strip-components=1 "$name/bin"
install -m 0644 "$CA_BUNDLE" "$context/ca-certificates.crt"
mkdir -m 0700 "$context/data"
install -m 0644 "$ROOT/local/dist/Containerfile" "$context/Containerfile"

# The image IMAGE named before: removed after the build if the new one replaced it (else every
# `make image` would leave one untagged copy behind).
previous="$("$BUILDAH" "${buildah_args[@]}" images -q --no-trunc "$IMAGE" 2>/dev/null || true)"
"$BUILDAH" "${buildah_args[@]}" bud --isolation chroot --layers=false -f "$context/Containerfile" \
  -t "$IMAGE" "$context"
current="$("$BUILDAH" "${buildah_args[@]}" images -q --no-trunc "$IMAGE")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  "$BUILDAH" "${buildah_args[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
echo "image: built $IMAGE from $tarball" >&2
