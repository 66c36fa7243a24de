# SPDX-License-Identifier: MIT
"""The rank plugin (PROTOCOL.md "Assessment"), through the real daemon.

Time is scripted: the daemon is started on the test clock
(LIANXIN_FAKE_CLOCK) at chosen moments of November 2026 (+08:00), events are
published, and it is stopped; the next start is later. So every receive time
is known to the second and every figure below is worked out by hand from
the script, not by the code under test. The escalate plugin runs beside
rank, as in the sample config, and its catch-up at each start makes the
escalations the `escalated` figures count.
"""
import contextlib
import datetime as dt
import os
import signal
import subprocess
import time

import pytest

import lxtest
from lxtest import Daemon, appeal, resolution, feedback, visit

CST = dt.timezone(dt.timedelta(hours=8))


def ms(y, mo, d, h=0, mi=0, s=0):
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=CST).timestamp() * 1000)


def config(tmp, rank_entry=None, plugins=("escalate", "rank"), name="rank.yaml"):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    head = text[:text.index("\nplugins:")] + "\nplugins:\n"
    entries = {"escalate": "  - name: escalate\n",
               "rank": rank_entry or ("  - name: rank\n    period: month\n"
                                      "    weights: {response: 0.30, resolution: 0.35, "
                                      "satisfaction: 0.35}\n    list_size: 3\n")}
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "".join(entries[p] for p in plugins))
    return path


class Script:
    """One store, one daemon at a time, each started at a chosen time."""

    def __init__(self, tmp, cfg):
        self.tmp, self.cfg, self.d = tmp, cfg, None

    def at(self, when, speed=1, settle=0.4, cfg=None):
        self.stop()
        self.d = Daemon(config=cfg or self.cfg, tmp=self.tmp,
                        env={"LIANXIN_FAKE_CLOCK": "%d:%s" % (when, speed)}).start()
        time.sleep(settle)  # the plugins' catch-up at start runs first
        return self.d

    def stop(self, sig=signal.SIGTERM):
        if self.d:
            self.d.stop(sig)
            self.d = None

    def pub(self, ev):
        r = self.d.publish(ev)
        assert r["ok"], r
        return r

    def appeal(self, aid, unit, **kw):
        return self.pub(appeal(aid, unit=unit, **kw))

    def rank(self, period, tier, **kw):
        q = {"op": "rank", "period": period, "tier": tier}
        q.update(kw)
        return self.d.request(q)

    def rankings(self):
        recs, _ = self.d.replay_all(types=["ranking"])
        return [(r["seq"], lxtest.unpack(r["ev"])) for r in recs]


# --- the hand-worked November -----------------------------------------------------

