# SPDX-License-Identifier: MIT
"""Query socket, against PROTOCOL.md "Query socket" and "The log and its hash chain".

replay with every filter (from/limit paging, to, since/until, unit prefix at a
code boundary, types, appeal, and combinations), `next` always advancing,
head/units/stats, the appeal op (also `at`), E_BADREQ and E_NOTFOUND, and
the chain recomputed from replay equal to head's hash.
"""
import time

import pytest

from lxtest import (CATEGORIES, COMMUNITIES, COUNTY_UNITS, RECV_TIMEOUT, TOWNSHIPS, ZERO_HASH,
                    appeal, chain, decode_ev, feedback, pack, raw_map, resolution,
                    running_daemon, stored_form, unpack_lenient, visit)

MAX_PAGES = 100000   # a loop guard; every paging loop below is also bounded by head


@pytest.fixture
def d():
    yield from running_daemon(limit=90)


def q(d, msg):
    """One query on a fresh DEALER; a reply that is not one msgpack map is reported
    as {"undecodable": raw bytes}, so a test can show it instead of crashing."""
    s = d.dealer(d.query)
    try:
        s.send(msg if isinstance(msg, bytes) else pack(msg))
        if not s.poll(int(RECV_TIMEOUT * 1000)):
            raise TimeoutError("no reply to %r" % (msg,))
        raw = s.recv()
    finally:
        s.close()
    try:
        r = unpack_lenient(raw)
    except Exception:
        return {"undecodable": raw}
    return r if isinstance(r, dict) else {"undecodable": raw}


def publish_all(d, evs):
    """Pipelines evs on one DEALER; checks every ack; returns the seqs."""
    with d.client("ingest") as cli:
        rs = cli.pipeline(evs, window=256)
    for ev, r in zip(evs, rs):
        assert r.get("ok") is True and r.get("id") == ev["id"] and r.get("dup") is False, (ev, r)
    return [r["seq"] for r in rs]


def seed(d):
    """A fixed mix in four bursts 30 ms apart, so receive times differ between bursts.
    Returns (sent events in seq order, t0, t1) with t0/t1 the wall clock around it."""
    A, B = "ap-A", "ap-B"
    bursts = [
        [visit("qd.hx.dy"), visit("qd.hx.xc", minutes=20), appeal(A, unit="qd.hx.dy"),
         visit("qd.xs.sq")],
        [visit("qd.hx.dy", appeal=A), appeal(B, unit="qd.xs.sq", priority="urgent"),
         visit("qd.hx.bl"), resolution(A, "resolved", unit="qd.hx.dy")],
        [visit("qd.xs.lq"), feedback(A, False, unit="qd.hx.dy"), visit("qd.hx.dy"),
         resolution(B, "explained", unit="qd.xs.sq")],
        [visit("qd.xs.gy", mode="pairing"), resolution(A, "referred", unit="qd.hx.dy"),
         feedback(B, True, unit="qd.xs.sq"), visit("qd.hx.xc")],
    ]
    sent = []
    t0 = int(time.time() * 1000)
    for i, b in enumerate(bursts):
        if i:
            time.sleep(0.03)
        seqs = publish_all(d, b)
        assert seqs == list(range(len(sent) + 1, len(sent) + 1 + len(b)))
        sent.extend(b)
    t1 = int(time.time() * 1000)
    return sent, t0, t1


def page(d, base, limit=None, max_pages=None):
    """Pages a filtered replay from base["from"] until next passes head or `to`.
    Checks on every reply that next advances past `from` and past the last
    record returned, and that records are in order and within [from, next)."""
    frm = base.get("from", 1)
    out, pages = [], 0
    while True:
        msg = dict(base, op="replay", **{"from": frm})
        if limit is not None:
            msg["limit"] = limit
        r = q(d, msg)
        assert r.get("ok") is True, (msg, r)
        recs = r["records"]
        if limit is not None:
            assert len(recs) <= limit, (msg, len(recs))
        assert r["next"] > frm, "next did not advance: %r -> %r" % (msg, r)
        seqs = [x["seq"] for x in recs]
        assert seqs == sorted(set(seqs)), seqs
        assert all(frm <= s < r["next"] for s in seqs), (msg, seqs, r["next"])
        out.extend(recs)
        frm = r["next"]
        pages += 1
        if frm > r["head"] or ("to" in base and frm > base["to"]):
            return out, pages
        assert pages < (max_pages or MAX_PAGES), "paging does not end: %r" % (msg,)


