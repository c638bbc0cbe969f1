#!/usr/bin/env python3
"""Misrouted answers behind an app that leaves bytes on its connections: ancm (lean path and
hyper's path) against nginx, in one run.

    bench/leftover.py [--ancm PATH] [--victims N] [--rounds N] [--clients N] [--seed N]

The app is tests/apps/leftover.py (its one-thread mode, LEFTOVER_LOOP=1), one process behind
each proxy. Concurrent clients, each on a
keep-alive connection of its own, send victim requests (GET /victim/<client>-<n>, answered
"ok /victim/<client>-<n>") interleaved at random with misbehaving ones, as an app misbehaving
under load meets them:

  overlong   GET /late/overlong: the app writes a whole response past its Content-Length
  head-body  HEAD /late/head-body: the app writes a body (a whole response) after the head
  unread     POST /late/unread: the app answers without reading the body, which holds a whole
             request for /smuggled that the app then answers, unasked

A victim whose answer is not its own ("stolen", "ok /smuggled" or another victim's) was
misrouted: it got bytes its proxy took from a connection some other request had left them on.
Two workloads: the three kinds mixed, and the unread body alone; one misbehaving request for
every three victims in each. Each round runs every workload on every proxy in turn (so other
work on the machine weighs on each alike). Prints per proxy and workload the victims, the
misrouted ones and their rate over all rounds and in each, and victims that got an error (a
502, a closed connection) instead.

ancm is $CARGO_TARGET_DIR/release/ancm (or target/release/ancm) unless --ancm says otherwise;
hyper's path is ancm with ANCM_LEAN=off in its environment. nginx is the reference
(`upstream` with keepalive 64, as bench/proxy.conf.in). Everything is on 127.0.0.1, bounded by
the victim count, and stopped at the end. Python 3 standard library only. LEFTOVER_DEBUG=1
prints each misrouted or failed victim and keeps the temporary folder (ancm's and nginx's logs).
"""
import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from helpers import stop  # noqa: E402

APP = os.path.join(ROOT, "tests", "apps", "leftover.py")
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n"
KINDS = {
    "overlong": b"GET /late/overlong HTTP/1.1\r\nHost: site.test\r\n\r\n",
    "head-body": b"HEAD /late/head-body HTTP/1.1\r\nHost: site.test\r\n\r\n",
    "unread": b"POST /late/unread HTTP/1.1\r\nHost: site.test\r\nContent-Length: %d\r\n\r\n%s"
    % (len(SMUGGLED), SMUGGLED),
}
WORKLOADS = {"mix": ["overlong", "head-body", "unread"], "unread": ["unread"]}
NGINX_CONF = """worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream backend {{ server 127.0.0.1:{app}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def log(line):
    print(line, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reader:
    """Reads HTTP/1.1 responses from a socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head_request):
        """(status, body) of the next response."""
        status = int(self.line().split(b" ")[1])
        length, chunked = None, False
        while True:
            line = self.line()
            if not line:
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if head_request or status in (204, 304):
            return status, b""
        if chunked:
            body = b""
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return status, body
                body += self.take(size)
                self.take(2)
        return status, self.take(length or 0)


def client(port, kinds, victims, seed, name, totals, lock):
    rng = random.Random(seed)
    done = misrouted = errors = 0
    sock = reader = None
    n = 0
    while done < victims:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            reader = Reader(sock)
        kind = rng.choice(kinds) if rng.random() < 0.25 else None
        if kind is None:
            n += 1
            path = f"/victim/{name}-{n}"
            request = b"GET %s HTTP/1.1\r\nHost: site.test\r\n\r\n" % path.encode()
        else:
            request = KINDS[kind]
        try:
            sock.sendall(request)
            status, body = reader.response(kind == "head-body")
        except (OSError, ValueError, IndexError):
            status, body = None, b""
        if kind is None:
            done += 1
            if status == 200 and body == f"ok {path}".encode():
                pass
            elif status == 200:
                misrouted += 1
                if os.environ.get("LEFTOVER_DEBUG"):
                    log(f"{path}: {body[:60]!r}")
            else:
                errors += 1
                if os.environ.get("LEFTOVER_DEBUG"):
                    log(f"{path}: error {status} {body[:60]!r}")
        if status is None or (kind is None and status != 200):
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    with lock:
        totals[0] += done
        totals[1] += misrouted
        totals[2] += errors


