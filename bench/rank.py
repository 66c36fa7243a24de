#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""How long a `rank` request takes over a year of a county's appeals.

Builds a store holding one year (2026, +08:00) of N appeals (default
100,000) spread evenly over the year, each with what a county's year brings:
a first visit (80%), a resolution the next day (resolved 70%, explained 20%,
referred 10%; the other 10% are resolved six days later), feedback on 60% of
the next-day outcomes (one in five unsatisfied, which reopens the appeal; it
is resolved again the day after and then closed). The log is written as a
`lianxin export` file with its hash chain and loaded with `lianxin import
--config` (so escalate and rank apply every record as lianxind would), then
lianxind is started on it in January 2027 and `rank` is asked for the year,
per tier, and for one month, several times each.

Two stores are measured: "warm", where rank saw a record before 2026 began
(the year is read from the plugin's facts database, the normal case), and
"cold", where the first record of the log is in 2026, as when the plugin was
added during the year (the year is then recomputed from a scan of the log).

Usage: bench/rank.py [--build DIR] [--appeals N] [--runs R]
       bench/rank.py --build DIR --compare OTHER_DIR [--rounds N]   (cold store only)"""
import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
CST = dt.timezone(dt.timedelta(hours=8))
DAY = 86400000
COMMUNITIES = ["qd.hx.dy", "qd.hx.xc", "qd.hx.bl", "qd.xs.sq", "qd.xs.lq", "qd.xs.gy",
               "qd.nh.hb", "qd.nh.wh", "qd.nh.yj"]


def ms(*a):
    return int(dt.datetime(*a, tzinfo=CST).timestamp() * 1000)


def events(n, seed=7):
    """(rat, type, unit, body) for the year, in receive order."""
    rnd = random.Random(seed)
    start, year = ms(2026, 1, 1), ms(2027, 1, 1) - ms(2026, 1, 1)
    out = []
    for i in range(n):
        t = start + (year - 8 * DAY) * i // n + 1
        aid, unit = "ap-%06d" % i, rnd.choice(COMMUNITIES)
        out.append((t, "appeal", unit, {"appeal": aid, "household": "hh-%05d" % rnd.randrange(40000),
                                        "category": "jobs", "priority": "normal",
                                        "summary": "needs work near home"}))
        if rnd.random() < 0.8:
            out.append((t + 2 * 3600000, "visit", unit, {"household": "hh-1", "mode": "roving",
                                                         "appeal": aid}))
        if rnd.random() < 0.9:
            x = rnd.random()
            outcome = "resolved" if x < 0.7 else "explained" if x < 0.9 else "referred"
            out.append((t + DAY, "resolution", unit, {"appeal": aid, "outcome": outcome,
                                                      "note": "done"}))
            if rnd.random() < 0.6:
                sat = rnd.random() < 0.8
                out.append((t + 2 * DAY, "feedback", unit, {"appeal": aid, "satisfied": sat}))
                if not sat:
                    out.append((t + 3 * DAY, "resolution", unit,
                                {"appeal": aid, "outcome": "resolved", "note": "again"}))
                    out.append((t + 4 * DAY, "feedback", unit, {"appeal": aid, "satisfied": True}))
        else:
            out.append((t + 6 * DAY, "resolution", unit, {"appeal": aid, "outcome": "resolved",
                                                          "note": "late"}))
    out.sort(key=lambda e: e[0])  # stable: an appeal's own records keep their order
    return out


def write_export(path, evs, warm):
    if warm:  # rank sees a record before the year begins
        evs = [(ms(2025, 12, 31, 12), "visit", "qd.hx.dy",
                {"household": "hh-0", "mode": "periodic"})] + evs
    h = b"\0" * 32
    with open(path, "w") as f:
        for seq, (rat, ty, unit, body) in enumerate(evs, 1):
            ev = {"v": 1, "id": "bench-rank-%010d" % seq, "type": ty, "at": rat, "unit": unit,
                  "actor": "cadre-1", "body": body}
            b = msgpack.packb(ev, use_bin_type=True)
            h = hashlib.blake2b(h + struct.pack(">QQ", seq, rat) + b, digest_size=32).digest()
            f.write(json.dumps({"seq": seq, "rat": rat, "hash": h.hex(), "ev": ev,
                                "ev_msgpack": b.hex()}, ensure_ascii=False) + "\n")
    return len(evs)


def ask(sock, req):
    t0 = time.perf_counter()
    sock.send(msgpack.packb(req))
    if not sock.poll(60000):
        raise SystemExit("no reply to %r" % req)
    r = msgpack.unpackb(sock.recv(), raw=False)
    return time.perf_counter() - t0, r


def cpu_s(pid):
    """The CPU time (user + system) the process has used, in seconds: on a shared machine
    it varies much less than the time a reply takes."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(build, cfg, data, tmp, runs):
    q = "ipc://" + os.path.join(tmp, "q.sock")
    env = dict(os.environ, LIANXIN_FAKE_CLOCK="%d:1" % ms(2027, 1, 5, 9))
    log = open(os.path.join(tmp, "daemon.log"), "ab")
    p = subprocess.Popen([os.path.join(build, "lianxind"), "--config", cfg, "--data", data,
                          "--ingest", "ipc://" + os.path.join(tmp, "i.sock"),
                          "--alerts", "ipc://" + os.path.join(tmp, "a.sock"), "--query", q],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(q)
    try:
        ask(s, {"op": "head"})
        time.sleep(3)  # the year's twelve monthly rankings are appended at start
        rows = {}
        for period, tier in (("2026", "community"), ("2026", "township"), ("2026-11", "community")):
            times = []
            cpu0 = cpu_s(p.pid)
            for _ in range(runs):
                t, r = ask(s, {"op": "rank", "period": period, "tier": tier})
                assert r["ok"], r
                times.append(t)
            cpu = (cpu_s(p.pid) - cpu0) / runs
            received = sum(x["received"] for x in r["ranking"]["rows"])
            times.sort()
            rows[(period, tier)] = (received, times[0], times[len(times) // 2], times[-1], cpu)
        return rows
    finally:
        s.close()
        p.terminate()
        p.wait()
        log.close()


def compare(builds, cfg, tmp, evs, runs, rounds):
    """The cold store under each build in turn, on a fresh copy each time, `rounds` times:
    alternating, so a change in the machine's load falls on every build alike."""
    path, pristine = os.path.join(tmp, "cold.jsonl"), os.path.join(tmp, "cold-pristine")
    write_export(path, evs, False)
    subprocess.run([os.path.join(builds[0], "lianxin"), "import", "--data", pristine,
                    "--config", cfg, path], check=True, stdout=subprocess.DEVNULL)
    os.unlink(path)
    got = {b: [] for b in builds}
    for _ in range(rounds):
        for b in builds:
            data = os.path.join(tmp, "cold")
            shutil.rmtree(data, ignore_errors=True)
            shutil.copytree(pristine, data)
            got[b].append(measure(b, cfg, data, tmp, runs))
    mid = lambda xs: sorted(xs)[len(xs) // 2]
    for b in builds:
        print("cold, %s (%d rounds):" % (b, rounds))
        for key in got[b][0]:
            meds = [r[key][2] * 1e3 for r in got[b]]
            cpus = [r[key][4] * 1e3 for r in got[b]]
            print("  rank %-7s %-9s median of the rounds' medians %6.1f ms (%s); daemon CPU a "
                  "request %6.1f ms" % (key[0], key[1], mid(meds),
                                         " ".join("%.0f" % m for m in sorted(meds)), mid(cpus)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--appeals", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compare", metavar="BUILD", action="append", default=[],
                    help="also time the cold store under this build dir (repeatable), "
                         "alternating with --build for --rounds rounds")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    cfg = os.path.join(HERE, "..", "config", "lianxin.yaml")
    tmp = tempfile.mkdtemp(prefix="lx-bench-rank-")
    try:
        evs = events(a.appeals)
        if a.compare:
            return compare([a.build] + a.compare, cfg, tmp, evs, a.runs, a.rounds)
        for label in ("warm", "cold"):
            path = os.path.join(tmp, label + ".jsonl")
            n = write_export(path, evs, label == "warm")
            data = os.path.join(tmp, label)
            t0 = time.perf_counter()
            subprocess.run([os.path.join(a.build, "lianxin"), "import", "--data", data,
                            "--config", cfg, path], check=True, stdout=subprocess.DEVNULL)
            print("%s: %d records (%d appeals) imported in %.1f s" %
                  (label, n, a.appeals, time.perf_counter() - t0))
            for (period, tier), (recv, lo, med, hi, cpu) in measure(a.build, cfg, data, tmp,
                                                                    a.runs).items():
                print("  rank %-7s %-9s received %6d: min %6.1f ms, median %6.1f ms, max %6.1f ms;"
                      " daemon CPU %6.1f ms a request"
                      % (period, tier, recv, lo * 1e3, med * 1e3, hi * 1e3, cpu * 1e3))
            os.unlink(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
