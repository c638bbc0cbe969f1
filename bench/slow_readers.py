#!/usr/bin/env python3
"""What clients that never read cost a proxy: memory per stalled client, and whether the
memory comes back once they leave. Loopback only, bounded in time, not part of CI.

    bench/slow_readers.py [--clients 500] [--bytes 67108864] [--after 60] [--no-build]

Starts ancm (release build) in front of the sample app and opens CLIENTS connections that each
ask for a BYTES-long /stream response and then never read. Samples ancm's VmRSS before, once
the stalled clients have stopped growing it, and AFTER seconds after they close. With nginx
installed, does the same through nginx configured as bench/proxy.conf.in configures it (its
RSS is the sum of its processes). Prints one line per proxy; the figures are in KiB.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from helpers import READY, stop, vm  # noqa: E402


def log(msg):
    print(f"[slow-readers {time.strftime('%T')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pids):
    return sum(vm(pid, "VmRSS") for pid in pids)


def wait_for(what, check, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"{what} within {limit} s: gave up")


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def settled(pids, limit=30.0):
    """RSS once it has stopped growing: under 1% more over two seconds, or at `limit`."""
    deadline = time.monotonic() + limit
    last = rss(pids)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = rss(pids)
        if now <= last * 1.01:
            return max(now, last)
        last = now
    return last


def stall(port, clients, nbytes):
    """Opens the stalled clients: each sends its request and reads nothing."""
    request = (
        f"GET /stream?bytes={nbytes} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    ).encode()
    held = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        # The smallest receive buffer the kernel grants: the response stays in the proxy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(request)
        held.append(s)
    return held


def measure(name, pids, port, args):
    before = settled(pids, 5)
    log(f"{name}: {before} KiB idle; opening {args.clients} stalled clients")
    held = stall(port, args.clients, args.bytes)
    during = settled(pids)
    log(f"{name}: {during} KiB with them; closing them, waiting {args.after} s")
    for s in held:
        s.close()
    time.sleep(args.after)
    after = rss(pids)
    per_client = (during - before) / args.clients
    print(
        f"{name:6} idle {before:7} KiB  with {args.clients} stalled {during:8} KiB "
        f"({per_client:7.1f} KiB each)  {args.after} s after {after:7} KiB "
        f"({after / before:.2f}x idle)",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--bytes", type=int, default=64 << 20)
    p.add_argument("--after", type=int, default=60)
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        log("building ancm and the sample app (cargo build --release --workspace)")
        subprocess.run(["cargo", "build", "--release", "--workspace"], cwd=ROOT, check=True)
    ancm = os.path.join(target, "release", "ancm")
    sampleapp = os.path.join(target, "release", "sampleapp")

    work = tempfile.mkdtemp(prefix="ancm-slow-readers.")
    procs = []
    try:
        log_path = os.path.join(work, "ancm.log")
        with open(log_path, "w") as out:
            proc = subprocess.Popen(
                [ancm, "run", work, "--listen", "127.0.0.1:0", "--", sampleapp],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )
        procs.append(proc)

        def ready():
            with open(log_path, errors="replace") as f:
                found = READY.findall(f.read())
            if proc.poll() is not None:
                raise SystemExit(f"ancm exited:\n{open(log_path).read()}")
            return found[0] if found else None

        port = int(wait_for("ancm ready", ready, 60)[0])
        measure("ancm", [proc.pid], port, args)
        stop(proc)

        nginx = subprocess.run(["sh", "-c", "command -v nginx || ls /usr/sbin/nginx"],
                               capture_output=True, text=True).stdout.strip()
        if not nginx:
            log("nginx is not installed: measured ancm only")
            return
        app_port, proxy_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASPNETCORE_")}
        env["ASPNETCORE_PORT"] = str(app_port)
        app = subprocess.Popen([sampleapp], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, start_new_session=True)
        procs.append(app)
        os.chmod(work, 0o755)
        for d in ("run", "tmp"):
            os.makedirs(os.path.join(work, d), mode=0o1777, exist_ok=True)
            os.chmod(os.path.join(work, d), 0o1777)
        with open(os.path.join(HERE, "proxy.conf.in")) as f:
            conf = f.read()
        conf = conf.replace("@DIR@", work).replace("@PORT@", str(proxy_port))
        conf = conf.replace("@BACKEND@", str(app_port))
        # Responses stay in nginx's memory buffers, as they stay in ancm's: by default nginx
        # spools them to temporary files, up to 1 GiB per request.
        conf = conf.replace("proxy_http_version 1.1;", "proxy_http_version 1.1;\n            proxy_max_temp_file_size 0;")
        conf_path = os.path.join(work, "run", "proxy.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        proxy = subprocess.Popen(
            [nginx, "-e", "stderr", "-p", work, "-c", conf_path, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        procs.append(proxy)
        wait_for("nginx answering", lambda: answers(proxy_port), 30)
        group = [int(pid) for pid in subprocess.run(
            ["pgrep", "-g", str(proxy.pid)], capture_output=True, text=True
        ).stdout.split()]
        measure("nginx", group, proxy_port, args)
    finally:
        for proc in reversed(procs):
            stop(proc)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