# Every appeal but f1 is filed Mon 2 Nov 09:00; its first response is due
# Tue 3 Nov 18:00 (response_days 1), e1's (urgent) at 11:00 the same day.
# Community deadlines (3 working days): Thu 5 Nov 18:00; township 5 more.
def november(s):
    s.at(ms(2026, 10, 30, 10))                       # rank sees its first record in October
    s.pub(visit(unit="qd.hx.dy"))
    s.at(ms(2026, 11, 2, 9))                         # Oct's (empty) rankings are made now
    for aid, unit in [("a1", "qd.hx.dy"), ("a2", "qd.hx.dy"), ("a3", "qd.hx.dy"),
                      ("a4", "qd.hx.dy"), ("b1", "qd.hx.xc"), ("b2", "qd.hx.xc"),
                      ("c1", "qd.xs.sq"), ("c2", "qd.xs.sq"), ("c3", "qd.xs.sq"),
                      ("g1", "qd.xs.lq"), ("d1", "qd.nh.hb")]:
        s.appeal(aid, unit)
    s.appeal("e1", "qd.nh.wh", priority="urgent")
    s.at(ms(2026, 11, 2, 10))                        # in time
    s.pub(visit(unit="qd.hx.dy", appeal="a1"))
    s.pub(resolution("a2", unit="qd.hx.dy"))
    s.pub(visit(unit="qd.hx.xc", appeal="b1"))
    s.pub(resolution("c1", "explained", unit="qd.xs.sq"))
    s.pub(resolution("c2", "referred", unit="qd.xs.sq"))
    s.pub(resolution("g1", "explained", unit="qd.xs.lq"))
    s.pub(visit(unit="qd.nh.hb", appeal="d1"))
    s.at(ms(2026, 11, 2, 13))                        # e1's answer, 2 h late
    s.pub(visit(unit="qd.nh.wh", appeal="e1"))
    s.at(ms(2026, 11, 4, 9))                         # e1 -> township (deadline 3 Nov 18:00)
    s.pub(visit(unit="qd.hx.dy", appeal="a3"))       # late
    s.pub(resolution("b2", unit="qd.hx.xc"))         # late
    s.pub(feedback("a2", True, unit="qd.hx.dy"))     # a2 closed: resolved
    s.pub(feedback("c1", False, unit="qd.xs.sq"))    # c1 reopened, community deadline 9 Nov
    s.pub(resolution("a1", unit="qd.hx.dy"))
    s.at(ms(2026, 11, 6, 9))                         # a3 a4 b1 c3 d1 -> township, e1 -> county
    s.pub(resolution("a3", unit="qd.hx.dy"))
    s.pub(feedback("a1", False, unit="qd.hx.dy"))    # a1 reopened (deadline 11 Nov 18:00)
    s.at(ms(2026, 11, 11, 10))                       # c1 -> township (deadline 9 Nov)
    s.pub(resolution("a1", unit="qd.hx.dy"))         # a1 resolved again ...
    s.pub(feedback("a1", True, unit="qd.hx.dy"))     # ... and closed
    s.pub(resolution("c1", unit="qd.xs.sq"))
    s.pub(feedback("b2", True, unit="qd.hx.xc"))
    s.appeal("f1", "qd.nh.wh")                       # resolved only in December
    # Month's end: a4 b1 c3 d1 reach the county (township deadline 12 Nov),
    # f1 climbs twice (16 Nov, 23 Nov), all at this start, before midnight.
    s.at(ms(2026, 11, 30, 23, 59, 55), settle=7)


def row(unit, received, responded, resolved, explained, referred, escalated, feedback,
        satisfied, reopened, w=(0.30, 0.35, 0.35)):
    r = {"unit": unit, "received": received, "responded": responded, "resolved": resolved,
         "explained": explained, "referred": referred, "escalated": escalated,
         "feedback": feedback, "satisfied": satisfied, "reopened": reopened}
    rates = [responded / received if received else None,
             resolved / received if received else None,
             satisfied / feedback if feedback else None]
    r["response_rate"], r["resolution_rate"], r["satisfaction_rate"] = rates
    used = [(wi, x) for wi, x in zip(w, rates) if x is not None]
    r["score"] = (sum(wi * x for wi, x in used) / sum(wi for wi, _ in used)) if received else None
    return r


# Counted by hand from the script above, as of 1 Dec 00:00 +08:00.
NOV_COMMUNITY = [
    #    unit        recv resp res expl ref esc fb sat reop
    row("qd.hx.dy",  4,   2,   3,  0,   0,  2,  2, 2,  1),   # a1 a2 resp; a3 a4 escalated
    row("qd.hx.xc",  2,   1,   1,  0,   0,  1,  1, 1,  0),   # b2 answered late
    row("qd.nh.hb",  1,   1,   0,  0,   0,  1,  0, 0,  0),   # no feedback: 0.3/0.65
    row("qd.xs.lq",  1,   1,   0,  1,   0,  0,  0, 0,  0),   # same score, same received: path
    row("qd.xs.sq",  3,   2,   1,  0,   1,  2,  1, 0,  1),   # c1 explained != resolved, reopened
    row("qd.nh.wh",  2,   0,   0,  0,   0,  2,  0, 0,  0),   # e1 late, f1 not yet answered
    row("qd.hx.bl",  0,   0,   0,  0,   0,  0,  0, 0,  0),
    row("qd.nh.yj",  0,   0,   0,  0,   0,  0,  0, 0,  0),
    row("qd.xs.gy",  0,   0,   0,  0,   0,  0,  0, 0,  0),
]
NOV_TOWNSHIP = [
    row("qd.hx",     6,   3,   4,  0,   0,  2,  3, 3,  1),   # county reached: a4 b1
    row("qd.xs",     4,   3,   1,  1,   1,  1,  1, 0,  1),   # county reached: c3
    row("qd.nh",     3,   1,   0,  0,   0,  3,  0, 0,  0),   # d1 e1 f1
]


def with_ranks(rows):
    out, n = [], 0
    for r in rows:
        r = dict(r)
        if r["score"] is not None:
            n += 1
            r["rank"] = n
        else:
            r["rank"] = None
        out.append(r)
    return out