def body_appeal(ev):
    return ev.get("body", {}).get("appeal")


def unit_matches(path, prefix):
    return path == prefix or path.startswith(prefix + ".")


# --- head / replay basics ----------------------------------------------------------

def test_head_and_replay_on_empty_log(d):
    h = q(d, {"op": "head"})
    assert h.get("ok") is True, h
    assert h["seq"] == 0 and h["hash"] == ZERO_HASH, h
    assert "checkpoint" in h and h["checkpoint"] is None, h
    r = q(d, {"op": "replay", "from": 1})
    assert r.get("ok") is True and r["records"] == [] and r["head"] == 0, r
    assert r["next"] > r["head"], r


def test_replay_records_and_chain(d):
    sent, t0, t1 = seed(d)
    h = q(d, {"op": "head"})
    assert h["seq"] == len(sent) and h["checkpoint"] is None, h
    recs, last = d.replay_all()
    assert last["head"] == len(sent)
    assert [r["seq"] for r in recs] == list(range(1, len(sent) + 1))
    prev_rat = 0
    for rec, ev in zip(recs, sent):
        assert isinstance(rec["rat"], int) and isinstance(rec["hash"], bytes), rec
        assert isinstance(rec["ev"], bytes), "ev must be bin: %r" % (rec,)
        assert len(rec["hash"]) == 32
        assert decode_ev(rec) == stored_form(ev), rec["seq"]
        assert rec["rat"] >= prev_rat, "rat went backwards at seq %d" % rec["seq"]
        assert t0 - 1000 <= rec["rat"] <= t1 + 1000, (t0, rec["rat"], t1)
        prev_rat = rec["rat"]
    assert chain(recs) == h["hash"]
    # any suffix continues the chain from its predecessor's hash
    assert chain(recs[5:], start=recs[4]["hash"]) == h["hash"]


