# SPDX-License-Identifier: MIT
"""`lianxin watch PREFIX`: a supervisor's alert feed, driven through the real
daemon with the escalate plugin on a fast test clock.

Every printed alert must be the daemon's alert for the record at its seq
(replayed ones are rebuilt from the record the way the daemon builds them),
printed once, in seq order, with nothing outside the prefix and nothing
before --from; gaps (a reconnect) are filled from the log."""
import json
import os
import signal
import subprocess
import time

import pytest

import lxtest
from lxtest import CLI, appeal, resolution, unpack, time_limit
from test_escalate import ms, start

ALERT_TYPES = ("escalation", "warning", "unanswered")
T0 = ms(2026, 3, 2, 9, 0)  # a Monday, 09:00 local
SCALE = lxtest.TIMEOUT_SCALE


def expected_alert(rec):
    """The alert the daemon publishes for an alert-type record (PROTOCOL.md
    "Alerts"): {seq, kind, unit, at, ...body without kind, tier = to}."""
    ev = unpack(rec["ev"])
    body = ev["body"]
    esc = ev["type"] == "escalation"
    a = {"seq": rec["seq"], "kind": body["kind"] if esc else ev["type"], "unit": ev["unit"],
         "at": rec["rat"]}
    a.update((k, v) for k, v in body.items() if k != "kind")
    if esc:
        a["tier"] = body["to"]
    return a


def alert_records(d, unit, **filters):
    """The records under unit that the daemon publishes as alerts."""
    recs, _ = d.replay_all(unit=unit, **filters)
    return [r for r in recs if unpack(r["ev"])["type"] in ALERT_TYPES]


def watch(d, *args, env=None):
    cmd = [CLI, "--alerts", d.alerts, "--query", d.query, "watch"] + list(args)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def finish(p, timeout=20.0):
    """Waits for a watch that ends by itself (--count); returns (rc, stdout lines, stderr)."""
    try:
        out, err = p.communicate(timeout=timeout * SCALE)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("watch did not finish; printed:\n%s\nstderr:\n%s" % (out, err))
    return p.returncode, out.splitlines(), err


def stop(p, after=0.0):
    """Lets a watch run `after` seconds more, then SIGTERMs it: (rc, lines, stderr)."""
    time.sleep(after * SCALE)
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    return finish(p, 10.0)


def wait_for(pred, timeout=30.0, what="condition"):
    end = time.time() + timeout * SCALE
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def has_overdue(d, aid):
    recs, _ = d.replay_all(appeal=aid, types=["escalation"])
    return any(unpack(r["ev"])["body"]["kind"] == "overdue" for r in recs)


def check_json_lines(d, lines, replayed):
    """Each line is the alert for the record at its seq; seqs strictly increase.
    replayed: True (all replayed), False (none), or None (either)."""
    got = [json.loads(line) for line in lines]
    seqs = [a["seq"] for a in got]
    assert seqs == sorted(set(seqs)), seqs
    for a in got:
        flag = a.pop("replayed", False)
        assert flag in (True, False)
        if replayed is not None:
            assert flag == replayed, (a, flag)
        rec = d.request({"op": "replay", "from": a["seq"], "limit": 1})["records"][0]
        assert rec["seq"] == a["seq"]
        exp = expected_alert(rec)
        assert a == exp
        if flag:  # rebuilt here: same keys in the daemon's order
            assert list(a) == list(exp)
    return got


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """A daemon whose log holds a qd.hx.dy appeal that went all the way to
    overdue and a qd.xs.sq appeal that escalated, both then resolved, so the
    log no longer grows."""
    tmp = str(tmp_path_factory.mktemp("watch"))
    d = start(tmp, T0)
    try:
        with time_limit(60, "setting up"):
            hx, xs = appeal(), appeal(unit=lxtest.COMMUNITY2)
            assert d.publish(hx)["ok"] and d.publish(xs)["ok"]
            aid = hx["body"]["appeal"]
            wait_for(lambda: has_overdue(d, aid), what="the overdue record")
            assert d.publish(resolution(aid))["ok"]
            assert d.publish(resolution(xs["body"]["appeal"], unit=lxtest.COMMUNITY2))["ok"]
            time.sleep(0.3)
            head = d.head()["seq"]
            time.sleep(0.5)  # more than a working day of daemon time: nothing new
            assert d.head()["seq"] == head
        d.aid, d.xs_aid = aid, xs["body"]["appeal"]
        yield d
    finally:
        d.cleanup()


def test_live_alerts_match_their_records(tmp_path):
    d = start(str(tmp_path), T0, speed=200000)  # a day of daemon time in 0.43 s
    try:
        with time_limit(60):
            p = watch(d, "qd.hx", "--json", "--count", "3")
            time.sleep(0.5 * SCALE)  # the slow joiner: let the subscription arrive
            ev = appeal()
            aid = ev["body"]["appeal"]
            assert d.publish(ev)["ok"]
            rc, lines, err = finish(p, 30.0)
            assert rc == 0, err
            assert len(lines) == 3, lines
            got = check_json_lines(d, lines, None)
            assert "replayed" not in json.loads(lines[0])  # the first one is always live
            for a in got:
                assert a["unit"] == "qd.hx.dy" and a["appeal"] == aid
            # Nothing was skipped between the first and the last.
            between = alert_records(d, "qd.hx", **{"from": got[0]["seq"], "to": got[-1]["seq"]})
            assert [r["seq"] for r in between] == [a["seq"] for a in got]
    finally:
        d.cleanup()