def assert_body(body, period, tier, rows, red, black, weights=(0.30, 0.35, 0.35)):
    assert body["period"] == period and body["tier"] == tier
    assert body["weights"] == pytest.approx(dict(zip(("response", "resolution", "satisfaction"),
                                                     weights)))
    want = with_ranks(rows)
    assert [r["unit"] for r in body["rows"]] == [r["unit"] for r in want]
    for got, exp in zip(body["rows"], want):
        for k, v in exp.items():
            if isinstance(v, float):
                assert got[k] == pytest.approx(v), (exp["unit"], k)
            else:
                assert got[k] == v, (exp["unit"], k, got[k], v)
        assert set(got) == set(exp)
    assert body["red"] == red and body["black"] == black


def test_hand_worked_month(tmp_path):
    s = Script(str(tmp_path), config(str(tmp_path)))
    try:
        november(s)
        recs = s.rankings()
        periods = [(b["body"]["period"], b["body"]["tier"]) for _, b in recs]
        assert periods == [("2026-10", "community"), ("2026-10", "township"),
                           ("2026-11", "community"), ("2026-11", "township")], periods
        for _, ev in recs:
            assert ev["unit"] == "qd" and ev["actor"] == "rank"
        # October: no appeals at all: every row is there, nothing is ranked.
        oct_c = recs[0][1]["body"]
        assert [r["unit"] for r in oct_c["rows"]] == sorted(lxtest.COMMUNITIES)
        assert all(r["received"] == 0 and r["score"] is None and r["rank"] is None
                   and r["response_rate"] is None for r in oct_c["rows"])
        assert oct_c["red"] == [] and oct_c["black"] == []
        nov_c, nov_t = recs[2][1]["body"], recs[3][1]["body"]
        assert_body(nov_c, "2026-11", "community", NOV_COMMUNITY,
                    ["qd.hx.dy", "qd.hx.xc", "qd.nh.hb"], ["qd.xs.lq", "qd.xs.sq", "qd.nh.wh"])
        assert_body(nov_t, "2026-11", "township", NOV_TOWNSHIP,
                    ["qd.hx", "qd.xs", "qd.nh"], [])
        # The stored lists equal the recomputation, field for field.
        for _, ev in recs:
            b = ev["body"]
            r = s.rank(b["period"], b["tier"])
            assert r["ok"] and r["final"] is True, r
            assert r["ranking"] == b
        # December: f1 (a November appeal) is resolved; November stays as it was.
        s.at(ms(2026, 12, 2, 10))
        s.pub(resolution("f1", unit="qd.nh.wh"))
        s.pub(feedback("f1", True, unit="qd.nh.wh"))
        assert s.rank("2026-11", "township")["ranking"] == nov_t
        cur = s.rank("2026-12", "community")
        assert cur["ok"] and cur["final"] is False
        assert all(r["received"] == 0 for r in cur["ranking"]["rows"])
        # Without `period`: the current one.
        assert s.d.request({"op": "rank", "tier": "community"})["ranking"]["period"] == "2026-12"
    finally:
        s.stop()
    # The store this script made rebuilds byte for byte, rankings re-checked.
    rc, out = audit(s.cfg, os.path.join(str(tmp_path), "data"))
    assert rc == 0 and "0 discrepancies" in out, out


def test_alert_on_county_topic(tmp_path):
    import zmq
    s = Script(str(tmp_path), config(str(tmp_path)))
    try:
        s.at(ms(2026, 11, 30, 23, 59, 58))
        s.appeal("x1", "qd.hx.dy")
        subs = {}
        for prefix in ("qd.", "qd.hx.", "qd.hx.dy."):
            sub = s.d.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            sub.connect(s.d.alerts)
            subs[prefix] = sub
        time.sleep(4)
        got = []
        while subs["qd."].poll(200):
            topic, body = subs["qd."].recv_multipart()
            a = lxtest.unpack(body)
            if a["kind"] == "ranking":
                got.append((topic, a))
        assert [(t, a["period"], a["tier"]) for t, a in got] == [
            (b"qd.", "2026-11", "community"), (b"qd.", "2026-11", "township")]
        a = got[0][1]
        assert a["unit"] == "qd" and a["red"] == ["qd.hx.dy"] and a["black"] == []
        recs = s.rankings()
        assert [seq for seq, _ in recs] == [a["seq"] for _, a in got]
        for prefix in ("qd.hx.", "qd.hx.dy."):  # a county alert: not for narrower prefixes
            while subs[prefix].poll(200):
                topic, body = subs[prefix].recv_multipart()
                assert lxtest.unpack(body)["kind"] != "ranking"
        for sub in subs.values():
            sub.close()
    finally:
        s.stop()


