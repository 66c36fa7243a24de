#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/web.py: the web gateway's figures (docs/web.md).

  bench/web.py [--build DIR] [--appeals N] [--sse N] [--seconds S] [--procs P]

Starts a real lianxind and lianxin-web on a scratch directory, files N
appeals (30% of them resolved) through the ingest socket, then measures:
  1. gateway requests/s for /api/units and Open311 requests.json (the first
     1000 requests, and a filter that scans every appeal), with P client
     processes on keep-alive connections;
  2. the gateway's resident memory with N SSE clients connected;
  3. the daemon's pipelined ingest rate (lx-loadgen --mode pipe) without and
     with those SSE clients, alternating the two, and the ratio.
Everything runs on this machine, client included: the figures are bounded
by its cores as much as by the gateway."""
import argparse
import base64
import http.client
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("LX_SOURCE_DIR", os.path.join(HERE, ".."))

import lxtest  # noqa: E402
import webtest  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed(d, n):
    cats = lxtest.CATEGORIES
    with d.client("ingest") as c:
        batch = []
        for i in range(n):
            batch.append(lxtest.pack(lxtest.appeal("BA-%07d" % i, unit=lxtest.COMMUNITIES[i % 9],
                                                   category=cats[i % len(cats)])))
            if len(batch) == 5000:
                assert all(r["ok"] for r in c.pipeline(batch, window=512))
                batch = []
        if batch:
            assert all(r["ok"] for r in c.pipeline(batch, window=512))
        res = [lxtest.pack(lxtest.resolution("BA-%07d" % i, unit=lxtest.COMMUNITIES[i % 9]))
               for i in range(0, n, 3)]
        for k in range(0, len(res), 5000):
            assert all(r["ok"] for r in c.pipeline(res[k:k + 5000], window=512))


def hammer(args):
    port, path, auth, seconds = args
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": auth} if auth else {}
    n, end = 0, time.time() + seconds
    while time.time() < end:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        n += 1
    c.close()
    return n


def rate(port, path, auth, seconds, procs):
    with multiprocessing.Pool(procs) as pool:
        t = time.time()
        counts = pool.map(hammer, [(port, path, auth, seconds)] * procs)
        return sum(counts) / (time.time() - t)


def loadgen(build, d, events):
    out = subprocess.run([os.path.join(build, "lx-loadgen"), "--ingest", d.ingest, "--mode", "pipe",
                          "--clients", "4", "--window", "64", "--events", str(events)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"events/s\s+(\d+)", out).group(1))


def open_sse(port, n, auth):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(("GET /api/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % auth).encode())
        socks.append(s)
    for s in socks:  # each got its 200 and the stream's first bytes
        s.settimeout(30)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--appeals", type=int, default=100000)
    ap.add_argument("--sse", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--ingest-events", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3, help="ingest runs without and with SSE clients, alternating")
    a = ap.parse_args()
    lxtest.BUILD = os.path.abspath(a.build)
    lxtest.DAEMON, lxtest.CLI = os.path.join(lxtest.BUILD, "lianxind"), os.path.join(lxtest.BUILD, "lianxin")
    webtest.GATEWAY = os.path.join(lxtest.BUILD, "lianxin-web")
    tmp = webtest.tmpdir()
    cfg = webtest.web_config(tmp, web_extra="  max_connections: %d\n" % (a.sse + 100))
    d = lxtest.Daemon(config=cfg, tmp=tmp).start()
    gw = webtest.Gateway(d, cfg).start()
    auth = "Basic " + base64.b64encode(b"alice:alice-pw").decode()
    try:
        t = time.time()
        seed(d, a.appeals)
        print("seeded      %d appeals (+%d resolutions) in %.1f s" % (a.appeals, (a.appeals + 2) // 3, time.time() - t))
        gw.get("/api/me", "alice")  # the login is cached from here on
        for label, path, who in (("/api/units", "/api/units", auth),
                                 ("requests.json (first 1000)", "/open311/v2/requests.json", None),
                                 ("requests.json?status=closed&service_code=housing (scans all)",
                                  "/open311/v2/requests.json?status=closed&service_code=housing", None)):
            print("%-60s %8.1f req/s" % (label, rate(gw.port, path, who, a.seconds, a.procs)))
        base = rss_kib(gw.proc.pid)
        socks = open_sse(gw.port, a.sse, auth)
        time.sleep(1)
        print("gateway RSS %d KiB idle, %d KiB with %d SSE clients (%.1f KiB each)"
              % (base, rss_kib(gw.proc.pid), a.sse, (rss_kib(gw.proc.pid) - base) / a.sse))
        without, with_ = [], []
        for s in socks:
            s.close()
        gw_cpu = 0.0
        # ABBA order: the store grows with every run, so neither side always
        # runs on the bigger store.
        for r in range(a.rounds):
            for with_sse in ((False, True) if r % 2 == 0 else (True, False)):
                if not with_sse:
                    without.append(loadgen(a.build, d, a.ingest_events))
                    continue
                socks = open_sse(gw.port, a.sse, auth)
                c0 = cpu_s(gw.proc.pid)
                with_.append(loadgen(a.build, d, a.ingest_events))
                gw_cpu += cpu_s(gw.proc.pid) - c0
                assert gw.metrics()["lianxin_web_sse_clients"] >= a.sse
                for s in socks:
                    s.close()
                time.sleep(1)
        w0, w1 = sum(without) / len(without), sum(with_) / len(with_)
        print("ingest pipe without SSE clients: %s events/s (mean %.0f)" % (without, w0))
        print("ingest pipe with %d SSE clients: %s events/s (mean %.0f)" % (a.sse, with_, w1))
        print("ratio with/without: %.3f (target >= 0.9); median ratio %.3f" % (
            w1 / w0, sorted(with_)[len(with_) // 2] / sorted(without)[len(without) // 2]))
        print("gateway CPU during the %d runs with SSE clients: %.2f s" % (a.rounds, gw_cpu))
    finally:
        gw.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
