#!/usr/bin/env bash
# The local AWS emulator (moto server: DynamoDB + SQS in one process) for the adapter tests.
# It runs moto_server's entry point through scripts/moto_server.py, which serialises DynamoDB
# requests (moto's DynamoDB backend is not thread-safe; real DynamoDB applies each request atomically).
#   scripts/emulator.sh start         start it on MOTO_PORT, or reuse the live one this script started
#                                     there, as it is; wait until it answers; print its variables
#   scripts/emulator.sh stop          stop the one this script started on MOTO_PORT
#   scripts/emulator.sh status        say whether it runs
#   scripts/emulator.sh reset         wipe its state (only while no test suite is using it)
#   scripts/emulator.sh run CMD...    run CMD with the emulator's variables set, then stop the
#                                     emulator if this run started it. Without MOTO_PORT, the run has
#                                     an emulator of its own on a port the OS picks (`make test`).
# Nothing resets a live emulator but `reset`: a test suite may be running against it, and every
# test names its tables, queues and secrets uniquely, so what other runs left there is harmless.
# Port: MOTO_PORT (default 5055 for start, stop, status and reset). Pid files and logs under .tools/.
# Needs scripts/tools.sh first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KOOGALLERY_VENV:-$ROOT/.venv}"
TOOLS="$ROOT/.tools"
HOST=127.0.0.1

# PORT, URL, PIDFILE and LOG for port $1.
use_port() {
  PORT="$1"
  URL="http://$HOST:$PORT"
  PIDFILE="$TOOLS/moto-$PORT.pid"
  LOG="$TOOLS/moto-$PORT.log"
}

print_env() {
  echo "export AWS_ENDPOINT_URL=$URL AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test MOTO_PORT=$PORT"
}

# The pid from the pid file, if that process is still alive.
live_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Whether an HTTP server answers on URL (any status). A read: it changes nothing in a live
# emulator.
answers() {
  local code
  code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$URL/moto-api/" 2>/dev/null)" || true
  [[ -n "$code" && "$code" != 000 ]]
}

# Starts moto on PORT (0: a port the OS picks) and waits until it answers; PORT and the rest then
# name the port it bound. moto_server.py writes that port to a file once it has bound it, so what
# answers there afterwards is this moto, not another program that took the port meanwhile.
launch() {
  if [[ ! -x "$VENV/bin/moto_server" ]]; then
    echo "emulator: $VENV/bin/moto_server missing; run scripts/tools.sh first" >&2
    exit 1
  fi
  local port_file="$TOOLS/moto-launch-$$.port" launch_log="$TOOLS/moto-launch-$$.log"
  rm -f "$port_file"
  # setsid: the server outlives this shell and gets its own process group (stop kills just that).
  KOOGALLERY_MOTO_PORT_FILE="$port_file" \
    setsid "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H "$HOST" -p "$PORT" \
    >"$launch_log" 2>&1 </dev/null &
  local pid=$!
  local deadline=$((SECONDS + 20))
  until [[ -s "$port_file" ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "emulator: moto exited during start-up on port $PORT; last log lines:" >&2
      tail -n 20 "$launch_log" >&2
      rm -f "$launch_log"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "emulator: moto did not bind a port within 20 s; log: $launch_log" >&2
      kill "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  use_port "$(tr -d '[:space:]' <"$port_file")"
  rm -f "$port_file"
  mv "$launch_log" "$LOG"
  echo "$pid" >"$PIDFILE"
  until answers; do
    if ! live_pid >/dev/null; then
      echo "emulator: moto exited during start-up; last log lines:" >&2
      tail -n 20 "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "emulator: moto did not answer on $URL within 20 s; log: $LOG" >&2
      stop_quietly
      exit 1
    fi
    sleep 0.2
  done
  echo "emulator: moto (pid $pid) answers on $URL; log: $LOG" >&2
}

# On MOTO_PORT: reuses the live emulator this script started there (STARTED=0), or starts one
# (STARTED=1).
start_or_reuse() {
  mkdir -p "$TOOLS"
  local pid
  if pid="$(live_pid)"; then
    if answers; then
      echo "emulator: reusing moto (pid $pid) on $URL as it is (not reset: a suite may be using it)" >&2
      STARTED=0
      return 0
    fi
    echo "emulator: pid $pid does not answer on $URL; restarting it" >&2
    stop_quietly
  fi
  if answers; then
    echo "emulator: something not started by this script already answers on $URL; set MOTO_PORT" >&2
    exit 1
  fi
  launch
  STARTED=1
}

start() {
  start_or_reuse
  print_env
}

stop_quietly() {
  local pid
  if pid="$(live_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

stop() {
  local pid
  if pid="$(live_pid)"; then
    stop_quietly
    echo "emulator: stopped moto (pid $pid)" >&2
  else
    rm -f "$PIDFILE"
    echo "emulator: not running" >&2
  fi
}

status() {
  local pid
  if pid="$(live_pid)"; then
    if answers; then
      echo "emulator: running (pid $pid) on $URL" >&2
      print_env
      return 0
    fi
    echo "emulator: pid $pid alive but not answering on $URL" >&2
    return 1
  fi
  echo "emulator: not running" >&2
  return 3
}

reset() {
  local pid
  if ! pid="$(live_pid)"; then
    echo "emulator: not running on $URL" >&2
    return 3
  fi
  curl -fsS -o /dev/null --max-time 10 -X POST "$URL/moto-api/reset"
  echo "emulator: moto (pid $pid) on $URL reset: every table, queue and secret is gone" >&2
}

run() {
  if (($# == 0)); then
    echo "usage: $0 run COMMAND [ARG...]" >&2
    exit 2
  fi
  mkdir -p "$TOOLS"
  STARTED=0
  # Whatever ends the run (the command failing, Ctrl-C), an emulator it started stops with it.
  trap 'if ((STARTED)); then stop_quietly; echo "emulator: stopped moto on $URL" >&2; fi' EXIT
  if [[ -z "${MOTO_PORT:-}" || "${MOTO_PORT}" == 0 ]]; then
    use_port 0
    launch
    STARTED=1
  else
    start_or_reuse
  fi
  export AWS_ENDPOINT_URL="$URL" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test MOTO_PORT="$PORT"
  local status=0
  "$@" || status=$?
  exit "$status"
}

use_port "${MOTO_PORT:-5055}"
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) reset ;;
  run)
    shift
    run "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|reset|run COMMAND [ARG...]" >&2
    exit 2
    ;;
esac
