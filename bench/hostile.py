#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A well-behaved client's ingest rate on an idle daemon, then beside
hostile and careless peers: a SUB to everything that never reads, 1,000
idle DEALER connections, a client that sends and never reads its acks, and
a flood of malformed frames and of 1 MiB frames. Prints both rates, their
ratio, and the daemon's peak RSS. The well-behaved client is lx-loadgen
(4 clients pipelining 256); the hostile peers run in this process.

Usage: bench/hostile.py [--build DIR] [--events N]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import zmq


def loadgen(build, ep, events):
    out = subprocess.run([os.path.join(build, "lx-loadgen"), "--ingest", ep, "--mode", "pipe",
                          "--events", str(events)], capture_output=True, text=True, timeout=600)
    rate = next(l.split()[1] for l in out.stdout.splitlines() if l.startswith("events/s"))
    lat = next(l for l in out.stdout.splitlines() if l.startswith("latency"))
    return float(rate), lat


def hostile(ctx, d, stop, counts):
    socks = []
    deaf = ctx.socket(zmq.SUB)
    deaf.setsockopt(zmq.SUBSCRIBE, b"")
    deaf.setsockopt(zmq.RCVHWM, 10)
    deaf.connect(d["alerts"])
    socks.append(deaf)
    for _ in range(1000):
        s = ctx.socket(zmq.DEALER)
        s.connect(d["ingest"])
        socks.append(s)
    mute = ctx.socket(zmq.DEALER)
    mute.connect(d["ingest"])
    junk = ctx.socket(zmq.DEALER)
    junk.connect(d["ingest"])
    big = b"\x81\xa1x\xc6" + (1024 * 1024 - 8).to_bytes(4, "big") + b"y" * (1024 * 1024 - 8)
    visit = (b"\x87\xa1v\x01\xa2id\xb0mute-%010d\xa4type\xa5visit\xa2at\xcf\x00\x00\x01\x9c"
             b"\x00\x00\x00\x00\xa4unit\xa8qd.hx.dy\xa5actor\xa1m\xa4body\x82\xa9household"
             b"\xa1h\xa4mode\xa6roving")
    n = 0
    while not stop.is_set():
        n += 1
        for frame in (b"\xc1", b"\x91\x01", b"garbage", b"\xdd\x80\x00\x00\x00"):
            try:
                junk.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                pass
        if n % 50 == 0:
            try:
                junk.send(big, zmq.NOBLOCK)
            except zmq.Again:
                pass
        try:
            mute.send(visit.replace(b"%010d", b"%010d" % n), zmq.NOBLOCK)
        except zmq.Again:
            pass
        while junk.poll(0):
            junk.recv()  # the junk sender reads its errors; the mute one never does
        time.sleep(0.0005)
    counts["iterations"] = n
    for s in socks + [mute, junk]:
        s.close(0)


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--events", type=int, default=200000)
    args = ap.parse_args()
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="lx-hostile-")
    d = {k: "ipc://%s/%s.sock" % (tmp, k) for k in ("ingest", "alerts", "query")}
    proc = subprocess.Popen([os.path.join(args.build, "lianxind"), "--config",
                             os.path.join(src, "config", "lianxin.yaml"), "--data",
                             os.path.join(tmp, "data"), "--ingest", d["ingest"], "--alerts",
                             d["alerts"], "--query", d["query"], "--log-level", "error"])
    try:
        time.sleep(0.5)
        idle, idle_lat = loadgen(args.build, d["ingest"], args.events)
        ctx = zmq.Context()
        stop = threading.Event()
        counts = {}
        t = threading.Thread(target=hostile, args=(ctx, d, stop, counts))
        t.start()
        time.sleep(1.0)
        t0 = time.time()
        busy, busy_lat = loadgen(args.build, d["ingest"], args.events)
        secs = time.time() - t0 + 1.0
        stop.set()
        t.join()
        ctx.term()
        print("idle daemon:      %9.0f events/s  %s" % (idle, idle_lat))
        print("beside hostiles:  %9.0f events/s  %s" % (busy, busy_lat))
        print("ratio:            %.2f (the target is at least 0.80)" % (busy / idle))
        n = counts.get("iterations", 0)
        print("hostile load:     1,000 idle DEALERs, a deaf SUB; per second %.0f malformed frames, "
              "%.0f MiB of 1 MiB frames, %.0f events never acked-read" % (4 * n / secs, n / 50 / secs, n / secs))
        print("daemon peak RSS:  %d KiB" % peak_rss_kb(proc.pid))
        print("daemon alive:     %s" % (proc.poll() is None))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
