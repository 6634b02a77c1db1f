#!/usr/bin/env bash
# The host as a server, measured in one run (BENCHMARKS.md, "The host as a server"):
#   1. start-up time: process start to GET /readyz answering 200, median of 5 starts on a fresh
#      data directory each;
#   2. signed queryInstance load over plain HTTP, then over the host's own TLS (a CA and a
#      certificate made here with openssl), same binary, same load generator, same settings;
#      mode `nolog` is plain HTTP with the exchange log off (KOOGALLERY_EXCHANGE_LOG_DAYS=0), so
#      MODES="nolog plain nolog plain" measures what the log costs, alternated in one run;
#      ACTIVITY=newInstance loads newInstance instead (a distinct order per request);
#   3. mode `usage`: POST /usage, 100 000 distinct reports in batches of 1 000 over 4 connections
#      (koogallery-sim usage), plain HTTP.
# HOST_ENV="NAME=VALUE …" gives every host the script starts these settings as well (words split on
# spaces, tabs and newlines, so no value may hold one), e.g. a measurement build's switch or an
# allocator's option. They come after the mode's own settings, so one of the same name wins (as
# with env): KOOGALLERY_EXCHANGE_LOG_DAYS here changes what `nolog` measures. The names the script
# sets itself (KOOGALLERY_LISTEN, _DATA_DIR, _ACCESS_KEY, _KIT_KEY, _USAGE_KEY, _TLS_*) are refused.
# PIN=1 puts the servers (the host, and with CEILING=1 the bare server) on the last CPU and the
# load generator on the others (taskset), so that neither takes the other's CPU.
# Usage: [MODES="plain tls usage"] [ACTIVITY=newInstance] [DURATION=10] [STARTS=0] [CEILING=1 [ROUNDS=n]] [RATE=requests/s] [PIN=1] [HOST_ENV="NAME=VALUE …"] scripts/bench-server.sh [HOST_BINARY]   (default: target/release/koogallery-local;
#        give dist's bin/koogallery-local to measure the packaged one)
# Needs target/release/koogallery-sim (cargo build --release -p koogallery-sim), openssl, curl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST_BIN="${1:-$ROOT/target/release/koogallery-local}"
SIM_BIN="${SIM_BIN:-$ROOT/target/release/koogallery-sim}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
KEY=bench-key
WORK="$(mktemp -d)"
HOST_PID=""
BARE_PID=""
# stop_process PID: stops it and waits for it; a server stopped by the signal is not a failure.
stop_process() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  [[ -n "$BARE_PID" ]] && stop_process "$BARE_PID"
  [[ -n "$HOST_PID" ]] && stop_process "$HOST_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

HOST_SETTINGS=()
read -ra HOST_SETTINGS -d '' <<<"${HOST_ENV:-}" || true
for setting in "${HOST_SETTINGS[@]}"; do
  [[ "$setting" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "HOST_ENV: $setting is not NAME=VALUE" >&2; exit 1; }
  case "${setting%%=*}" in
    KOOGALLERY_LISTEN | KOOGALLERY_DATA_DIR | KOOGALLERY_ACCESS_KEY | KOOGALLERY_KIT_KEY | KOOGALLERY_USAGE_KEY | KOOGALLERY_TLS_*)
      echo "HOST_ENV: ${setting%%=*} is set by this script" >&2
      exit 1
      ;;
  esac
done

