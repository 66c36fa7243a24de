#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A well-behaved client's ingest rate on an idle daemon, then beside
hostile and careless peers: a SUB to everything that never reads, 1,000
idle DEALER connections, a client that sends and never reads its acks, and
a flood of malformed frames and of 1 MiB frames. Prints both rates, their
ratio, and the daemon's peak RSS. The well-behaved client is lx-loadgen
(4 clients pipelining 256); the hostile peers run in a child process.

On one machine the hostile peers take CPU from the daemon and from the
well-behaved client; on a network they would not. So the busy run is made
twice: with the peers at normal priority, and at nice 19, where they get
only CPU nobody else wants (as peers on other machines would), and for
each run the report gives the CPU the daemon, the peers and the client
used, and the hostile load the peers achieved.

Usage: bench/hostile.py [--build DIR] [--events N]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import multiprocessing

import zmq


def loadgen(build, ep, events):
    """Runs lx-loadgen; returns events/s, its latency line, and its CPU seconds."""
    before = os.times()
    out = subprocess.run([os.path.join(build, "lx-loadgen"), "--ingest", ep, "--mode", "pipe",
                          "--events", str(events)], capture_output=True, text=True, timeout=600)
    after = os.times()
    rate = next(l.split()[1] for l in out.stdout.splitlines() if l.startswith("events/s"))
    lat = next(l for l in out.stdout.splitlines() if l.startswith("latency"))
    cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return float(rate), lat, cpu


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


def cpu_s(pid):
    """User + system CPU seconds of a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peers_main(d, niceness, stop, out):
    """The hostile peers, in a process of their own (so they can be niced
    and their CPU counted apart)."""
    os.nice(niceness)
    ctx = zmq.Context()
    counts = {}
    t0 = time.time()
    hostile(ctx, d, stop, counts)
    ctx.term()
    out.put((counts.get("iterations", 0), time.time() - t0))


def busy_run(args, d, daemon_pid, niceness):
    stop = multiprocessing.Event()
    out = multiprocessing.Queue()
    peers = multiprocessing.Process(target=peers_main, args=(d, niceness, stop, out))
    peers.start()
    time.sleep(1.0)  # the 1,000 connections are up
    c_daemon, c_peers, w0 = cpu_s(daemon_pid), cpu_s(peers.pid), time.time()
    rate, lat, c_client = loadgen(args.build, d["ingest"], args.events)
    wall = time.time() - w0
    cpu = ((cpu_s(daemon_pid) - c_daemon) / wall, (cpu_s(peers.pid) - c_peers) / wall,
           c_client / wall)
    stop.set()
    n, secs = out.get(timeout=60)
    peers.join(30)
    load = ("per second %.0f malformed frames, %.0f MiB of 1 MiB frames, %.0f events never "
            "acked-read" % (4 * n / secs, n / 50 / secs, n / secs))
    return rate, lat, cpu, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--events", type=int, default=200000)
    args = ap.parse_args()
    multiprocessing.set_start_method("fork")
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="lx-hostile-")
    d = {k: "ipc://%s/%s.sock" % (tmp, k) for k in ("ingest", "alerts", "query")}
    proc = subprocess.Popen([os.path.join(args.build, "lianxind"), "--config",
                             os.path.join(src, "config", "lianxin.yaml"), "--data",
                             os.path.join(tmp, "data"), "--ingest", d["ingest"], "--alerts",
                             d["alerts"], "--query", d["query"], "--log-level", "error"])
    try:
        time.sleep(0.5)
        c0, w0 = cpu_s(proc.pid), time.time()
        idle, idle_lat, idle_client = loadgen(args.build, d["ingest"], args.events)
        wall = time.time() - w0
        print("idle daemon:        %9.0f events/s  %s" % (idle, idle_lat))
        print("  CPU (cores):      daemon %.2f, client %.2f" %
              ((cpu_s(proc.pid) - c0) / wall, idle_client / wall))
        print("hostile load:       1,000 idle DEALERs and a deaf SUB, plus the flood below")
        for label, niceness in (("peers at nice 0", 0), ("peers at nice 19", 19)):
            rate, lat, cpu, load = busy_run(args, d, proc.pid, niceness)
            print("beside hostiles, %s:" % label)
            print("  rate:             %9.0f events/s  %s" % (rate, lat))
            print("  ratio:            %.2f (the target is at least 0.80)" % (rate / idle))
            print("  CPU (cores):      daemon %.2f, hostile peers %.2f, client %.2f" % cpu)
            print("  flood:            %s" % load)
        print("daemon peak RSS:    %d KiB" % peak_rss_kb(proc.pid))
        print("daemon alive:       %s" % (proc.poll() is None))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