def count_rankings(s):
    out = {}
    for _, ev in s.rankings():
        k = (ev["body"]["period"], ev["body"]["tier"])
        out[k] = out.get(k, 0) + 1
    return out


def test_restart_and_kill_around_period_end(tmp_path):
    s = Script(str(tmp_path), config(str(tmp_path)))
    try:
        s.at(ms(2026, 11, 30, 23, 59, 59))
        s.appeal("k1", "qd.hx.dy")
        time.sleep(2.5)                      # the end passes while it runs
        s.stop(signal.SIGKILL)
        s.at(ms(2026, 12, 1, 0, 0, 5))       # a restart after the end: nothing new
        s.stop(signal.SIGKILL)
        s.at(ms(2026, 12, 1, 0, 0, 9), settle=0)
        s.stop(signal.SIGKILL)               # killed right at start, maybe mid catch-up
        s.at(ms(2026, 12, 1, 0, 1))
        assert count_rankings(s) == {("2026-11", "community"): 1, ("2026-11", "township"): 1}
        # Downtime over two period ends: both caught up at once, each once.
        s.stop()
        s.at(ms(2027, 2, 3, 9))
        s.stop(signal.SIGKILL)
        s.at(ms(2027, 2, 3, 9, 1))
        got = count_rankings(s)
        assert got == {(p, t): 1 for p in ("2026-11", "2026-12", "2027-01")
                       for t in ("community", "township")}, got
        seqs = [seq for seq, _ in s.rankings()]
        assert seqs == sorted(seqs)
    finally:
        s.stop()


def test_plugin_loaded_after_the_appeals(tmp_path):
    """Appeals filed and answered before rank was loaded count in full."""
    tmp = str(tmp_path)
    s = Script(tmp, config(tmp, plugins=("escalate",), name="norank.yaml"))
    try:
        s.at(ms(2026, 11, 2, 9))
        s.appeal("p1", "qd.hx.dy")
        s.appeal("p2", "qd.hx.dy")
        s.appeal("p3", "qd.xs.sq")
        s.at(ms(2026, 11, 2, 10))
        s.pub(visit(unit="qd.hx.dy", appeal="p1"))
        s.pub(resolution("p1", unit="qd.hx.dy"))
        s.pub(resolution("p3", "explained", unit="qd.xs.sq"))
        s.pub(feedback("p3", False, unit="qd.xs.sq"))     # reopened
        # rank joins; p2 is answered late and resolved after it joined.
        s.cfg = config(tmp)
        s.at(ms(2026, 11, 4, 10))
        s.pub(resolution("p2", unit="qd.hx.dy"))
        s.pub(feedback("p2", True, unit="qd.hx.dy"))
        s.pub(resolution("p3", unit="qd.xs.sq"))
        s.at(ms(2026, 12, 1, 0, 0, 1), settle=1.5)
        recs = s.rankings()
        assert [(e["body"]["period"], e["body"]["tier"]) for _, e in recs] == [
            ("2026-11", "community"), ("2026-11", "township")]
        rows = {r["unit"]: r for r in recs[0][1]["body"]["rows"]}
        dy, sq = rows["qd.hx.dy"], rows["qd.xs.sq"]
        assert (dy["received"], dy["responded"], dy["resolved"], dy["feedback"],
                dy["satisfied"]) == (2, 1, 2, 1, 1)
        assert dy["score"] == pytest.approx(0.3 * 0.5 + 0.35 * 1 + 0.35 * 1)
        assert (sq["received"], sq["responded"], sq["resolved"], sq["explained"],
                sq["reopened"], sq["feedback"], sq["satisfied"]) == (1, 1, 1, 0, 1, 1, 0)
        assert sq["score"] == pytest.approx(0.3 + 0.35)
        assert recs[0][1]["body"]["red"] == ["qd.hx.dy", "qd.xs.sq"]
        for _, e in recs:
            assert s.rank(e["body"]["period"], e["body"]["tier"])["ranking"] == e["body"]
    finally:
        s.stop()


