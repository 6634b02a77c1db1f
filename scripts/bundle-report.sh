#!/usr/bin/env bash
# The Lambda bundle's figures (BENCHMARKS.md, "Lambda bundle"): a cold `make build` timed, then each
# function's bootstrap as `sam build` left it in .aws-sam/build: its size unzipped and zipped
# (deflate, as `sam deploy` zips it) and its checksum, each function's its own. Cold: a fresh cargo
# target directory and no .aws-sam. The cargo --timings report of the build is kept as
# .tools/bundle-timings.html and its slowest units are listed.
# Usage: scripts/bundle-report.sh [TARGET_DIR]   (after `make tools`)
#   TARGET_DIR  the cargo target directory to build in; default a temporary one, deleted at the end
#               (an existing one is used as it is: the build is then not cold)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p .tools
if [[ -n "${1:-}" ]]; then
  target="$(realpath -m "$1")"
else
  target="$(mktemp -d "${TMPDIR:-/tmp}/koogallery-bundle.XXXXXX")"
  trap 'rm -rf "$target"' EXIT
fi
log=.tools/bundle-build.log
rm -rf .aws-sam
echo "bundle: make build, CARGO_TARGET_DIR=$target, at $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (uncommitted changes)'); log: $log" >&2
echo "bundle: load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
start=$(date +%s.%N)
if ! CARGO_TARGET_DIR="$target" /usr/bin/time -v -o .tools/bundle-time.txt \
  make build LAMBDA_BUILD_FLAGS=--timings >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  exit 1
fi
end=$(date +%s.%N)
cp "$target"/cargo-timings/cargo-timing.html .tools/bundle-timings.html

python3 - "$start" "$end" <<'PY'
import hashlib, io, json, os, re, sys, zipfile

start, end = map(float, sys.argv[1:3])
wall = end - start
peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(".tools/bundle-time.txt").read())
print(f"make build: {int(wall // 60)} min {wall % 60:.0f} s wall"
      + (f", peak RSS {int(peak.group(1)) / 1e6:.2f} GB" if peak else ""))

# cargo's timing report: how long the build itself took, and its slowest units.
html = open(".tools/bundle-timings.html").read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
total = re.search(r"<td>Total time:</td><td>([^<]*)</td>", html)
print(f"cargo lambda build: {total.group(1) if total else '?'}; slowest units (s):")
for u in sorted(units, key=lambda u: -u["duration"])[:15]:
    print(f"  {u['duration']:7.1f}  {u['name']} {u.get('target', '').strip()}")

rows, sums = [], set()
build = ".aws-sam/build"
for fn in sorted(os.listdir(build)):
    path = os.path.join(build, fn, "bootstrap")
    if not os.path.isfile(path):
        continue
    data = open(path, "rb").read()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    digest = hashlib.sha256(data).hexdigest()
    sums.add(digest)
    rows.append((len(buf.getvalue()), fn, len(data), digest))
print(f"\n{'function':32} {'unzipped':>9} {'zipped':>9}  sha256")
for zipped, fn, size, digest in sorted(rows):
    print(f"{fn:32} {size / 1e6:6.2f} MB {zipped / 1e6:6.2f} MB  {digest[:12]}")
print(f"{len(rows)} functions, {len(sums)} distinct binaries")
if len(sums) != len(rows):
    sys.exit("two functions got the same binary")
PY
