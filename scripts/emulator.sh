#!/usr/bin/env bash
# The local AWS emulator (moto server: DynamoDB + SQS in one process) for the adapter tests.
# It runs moto_server's entry point through scripts/moto_server.py, which serialises DynamoDB
# requests (moto's DynamoDB backend is not thread-safe; real DynamoDB applies each request atomically).
#   scripts/emulator.sh start    start it (or reset and reuse a live one), wait until it answers
#   scripts/emulator.sh stop     stop the one this script started
#   scripts/emulator.sh status   say whether it runs
# Port: MOTO_PORT (default 5055). Pid file and log under .tools/. Needs scripts/tools.sh first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KOOGALLERY_VENV:-$ROOT/.venv}"
TOOLS="$ROOT/.tools"
PORT="${MOTO_PORT:-5055}"
HOST=127.0.0.1
URL="http://$HOST:$PORT"
PIDFILE="$TOOLS/moto-$PORT.pid"
LOG="$TOOLS/moto-$PORT.log"

print_env() {
  echo "export AWS_ENDPOINT_URL=$URL AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
}

# The pid from the pid file, if that process is still alive.
live_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() {
  curl -fsS -o /dev/null --max-time 2 -X POST "$URL/moto-api/reset"
}

start() {
  mkdir -p "$TOOLS"
  if pid="$(live_pid)"; then
    if answers; then
      echo "emulator: reusing moto (pid $pid) on $URL, state reset" >&2
      print_env
      return 0
    fi
    echo "emulator: pid $pid does not answer on $URL; restarting it" >&2
    stop_quietly
  fi
  if [[ ! -x "$VENV/bin/moto_server" ]]; then
    echo "emulator: $VENV/bin/moto_server missing; run scripts/tools.sh first" >&2
    exit 1
  fi
  if answers 2>/dev/null; then
    echo "emulator: something not started by this script already answers on $URL; set MOTO_PORT" >&2
    exit 1
  fi
  # setsid: the server outlives this shell and gets its own process group (stop kills just that).
  # moto_server's own entry point, with DynamoDB requests serialised (see scripts/moto_server.py).
  setsid "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H "$HOST" -p "$PORT" >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 20))
  until answers 2>/dev/null; do
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
  echo "emulator: moto (pid $(cat "$PIDFILE")) answers on $URL; log: $LOG" >&2
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
  if pid="$(live_pid)"; then
    stop_quietly
    echo "emulator: stopped moto (pid $pid)" >&2
  else
    rm -f "$PIDFILE"
    echo "emulator: not running" >&2
  fi
}

status() {
  if pid="$(live_pid)"; then
    if curl -fsS -o /dev/null --max-time 2 "$URL/moto-api/data.json"; then
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

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