SERVER_PIN=()
LOAD_PIN=()
if [[ "${PIN:-0}" != 0 ]]; then
  # The CPUs this script may use (a container's cpuset or a taskset may allow fewer than all).
  allowed=()
  spans=()
  IFS=, read -ra spans < <(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status) || true
  for span in "${spans[@]}"; do
    allowed+=($(seq "${span%-*}" "${span#*-}" 2>/dev/null || true))
  done
  (( ${#allowed[@]} >= 2 )) || { echo "PIN=1 needs two CPUs or more; this script may use ${#allowed[@]}" >&2; exit 1; }
  server_cpu=${allowed[-1]}
  load_cpus=$(IFS=,; echo "${allowed[*]:0:${#allowed[@]}-1}")
  SERVER_PIN=(taskset -c "$server_cpu")
  LOAD_PIN=(taskset -c "$load_cpus")
  echo "# pinned: the servers on CPU $server_cpu, the load generator on CPUs $load_cpus"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for PID LOG EVERY COMMAND…: runs COMMAND every EVERY seconds until it succeeds; if the
# process PID ends first, or 30 s pass, shows LOG and stops the script.
wait_for() {
  local pid="$1" log="$2" every="$3" t0
  shift 3
  t0=$(date +%s%N)
  until "$@" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    (( $(date +%s%N) - t0 < 30000000000 )) || { echo "not ready in 30 s" >&2; cat "$log" >&2; exit 1; }
    sleep "$every"
  done
}

# start DATA_DIR PORT [extra env…]: starts the host in the background (HOST_PID) and waits for
# /readyz; STARTED_MS is how long that took.
start() {
  local data="$1" port="$2" scheme=http curl_tls=()
  shift 2
  local t0
  t0=$(date +%s%N)
  "${SERVER_PIN[@]}" env -i PATH="$PATH" KOOGALLERY_DATA_DIR="$data" KOOGALLERY_LISTEN="127.0.0.1:$port" \
    KOOGALLERY_ACCESS_KEY="$KEY" KOOGALLERY_KIT_KEY=bench-kit RUST_LOG=warn "$@" "${HOST_SETTINGS[@]}" \
    "$HOST_BIN" >"$data.log" 2>&1 &
  HOST_PID=$!
  if [[ " $* " == *KOOGALLERY_TLS_CERT* ]]; then scheme=https; curl_tls=(--cacert "$WORK/ca.pem"); fi
  wait_for "$HOST_PID" "$data.log" 0.002 curl -fsS "${curl_tls[@]}" -o /dev/null "$scheme://localhost:$port/readyz"
  STARTED_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# The host process's CPU time so far (user + system), in milliseconds.
host_cpu_ms() {
  awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$HOST_PID/stat"
}

# Each of the host's threads: its id, its name (one word), its CPU time so far in clock ticks.
thread_cpu() {
  local t
  for t in /proc/"$HOST_PID"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(tr -c 'A-Za-z0-9_\n-' _ <"$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"
  done
}

stop() {
  stop_process "$HOST_PID"
  HOST_PID=""
}

echo "# binary: $HOST_BIN ($(stat -c %s "$HOST_BIN") bytes; $(file -b "$HOST_BIN" | cut -d, -f1-2))"

# five_starts LABEL DIR_PREFIX SAME_DIR: five starts, each stopped at once; prints their times and
# the median. SAME_DIR=1 starts on one data directory (restarts), 0 on a new one each time.
five_starts() {
  local label="$1" same="$2" times=() i sorted
  for i in 1 2 3 4 5; do
    start "$WORK/start$(( same ? 1 : i ))" "$(free_port)"
    times+=("$STARTED_MS")
    stop
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "# $label: ${times[*]} (median ${sorted[2]})"
}
if [[ "${STARTS:-1}" != 0 ]]; then
  five_starts "first start to /readyz 200 (ms; it generates the key files), 5 fresh data dirs" 0
  five_starts "restart to /readyz 200 (ms), 5 starts on one data dir" 1
fi

# A CA and a server certificate for localhost (P-256, as a public CA would issue).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$WORK/key.pem" -out "$WORK/req.pem" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/req.pem" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/cert.pem" 2>/dev/null

round=0
for mode in ${MODES:-plain tls}; do
  port="$(free_port)"
  round=$((round + 1))
  if [[ "$mode" == usage ]]; then
    start "$WORK/$mode$round" "$port" KOOGALLERY_USAGE_KEY=bench-usage-key
    echo "# usage ingestion: 100000 reports, batches of 1000, 4 connections"
    cpu_before=$(host_cpu_ms)
    "${LOAD_PIN[@]}" "$SIM_BIN" usage --url "http://localhost:$port/produce" --key "$KEY" --usage-key bench-usage-key \
      --records 100000 --batch 1000 --connections 4 || echo "# (usage: failed above)"
    sleep 1
    echo "# host CPU: $(( $(host_cpu_ms) - cpu_before )) ms for 100000 reports"
    stop
    continue
  elif [[ "$mode" == nolog ]]; then
    start "$WORK/$mode$round" "$port" KOOGALLERY_EXCHANGE_LOG_DAYS=0
    url="http://localhost:$port/produce"
  elif [[ "$mode" == tls ]]; then
    start "$WORK/$mode$round" "$port" KOOGALLERY_TLS_CERT="$WORK/cert.pem" KOOGALLERY_TLS_KEY="$WORK/key.pem"
    url="https://localhost:$port/produce"
  else
    start "$WORK/$mode$round" "$port"
    url="http://localhost:$port/produce"
  fi
  echo "# ${ACTIVITY:-queryInstance} over $mode: $CONNECTIONS connections, ${DURATION}s"
  cpu_before=$(host_cpu_ms)
  thread_cpu >"$WORK/threads.before"
  # CEILING=1: the same requests to a bare server first, and the ratio (koogallery-sim load --ceiling);
  # ROUNDS=n: the two loaded in turn n times, the ratio the median of the rounds'. With PIN=1 the
  # bare server is started here, on the servers' CPU, and the load is given its address.
  bare=()
  if [[ -n "${CEILING:-}" && ${#SERVER_PIN[@]} -gt 0 ]]; then
    bare_out="$WORK/bare$round.out"
    "${SERVER_PIN[@]}" "$SIM_BIN" ceiling-server --listen 127.0.0.1:0 >"$bare_out" 2>&1 &
    BARE_PID=$!
    wait_for "$BARE_PID" "$bare_out" 0.01 grep -qs '^listening on http://[0-9.]*:[0-9]*$' "$bare_out"
    bare=(--ceiling-server "$(sed -n 's|^listening on http://||p' "$bare_out")")
  fi
  "${LOAD_PIN[@]}" "$SIM_BIN" --ca-cert "$WORK/ca.pem" load --url "$url" --key "$KEY" --activity "${ACTIVITY:-queryInstance}" \
    --connections "$CONNECTIONS" --duration "$DURATION" ${CEILING:+--ceiling} ${CEILING:+${ROUNDS:+--rounds "$ROUNDS"}} ${RATE:+--rate "$RATE"} "${bare[@]}" | tee "$WORK/load.out" || echo "# ($mode: unexpected answers above)"
  if [[ -n "$BARE_PID" ]]; then
    stop_process "$BARE_PID"
    BARE_PID=""
  fi
  # The host's own CPU time per request (user + system, from /proc): what the machine's noise
  # does not move, unlike the rate.
  sleep 1
  cpu_ms=$(( $(host_cpu_ms) - cpu_before ))
  # The host's runs: every run but the bare server's (with CEILING=1 each round has one of each).
  requests=$(awk '/^# ceiling/ {c = 1; s = 0} /^# service/ {s = 1} /requests in/ {if (!c || s) n += $1} END {print n}' "$WORK/load.out")
  echo "# host CPU: ${cpu_ms} ms for ${requests} requests: $(awk -v c="$cpu_ms" -v n="$requests" 'BEGIN { printf "%.1f", c * 1000 / n }') µs a request"
  # The same by thread name (tokio's workers, the replay guard's flusher, the exchange log's):
  # which of the host's threads spend it.
  echo "# host CPU by thread, µs a request: $(thread_cpu | awk -v hz="$(getconf CLK_TCK)" -v n="$requests" '
      NR == FNR { before[$1] = $3; next }
      { c[$2] += $3 - before[$1] }
      END { for (k in c) if (c[k] > 0) printf "%s %.1f; ", k, c[k] * 1e6 / hz / n }' "$WORK/threads.before" -)"
  stop
  if [[ -f "$WORK/$mode$round/exchanges.redb" ]]; then
    # The index and the segments (the log's records), on disk.
    echo "# exchange log: $(du -scb "$WORK/$mode$round"/exchanges.* | tail -1 | cut -f1) bytes; $(grep -c 'exchange log behind' "$WORK/$mode$round.log" || true) warnings of calls not kept"
  fi
done
