#!/usr/bin/env python3
"""Whether clients that never read can take an app offline: an app with WORKERS workers (each
serves one connection at a time, as a pool of synchronous workers does), WORKERS clients that
ask for an endless download and read nothing, then CLIENTS ordinary requests. Loopback only,
bounded in time, not part of CI.

    bench/stalled_workers.py [--workers 4] [--clients 12] [--send-timeout 5s] [--wait 30] [--no-build] [--ancm PATH]

Runs ancm twice: with --send-timeout 0 (no send timeout, as before it existed) and with
SEND_TIMEOUT. Prints, for each, how many of the ordinary requests were answered within WAIT
seconds and when the first and last came.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from helpers import READY, stop  # noqa: E402

# The app: WORKERS threads, each accepting one connection and serving it to its end.
APP = r'''
import os, socket, threading
listener = socket.create_server(("127.0.0.1", int(os.environ["ASPNETCORE_PORT"])), backlog=128)
CHUNK = b"x" * 65536
def serve(conn):
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        if request.startswith(b"GET /stream"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Connection: close\r\n\r\n")
            while True:
                conn.sendall(CHUNK)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
def worker():
    while True:
        conn, _ = listener.accept()
        try:
            serve(conn)
        except OSError:
            pass
for _ in range(int(os.environ["WORKERS"])):
    threading.Thread(target=worker, daemon=True).start()
threading.Event().wait()
'''


def log(msg):
    print(f"[stalled-workers {time.strftime('%T')}] {msg}", file=sys.stderr, flush=True)


def wait_ready(log_path, proc, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            found = READY.findall(f.read())
        if found:
            return int(found[0][0])
        if proc.poll() is not None:
            raise SystemExit(f"ancm exited:\n{open(log_path).read()}")
        time.sleep(0.05)
    raise SystemExit("ancm not ready: gave up")


def ask(port, wait, started, results):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1.1 200"):
                results.append(time.monotonic() - started)
    except OSError:
        pass


def run(ancm, app, workers, clients, send_timeout, wait):
    work = tempfile.mkdtemp(prefix="ancm-stalled-workers.")
    log_path = os.path.join(work, "ancm.log")
    env = dict(os.environ, WORKERS=str(workers))
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [ancm, "run", work, "--listen", "127.0.0.1:0", "--send-timeout", send_timeout,
             "--", sys.executable, "-c", app],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    held = []
    try:
        port = wait_ready(log_path, proc)
        for _ in range(workers):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            held.append(s)
        time.sleep(1)  # the stalled downloads reach the app's workers first
        started = time.monotonic()
        results = []
        threads = [threading.Thread(target=ask, args=(port, wait, started, results))
                   for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.sort()
        span = f"first {results[0]:.1f} s, last {results[-1]:.1f} s" if results else "none"
        print(f"--send-timeout {send_timeout:4}: {len(results):2} of {clients} answered "
              f"within {wait} s beside {workers} stalled clients ({span})", flush=True)
    finally:
        for s in held:
            s.close()
        stop(proc)
        subprocess.run(["rm", "-rf", work])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--send-timeout", default="5s")
    p.add_argument("--wait", type=int, default=30)
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--ancm", help="the ancm binary (default: the release build)")
    args = p.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build and not args.ancm:
        log("building ancm (cargo build --release)")
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    ancm = args.ancm or os.path.join(target, "release", "ancm")
    for send_timeout in ("0", args.send_timeout):
        run(ancm, APP, args.workers, args.clients, send_timeout, args.wait)


if __name__ == "__main__":
    main()
