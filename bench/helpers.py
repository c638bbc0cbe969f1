#!/usr/bin/env python3
"""Small helpers for bench/run.sh (Python 3 standard library only).

    helpers.py freeport                      print a free loopback TCP port
    helpers.py wait-ready LOG PID SECS [N]   wait for ancm's Nth "Now listening on" line in LOG;
                                             print "LISTEN_PORT APP_PID APP_PORT"
    helpers.py status PID                    print VmRSS and VmHWM of PID in KiB
    helpers.py rss-peak PID WHILE_PID        sample PID's VmRSS every 5 ms while WHILE_PID
                                             lives; print the peak in KiB
    helpers.py quiet LIMIT [BUSY%]           wait up to LIMIT s for the machine to be idle
    helpers.py cpu OUT DELAY SPAN NAME=SPEC...  after DELAY s, measure CPU used over SPAN s by
                                             each NAME (SPEC: PID, or -PGID for a process
                                             group) and by the machine; write "NAME PCT" lines
                                             (PCT in % of one core) to OUT
    helpers.py idle HOST PORT N              open N keep-alive connections, one GET each,
                                             print "ready OPEN" and hold them until killed
    helpers.py first-ok PORT LOG -- CMD...   start CMD (own session, output to LOG), time
                                             until GET http://127.0.0.1:PORT/ answers 200;
                                             print ms; leave CMD running, print its pid
    helpers.py recover PORT PGID             SIGKILL process group PGID, time until
                                             GET http://127.0.0.1:PORT/ answers 200; print ms
    helpers.py wrk-parse FILE                print "RPS P50_MS P99_MS ERRORS" from wrk --latency
    helpers.py render RESULTS MD CMD         print the results table, write it as Markdown
    helpers.py cost-run OUT NAME PID [tree] -- WRK...
                                             run WRK (its --latency output) and append
                                             "NAME RPS P99_MS CPU_US SYS_US VOL INVOL CONNS"
                                             to OUT: the CPU time (user+sys, in µs) and context
                                             switches (voluntary, involuntary) per request of
                                             PID's threads (with "tree", also of its
                                             descendants), and the client connections each of
                                             those processes held, busiest first
    helpers.py cost-table RUNS INSTR         print the proxies' median figures from RUNS and
                                             their instructions per request from INSTR
                                             ("NAME N" lines) with the ancm / nginx ratios
"""

import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

# ancm's ready line, written where ancm announces an app ready (src/run.rs today). The tests
# read the same line in tests/support/mod.rs (READY_LINE, parse_ready): change them together.
READY = re.compile(
    r"Now listening on: http://127\.0\.0\.1:(\d+)/ \(app pid (\d+), port (\d+)\)"
)


def freeport():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def wait_ready(log, pid, secs, nth="1"):
    deadline = time.monotonic() + float(secs)
    pid = int(pid)
    want = int(nth)
    while time.monotonic() < deadline:
        try:
            with open(log, errors="replace") as f:
                found = READY.findall(f.read())
        except FileNotFoundError:
            found = []
        if len(found) >= want:
            print(" ".join(found[want - 1]))
            return 0
        if not alive(pid):
            print(f"ancm (pid {pid}) exited before it was ready", file=sys.stderr)
            return 1
        time.sleep(0.01)
    print(f"ancm was not ready within {secs} s", file=sys.stderr)
    return 1