def test_weights_not_summing_to_one(tmp_path):
    tmp = str(tmp_path)
    entry = ("  - name: rank\n    weights: {response: 3, resolution: 1}\n    list_size: 1\n")
    s = Script(tmp, config(tmp, entry))
    try:
        s.at(ms(2026, 11, 2, 9))
        for aid, unit in [("w1", "qd.hx.dy"), ("w2", "qd.hx.dy"), ("w3", "qd.xs.sq"),
                          ("w4", "qd.nh.hb")]:
            s.appeal(aid, unit)
        s.pub(resolution("w1", unit="qd.hx.dy"))         # responded and resolved
        s.pub(feedback("w1", False, unit="qd.hx.dy"))    # satisfaction weighs nothing here
        s.pub(visit(unit="qd.xs.sq", appeal="w3"))
        r = s.rank("2026-11", "community")["ranking"]
        assert r["weights"] == pytest.approx({"response": 0.75, "resolution": 0.25,
                                              "satisfaction": 0.0})
        got = {x["unit"]: x for x in r["rows"]}
        # dy: response 1/2, resolution 0 (reopened); sq: 1, 0; hb: 0, 0.
        assert got["qd.hx.dy"]["score"] == pytest.approx(0.75 * 0.5)
        assert got["qd.xs.sq"]["score"] == pytest.approx(0.75)
        assert got["qd.nh.hb"]["score"] == pytest.approx(0.0)
        assert [x["unit"] for x in r["rows"][:3]] == ["qd.xs.sq", "qd.hx.dy", "qd.nh.hb"]
        assert r["red"] == ["qd.xs.sq"] and r["black"] == ["qd.nh.hb"]
    finally:
        s.stop()


