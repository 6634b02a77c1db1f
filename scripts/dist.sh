#!/usr/bin/env bash
# `make dist`: the host for a Linux server. For each architecture, static (musl) release binaries
# built with cargo-zigbuild (zig links them and compiles ring's C), packed as
#   dist/koogallery-<version>-<arch>-linux-musl.tar.gz
#     bin/<each binary>  koogallery.service  koogallery-443.conf  koogallery.env  INSTALL.md
# and dist/SHA256SUMS over every tarball of that version in dist/.
# A tarball whose content did not change is left as it was (cargo's own fingerprints skip an
# up-to-date build), so `make test` can ask for it every run. The tarballs are reproducible: files
# sorted, owner root, mtime of the last commit, gzip without a name or time.
# Usage: scripts/dist.sh [ARCH...]   (x86_64, aarch64; default both)
# Environment (the Makefile sets them): DIST_DIR, DIST_BINS (required binaries), DIST_OPTIONAL_BINS
# (left out with a warning while the package has no such binary), DIST_PROFILE, CARGO_TARGET_DIR.
# zig and cargo-zigbuild come from the project's venv (scripts/tools.sh): put .venv/bin on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"
DIST_DIR="${DIST_DIR:-$ROOT/dist}"
DIST_BINS="${DIST_BINS:-koogallery-local}"
DIST_OPTIONAL_BINS="${DIST_OPTIONAL_BINS:-}"
DIST_PROFILE="${DIST_PROFILE:-release}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PACKAGE=koogallery-local
PACKAGING="$ROOT/local/dist"

archs=("$@")
if [[ ${#archs[@]} -eq 0 ]]; then
  archs=(x86_64 aarch64)
fi

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
[[ -n "$version" ]] || { echo "dist: no version in Cargo.toml's [workspace.package]" >&2; exit 1; }

# The package's binaries, from cargo's own view of it (not a guess from file names).
have_bins="$(cd "$ROOT" && "$CARGO" metadata --locked --no-deps --format-version 1 |
  python3 -c 'import json, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    if p["name"] == sys.argv[1]:
        print(" ".join(t["name"] for t in p["targets"] if "bin" in t["kind"]))' "$PACKAGE")"
bins=()
for bin in $DIST_BINS; do
  [[ " $have_bins " == *" $bin "* ]] || { echo "dist: $PACKAGE has no binary $bin (it has: $have_bins)" >&2; exit 1; }
  bins+=("$bin")
done
for bin in $DIST_OPTIONAL_BINS; do
  if [[ " $have_bins " == *" $bin "* ]]; then
    bins+=("$bin")
  else
    echo "dist: warning: $PACKAGE has no binary $bin yet: the tarballs leave it out" >&2
  fi
done

for file in koogallery.service koogallery-443.conf koogallery.env INSTALL.md; do
  [[ -f "$PACKAGING/$file" ]] || { echo "dist: $PACKAGING/$file missing" >&2; exit 1; }
done

command -v cargo-zigbuild >/dev/null ||
  { echo "dist: cargo-zigbuild not on PATH (scripts/tools.sh installs it in .venv)" >&2; exit 1; }

mtime="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
mkdir -p "$DIST_DIR"
stage_root="$(mktemp -d)"
trap 'rm -rf "$stage_root"' EXIT

for arch in "${archs[@]}"; do
  case "$arch" in
    x86_64 | aarch64) ;;
    *) echo "dist: unknown architecture $arch (x86_64 or aarch64)" >&2; exit 1 ;;
  esac
  triple="$arch-unknown-linux-musl"
  name="koogallery-$version-$arch-linux-musl"
  # The target's standard library (rustup's; a toolchain without rustup must bring its own).
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
    rustup target add "$triple"
  fi
  echo "dist: building $name (${bins[*]}, profile $DIST_PROFILE)" >&2
  start=$SECONDS
  (cd "$ROOT" && "$CARGO" zigbuild --locked --profile "$DIST_PROFILE" --target "$triple" \
    -p "$PACKAGE" "${bins[@]/#/--bin=}")
  echo "dist: $triple built in $((SECONDS - start)) s" >&2

  stage="$stage_root/$name"
  mkdir -p "$stage/bin"
  for bin in "${bins[@]}"; do
    built="$TARGET_DIR/$triple/$DIST_PROFILE/$bin"
    # Static and of the right architecture, or no package: `file` says both.
    description="$(file -b "$built")"
    case "$arch" in
      x86_64) want="x86-64" ;;
      aarch64) want="ARM aarch64" ;;
    esac
    if [[ "$description" != *"$want"* ]] ||
      [[ "$description" != *"statically linked"* && "$description" != *"static-pie linked"* ]]; then
      echo "dist: $built is not a static $arch binary: $description" >&2
      exit 1
    fi
    install -m 0755 "$built" "$stage/bin/$bin"
    echo "dist:   bin/$bin $(stat -c %s "$built") bytes: $description" >&2
  done
  install -m 0644 "$PACKAGING/koogallery.service" "$PACKAGING/koogallery-443.conf" "$PACKAGING/koogallery.env" \
    "$PACKAGING/INSTALL.md" "$stage/"

  tarball="$DIST_DIR/$name.tar.gz"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    -C "$stage_root" -cf - "$name" | gzip -n -9 >"$stage_root/$name.tar.gz"
  if cmp -s "$stage_root/$name.tar.gz" "$tarball"; then
    echo "dist: $tarball up to date" >&2
  else
    mv "$stage_root/$name.tar.gz" "$tarball"
    echo "dist: wrote $tarball ($(stat -c %s "$tarball") bytes)" >&2
  fi
done

(cd "$DIST_DIR" && sha256sum koogallery-"$version"-*-linux-musl.tar.gz >SHA256SUMS.tmp &&
  mv SHA256SUMS.tmp SHA256SUMS)
echo "dist: $DIST_DIR/SHA256SUMS:" >&2
sed 's/^/dist:   /' "$DIST_DIR/SHA256SUMS" >&2
