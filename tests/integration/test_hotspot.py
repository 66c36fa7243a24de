# SPDX-License-Identifier: MIT
"""Early warning (思想动态预警; PROTOCOL.md "Assessment", docs/assessment.md
"Hotspots") through the real daemon: a burst of 10,000 appeals of one
category in one community, pipelined, makes exactly one `hotspot` record,
right after the fifth appeal, with the figures worked out by hand; its alert
reaches the community's, township's and county's prefixes and no other;
restarts and SIGKILL add nothing; on the fast clock a second hotspot of the
pair comes only once window_days have passed; the audit rebuilds the
plugin's databases and reports a rewritten hotspot record. (The window's
exact edge, to the millisecond, is tested through the mock host in
tests/unit/test_hotspot.c.)"""
import datetime as dt
import os
import shutil
import subprocess
import time

import msgpack
import zmq

import lxtest
from lxtest import Client, appeal, decode_ev
from test_quota import audit, flip_in, ms, records, start, subscriber

DAY = 86400000


def hotspot_alerts(s, wait):
    out, end = [], time.time() + wait
    while time.time() < end:
        if s.poll(100):
            topic, body = s.recv_multipart()
            a = msgpack.unpackb(body, raw=False)
            if a["kind"] == "hotspot":
                out.append((topic.decode(), a))
    return out


def test_burst_of_10000_makes_one_hotspot(tmp_path):
    tmp = str(tmp_path)
    d = start(tmp, int(time.time() * 1000))
    prefixes = ["qd.hx.xc.", "qd.hx.", "qd.", "qd.hx.dy.", "qd.xs.", "qd.hx.xca."]
    subs = {p: subscriber(d, p) for p in prefixes}
    try:
        time.sleep(0.3)  # the subscriptions reach the daemon
        burst = [appeal(unit="qd.hx.xc", category="public-order") for _ in range(10000)]
        with Client(d.ingest) as c:
            acks = c.pipeline(burst, window=512)
        assert all(a["ok"] for a in acks)
        seqs = sorted(a["seq"] for a in acks)
        hot = records(d, "hotspot")
        assert len(hot) == 1, hot
        seq, rat, ev = hot[0]
        first = d.replay_all(**{"from": seqs[0], "to": seqs[0]})[0][0]
        fifth = sorted(seqs)[4]
        # The fifth appeal brings the count to the threshold, 5; nothing came
        # before it, so the baseline is 0.
        assert ev["unit"] == "qd.hx.xc" and ev["actor"] == "hotspot"
        assert ev["body"] == {"category": "public-order", "count": 5, "window_days": 7,
                              "first": first["rat"], "baseline": 0.0}
        assert seq > fifth and rat >= first["rat"]
        got = {p: hotspot_alerts(s, 1.0 if p == "qd.hx.xc." else 0.2) for p, s in subs.items()}
        for p in ["qd.hx.xc.", "qd.hx.", "qd."]:
            assert [(t, a["seq"], a["unit"], a["count"]) for t, a in got[p]] == [
                ("qd.hx.xc.", seq, "qd.hx.xc", 5)], p
        for p in ["qd.hx.dy.", "qd.xs.", "qd.hx.xca."]:
            assert got[p] == [], p
        for s in subs.values():
            s.close()
        p = subprocess.run([lxtest.CLI, "--query", d.query, "--alerts", d.alerts, "watch",
                            "--from", "1", "--count", "1", "qd.hx."], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, TZ="UTC0"))
        assert p.returncode == 0, p.stderr
        since = dt.datetime.fromtimestamp(first["rat"] / 1000, dt.timezone.utc)
        assert p.stdout.rstrip("\n").endswith(
            " seq %d hotspot qd.hx.xc (新村社区) public-order: 5 appeals in 7 days since %s+00:00"
            " (baseline 0.00) (replayed)" % (seq, since.strftime("%Y-%m-%dT%H:%M:%S"))), p.stdout
        assert d.stop() == 0
        d = start(tmp, int(time.time() * 1000))
        assert len(records(d, "hotspot")) == 1
        d.kill()
        d = start(tmp, int(time.time() * 1000))
        time.sleep(0.3)
        assert len(records(d, "hotspot")) == 1
        assert d.stop() == 0
    finally:
        d.cleanup()
    rc, out = audit(lxtest.SAMPLE_CONFIG, d.data)
    assert rc == 0 and "0 discrepancies" in out, out
    # The count rewritten (5 -> 4), chain and head recomputed: the audit's
    # rebuild makes the hotspot again and sees the record differ.
    raw = msgpack.packb(ev, use_bin_type=True)
    copy = os.path.join(tmp, "forged")
    shutil.copytree(d.data, copy)
    flip_in(copy, seq, raw, b"\xa5count", True)
    rc, out = audit(lxtest.SAMPLE_CONFIG, copy)
    assert rc == 1 and "database p.hotspot.mismatch" in out, out


def test_once_per_window_on_the_fast_clock(tmp_path):
    # 500000x: a day is 0.17 s.
    d = start(str(tmp_path), ms(2026, 3, 2, 9), speed=500000)
    try:
        def five():
            evs = [appeal(unit="qd.xs.sq", category="health") for _ in range(5)]
            with Client(d.ingest) as c:
                acks = c.pipeline(evs)
            assert all(a["ok"] for a in acks)
            return acks

        first = five()
        t0 = d.replay_all(**{"from": first[0]["seq"], "to": first[0]["seq"]})[0][0]["rat"]
        five()  # within a day of the first: 10 in the window, but too soon
        hot = records(d, "hotspot")
        assert len(hot) == 1 and hot[0][2]["body"]["count"] == 5
        while True:  # until the daemon's clock is 8 days past the first burst
            probe = d.publish(lxtest.visit())
            rat = d.replay_all(**{"from": probe["seq"], "to": probe["seq"]})[0][0]["rat"]
            if rat > t0 + 8 * DAY:
                break
            time.sleep(0.1)
        five()
        hot = records(d, "hotspot")
        assert len(hot) == 2, hot
        body = hot[1][2]["body"]
        # Window: the five new ones; baseline: the ten of the first day, in the
        # 90 days before the window: 10 x 7 / 90 = 0.78, x 3 = 2.3 < 5.
        assert body["count"] == 5 and abs(body["baseline"] - 10 * 7 / 90) < 1e-9, body
        assert hot[1][1] - hot[0][1] >= 7 * DAY
    finally:
        d.cleanup()
