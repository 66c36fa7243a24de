# SPDX-License-Identifier: MIT
"""Field-day quotas (PROTOCOL.md "Assessment"; docs/assessment.md "Quotas")
through the real daemon on the fast test clock: the `quota` op counts
distinct local dates (+08:00), follows the per-cadre override of the sample
config (leader-1 owes 90 days) and the majority-township rule with its tie
rule; visits with and without an appeal count alike; each month's end makes
one `quota` record per township with a cadre behind, and restarts, SIGKILL
and downtime over month ends never make a second; the alerts reach the
township's prefix and the county's, not the others; `lianxin quota` shows
the table; a field key is refused, a supervisor sees its jurisdiction; the
audit rebuilds the plugin's databases and reports a rewritten record.

Every expected figure is worked out by hand in the comments beside it."""
import datetime as dt
import json
import os
import shutil
import subprocess
import time

import msgpack
import pytest
import zmq

import lxtest
from lxtest import Daemon, appeal, decode_ev, visit
from test_security import request as secure_request, secure  # noqa: F401 (a fixture)

CST = dt.timezone(dt.timedelta(hours=8))
DAY = 86400000
TAMPER = os.path.join(lxtest.BUILD, "tests", "lx-tamper")


def ms(y, mo, d, h=0, mi=0):
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=CST).timestamp() * 1000)


def start(tmp, at_ms, speed=1):
    d = Daemon(tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (at_ms, speed)})
    return d.start()


def visit_by(actor, unit, at, **body):
    ev = visit(unit=unit, **body)
    ev["actor"] = actor
    ev["at"] = at
    return ev


def publish_all(d, events):
    for ev in events:
        r = d.publish(ev)
        assert r["ok"], r


def records(d, kind):
    return [(r["seq"], r["rat"], decode_ev(r)) for r in d.replay_all(types=[kind])[0]]


def rows_of(reply):
    assert reply["ok"], reply
    return [(r["unit"], r["actor"], r["days"], r["expected"], r["required"], r["behind"])
            for r in reply["rows"]]


# The first scenario: at 10 Mar, January and February have ended, so a
# cadre owes ceil(60 x 2 / 12) = 10 days by now, leader-1 ceil(90 x 2 / 12) = 15.
SCENARIO = [
    # c1: 23:59 on 1 Mar and 00:01 on 2 Mar are two local dates (the same UTC
    # date, 1 Mar); 00:01 and 07:30 on 2 Mar are one; a visit dated three
    # days ahead counts on its receive date, 10 Mar: 3 days.
    ("c1", "qd.hx.dy", ms(2026, 3, 1, 23, 59)),
    ("c1", "qd.hx.dy", ms(2026, 3, 2, 0, 1)),
    ("c1", "qd.hx.dy", ms(2026, 3, 2, 7, 30)),
    ("c1", "qd.hx.dy", ms(2026, 3, 13, 12)),
    # c4: 00:30 and 23:30 on 3 Mar are two UTC dates, one local: 1 day.
    ("c4", "qd.nh.hb", ms(2026, 3, 3, 0, 30)),
    ("c4", "qd.nh.hb", ms(2026, 3, 3, 23, 30)),
    # leader-1 (90 a year in the sample config): 1 day.
    ("leader-1", "qd.hx.xc", ms(2026, 3, 2, 7, 30)),
    # c2: 2 visits in hx, 3 in xs: xs; dates 1, 2, 3 Mar and 20 Feb: 4 days.
    ("c2", "qd.hx.dy", ms(2026, 3, 1, 23, 30)),
    ("c2", "qd.hx.dy", ms(2026, 3, 2, 7, 30)),
    ("c2", "qd.xs.sq", ms(2026, 3, 3, 0, 30)),
    ("c2", "qd.xs.sq", ms(2026, 3, 3, 23, 30)),
    ("c2", "qd.xs.sq", ms(2026, 2, 20, 10)),
    # c3: one visit in xs, then one in hx made earlier (20 Feb) and sent
    # later: a tie, and the earliest visit decides: hx, 2 days.
    ("c3", "qd.xs.lq", ms(2026, 3, 1, 23, 30)),
    ("c3", "qd.hx.bl", ms(2026, 2, 20, 10)),
]