def load(port, kinds, victims, clients, seed):
    totals, lock = [0, 0, 0], threading.Lock()
    per = victims // clients
    threads = [
        threading.Thread(target=client, args=(port, kinds, per, seed * 1000 + i, i, totals, lock))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return totals


def start_ancm(ancm, app_dir, extra, log_path, env=None):
    out = open(log_path, "w")
    proc = subprocess.Popen(
        [ancm, "run", "--listen", "127.0.0.1:0", *extra, app_dir],
        env={**os.environ, "ANCM_LEAN": "on", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=out,
        start_new_session=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        text = open(log_path).read()
        listen = re.search(r"ancm listening on http://127\.0\.0\.1:(\d+)", text)
        if listen and "Now listening on" in text:
            return proc, int(listen.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"ancm did not start: {open(log_path).read()}")


def wait_port(port):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ancm", default=os.path.join(target, "release", "ancm"))
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--victims", type=int, default=8000, help="per proxy, workload and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="ancm-leftover-")
    procs = []
    try:
        app_dir = os.path.join(tmp, "app")
        os.makedirs(app_dir)
        with open(os.path.join(app_dir, "web.config"), "w") as f:
            f.write(
                '<configuration><system.webServer><aspNetCore processPath="python3" '
                f'arguments="-u {APP}"><environmentVariables>'
                '<environmentVariable name="LEFTOVER_LOOP" value="1"/>'
                "</environmentVariables></aspNetCore></system.webServer></configuration>"
            )
        proxies = {}
        proc, port = start_ancm(args.ancm, app_dir, [], os.path.join(tmp, "lean.log"))
        procs.append(proc)
        proxies["ancm lean"] = port
        proc, port = start_ancm(
            args.ancm, app_dir, [], os.path.join(tmp, "hyper.log"), {"ANCM_LEAN": "off"}
        )
        procs.append(proc)
        proxies["ancm hyper"] = port
        app_port = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-u", APP],
                env={**os.environ, "ASPNETCORE_PORT": str(app_port), "LEFTOVER_LOOP": "1"},
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_port(app_port)
        nginx_dir = os.path.join(tmp, "nginx")
        os.makedirs(nginx_dir)
        nginx_port = free_port()
        conf = os.path.join(nginx_dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=nginx_dir, app=app_port, port=nginx_port))
        procs.append(
            subprocess.Popen(
                [args.nginx, "-c", conf, "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_port(nginx_port)
        proxies["nginx"] = nginx_port
        # Rounds interleave the proxies, so that other work on the machine weighs on each alike.
        totals = {}
        for round_ in range(args.rounds):
            for workload, kinds in WORKLOADS.items():
                for name, port in proxies.items():
                    log(f"round {round_ + 1}, {workload}: {name}")
                    seed = args.seed * 100 + round_
                    done, misrouted, errors = load(port, kinds, args.victims, args.clients, seed)
                    rate = 100.0 * misrouted / done if done else 0.0
                    log(f"  {done} victims, {misrouted} misrouted ({rate:.2f}%), {errors} errors")
                    row = totals.setdefault((workload, name), [0, 0, 0, []])
                    row[0] += done
                    row[1] += misrouted
                    row[2] += errors
                    row[3].append(rate)
        print(
            f"{'workload':<8} {'proxy':<11} {'victims':>8} {'misrouted':>9} {'rate':>7} "
            f"{'errors':>7}  rate in each round"
        )
        for (workload, name), (done, misrouted, errors, rates) in totals.items():
            rate = 100.0 * misrouted / done if done else 0.0
            each = " ".join(f"{r:.2f}%" for r in rates)
            print(
                f"{workload:<8} {name:<11} {done:>8} {misrouted:>9} {rate:>6.2f}% {errors:>7}  {each}"
            )
    finally:
        for proc in reversed(procs):
            stop(proc)
        if os.environ.get("LEFTOVER_DEBUG"):
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