def vm(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def status(pid):
    print(vm(pid, "VmRSS"), vm(pid, "VmHWM"))


def rss_peak(pid, while_pid):
    pid, while_pid = int(pid), int(while_pid)
    peak = vm(pid, "VmRSS")
    while alive(while_pid):
        # A zombie still "lives" for kill(0); stop once it is one.
        try:
            with open(f"/proc/{while_pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        peak = max(peak, vm(pid, "VmRSS"))
        time.sleep(0.005)
    print(peak)


def proc_ticks(spec):
    """CPU ticks (user, system; all threads) of a pid, or of every process in group -spec;
    None for a pid that has gone."""
    spec = int(spec)
    user = system = 0
    pids = [spec] if spec > 0 else [int(p) for p in os.listdir("/proc") if p.isdigit()]
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            if spec > 0:
                return None  # gone: no figure rather than a wrong one
            continue
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        if spec < 0 and int(fields[2]) != -spec:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def machine_ticks():
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts[:8]), parts[3] + parts[4], parts


def quiet(limit, busy_max="25"):
    """Wait (up to LIMIT s) for a 0.5 s window where the machine is at most BUSY_MAX % busy
    (of all cores together); print the seconds waited, or "busy PCT" when it never was."""
    t0 = time.monotonic()
    pct = 100.0
    while True:
        start = time.monotonic()
        a = machine_ticks()
        time.sleep(0.5)
        b = machine_ticks()
        total = b[0] - a[0]
        pct = 100.0 * (1 - (b[1] - a[1]) / total) if total > 0 else 0.0
        if pct <= float(busy_max):
            print(f"{start - t0:.1f}")
            return 0
        if time.monotonic() - t0 >= float(limit):
            print(f"busy {pct:.0f}")
            return 0


def cpu(out, delay, span, *specs):
    named = [s.split("=", 1) for s in specs]
    time.sleep(float(delay))
    t0 = time.monotonic()
    before = {n: proc_ticks(s) for n, s in named}
    m0 = machine_ticks()
    time.sleep(float(span))
    after = {n: proc_ticks(s) for n, s in named}
    m1 = machine_ticks()
    secs = time.monotonic() - t0
    hz = os.sysconf("SC_CLK_TCK")
    # A process that went away during the span gives no figure (and counts under "other").
    named = [(n, spec) for n, spec in named if before[n] is not None and after[n] is not None]
    pct = lambda n, i: 100.0 * (after[n][i] - before[n][i]) / hz / secs
    with open(out, "w") as f:
        for n, _ in named:
            f.write(f"{n} {pct(n, 0) + pct(n, 1):.1f}\n")
            # The kernel's share: system calls (loopback TCP) and the interrupts they take.
            f.write(f"{n}_sys {pct(n, 1):.1f}\n")
        # /proc/stat: user nice system idle iowait irq softirq steal ...; in % of one core.
        total = sum(m1[2][:8]) - sum(m0[2][:8])
        ncpu = os.cpu_count() or 1
        if total > 0:
            share = lambda i: 100.0 * ncpu * (m1[2][i] - m0[2][i]) / total
            busy = 100.0 * ncpu - share(3) - share(4)
            named_sum = sum(pct(n, 0) + pct(n, 1) for n, _ in named)
            irq = share(5) + share(6)
            f.write(f"irq {irq:.1f}\n")
            f.write(f"steal {share(7):.1f}\n")
            # Interrupt time is also charged to the process it interrupted: not subtracted.
            f.write(f"other {max(0.0, busy - share(7) - named_sum):.1f}\n")
            f.write(f"machine {busy:.1f}\n")


async def idle(host, port, n):
    port, n = int(port), int(n)
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    held = []
    failures = 0
    gate = asyncio.Semaphore(100)

    async def one():
        nonlocal failures
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), 30
                )
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if not head.startswith(b"HTTP/1.1 200") or not length:
                    raise ValueError(head[:40])
                await asyncio.wait_for(reader.readexactly(int(length.group(1))), 30)
                held.append(writer)
            except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failures += 1

    await asyncio.gather(*(one() for _ in range(n)))
    print(f"ready {len(held)} failed {failures}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for w in held:
        w.close()


def get_status(port, timeout=30.0):
    """One GET / on a new connection; the status code, or None if it could not connect."""
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            parts = data.split(b" ", 2)
            return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except OSError:
        return None


def until_200(port, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if get_status(port) == 200:
            return True
        time.sleep(0.0005)
    return False


def first_ok(port, log, *cmd):
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    ok = until_200(port)
    ms = (time.perf_counter() - t0) * 1000
    if not ok:
        print(f"no 200 from port {port} within 60 s", file=sys.stderr)
        print(f"fail {proc.pid}")
        return 1
    print(f"{ms:.2f} {proc.pid}")
    return 0


def stop(proc):
    """Stops a process started as the leader of its own group, and its group: SIGTERM, then
    SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def recover(port, pgid):
    t0 = time.perf_counter()
    os.killpg(int(pgid), signal.SIGKILL)
    ok = until_200(port)
    ms = (time.perf_counter() - t0) * 1000
    if not ok:
        print(f"no 200 from port {port} within 60 s after the kill", file=sys.stderr)
        return 1
    print(f"{ms:.2f}")
    return 0


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def wrk_parse(path):
    text = open(path).read()
    rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
    p50 = re.search(r"^\s*50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    if not (rps and p50 and p99):
        print(f"could not parse wrk output {path}", file=sys.stderr)
        return 1
    print(rps.group(1), f"{to_ms(p50.group(1)):.3f}", f"{to_ms(p99.group(1)):.3f}", errors)
    return 0


# ---------------------------------------------------------------- render

def load(path):
    """RESULTS holds "key value..." lines; repeated keys collect several samples."""
    data = {}
    with open(path) as f:
        for line in f:
            parts = line.split(None, 1)
            if len(parts) == 2:
                data.setdefault(parts[0], []).append(parts[1].strip())
    return data


def render(results, md_path, command):
    d = load(results)

    def nums(key):
        out = []
        for v in d.get(key, []):
            try:
                out.append(float(v))
            except ValueError:
                pass
        return out

    def med(key):
        v = nums(key)
        return statistics.median(v) if v else None

    def one(key, default="?"):
        return d.get(key, [default])[-1]

    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    def ratio(a, b):
        return None if a is None or b in (None, 0) else a / b

    def mib(kib):
        return None if kib is None else kib / 1024

    sections = []  # (title, header, rows)
    reps = len(nums("rps_ancm"))
    paths = [("direct", "direct to backend"), ("ancm", "through ancm"), ("nginx", "through nginx proxy")]

    rows = []
    for key, label in paths:
        errs = sum(nums(f"err_{key}"))
        rows.append([label, f(med(f"rps_{key}"), ",.0f"), f(med(f"p50_{key}"), ".3f"),
                     f(med(f"p99_{key}"), ".3f"), f"{errs:.0f}"])
    for other, label in (("nginx", "ancm / nginx proxy"), ("direct", "ancm / direct")):
        rows.append([label] + [f(ratio(med(f"{m}_ancm"), med(f"{m}_{other}")), ".2f") + "x"
                               for m in ("rps", "p50", "p99")] + [""])
    sections.append((f"Small response (GET /, 6-byte body): {one('wrk_cmd')}, median of {reps}",
                     ["path", "requests/s", "p50 ms", "p99 ms", "errors"], rows))

    rows = []
    cpu_names = [("wrk", "wrk"), ("backend", "backend nginx"), ("ancm", "ancm"),
                 ("proxy", "nginx proxy"), ("irq", "irq"), ("steal", "steal"),
                 ("other", "other"), ("machine", "machine busy")]
    for key, label in paths:
        rows.append([label] + [f(med(f"cpu_{key}_{n}"), ".0f") for n, _ in cpu_names])
    sections.append(("CPU during those runs, % of one core (2 cores = 200%), median",
                     ["path"] + [label for _, label in cpu_names], rows,
                     "irq: the kernel's interrupt time (loopback networking), mostly also counted in the"
                     " process it interrupted"))

    # CPU time per request, in µs: what each process spends on one request. With every core
    # busy, requests/s is what the cores give divided by the sum of these.
    def per_request(key, name):
        pct, rps = med(f"cpu_{key}_{name}"), med(f"rps_{key}")
        return None if pct is None or not rps else pct / 100.0 / rps * 1e6

    rows = []
    for key, label in paths:
        proxy = "ancm" if key == "ancm" else "proxy"
        total = per_request(key, "machine")
        rows.append([label, f(per_request(key, "wrk"), ".1f"), f(per_request(key, "backend"), ".1f"),
                     "" if key == "direct" else f(per_request(key, proxy), ".1f"),
                     "" if key == "direct" else f(per_request(key, f"{proxy}_sys"), ".1f"),
                     f(total, ".1f")])
    foot = ""
    rps_nginx, ncpu = med("rps_nginx"), os.cpu_count() or 1
    others = [per_request("ancm", n) for n in ("wrk", "backend")]
    if rps_nginx and None not in others:
        budget = ncpu * 1e6 / (1.2 * rps_nginx)
        foot = (f"At 1.2 x the nginx proxy's requests/s, the {ncpu} cores give {budget:.1f} µs per"
                f" request; wrk and the backend take {sum(others):.1f} of them (through ancm),"
                f" which leaves {budget - sum(others):.1f} µs for ancm, kernel time included;"
                f" nginx as proxy spends {f(per_request('nginx', 'proxy'), '.1f')}.")
    sections.append(("CPU time per request (µs), median",
                     ["path", "wrk", "backend nginx", "proxy", "proxy in the kernel", "machine busy"],
                     rows, foot))

    rows = []
    for key, label in paths:
        rows.append([label, f(med(f"down_{key}"), ",.0f"), f(med(f"up_{key}"), ",.0f")])
    for other, label in (("nginx", "ancm / nginx proxy"), ("direct", "ancm / direct")):
        rows.append([label] + [f(ratio(med(f"{m}_ancm"), med(f"{m}_{other}")), ".2f") + "x"
                               for m in ("down", "up")])
    sections.append((f"Streaming 1 GiB with curl (MB/s = 10^6 bytes/s), median of {len(nums('down_ancm'))}",
                     ["path", "download MB/s", "upload MB/s"], rows))

    rows = [
        ["idle, after start", f(mib(med("rss_idle")), ".1f")],
        ["peak (VmHWM) after the wrk runs", f(mib(med("hwm_after_wrk")), ".1f")],
        ["after the wrk runs", f(mib(med("rss_after_wrk")), ".1f")],
        ["peak during 1 GiB download", f(mib(max(nums("rsspeak_down"), default=None)), ".1f")],
        ["peak during 1 GiB upload", f(mib(max(nums("rsspeak_up"), default=None)), ".1f")],
    ]
    for n in (1000, 10000):
        if f"idle_{n}_open" in d:
            rows.append([f"with {n:,} idle keep-alive connections ({one(f'idle_{n}_open')} open)",
                         f(mib(med(f"rss_idle_{n}")), ".1f")])
        else:
            rows.append([f"with {n:,} idle keep-alive connections", "not run"])
    rows.append(["after those connections closed", f(mib(med("rss_after_idle")), ".1f")])
    sections.append(("ancm memory (main process, RSS in MiB)", ["measure", "MiB"], rows))

    start_ancm, start_app = med("start_ancm"), med("start_app")
    rec = med("recover")
    overhead = None if start_ancm is None or start_app is None else start_ancm - start_app
    rows = [
        ["backend alone: launch to first 200", f(start_app, ".1f")],
        ["ancm run: launch to first proxied 200", f(start_ancm, ".1f")],
        ["start overhead (difference)", f(overhead, ".1f")],
        ["recovery: kill -9 of the app to next 200", f(rec, ".1f")],
        ["recovery minus the backend's own start", f(None if rec is None or start_app is None else rec - start_app, ".1f")],
    ]
    sections.append((f"Start and recovery (ms), median of {len(nums('start_ancm'))}", ["measure", "ms"], rows))

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    def cmp(a, b, op):
        return None if a is None or b is None else op(a, b)

    rps_r = ratio(med("rps_ancm"), med("rps_nginx"))
    rows = [
        ["requests/s >= 1.2 x nginx proxy", f(rps_r, ".2f") + "x",
         verdict(cmp(rps_r, 1.2, lambda a, b: a >= b))],
        ["p99 <= nginx proxy's", f"{f(med('p99_ancm'), '.3f')} vs {f(med('p99_nginx'), '.3f')} ms",
         verdict(cmp(med("p99_ancm"), med("p99_nginx"), lambda a, b: a <= b))],
        ["download >= nginx proxy's", f"{f(med('down_ancm'), ',.0f')} vs {f(med('down_nginx'), ',.0f')} MB/s",
         verdict(cmp(med("down_ancm"), med("down_nginx"), lambda a, b: a >= b))],
        ["upload >= nginx proxy's", f"{f(med('up_ancm'), ',.0f')} vs {f(med('up_nginx'), ',.0f')} MB/s",
         verdict(cmp(med("up_ancm"), med("up_nginx"), lambda a, b: a >= b))],
        ["RSS idle <= 10 MiB", f(mib(med("rss_idle")), ".1f") + " MiB",
         verdict(cmp(mib(med("rss_idle")), 10, lambda a, b: a <= b))],
        ["RSS with 1,000 connections <= 40 MiB", f(mib(med("rss_idle_1000")), ".1f") + " MiB",
         verdict(cmp(mib(med("rss_idle_1000")), 40, lambda a, b: a <= b))],
        ["start overhead <= 10 ms", f(overhead, ".1f") + " ms",
         verdict(cmp(overhead, 10, lambda a, b: a <= b))],
        ["recovery <= app start + 50 ms", f"{f(rec, '.1f')} vs {f(start_app, '.1f')} + 50 ms",
         verdict(cmp(rec, None if start_app is None else start_app + 50, lambda a, b: a <= b))],
    ]
    sections.append(("Targets", ["target", "measured", "result"], rows))

    header = [
        f"ancm vs nginx, {one('date')}",
        f"machine: {one('nproc')} cores, {one('model')}; {one('versions')}",
        f"command: {command}",
    ]

    def plain(title, head, rows, foot=""):
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        lines = [title]
        for r in [head] + rows:
            cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
            lines.append("  " + "  ".join(cells).rstrip())
        if foot:
            lines.append("  " + foot)
        return "\n".join(lines)

    print("\n".join(header))
    for s in sections:
        print()
        print(plain(*s))
    notes = d.get("note", [])
    if notes:
        print()
        print("Notes:")
        for n in notes:
            print(f"  - {n}")

    def markdown(title, head, rows, foot=""):
        lines = [f"### {title}", "", "| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        for r in rows:
            lines.append("| " + " | ".join(str(c) for c in r) + " |")
        if foot:
            lines += ["", foot]
        return "\n".join(lines)

    with open(md_path, "w") as out:
        out.write("# ancm vs nginx: results\n\n")
        out.write(f"- Date: {one('date')}\n")
        out.write(f"- Machine: {one('nproc')} cores, {one('model')}\n")
        out.write(f"- Software: {one('versions')}\n")
        out.write(f"- Command: `{command}`\n\n")
        for s in sections:
            out.write(markdown(*s) + "\n\n")
        if notes:
            out.write("Notes:\n\n" + "".join(f"- {n}\n" for n in notes))
    return 0


# ---------------------------------------------------------------- cost per request

def descendants(root):
    """ROOT and every process below it."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
    found, i = [root], 0
    while i < len(found):
        found += children.get(found[i], [])
        i += 1
    return found


def task_costs(pids):
    """Per thread of PIDS: (user ticks, system ticks, voluntary, involuntary switches)."""
    costs = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                switches = {}
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key.endswith("ctxt_switches"):
                            switches[key] = int(value)
            except (FileNotFoundError, ProcessLookupError):
                continue
            costs[int(tid)] = (int(fields[11]), int(fields[12]),
                               switches.get("voluntary_ctxt_switches", 0),
                               switches.get("nonvoluntary_ctxt_switches", 0))
    return costs


def client_connections(pids, port):
    """How many established connections to PORT each of PIDS holds, busiest first."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    # local address ends in the port (hex); state 01 is ESTABLISHED.
                    if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                        inodes.add(cols[9])
        except FileNotFoundError:
            pass
    held = []
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    n += 1
        except (FileNotFoundError, PermissionError):
            continue
        if n:
            held.append(n)
    return sorted(held, reverse=True)


def cost_run(out, name, pid, *rest):
    tree = rest and rest[0] == "tree"
    rest = rest[1:] if tree else rest
    wrk = list(rest[1:] if rest and rest[0] == "--" else rest)
    port = int(re.search(r":(\d+)/", wrk[-1]).group(1))
    pid = int(pid)
    pids = descendants(pid) if tree else [pid]
    before = task_costs(pids)
    proc = subprocess.Popen(wrk, stdout=subprocess.PIPE, text=True)
    # The connections each process holds, once wrk has opened them all.
    time.sleep(1.0)
    conns = client_connections(pids, port)
    text, _ = proc.communicate()
    after = task_costs(pids)
    if proc.returncode != 0:
        print(f"wrk failed: {text}", file=sys.stderr)
        return 1
    served = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
    p99 = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    if not (served and rps and p99) or int(served.group(1)) == 0:
        print(f"could not read wrk's output: {text}", file=sys.stderr)
        return 1
    n = int(served.group(1))
    # Threads are only compared where they lived through the whole run (none come or go).
    delta = [sum(after[t][i] - before[t][i] for t in after if t in before) for i in range(4)]
    hz = os.sysconf("SC_CLK_TCK")
    with open(out, "a") as f:
        f.write(f"{name} {rps.group(1)} {to_ms(p99.group(1)):.3f}"
                f" {(delta[0] + delta[1]) / hz * 1e6 / n:.2f} {delta[1] / hz * 1e6 / n:.2f}"
                f" {delta[2] / n:.4f} {delta[3] / n:.4f} {'/'.join(map(str, conns)) or '-'}\n")
    return 0


def cost_table(runs, instr):
    figures = {}
    with open(runs) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 8:
                figures.setdefault(parts[0], []).append(parts[1:])
    instructions = {}
    try:
        with open(instr) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    instructions[parts[0]] = float(parts[1])
    except FileNotFoundError:
        pass

    def med(name, i):
        values = [float(r[i]) for r in figures.get(name, [])]
        return statistics.median(values) if values else None

    def row(name):
        vol, invol = med(name, 4), med(name, 5)
        return [med(name, 0), med(name, 1), med(name, 2), med(name, 3),
                None if vol is None else vol + invol, vol, invol, instructions.get(name)]

    fmts = [",.0f", ".2f", ".1f", ".1f", ".3f", ".3f", ".3f", ",.0f"]
    head = ["proxy", "req/s", "p99 ms", "CPU µs/req", "of it sys", "ctx sw/req",
            "voluntary", "involuntary", "instructions/req"]
    rows = []
    for name in ("ancm", "nginx"):
        rows.append([name] + ["n/a" if v is None else format(v, fmt)
                              for v, fmt in zip(row(name), fmts)])
    ratios = []
    for a, b in zip(row("ancm"), row("nginx")):
        ratios.append("n/a" if a is None or not b else f"{a / b:.2f}x")
    rows.append(["ancm / nginx"] + ratios)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    reps = len(figures.get("ancm", []))
    print(f"median of {reps} runs each. Client connections held by each proxy process, run by"
          " run (ancm deals its connections to its threads in turn; nginx's worker processes"
          " accept their own):")
    for name in ("ancm", "nginx"):
        print(f"  {name}: " + ", ".join(r[6] for r in figures.get(name, [])))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "freeport":
        return freeport()
    if cmd == "wait-ready":
        return wait_ready(*args)
    if cmd == "status":
        return status(*args)
    if cmd == "rss-peak":
        return rss_peak(*args)
    if cmd == "quiet":
        return quiet(*args)
    if cmd == "cpu":
        return cpu(*args)
    if cmd == "idle":
        return asyncio.run(idle(*args))
    if cmd == "first-ok":
        return first_ok(*args)
    if cmd == "recover":
        return recover(*args)
    if cmd == "wrk-parse":
        return wrk_parse(*args)
    if cmd == "render":
        return render(*args)
    if cmd == "cost-run":
        return cost_run(*args)
    if cmd == "cost-table":
        return cost_table(*args)
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv) or 0)
    except KeyboardInterrupt:
        sys.exit(130)