def test_days_overrides_townships_and_the_cli(tmp_path):
    d = start(str(tmp_path), ms(2026, 3, 10, 12))
    try:
        publish_all(d, [visit_by(*v) for v in SCENARIO])
        # c5 answers an appeal on its visit: it counts as any visit (1 day, xs);
        # the appeal itself is no visit (its actor cadre-7 is no cadre).
        ap = appeal(unit="qd.xs.gy")
        publish_all(d, [ap, visit_by("c5", "qd.xs.gy", ms(2026, 3, 2, 9),
                                     appeal=ap["body"]["appeal"])])
        before = ms(2026, 3, 10, 12)
        r = d.request({"op": "quota", "year": 2026})
        assert rows_of(r) == [
            ("qd.hx", "c1", 3, 10, 60, True),
            ("qd.hx", "c3", 2, 10, 60, True),
            ("qd.hx", "leader-1", 1, 15, 90, True),
            ("qd.nh", "c4", 1, 10, 60, True),
            ("qd.xs", "c2", 4, 10, 60, True),
            ("qd.xs", "c5", 1, 10, 60, True),
        ]
        assert r["year"] == 2026 and before <= r["as_of"] < before + 600000
        assert rows_of(d.request({"op": "quota", "year": 2026, "unit": "qd.xs"})) == [
            ("qd.xs", "c2", 4, 10, 60, True), ("qd.xs", "c5", 1, 10, 60, True)]
        assert rows_of(d.request({"op": "quota", "year": 2026, "unit": "qd.hx.dy"})) == []
        # 2025 is over: as of its end, nobody visited.
        r = d.request({"op": "quota", "year": 2025})
        assert rows_of(r) == [] and r["as_of"] == ms(2026, 1, 1)
        for bad, key in [({"op": "quota"}, "year"), ({"op": "quota", "year": "2026"}, "year"),
                         ({"op": "quota", "year": 1969}, "year"),
                         ({"op": "quota", "year": 2026, "unit": "qd.zz"}, "unit"),
                         ({"op": "quota", "year": 2026, "unit": ["qd"]}, "unit"),
                         ({"op": "quota", "year": 2026, "yaer": 1}, "yaer")]:
            r = d.request(bad)
            assert r["ok"] is False and r["code"] == "E_BADREQ" and r["error"].startswith(key), (bad, r)
        assert records(d, "quota") == []

        env = dict(os.environ, TZ="Asia/Shanghai")
        p = subprocess.run([lxtest.CLI, "--query", d.query, "quota", "--year", "2026"],
                           capture_output=True, text=True, env=env, timeout=30)
        assert p.returncode == 0, p.stderr
        out = p.stdout
        assert out.startswith("Field days (下沉驻村天数) in 2026, as of 2026-03-10T12:")
        assert "6 cadres, 6 behind" in out.splitlines()[0]
        assert "和兴镇 (qd.hx)" in out and "南湖街道 (qd.nh)" in out and "西山镇 (qd.xs)" in out
        lines = [l.split() for l in out.splitlines() if l.startswith("  ") and "cadre" not in l]
        assert lines[0] == ["c1", "3", "10", "60", "behind"]
        assert lines[2] == ["leader-1", "1", "15", "90", "behind"]
        assert out.index("和兴镇") < out.index("南湖街道") < out.index("西山镇")
        p = subprocess.run([lxtest.CLI, "--query", d.query, "quota", "--json", "--unit", "qd.nh"],
                           capture_output=True, text=True, env=env, timeout=30)
        assert p.returncode == 0, p.stderr
        assert [(r["actor"], r["days"]) for r in json.loads(p.stdout)["rows"]] == [("c4", 1)]
        p = subprocess.run([lxtest.CLI, "--query", d.query, "quota", "--unit", "qd.zz"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "E_BADREQ: unit" in p.stderr
        p = subprocess.run([lxtest.CLI, "--query", d.query, "quota", "--year", "twenty"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "--year" in p.stderr
    finally:
        d.cleanup()


def subscriber(d, prefix):
    s = d.ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    s.connect(d.alerts)
    return s


def quota_alerts(s, wait=1.0):
    out, end = [], time.time() + wait
    while time.time() < end:
        if s.poll(100):
            topic, body = s.recv_multipart()
            a = msgpack.unpackb(body, raw=False)
            if a["kind"] == "quota":
                out.append((topic.decode(), a["unit"], a["year"], a["month"], a["behind"]))
    return out


def wait_quota(d, n, limit=30):
    end = time.time() + limit
    while time.time() < end:
        got = records(d, "quota")
        if len(got) >= n:
            return got
        time.sleep(0.1)
    raise AssertionError("%d quota records after %ds, expected %d" % (len(got), limit, n))


def audit(cfg, data):
    p = subprocess.run([lxtest.CLI, "audit", "--config", cfg, "--data", data],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def flip_in(data, seq, ev_bytes, marker, rechain):
    """Flips the low bit of the byte after `marker` in the stored event at seq."""
    off = ev_bytes.index(marker) + len(marker)
    args = [TAMPER] + (["--rechain"] if rechain else []) + [data, "byte", str(seq), str(off)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_month_ends_once_per_township_across_restarts_and_kills(tmp_path):
    tmp = str(tmp_path)
    # 23:00 on 31 Mar at 600x: March ends 6 s from now.
    d = start(tmp, ms(2026, 3, 31, 23), speed=600)
    subs = {p: subscriber(d, p) for p in ["qd.", "qd.hx.", "qd.nh.", "qd.xs.sq."]}
    try:
        publish_all(d, [visit_by(*v) for v in SCENARIO[:7]])  # c1 3 days, c4 1, leader-1 1
        # c9 visits on 15 dates of March: 15 days, just what is owed at its end.
        publish_all(d, [visit_by("c9", "qd.nh.hb", ms(2026, 3, day, 10)) for day in range(1, 16)])
        got = wait_quota(d, 2)
        time.sleep(1.0)
        got = records(d, "quota")
        # March ends: 60 x 3 / 12 = 15, 90 x 3 / 12 = 22.5 -> 23. nh: c4 is
        # behind (1 < 15), so nh has a record; c9 (15) is not in it.
        assert [(e["unit"], e["body"]) for _, _, e in got] == [
            ("qd.hx", {"year": 2026, "month": 3, "behind": [
                {"actor": "c1", "days": 3, "required": 60, "expected": 15},
                {"actor": "leader-1", "days": 1, "required": 90, "expected": 23}]}),
            ("qd.nh", {"year": 2026, "month": 3, "behind": [
                {"actor": "c4", "days": 1, "required": 60, "expected": 15}]}),
        ]
        assert all(rat >= ms(2026, 4, 1) and e["actor"] == "quota" for _, rat, e in got)
        # Alerts: the county sees both; each township its own; a community none.
        assert [(t, u, m) for t, u, y, m, _ in quota_alerts(subs["qd."])] == [
            ("qd.hx.", "qd.hx", 3), ("qd.nh.", "qd.nh", 3)]
        hx = quota_alerts(subs["qd.hx."], 0.3)
        assert [(t, len(b)) for t, _, _, _, b in hx] == [("qd.hx.", 2)]
        assert [t for t, *_ in quota_alerts(subs["qd.nh."], 0.3)] == ["qd.nh."]
        assert quota_alerts(subs["qd.xs.sq."], 0.3) == []
        for s in subs.values():
            s.close()
        # `lianxin watch` shows them readably, from the log.
        p = subprocess.run([lxtest.CLI, "--query", d.query, "--alerts", d.alerts, "watch",
                            "--from", "1", "--count", "4", "qd."], capture_output=True, text=True,
                           timeout=30, env=dict(os.environ, TZ="Asia/Shanghai"))
        assert p.returncode == 0, p.stderr
        # The month's end also ranks the units (the rank plugin of the sample config).
        lines = [l for l in p.stdout.splitlines() if " ranking " not in l]
        assert lines[0].startswith("2026-04-01T00:") and lines[0].endswith(
            " quota qd.hx (和兴镇) 2026-03 behind: c1 3/15 days (60 a year), leader-1 1/23 days (90 a year)"
            " (replayed)"), lines
        assert lines[1].endswith(" quota qd.nh (南湖街道) 2026-03 behind: c4 1/15 days (60 a year) (replayed)")
        assert d.stop() == 0

        # A restart and a SIGKILL later on 1 Apr: March is not told again.
        d = start(tmp, ms(2026, 4, 1, 1))
        assert len(records(d, "quota")) == 2
        d.kill()
        d = start(tmp, ms(2026, 4, 1, 2))
        time.sleep(0.3)
        assert len(records(d, "quota")) == 2
        d.kill()
        # Down over the ends of April and May: both come at once at start.
        # April: 60 x 4 / 12 = 20, 90 x 4 / 12 = 30, so c9 (15) is behind too;
        # May: 25, 37.5 -> 38.
        d = start(tmp, ms(2026, 6, 2, 10))
        got = wait_quota(d, 6)
        assert [(e["unit"], e["body"]["month"], [(b["actor"], b["expected"]) for b in e["body"]["behind"]])
                for _, _, e in got[2:]] == [
            ("qd.hx", 4, [("c1", 20), ("leader-1", 30)]),
            ("qd.nh", 4, [("c4", 20), ("c9", 20)]),
            ("qd.hx", 5, [("c1", 25), ("leader-1", 38)]),
            ("qd.nh", 5, [("c4", 25), ("c9", 25)]),
        ]
        d.kill()
        d = start(tmp, ms(2026, 6, 2, 11))
        time.sleep(0.3)
        assert len(records(d, "quota")) == 6
        quota_seqs = [(s, e) for s, _, e in records(d, "quota")]
        assert d.stop() == 0
    finally:
        d.cleanup()

    # The audit rebuilds the plugin's databases byte for byte.
    rc, out = audit(lxtest.SAMPLE_CONFIG, d.data)
    assert rc == 0 and "0 discrepancies" in out, out
    # A rewritten quota record, chain and head recomputed: only its
    # recomputation can tell, and the audit shows it.
    seq, ev = quota_seqs[0]
    raw = msgpack.packb(ev, use_bin_type=True)
    for rechain, expect in [(True, "database p.quota.mismatch"), (False, "chain hash differs")]:
        copy = os.path.join(tmp, "forged-%s" % rechain)
        shutil.copytree(d.data, copy)
        flip_in(copy, seq, raw, b"\xa4days", rechain)  # c1's 3 days become 2
        rc, out = audit(lxtest.SAMPLE_CONFIG, copy)
        assert rc == 1 and expect in out, out


def test_field_key_denied_supervisor_narrowed(secure):
    d = secure
    year = dt.datetime.now(CST).year
    now = int(time.time() * 1000)
    for actor, unit in [("c1", "qd.hx.dy"), ("c2", "qd.xs.sq"), ("c3", "qd.nh.hb")]:
        r = secure_request(d, "admin", visit_by(actor, unit, now), d.ingest)
        assert r["ok"], r
    r = secure_request(d, "field-hx", {"op": "quota", "year": year}, d.query)
    assert r["ok"] is False and r["code"] == "E_DENIED", r

    def units(who, **kw):
        r = secure_request(d, who, dict({"op": "quota", "year": year}, **kw), d.query)
        assert r["ok"], r
        return [(x["unit"], x["actor"]) for x in r["rows"]]

    everyone = [("qd.hx", "c1"), ("qd.nh", "c3"), ("qd.xs", "c2")]
    assert units("auditor") == everyone
    assert units("sup-qd") == everyone
    assert units("sup-hx") == [("qd.hx", "c1")]
    assert units("sup-hx", unit="qd") == [("qd.hx", "c1")]
    assert units("sup-hx", unit="qd.xs") == []


def test_sigkill_at_the_month_end_never_doubles(tmp_path):
    # The visits are stored well before the end of March, then copies of the
    # store are started half a second before midnight and SIGKILLed around
    # it: whether March was told before the kill, half told, or not at all,
    # the next start leaves exactly one record per township.
    base = os.path.join(str(tmp_path), "base")
    os.mkdir(base)
    d = start(base, ms(2026, 3, 31, 12))
    publish_all(d, [visit_by(*v) for v in SCENARIO[:7]])
    assert d.stop() == 0
    for i, delay in enumerate([0.2, 0.45, 0.5, 0.55, 0.7, 1.0]):
        tmp = os.path.join(str(tmp_path), "kill-%d" % i)
        shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("*.sock", "daemon.log"))
        d = Daemon(tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:1" % (ms(2026, 4, 1) - 500)})
        t0 = time.time()
        d.start()
        time.sleep(max(0.0, delay - (time.time() - t0)))
        d.kill()
        d = start(tmp, ms(2026, 4, 1, 0, 10))
        try:
            got = wait_quota(d, 2)
            time.sleep(0.3)
            got = records(d, "quota")
            # c1 3 of 15, leader-1 1 of 23 in hx; c4 1 of 15 in nh.
            assert [(e["unit"], e["body"]["month"], len(e["body"]["behind"])) for _, _, e in got] == [
                ("qd.hx", 3, 2), ("qd.nh", 3, 1)], (delay, got)
        finally:
            d.cleanup()