@pytest.mark.parametrize("entry,where,why", [
    ("    weights: {response: -0.3, resolution: 0.35}\n", "plugins[1].weights.response", "0 or more"),
    ("    weights: {response: lots}\n", "plugins[1].weights.response", "0 or more"),
    ("    weights: {speed: 1}\n", "plugins[1].weights.speed", "unknown weight"),
    ("    weights: {response: 0, resolution: 0}\n", "plugins[1].weights", "above 0"),
    ("    weights: [0.3, 0.3]\n", "plugins[1].weights", "map"),
    ("    period: week\n", "plugins[1].period", "month, quarter or year"),
    ("    list_size: 0\n", "plugins[1].list_size", "1 to 1000"),
    ("    colour: red\n", "plugins[1].colour", "unknown key"),
])
def test_bad_settings_name_file_and_line(tmp_path, entry, where, why):
    path = config(str(tmp_path), "  - name: rank\n" + entry)
    with open(path, encoding="utf-8") as f:
        line = f.read().splitlines().index(entry.rstrip("\n")) + 1
    d = Daemon(config=path, tmp=str(tmp_path))  # plugins check their keys at start
    p = subprocess.run(d.args(), capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "%s:%d: %s: " % (path, line, where) in p.stderr and why in p.stderr, p.stderr


@pytest.mark.parametrize("req,code,names", [
    ({"period": "2026-13", "tier": "community"}, "E_BADREQ", "period"),
    ({"period": "2026-Q5", "tier": "community"}, "E_BADREQ", "period"),
    ({"period": "26-11", "tier": "community"}, "E_BADREQ", "period"),
    ({"period": "2026-11-01", "tier": "community"}, "E_BADREQ", "period"),
    ({"period": 202611, "tier": "community"}, "E_BADREQ", "period"),
    ({"period": "2026-11", "tier": "county"}, "E_BADREQ", "tier"),
    ({"period": "2026-11"}, "E_BADREQ", "tier"),
    ({"period": "2026-11", "tier": "township", "unit": "qd.hx"}, "E_BADREQ", "unit"),
])
def test_bad_rank_requests(req, code, names):
    with contextlib.contextmanager(lxtest.running_daemon)() as d:
        q = {"op": "rank"}
        q.update(req)
        r = d.request(q)
        assert r["ok"] is False and r["code"] == code and r["error"].startswith(names), r


def test_quarter_and_year_periods(tmp_path):
    s = Script(str(tmp_path), config(str(tmp_path)))
    try:
        s.at(ms(2026, 11, 2, 9))
        s.appeal("q1", "qd.hx.dy")
        s.pub(visit(unit="qd.hx.dy", appeal="q1"))
        for period in ("2026-Q4", "2026"):
            r = s.rank(period, "township")
            assert r["ok"] and r["final"] is False and r["ranking"]["period"] == period
            hx = [x for x in r["ranking"]["rows"] if x["unit"] == "qd.hx"][0]
            assert (hx["received"], hx["responded"], hx["rank"]) == (1, 1, 1)
        r = s.rank("2026-Q3", "township")
        assert r["final"] is True and all(x["received"] == 0 for x in r["ranking"]["rows"])
    finally:
        s.stop()


# --- security: field keys refused, supervisors narrowed -----------------------------

from test_security import secure, request as sec_request, publish as sec_publish  # noqa: E402,F401


def test_field_denied_supervisor_narrowed(secure):
    d = secure
    for aid, unit in [("s1", "qd.hx.dy"), ("s2", "qd.xs.sq"), ("s3", "qd.nh.hb")]:
        r = sec_publish(d, "admin", appeal(aid, unit=unit))
        assert r["ok"], r
    q = {"op": "rank", "tier": "community"}
    r = sec_request(d, "field-hx", q, d.query)
    assert r["ok"] is False and r["code"] == "E_DENIED", r
    full = sec_request(d, "auditor", q, d.query)["ranking"]
    assert sorted(x["unit"] for x in full["rows"]) == sorted(lxtest.COMMUNITIES)
    mine = sec_request(d, "sup-hx", q, d.query)["ranking"]
    assert [x["unit"] for x in mine["rows"]] == [x["unit"] for x in full["rows"]
                                                  if x["unit"].startswith("qd.hx.")]
    # Ranks stay county-wide; the lists name only units in the jurisdiction.
    assert {x["unit"]: x["rank"] for x in mine["rows"]} == {
        x["unit"]: x["rank"] for x in full["rows"] if x["unit"].startswith("qd.hx.")}
    assert all(u.startswith("qd.hx.") for u in mine["red"] + mine["black"])
    assert set(full["red"]) & {"qd.hx.dy"} <= set(mine["red"])
    town = sec_request(d, "sup-hx", {"op": "rank", "tier": "township"}, d.query)["ranking"]
    assert [x["unit"] for x in town["rows"]] == ["qd.hx"]
    county = sec_request(d, "sup-qd", {"op": "rank", "tier": "township"}, d.query)["ranking"]
    assert len(county["rows"]) == 3


# --- the audit -------------------------------------------------------------------------

TAMPER = os.path.join(lxtest.BUILD, "tests", "lx-tamper")


def audit(cfg, data):
    p = subprocess.run([lxtest.CLI, "audit", "--config", cfg, "--data", data],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_audit_rebuilds_and_rechecks_rankings(tmp_path):
    tmp = str(tmp_path)
    cfg = config(tmp)
    s = Script(tmp, cfg)
    try:
        s.at(ms(2026, 10, 30, 10))
        s.pub(visit(unit="qd.hx.dy"))
        s.at(ms(2026, 11, 2, 9))
        for aid, unit in [("t1", "qd.hx.dy"), ("t2", "qd.xs.sq"), ("t3", "qd.nh.hb")]:
            s.appeal(aid, unit)
        s.pub(visit(unit="qd.hx.dy", appeal="t1"))
        s.pub(resolution("t2", unit="qd.xs.sq"))
        s.pub(feedback("t2", False, unit="qd.xs.sq"))
        s.at(ms(2026, 11, 30, 23, 59, 58), settle=3)
        recs = s.rankings()
        assert len(recs) == 4
        rc, out = audit(cfg, s.d.data)               # beside the serving daemon
        assert rc == 0 and "0 discrepancies" in out, out
    finally:
        s.stop()
    rc, out = audit(cfg, os.path.join(tmp, "data"))   # and stopped
    assert rc == 0, out
    # A forger changes one figure of November's community ranking and
    # rewrites the chain after it: the chain holds, the re-check does not.
    data = os.path.join(tmp, "data")
    seq, ev = recs[2]
    assert ev["body"]["period"] == "2026-11" and ev["body"]["tier"] == "community"
    import shutil
    for rechain, expect in ((True, "seq %d: ranking record: rows: the row of qd.hx.dy differs" % seq),
                            (False, "seq %d: chain hash differs" % seq)):
        copy = os.path.join(tmp, "forged-%s" % rechain)
        shutil.copytree(data, copy)
        # The stored bytes are the daemon's; find dy's `received` in them.
        off = find_received(copy, seq)
        args = [TAMPER] + (["--rechain"] if rechain else []) + [copy, "byte", str(seq), str(off)]
        subprocess.run(args, check=True, capture_output=True)
        rc, out = audit(cfg, copy)
        assert rc == 1 and expect in out, out


def find_received(data, seq):
    """The offset of the first row's `received` value in the stored event
    (the log's value is rat, chain hash, then the event)."""
    import lmdb
    import struct
    env = lmdb.open(data, max_dbs=64, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            val = txn.get(struct.pack(">Q", seq), db=env.open_db(b"log", txn=txn, create=False))
    finally:
        env.close()
    evb = bytes(val[8 + 32:])
    return evb.index(b"\xa8received") + len(b"\xa8received")


# --- the CLI -----------------------------------------------------------------------------

def cli(d, *args):
    p = subprocess.run([lxtest.CLI, "--query", d.query, "--alerts", d.alerts] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def approx_equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(approx_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and a == pytest.approx(b, rel=1e-14)
    return a == b


def test_cli_rank_and_watch(tmp_path):
    import json
    s = Script(str(tmp_path), config(str(tmp_path)))
    try:
        s.at(ms(2026, 11, 2, 9))
        for aid, unit in [("c1", "qd.hx.dy"), ("c2", "qd.xs.sq"), ("c3", "qd.xs.sq")]:
            s.appeal(aid, unit)
        s.pub(visit(unit="qd.hx.dy", appeal="c1"))          # dy: 100%, 0%, -
        s.pub(resolution("c2", unit="qd.xs.sq"))            # sq: 50%, 50%, 100%
        s.pub(feedback("c2", True, unit="qd.xs.sq"))
        s.at(ms(2026, 11, 30, 23, 59, 58), settle=3)
        rc, out, err = cli(s.d, "rank", "--period", "2026-11", "--tier", "community")
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("2026-11, community tier (final)")
        assert "response 30.0%, resolution 35.0%, satisfaction 35.0%" in lines[0]
        sq = [l for l in lines if "qd.xs.sq" in l][0].split()
        # rank 1: (0.3*0.5 + 0.35*0.5 + 0.35*1) = 0.675
        assert sq == ["1", "qd.xs.sq", "2", "50.0%", "50.0%", "100.0%", "67.5%", "red", "山泉村"]
        dy = [l for l in lines if "qd.hx.dy" in l][0].split()
        # rank 2: 0.3 / 0.65 = 46.2%
        assert dy == ["2", "qd.hx.dy", "1", "100.0%", "0.0%", "-", "46.2%", "red", "东园社区"]
        bl = [l for l in lines if "qd.hx.bl" in l][0].split()
        assert bl == ["-", "qd.hx.bl", "0", "-", "-", "-", "-", "北岭村"]
        rc, out, err = cli(s.d, "rank", "--period", "2026-11", "--json")
        both = json.loads(out)
        assert rc == 0 and [r["ranking"]["tier"] for r in both] == ["community", "township"]
        stored = [ev["body"] for _, ev in s.rankings()]
        # (The CLI prints numbers with 15 significant digits, as cJSON does.)
        assert len(both) == len(stored) == 2
        assert all(approx_equal(r["ranking"], b) for r, b in zip(both, stored))
        rc, out, err = cli(s.d, "rank", "--json", "--tier", "township")   # the current period
        assert rc == 0 and json.loads(out)["ranking"]["period"] == "2026-12"
        assert json.loads(out)["final"] is False
        rc, out, err = cli(s.d, "rank", "--period", "2026-13")
        assert rc == 1 and "E_BADREQ" in err and "period" in err
        rc, out, err = cli(s.d, "rank", "--tier", "county")
        assert rc == 2 and "--tier" in err
        # watch: the ranking alerts, replayed from the log, one readable line each.
        n = len(s.d.replay_all(types=["escalation", "warning", "unanswered", "ranking"])[0])
        rc, out, err = cli(s.d, "watch", "qd", "--from", "1", "--count", str(n))
        assert rc == 0, err
        got = [l for l in out.splitlines() if " ranking " in l]
        assert "ranking qd (青德县) 2026-11 community red qd.xs.sq,qd.hx.dy black -" in got[0], got
        assert "ranking qd (青德县) 2026-11 township red qd.xs,qd.hx black -" in got[1], got
    finally:
        s.stop()