def test_from_replays_the_township_history(settled):
    d = settled
    with time_limit(60):
        want = alert_records(d, "qd.hx")
        kinds = [expected_alert(r)["kind"] for r in want]
        assert "escalated" in kinds and "overdue" in kinds, kinds
        p = watch(d, "qd.hx", "--from", "1", "--json", "--count", str(len(want)))
        rc, lines, err = finish(p)
        assert rc == 0, err
        got = check_json_lines(d, lines, True)
        assert got == [expected_alert(r) for r in want]
        assert all(a["unit"].startswith("qd.hx.") for a in got)
        # Text form, "qd.hx." with its dot, until SIGTERM: the same alerts, once.
        p = watch(d, "qd.hx.", "--from", "1", env={"TZ": "UTC"})
        rc, lines, err = stop(p, 1.5)
        assert rc == 0, err
        assert len(lines) == len(want), lines
        for line, r in zip(lines, want):
            a = expected_alert(r)
            assert line.endswith(" (replayed)"), line
            assert line.split()[1:5] == ["seq", str(a["seq"]), a["kind"], "qd.hx.dy"], line
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(a["at"] // 1000))
            assert line.startswith(stamp + " "), line
            if a["kind"] == "escalated":
                assert " %s\u2192%s next " % (a["from"], a["to"]) in line, line


def test_other_township_prints_nothing(tmp_path):
    d = start(str(tmp_path), T0)
    try:
        with time_limit(60):
            other = watch(d, "qd.xs", "--count", "1")
            mine = watch(d, "qd.hx", "--json", "--count", "1")
            time.sleep(0.5 * SCALE)
            ev = appeal()
            assert d.publish(ev)["ok"]
            rc, lines, err = finish(mine, 30.0)  # alerts did flow meanwhile
            assert rc == 0 and len(lines) == 1, (lines, err)
            wait_for(lambda: has_overdue(d, ev["body"]["appeal"]), what="the overdue record")
            rc, lines, err = stop(other, 0.5)
            assert rc == 0, err
            assert lines == [], lines
            # Replaying the same history for qd.xs finds nothing either.
            late = watch(d, "qd.xs", "--from", "1", "--count", "1")
            rc, lines, err = stop(late, 1.0)
            assert rc == 0, err
            assert lines == [], lines
    finally:
        d.cleanup()


def test_from_skips_everything_before_it(settled):
    d = settled
    with time_limit(60):
        recs = alert_records(d, "qd.hx")
        first_esc = next(r for r in recs if unpack(r["ev"])["type"] == "escalation")
        n = first_esc["seq"] + 1
        want = [expected_alert(r) for r in recs if r["seq"] >= n]
        assert want and len(want) < len(recs)
        p = watch(d, "qd.hx", "--from", str(n), "--json")
        rc, lines, err = stop(p, 1.5)
        assert rc == 0, err
        got = check_json_lines(d, lines, True)
        assert got == want
        assert min(a["seq"] for a in got) >= n
        # From past the head: nothing (until something new happens).
        p = watch(d, "qd.hx", "--from", str(d.head()["seq"] + 1), "--json")
        rc, lines, err = stop(p, 1.0)
        assert rc == 0 and lines == [], (lines, err)


def test_gap_after_reconnect_is_filled(tmp_path):
    """The daemon restarts and at once publishes the escalations that fell due
    while it was down, while the watcher (stopped) cannot reconnect: they are
    lost on the socket, so the next live alert must bring them from the log."""
    tmp = str(tmp_path)
    d = start(tmp, T0, speed=1)
    p = None
    try:
        with time_limit(90):
            ev = appeal()
            aid = ev["body"]["appeal"]
            assert d.publish(ev)["ok"]
            p = watch(d, "qd.hx", "--from", "1", "--json")
            time.sleep(0.5 * SCALE)
            os.kill(p.pid, signal.SIGSTOP)
            assert d.stop() == 0
            # A month later, a working day of daemon time takes 1.7 s.
            d = lxtest.Daemon(config=d.config, tmp=tmp,
                              env={"LIANXIN_FAKE_CLOCK": "%d:50000" % ms(2026, 4, 2, 9, 0)})
            d.start()
            wait_for(lambda: has_overdue(d, aid), what="the catch-up escalations")
            time.sleep(0.3 * SCALE)
            caught_up = alert_records(d, "qd.hx")
            os.kill(p.pid, signal.SIGCONT)

            def reminder():
                return [r for r in alert_records(d, "qd.hx", **{"from": caught_up[-1]["seq"] + 1})
                        if unpack(r["ev"])["body"].get("kind") == "reminder"]
            rem = wait_for(reminder, what="a reminder after the restart")[0]
            assert d.publish(resolution(aid))["ok"]  # no more reminders
            rc, lines, err = stop(p, 1.0)
            p = None
            assert rc == 0, err
            got = check_json_lines(d, lines, None)
            want = alert_records(d, "qd.hx")
            assert [a["seq"] for a in got] == [r["seq"] for r in want]
            flags = {json.loads(line)["seq"]: json.loads(line).get("replayed") for line in lines}
            # What the restart published to nobody came from the log ...
            assert all(flags[r["seq"]] is True for r in caught_up), flags
            # ... once the reminder, heard live, showed the gap.
            assert flags[rem["seq"]] is None, flags
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.communicate()
        d.cleanup()
