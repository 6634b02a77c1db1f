#!/usr/bin/env python3
"""Start-to-ready time of a Lambda function binary against a local Lambda Runtime API emulator.

For each run the script starts the binary with AWS_LAMBDA_RUNTIME_API pointing at a minimal Runtime
API served here on loopback, and measures:
  init   spawn -> the function's first GET /runtime/invocation/next (ready to take work)
  first  spawn -> the function's answer to the first invocation (a cold start as a caller sees it)
It then stops the process. Bounded: RUNS runs, each at most 20 s. Prints min / median / p90 in ms.

Usage: coldstart.py BINARY EVENT_JSON [RUNS]   (the environment is passed through to the function)
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class State:
    def __init__(self, event: bytes):
        self.event = event
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.ready_at = None
        self.done_at = None
        self.answer = None
        self.served = False
        self.done = threading.Event()


def handler_for(state: State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                self.send_error(404)
                return
            with state.lock:
                first = state.ready_at is None
                if first:
                    state.ready_at = time.perf_counter()
                serve = not state.served
                state.served = True
            if not serve:
                # Only one invocation per run: park the poller until the run ends.
                state.done.wait(20)
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", "coldstart-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:000000000000:function:coldstart")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(state.event)))
            self.end_headers()
            self.wfile.write(state.event)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith(f"{PREFIX}/invocation/") or self.path.startswith(f"{PREFIX}/init/error"):
                with state.lock:
                    state.done_at = time.perf_counter()
                    state.answer = (self.path.rsplit("/", 1)[-1], body[:300])
                state.done.set()
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The function is killed at the end of each run; its broken connections are expected.
        pass


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, event_path = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with open(event_path, "rb") as f:
        event = f.read()
    inits, firsts = [], []
    for i in range(runs):
        # A fresh Runtime API (new port) per run, so a late poll from the previous process is never
        # mistaken for this one's.
        state = State(event)
        server = QuietServer(("127.0.0.1", 0), handler_for(state))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
                   AWS_LAMBDA_FUNCTION_NAME="coldstart", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128")
        start = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finished = state.done.wait(20)
        proc.kill()
        _, err = proc.communicate()
        state.done.set()
        server.shutdown()
        server.server_close()
        if not finished or state.ready_at is None:
            print(f"run {i + 1}: no answer within 20 s; stderr:\n{err.decode(errors='replace')[-2000:]}", file=sys.stderr)
            return 1
        kind, body = state.answer
        if kind != "response":
            print(f"run {i + 1}: the function reported an error: {body!r}", file=sys.stderr)
            return 1
        inits.append((state.ready_at - start) * 1000)
        firsts.append((state.done_at - start) * 1000)
    print(f"binary {binary} ({os.path.getsize(binary) / 1e6:.1f} MB), {runs} runs")
    print(f"answer to the first invocation: {body.decode(errors='replace')}")
    for name, values in (("init  (spawn -> ready)", inits), ("first (spawn -> answered)", firsts)):
        print(f"{name}: min {min(values):.1f} ms, median {statistics.median(values):.1f} ms, "
              f"p90 {pct(values, 90):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