def test_replay_paging_from_and_limit(d):
    evs = [visit(COMMUNITIES[i % 9], minutes=i) for i in range(25)]
    publish_all(d, evs)
    full, _ = d.replay_all()
    for limit in (1, 3, 7, 25, 100):
        got, pages = page(d, {}, limit=limit)
        assert [r["seq"] for r in got] == list(range(1, 26)), limit
        assert pages == -(-25 // limit), (limit, pages)
        assert got == full
    # an unfiltered page is exactly [from, from+limit) and next follows it
    r = q(d, {"op": "replay", "from": 4, "limit": 5})
    assert [x["seq"] for x in r["records"]] == [4, 5, 6, 7, 8] and r["next"] == 9, r
    assert r["head"] == 25
    r = q(d, {"op": "replay", "from": 25, "limit": 5})
    assert [x["seq"] for x in r["records"]] == [25] and r["next"] == 26, r
    r = q(d, {"op": "replay", "from": 26})
    assert r["records"] == [] and r["next"] >= 26 and r["head"] == 25, r
    r = q(d, {"op": "replay", "from": 1000})
    assert r.get("ok") is True and r["records"] == [] and r["next"] >= 1000, r


def test_replay_default_limit_is_1000(d):
    evs = [visit(COMMUNITIES[i % 9], minutes=i % 100) for i in range(1100)]
    publish_all(d, evs)
    r = q(d, {"op": "replay", "from": 1})
    assert r.get("ok") is True, r
    assert len(r["records"]) == 1000 and r["next"] == 1001 and r["head"] == 1100, \
        (len(r["records"]), r["next"], r["head"])
    r = q(d, {"op": "replay", "from": 1001})
    assert [x["seq"] for x in r["records"]] == list(range(1001, 1101)) and r["next"] == 1101
    r = q(d, {"op": "replay", "from": 1, "limit": 10000})
    assert len(r["records"]) == 1100, len(r["records"])
    assert chain(r["records"]) == q(d, {"op": "head"})["hash"]


def test_replay_to(d):
    publish_all(d, [visit(minutes=i) for i in range(12)])
    r = q(d, {"op": "replay", "from": 1, "to": 5})
    assert [x["seq"] for x in r["records"]] == [1, 2, 3, 4, 5] and r["next"] > 5, r
    got, pages = page(d, {"from": 2, "to": 9}, limit=3)
    assert [x["seq"] for x in got] == list(range(2, 10)) and pages == 3
    got, _ = page(d, {"from": 10, "to": 50}, limit=100)
    assert [x["seq"] for x in got] == [10, 11, 12]
    r = q(d, {"op": "replay", "from": 7, "to": 7})
    assert [x["seq"] for x in r["records"]] == [7] and r["next"] > 7, r
    r = q(d, {"op": "replay", "from": 8, "to": 3})
    assert r.get("ok") is True and r["records"] == [], r


def test_replay_since_until(d):
    sent, _, _ = seed(d)
    full, _ = d.replay_all()
    rats = [r["rat"] for r in full]
    distinct = sorted(set(rats))
    assert len(distinct) >= 4, "bursts 30 ms apart should have distinct receive times: %r" % rats

    def expect(since=None, until=None):
        return [r["seq"] for r in full
                if (since is None or r["rat"] >= since) and (until is None or r["rat"] <= until)]

    windows = [
        {"since": rats[4]},                         # inclusive lower bound on a record's rat
        {"until": rats[7]},                         # inclusive upper bound
        {"since": rats[4], "until": rats[11]},
        {"since": rats[8], "until": rats[8]},       # exactly one receive time
        {"since": rats[4] + 1, "until": rats[11] - 1},
        {"since": distinct[-1] + 1},                # after everything
        {"until": distinct[0] - 1},                 # before everything
        {"since": 0, "until": 2 ** 62},
        {"since": rats[12], "until": rats[3]},      # empty range
    ]
    for w in windows:
        want = expect(w.get("since"), w.get("until"))
        for limit in (None, 2):
            got, _ = page(d, dict(w), limit=limit)
            assert [r["seq"] for r in got] == want, (w, limit)
    # with from and to as well
    got, _ = page(d, {"from": 3, "to": 14, "since": rats[4]}, limit=4)
    assert [r["seq"] for r in got] == [s for s in expect(rats[4]) if 3 <= s <= 14]


def test_replay_unit_prefix_at_code_boundary(d):
    sent, _, _ = seed(d)
    full, _ = d.replay_all()
    units = {r["seq"]: decode_ev(r)["unit"] for r in full}
    for prefix in COUNTY_UNITS + TOWNSHIPS + COMMUNITIES + ["qd.h", "qd.hx.d", "q", "qd.x",
                                                           "qd.xs.s", "zz", "qd.hx.dy.dy"]:
        want = [s for s, u in sorted(units.items()) if unit_matches(u, prefix)]
        if prefix in ("qd.h", "qd.hx.d", "q", "qd.x", "qd.xs.s"):
            assert want == [], prefix          # the point: no match inside a code
        got, _ = page(d, {"unit": prefix}, limit=3)
        assert [r["seq"] for r in got] == want, "unit=%r: got %r, want %r" % (
            prefix, [r["seq"] for r in got], want)
    # the seed touches hx and xs, never nh
    assert any(unit_matches(u, "qd.hx") for u in units.values())
    assert not any(unit_matches(u, "qd.nh") for u in units.values())


def test_replay_types(d):
    sent, _, _ = seed(d)
    full, _ = d.replay_all()
    typ = {r["seq"]: decode_ev(r)["type"] for r in full}
    for types in (["visit"], ["appeal"], ["appeal", "resolution"], ["feedback"],
                  ["resolution", "feedback", "visit", "appeal"], ["escalation"],
                  ["checkpoint", "feedback"]):
        want = [s for s, t in sorted(typ.items()) if t in types]
        for limit in (None, 1):
            got, _ = page(d, {"types": types}, limit=limit)
            assert [r["seq"] for r in got] == want, (types, limit)


def test_replay_appeal_filter(d):
    sent, _, _ = seed(d)
    full, _ = d.replay_all()
    for aid in ("ap-A", "ap-B", "ap-none"):
        want = [r["seq"] for r in full if body_appeal(decode_ev(r)) == aid]
        if aid == "ap-A":
            assert len(want) == 5     # the appeal, a visit answering it, 2 resolutions, feedback
        got, _ = page(d, {"appeal": aid}, limit=2)
        assert [r["seq"] for r in got] == want, (aid, [r["seq"] for r in got], want)
        for r in got:
            assert r == full[r["seq"] - 1]


def test_replay_filters_combined(d):
    sent, _, _ = seed(d)
    full, _ = d.replay_all()
    evs = {r["seq"]: (r, decode_ev(r)) for r in full}
    since = full[4]["rat"]
    cases = [
        {"unit": "qd.hx", "types": ["visit"]},
        {"unit": "qd.hx", "types": ["visit"], "since": since},
        {"unit": "qd.xs", "appeal": "ap-B", "types": ["resolution", "feedback"]},
        {"unit": "qd.hx.dy", "appeal": "ap-A", "until": full[9]["rat"], "to": 12},
        {"unit": "qd.xs", "appeal": "ap-A"},       # A is at hx: nothing
    ]
    for f in cases:
        want = []
        for s, (r, ev) in sorted(evs.items()):
            if "unit" in f and not unit_matches(ev["unit"], f["unit"]):
                continue
            if "types" in f and ev["type"] not in f["types"]:
                continue
            if "appeal" in f and body_appeal(ev) != f["appeal"]:
                continue
            if "since" in f and r["rat"] < f["since"]:
                continue
            if "until" in f and r["rat"] > f["until"]:
                continue
            if "to" in f and s > f["to"]:
                continue
            want.append(s)
        for limit in (None, 1, 4):
            got, _ = page(d, dict(f), limit=limit)
            assert [r["seq"] for r in got] == want, (f, limit)


def test_next_always_advances(d):
    publish_all(d, [visit(COMMUNITIES[i % 6], minutes=i) for i in range(40)])   # hx and xs only
    # a filter that matches nothing: each reply is empty but next still moves on
    got, pages = page(d, {"unit": "qd.nh"}, limit=1, max_pages=45)
    assert got == []
    got, pages = page(d, {"types": ["appeal"]}, limit=5, max_pages=45)
    assert got == []
    # sparse matches with limit 1: next lands after the record returned
    got, pages = page(d, {"unit": "qd.hx.dy"}, limit=1, max_pages=45)
    assert [r["seq"] for r in got] == list(range(1, 41, 6))
    r = q(d, {"op": "replay", "from": 2, "limit": 1, "unit": "qd.hx.dy"})
    assert [x["seq"] for x in r["records"]] == [7] and r["next"] == 8, r


# --- the appeal op -------------------------------------------------------------

def test_appeal_op_now_and_at(d):
    aid = "ap-at-1"
    steps = [appeal(aid, unit="qd.xs.lq", category="housing"), visit("qd.xs.lq", appeal=aid),
             resolution(aid, "resolved", unit="qd.xs.lq"), feedback(aid, True, unit="qd.xs.lq")]
    seqs, live_deadline = [], []
    for ev in steps:
        seqs += publish_all(d, [visit("qd.hx.dy"), ev])[1:]
        live_deadline.append(q(d, {"op": "appeal", "appeal": aid})["appeal"]["deadline"])
        time.sleep(0.03)
    # the escalate plugin set a deadline when the appeal came; the resolution cleared it
    assert isinstance(live_deadline[0], int) and live_deadline[1] == live_deadline[0], live_deadline
    assert live_deadline[2:] == [None, None], live_deadline
    full, _ = d.replay_all()
    rat = {r["seq"]: r["rat"] for r in full}
    r = q(d, {"op": "appeal", "appeal": aid})
    assert r.get("ok") is True, r
    a = r["appeal"]
    assert a == dict(a, appeal=aid, unit="qd.xs.lq", status="closed", tier="community",
                     deadline=None, opened=rat[seqs[0]], events=seqs), a
    want = [("open", seqs[:1]), ("open", seqs[:2]), ("resolved", seqs[:3]), ("closed", seqs)]
    for s, (status, evs), deadline in zip(seqs, want, live_deadline):
        r = q(d, {"op": "appeal", "appeal": aid, "at": rat[s]})
        assert r.get("ok") is True, r
        a = r["appeal"]
        assert a["status"] == status and a["events"] == evs and a["opened"] == rat[seqs[0]], \
            (s, rat[s], a)
        assert a["deadline"] == deadline, (s, a)   # as the live appeal showed it then
        r2 = q(d, {"op": "appeal", "appeal": aid, "at": rat[s] + 1})
        assert r2["appeal"]["status"] == status
    r = q(d, {"op": "appeal", "appeal": aid, "at": rat[seqs[0]] - 1})
    assert r.get("ok") is False and r.get("code") == "E_NOTFOUND", r
    r = q(d, {"op": "appeal", "appeal": aid, "at": 0})
    assert r.get("code") == "E_NOTFOUND", r
    r = q(d, {"op": "appeal", "appeal": aid, "at": int(time.time() * 1000) + 3600000})
    assert r.get("ok") and r["appeal"]["status"] == "closed", r


def test_e_notfound(d):
    publish_all(d, [appeal("ap-exists")])
    with d.client("ingest") as cli:
        bad = appeal("ap-rejected", category="food")
        assert cli.call(bad).get("code") == "E_SCHEMA"
    for aid in ("ap-none", "ap-rejected", "AP-EXISTS", "ap-exist", "ap-exists\x00"):
        r = q(d, {"op": "appeal", "appeal": aid})
        assert r.get("ok") is False and r.get("code") == "E_NOTFOUND", (aid, r)
        assert isinstance(r.get("error"), str), r
    assert q(d, {"op": "appeal", "appeal": "ap-exists"}).get("ok") is True


# --- units, stats ----------------------------------------------------------------

def test_units(d):
    r = q(d, {"op": "units"})
    assert r.get("ok") is True, r
    units = r["units"]
    assert len(units) == 13, units
    tiers = {u["path"]: u["tier"] for u in units}
    assert len(tiers) == 13, "repeated path: %r" % units
    want = dict([(p, "county") for p in COUNTY_UNITS] + [(p, "township") for p in TOWNSHIPS]
                + [(p, "community") for p in COMMUNITIES])
    assert tiers == want
    for u in units:
        assert isinstance(u["name"], str) and u["name"], u
    assert sorted(r["categories"]) == sorted(CATEGORIES), r["categories"]


def test_stats(d):
    r = q(d, {"op": "stats"})
    assert r.get("ok") is True, r
    assert r["events"] == 0 and r["appeals_open"] == 0 and r["escalations"] == 0, r
    assert isinstance(r["uptime_ms"], int) and r["uptime_ms"] >= 0, r
    up0 = r["uptime_ms"]
    publish_all(d, [visit(), visit(), appeal("s-1"), appeal("s-2"), appeal("s-3"),
                    resolution("s-3"), feedback("s-3", True), visit()])
    with d.client("ingest") as cli:
        assert cli.call(visit(unit="qd")).get("ok") is False     # rejected: not counted
    time.sleep(0.06)
    r = q(d, {"op": "stats"})
    assert r["events"] == 8 and r["appeals_open"] == 2 and r["escalations"] == 0, r
    assert r["uptime_ms"] >= up0 + 50, (up0, r)


# --- errors and pipelining -------------------------------------------------------

BADREQ = [
    {}, {"op": "bogus"}, {"op": "HEAD"}, {"op": 5}, {"op": None}, {"op": b"head"}, {"op": ["head"]},
    {"op": "head", "x": 1}, {"op": "units", "x": 1}, {"op": "stats", "x": 1},
    {"op": "replay", "from": "1"}, {"op": "replay", "from": 1.0}, {"op": "replay", "from": None},
    {"op": "replay", "limit": "10"}, {"op": "replay", "limit": 2.5}, {"op": "replay", "to": "x"},
    {"op": "replay", "since": "x"}, {"op": "replay", "until": [1]}, {"op": "replay", "unit": 5},
    {"op": "replay", "types": "visit"}, {"op": "replay", "types": [1]},
    {"op": "replay", "types": {"visit": 1}}, {"op": "replay", "appeal": 7},
    {"op": "replay", "bogus": 1}, {"op": "replay", "from": 1, "From": 1},
    {"op": "replay", "unit": b"qd"},
    {"op": "appeal"}, {"op": "appeal", "appeal": 7}, {"op": "appeal", "appeal": None},
    {"op": "appeal", "appeal": "x", "at": "now"}, {"op": "appeal", "appeal": "x", "at": 1.5},
    {"op": "appeal", "appeal": "x", "bogus": 1},
]


def test_e_badreq(d):
    publish_all(d, [visit()])
    failures = []
    for msg in BADREQ:
        r = q(d, msg)
        if r.get("ok") is not False or r.get("code") != "E_BADREQ" \
                or not isinstance(r.get("error"), str):
            failures.append("request %r\n    reply %r" % (msg, r))
    # frames that are not one well-formed map: E_BADREQ or the ingest code E_DECODE
    for frame in (b"", b"\xc1", pack([1]), pack("head"), pack({"op": "head"}) + b"\x00",
                  raw_map([("op", "head"), ("op", "head")]), raw_map([("op", "head"), (1, 2)])):
        r = q(d, frame)
        if r.get("ok") is not False or r.get("code") not in ("E_BADREQ", "E_DECODE"):
            failures.append("frame %r\n    reply %r" % (frame, r))
    r = q(d, pack({"op": "head", "pad": "x" * 70000}))
    if r.get("ok") is not False or r.get("code") not in ("E_BADREQ", "E_TOO_BIG"):
        failures.append("70 KB query\n    reply %r" % (r,))
    assert not failures, "%d wrong:\n%s" % (len(failures), "\n".join(failures))
    assert q(d, {"op": "head"})["seq"] == 1


def test_query_pipelined(d):
    publish_all(d, [visit(minutes=i) for i in range(30)])
    reqs = []
    for i in range(200):
        reqs.append([{"op": "head"}, {"op": "replay", "from": i % 30 + 1, "limit": 2},
                     {"op": "units"}, {"op": "stats"}, {"op": "bogus"},
                     {"op": "appeal", "appeal": "nope"}][i % 6])
    with d.client("query") as cli:
        for m in reqs:
            cli.send(m)
        rs = [cli.recv() for _ in reqs]
        assert cli.try_recv(0.2) is None, "an extra reply"
    oks = sum(1 for r in rs if r.get("ok") is True)
    codes = sorted(r.get("code") for r in rs if r.get("ok") is False)
    assert oks == sum(1 for i in range(200) if i % 6 < 4)
    assert codes.count("E_BADREQ") == sum(1 for i in range(200) if i % 6 == 4)
    assert codes.count("E_NOTFOUND") == sum(1 for i in range(200) if i % 6 == 5)
