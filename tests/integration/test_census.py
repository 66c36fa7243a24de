# SPDX-License-Identifier: MIT
"""The open-appeal figures of `stats` (appeals_open_tier) and of `units` with
counts (open, due_soon, overdue per unit), which the store keeps as appeals
change instead of walking every appeal per request (issue #15). On the fast
test clock they must equal, at every step, what a walk of every appeal (the
`appeals` op) gives: after filing, escalation, resolution, reopening by
unsatisfied feedback, closing, and a restart. `lianxind --audit` rebuilds the
counts from the log and names counts changed behind the daemon's back; a
store from before the counts (as an older lianxind leaves it) is counted once
when it is opened."""
import os
import shutil
import struct
import subprocess
import time

import lmdb

import lxtest
from lxtest import Daemon, appeal, resolution, feedback
from test_escalate import escalations, ms, start, workdays_after

TIERS = ("community", "township", "county")
UPGRADE = "open appeals counted again"  # the daemon's log line when it walks the appeals
T0 = ms(2026, 3, 2, 9, 0)  # Monday 09:00


def walk(d, units, now):
    """The figures from every appeal, as the daemon once computed them."""
    rows, after = [], None
    while True:
        q = {"op": "appeals", "limit": 1000}
        if after:
            q["after"] = after
        r = d.request(q)
        rows += r["appeals"]
        after = r["next"]
        if after is None:
            break
    opened = [a for a in rows if a["status"] == "open"]
    tiers = {t: sum(a["tier"] == t for a in opened) for t in TIERS}
    soon = workdays_after(now, 1)  # the end of the next working day
    per_unit = {}
    for u in units:
        p = u["path"]
        mine = [a for a in opened if a["unit"] == p or a["unit"].startswith(p + ".")]
        due = [a["deadline"] for a in mine if a["deadline"] is not None]
        per_unit[p] = (len(mine), sum(now < dl <= soon for dl in due), sum(dl <= now for dl in due))
    return tiers, per_unit, len(opened)


def figures(d):
    """stats' and units' figures and the walk's, from one state of the log
    (asked again when a record came in between: the clock is fast)."""
    for _ in range(50):
        h1 = d.request({"op": "head"})["seq"]
        st = d.request({"op": "stats"})
        un = d.request({"op": "units", "counts": True})
        want = walk(d, un["units"], un["now"])
        if d.request({"op": "head"})["seq"] == h1 == st["events"]:
            got = (st["appeals_open_tier"],
                   {u["path"]: (u["open"], u["due_soon"], u["overdue"]) for u in un["units"]},
                   st["appeals_open"])
            return got, want
    raise AssertionError("the log never stood still")


def check(d):
    got, want = figures(d)
    assert got == want
    return got


def tier_of(d, aid):
    return d.request({"op": "appeal", "appeal": aid})["appeal"]["tier"]


def wait_tier(d, aid, tier, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if tier_of(d, aid) == tier:
            return
        time.sleep(0.02)
    raise AssertionError("%s never reached %s" % (aid, tier))


def wait_overdue(d, aid, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if any(e[2]["body"]["kind"] == "overdue" for e in escalations(d, aid)):
            return
        time.sleep(0.05)
    raise AssertionError("%s never went overdue" % aid)


def audit(d, data):
    p = subprocess.run([lxtest.DAEMON, "--config", d.config, "--audit", data],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def lifecycle(tmp):
    """Appeals filed, escalated, resolved, reopened and closed, checked at
    each step; returns the stopped daemon and its last figures."""
    d = start(tmp, T0, speed=200000)  # a day in about 0.43 s
    ids = {}
    try:
        for name, unit in (("a", "qd.hx.dy"), ("b", "qd.hx.dy"), ("c", "qd.xs.sq"),
                           ("u", "qd.nh.hb")):
            ev = appeal(unit=unit, priority="urgent" if name == "u" else "normal")
            ids[name] = ev["body"]["appeal"]
            assert d.publish(ev)["ok"]
        tiers, units, n_open = check(d)
        assert n_open == 4 and units["qd"][0] == 4 and units["qd.hx"][0] == 2
        assert units["qd.nh.hb"] == (1, 1, 0) and units["qd"][1] == 1  # urgent: due tomorrow
        assert tiers["community"] + tiers["township"] + tiers["county"] == 4
        assert d.publish(resolution(ids["b"], unit="qd.hx.dy"))["ok"]
        assert check(d)[1]["qd.hx.dy"][0] == 1
        wait_tier(d, ids["a"], "township")
        tiers = check(d)[0]
        assert tiers["township"] >= 1
        wait_tier(d, ids["a"], "county")
        assert check(d)[0]["county"] >= 1
        wait_overdue(d, ids["a"])
        assert check(d)[1]["qd.hx.dy"][2] == 1  # the county's time ran out too
        # Resolved at the county, then reopened there by unsatisfied feedback.
        assert d.publish(resolution(ids["a"], unit="qd.hx.dy"))["ok"]
        tiers, units, _ = check(d)
        assert units["qd.hx.dy"][0] == 0
        assert d.publish(feedback(ids["a"], satisfied=False, unit="qd.hx.dy"))["ok"]
        assert tier_of(d, ids["a"]) == "county"
        tiers, units, _ = check(d)
        assert units["qd.hx.dy"][0] == 1 and tiers["county"] >= 1
        assert d.publish(feedback(ids["b"], satisfied=True, unit="qd.hx.dy"))["ok"]
        wait_tier(d, ids["c"], "county")
        wait_tier(d, ids["u"], "county")
        last = check(d)
        assert last[0] == {"community": 0, "township": 0, "county": 3}
    finally:
        assert d.stop() == 0
    return d, last


def restart(d):
    """The same store again, on a real-time clock from the log's last
    receive time: nothing falls due while the test looks."""
    rat = head_rat(d.data)
    d2 = Daemon(config=d.config, tmp=d.tmp, env={"LIANXIN_FAKE_CLOCK": "%d:1" % rat})
    return d2.start()


def head_rat(data):
    env = lmdb.open(data, max_dbs=64, readonly=True, lock=False)
    with env.begin() as txn:
        hv = txn.get(b"head", db=env.open_db(b"meta", txn=txn, create=False))
    env.close()
    return struct.unpack(">QQ", hv[:16])[1]


def test_counts_follow_every_change_and_a_restart(tmp_path):
    d, last = lifecycle(str(tmp_path))
    d2 = restart(d)
    try:
        assert check(d2) == last
        assert UPGRADE not in d2.read_log()
        rc, out = audit(d2, d2.data)  # the rebuild's counts equal the live ones
        assert rc == 0 and "0 discrepancies" in out, out
    finally:
        assert d2.stop() == 0


def test_audit_names_counts_changed_behind_its_back(tmp_path):
    tmp = str(tmp_path)
    d, _ = lifecycle(tmp)
    for name, change in (("tier", "open_tier"), ("unit", "unit_open"), ("due", "open_due")):
        bent = os.path.join(tmp, "bent-" + name)
        shutil.copytree(d.data, bent)
        env = lmdb.open(bent, max_dbs=64, map_size=64 << 20)
        with env.begin(write=True) as txn:
            if change == "open_tier":  # one more open appeal at the county
                meta = env.open_db(b"meta", txn=txn)
                c = list(struct.unpack(">4Q", txn.get(b"open_tier", db=meta)))
                c[3] += 1
                txn.put(b"open_tier", struct.pack(">4Q", *c), db=meta)
            elif change == "unit_open":
                txn.put(b"qd.nh.hb", struct.pack(">Q", 7), db=env.open_db(b"unit_open", txn=txn))
            else:  # an open appeal's deadline index entry gone
                db = env.open_db(b"open_due", txn=txn)
                with txn.cursor(db=db) as cur:
                    assert cur.first()
                    cur.delete()
        env.close()
        rc, out = audit(d, bent)
        assert rc == 1, out
        key = {"open_tier": "database meta, key open_tier: values differ",
               "unit_open": "database unit_open, key qd.nh.hb",
               "open_due": "database open_due, key "}[change]
        assert key in out, out


def test_store_from_before_the_counts_is_counted_once(tmp_path):
    d, last = lifecycle(str(tmp_path))
    # Back to the layout an older lianxind wrote: no "open_tier" in meta,
    # no unit_open or open_due.
    env = lmdb.open(d.data, max_dbs=64, map_size=64 << 20)
    with env.begin(write=True) as txn:
        txn.delete(b"open_tier", db=env.open_db(b"meta", txn=txn))
        for name in (b"unit_open", b"open_due"):
            txn.drop(env.open_db(name, txn=txn), delete=True)
    env.close()
    d2 = restart(d)
    try:
        assert UPGRADE in d2.read_log() and "3 open of 4," in d2.read_log()
        assert check(d2) == last
        rc, out = audit(d2, d2.data)
        assert rc == 0 and "0 discrepancies" in out, out
    finally:
        assert d2.stop() == 0
    d3 = restart(d)  # once: the next start finds the counts
    try:
        assert d3.read_log().count(UPGRADE) == 1
        assert check(d3) == last
    finally:
        assert d3.stop() == 0


def test_record_types_stored_before_a_start_are_counted(tmp_path):
    """stats' `types` covers the whole log: records stored before a start are
    counted by a thread of their own, started by the first `stats`, in read
    transactions of 5,000 records (so nine of them here), while the loop goes
    on serving; the figures equal the ones the daemon counted as it
    stored them."""
    tmp = str(tmp_path)
    d = Daemon(tmp=tmp).start()
    try:
        p = subprocess.run([os.path.join(lxtest.BUILD, "lx-loadgen"), "--ingest", d.ingest,
                            "--mode", "pipe", "--type", "mix", "--events", "45000"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        before = d.request({"op": "stats"})
        assert before["types_complete"] is True
        # A --type mix cycle of ten: 2 appeals, 6 visits, 1 resolution, 1 feedback.
        t = before["types"]
        assert (t["appeal"], t["visit"], t["resolution"], t["feedback"]) == (9000, 27000, 4500, 4500)
    finally:
        assert d.stop() == 0
    d2 = Daemon(config=d.config, tmp=tmp).start()
    try:
        assert d2.publish(lxtest.visit())["ok"]  # served while the count runs
        for _ in range(200):
            st = d2.request({"op": "stats"})
            if st["types_complete"]:
                break
            time.sleep(0.05)
        assert st["types_complete"] is True
        want = dict(before["types"])
        want["visit"] += 1
        assert st["types"] == want
    finally:
        assert d2.stop() == 0
