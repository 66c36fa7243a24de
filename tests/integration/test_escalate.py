# SPDX-License-Identifier: MIT
"""The escalation plugin, driven through the real daemon on a fast test
clock (LIANXIN_FAKE_CLOCK): appeals climb community -> township -> county
on the 2026 working-day calendar, each step is a record in the log before
its alert goes out, warnings and unanswered alerts come once, the clock
stops for explained/referred appeals, unsatisfied feedback reopens with a
fresh deadline, and a restart catches up with each escalation made once,
at its true deadline."""
import datetime as dt
import os
import re
import time

import msgpack
import zmq

import lxtest
from lxtest import Daemon, appeal, resolution, feedback, visit, unpack

CST = dt.timezone(dt.timedelta(hours=8))
SPEED = 500000  # one day of daemon time takes 0.17 s


def ms(y, mo, d, h=0, mi=0):
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=CST).timestamp() * 1000)


HOLIDAYS_2026 = [("01-01", "01-03"), ("02-15", "02-23"), ("04-04", "04-06"), ("05-01", "05-05"),
                 ("06-19", "06-21"), ("09-25", "09-27"), ("10-01", "10-07")]
EXCHANGE_2026 = ["01-04", "02-14", "02-28", "05-09", "09-20", "10-10"]


def is_workday(day):
    md = day.strftime("%m-%d")
    if md in EXCHANGE_2026:
        return True
    if any(a <= md <= b for a, b in HOLIDAYS_2026):
        return False
    return day.weekday() < 5


def workdays_after(at_ms, n):
    """18:00 local on the n-th working day after the local date of at_ms (the
    day of receipt does not count): an independent reading of the rule."""
    day = dt.datetime.fromtimestamp(at_ms / 1000, CST).date()
    while n:
        day += dt.timedelta(days=1)
        n -= is_workday(day)
    return int(dt.datetime(day.year, day.month, day.day, 18, tzinfo=CST).timestamp() * 1000)


def test_calendar_reading_matches_known_dates():
    assert workdays_after(ms(2026, 3, 2, 9), 3) == ms(2026, 3, 5, 18)
    # Spring Festival: Fri 13 Feb -> Sat 14 (worked), then 24, 25 Feb.
    assert workdays_after(ms(2026, 2, 13, 10), 3) == ms(2026, 2, 25, 18)


def config_with_plugin(tmp, extra=""):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    # The sample's own plugin list is replaced: just escalate, with `extra`.
    entry = "plugins:\n  - name: escalate\n" + extra
    text = text[:text.index("\nplugins:")] + "\n" + entry
    path = os.path.join(tmp, "esc.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def start(tmp, at_ms, extra="", speed=SPEED):
    d = Daemon(config=config_with_plugin(tmp, extra), tmp=tmp,
               env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (at_ms, speed)})
    return d.start()


def subscriber(d, prefix):
    s = d.ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    s.connect(d.alerts)
    time.sleep(0.2)  # the slow joiner: let the subscription reach the daemon
    return s


def alerts_until(sub, pred, timeout=20.0):
    """Collects alerts until pred(alert) holds; returns them all."""
    out = []
    end = time.time() + timeout
    while time.time() < end:
        if sub.poll(100):
            topic, body = sub.recv_multipart()
            a = unpack(body)
            a["_topic"] = topic.decode()
            out.append(a)
            if pred(a):
                return out
    raise AssertionError("alert never came; got %r" % out)


def escalations(d, appeal_id):
    recs, _ = d.replay_all(appeal=appeal_id, types=["escalation"])
    return [(r["seq"], r["rat"], lxtest.unpack(r["ev"])) for r in recs]


def test_appeal_climbs_tiers_on_working_days(tmp_path):
    t0 = ms(2026, 3, 2, 9, 0)  # Monday 09:00
    d = start(str(tmp_path), t0)
    try:
        sub = subscriber(d, "qd.hx.")
        other = subscriber(d, "qd.xs.")
        ev = appeal()
        aid = ev["body"]["appeal"]
        r = d.publish(ev)
        assert r["ok"], r
        info = d.request({"op": "appeal", "appeal": aid})["appeal"]
        # The fast clock ran while the test set up: count from the receive time.
        assert info["deadline"] == workdays_after(info["opened"], 3)
        assert info["tier"] == "community"
        got = alerts_until(sub, lambda a: a["kind"] == "overdue")
        kinds = [a["kind"] for a in got]
        assert kinds.count("unanswered") == 1
        assert kinds.index("escalated") < kinds.index("overdue")
        esc = [a for a in got if a["kind"] == "escalated"]
        assert [(a["from"], a["to"], a["tier"]) for a in esc] == [
            ("community", "township", "township"), ("township", "county", "county")]
        # Each tier's time starts when the one below ran out: 3, 5, then 10
        # working days, all ending at 18:00 local.
        assert esc[0]["deadline"] == info["deadline"]
        assert esc[0]["next"] == workdays_after(esc[0]["deadline"], 5)
        assert esc[1]["deadline"] == esc[0]["next"]
        assert esc[1]["next"] == workdays_after(esc[1]["deadline"], 10)
        for a in esc:
            assert a["at"] >= a["deadline"]
        overdue = got[-1]
        assert overdue["deadline"] == esc[1]["next"] and overdue["at"] >= overdue["deadline"]
        # A warning per tier, each before that tier's deadline.
        warns = [a for a in got if a["kind"] == "warning"]
        assert [w["tier"] for w in warns] == ["community", "township", "county"]
        for a in got:
            assert a["_topic"] == "qd.hx.dy." and a["unit"] == "qd.hx.dy"
            assert a["appeal"] == aid
        # Every alert is a record in the log, at its seq.
        for a in got:
            rec = d.request({"op": "replay", "from": a["seq"], "limit": 1})["records"][0]
            body = unpack(rec["ev"])["body"]
            assert body["appeal"] == aid
            assert rec["rat"] == a["at"]
        # A subscriber to another township heard nothing of it.
        assert not other.poll(50)
        # Reminders follow, every working day, until it is resolved.
        alerts_until(sub, lambda a: a["kind"] == "reminder")
        info = d.request({"op": "appeal", "appeal": aid})["appeal"]
        assert info["tier"] == "county"
        assert d.publish(resolution(aid))["ok"]
        head = d.request({"op": "head"})["seq"]
        time.sleep(1.0)  # more than two days of daemon time
        assert not [e for e in escalations(d, aid) if e[0] > head]
        stats = d.request({"op": "stats"})
        assert stats["escalations"] >= 3
    finally:
        d.cleanup()


def test_answered_explained_and_reopened(tmp_path):
    t0 = ms(2026, 3, 2, 9, 0)
    d = start(str(tmp_path), t0, speed=20000)  # one day takes 4.3 s here
    try:
        sub = subscriber(d, "qd.")
        a1 = appeal()
        id1 = a1["body"]["appeal"]
        assert d.publish(a1)["ok"]
        # A visit answering it stops the response clock: no unanswered alert.
        assert d.publish(visit(appeal=id1))["ok"]
        # Explained: the clock stops, no escalation while it waits.
        assert d.publish(resolution(id1, outcome="explained"))["ok"]
        info = d.request({"op": "appeal", "appeal": id1})["appeal"]
        assert info["status"] == "explained" and info["deadline"] is None
        time.sleep(1.0)  # ~5 hours of daemon time; nothing is due
        # Unsatisfied: reopened at community with a fresh deadline counted
        # from the feedback's receive time.
        r = d.publish(feedback(id1, satisfied=False))
        assert r["ok"]
        rat = d.request({"op": "replay", "from": r["seq"], "limit": 1})["records"][0]["rat"]
        info = d.request({"op": "appeal", "appeal": id1})["appeal"]
        assert info["status"] == "open" and info["tier"] == "community"
        assert info["deadline"] > rat
        got = []
        while sub.poll(300):
            got.append(unpack(sub.recv_multipart()[1]))
        assert not [a for a in got if a["kind"] in ("unanswered", "escalated")], got
    finally:
        d.cleanup()


def test_restart_catches_up_once_at_true_deadlines(tmp_path):
    tmp = str(tmp_path)
    t0 = ms(2026, 3, 2, 9, 0)
    d = start(tmp, t0, speed=1)  # real time: nothing falls due while it runs
    ids = []
    try:
        for _ in range(20):
            ev = appeal()
            ids.append(ev["body"]["appeal"])
            assert d.publish(ev)["ok"]
    finally:
        assert d.stop() == 0
    # The daemon was "down" for a month: on restart every escalation that
    # fell due is made at once, in deadline order, each exactly once.
    d = Daemon(config=d.config, tmp=tmp,
               env={"LIANXIN_FAKE_CLOCK": "%d:1" % ms(2026, 4, 2, 9, 0)})
    d.start()
    try:
        time.sleep(0.5)
        for aid in ids:
            esc = escalations(d, aid)
            kinds = [(e[2]["body"]["kind"], e[2]["body"]["from"], e[2]["body"]["to"]) for e in esc]
            assert kinds == [("escalated", "community", "township"),
                             ("escalated", "township", "county"),
                             ("overdue", "county", "county")], kinds
            bodies = [e[2]["body"] for e in esc]
            assert bodies[0]["deadline"] == ms(2026, 3, 5, 18)
            assert bodies[1]["deadline"] == ms(2026, 3, 12, 18)
            assert bodies[2]["deadline"] == ms(2026, 3, 26, 18)
            # One reminder is scheduled, not one per missed working day.
            assert bodies[2]["next"] > ms(2026, 4, 2, 9, 0)
        # Restarting again adds nothing.
        n = d.request({"op": "head"})["seq"]
        assert d.stop() == 0
        d.start()
        time.sleep(0.3)
        assert d.request({"op": "head"})["seq"] == n
    finally:
        d.cleanup()


def test_plugin_config_errors_name_file_and_line(tmp_path):
    cfg = config_with_plugin(str(tmp_path), "    warn_share: 2\n    colour: red\n")
    d = Daemon(config=cfg, tmp=str(tmp_path))
    import subprocess
    p = subprocess.run(d.args(), capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert re.search(r"esc\.yaml:\d+: plugins\[0\]\.warn_share: ", p.stderr), p.stderr
    assert re.search(r"esc\.yaml:\d+: plugins\[0\]\.colour: unknown key", p.stderr), p.stderr


def test_clients_may_not_publish_plugin_types(tmp_path):
    d = start(str(tmp_path), ms(2026, 3, 2, 9, 0), speed=1)
    try:
        for t in ("escalation", "warning", "unanswered"):
            ev = visit()
            ev["type"] = t
            r = d.publish(ev)
            assert r["code"] == "E_TYPE", r
    finally:
        d.cleanup()


def _start_fails(tmp, plugins_yaml):
    import subprocess
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    text = text[:text.index("\nplugins:")] + "\n" + plugins_yaml
    cfg = os.path.join(tmp, "p.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(text)
    d = Daemon(config=cfg, tmp=tmp)
    p = subprocess.run(d.args(), capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert not os.path.exists(os.path.join(tmp, "ingest.sock")), "bound before refusing"
    return p.stderr


def test_plugin_with_other_abi_is_refused(tmp_path):
    so = os.path.join(lxtest.BUILD, "tests", "bad_abi.so")
    err = _start_fails(str(tmp_path), "plugins:\n  - name: bad_abi\n    path: %s\n" % so)
    assert re.search(r"p\.yaml:\d+: plugins\[0\] \(bad_abi\): .*built for plugin ABI 1; "
                     r"this daemon has 2: rebuild it", err), err


def test_missing_plugin_is_refused(tmp_path):
    err = _start_fails(str(tmp_path), "plugins:\n  - name: nosuch\n")
    assert re.search(r"p\.yaml:\d+: plugins\[0\] \(nosuch\): cannot load .*nosuch\.so", err), err


def test_replay_filters_by_plugin_types_and_topic_prefix(tmp_path):
    d = start(str(tmp_path), ms(2026, 3, 2, 9, 0))
    try:
        ev = appeal()
        aid = ev["body"]["appeal"]
        assert d.publish(ev)["ok"]
        assert d.publish(visit(unit="qd.xs.sq"))["ok"]
        end = time.time() + 20
        while time.time() < end:
            recs, _ = d.replay_all(appeal=aid, types=["escalation"])
            if any(lxtest.unpack(r["ev"])["body"]["kind"] == "overdue" for r in recs):
                break
            time.sleep(0.1)
        recs, _ = d.replay_all(unit="qd.hx.", types=["warning", "unanswered"])
        types = {lxtest.unpack(r["ev"])["type"] for r in recs}
        assert types == {"warning", "unanswered"}, types
        all_hx, _ = d.replay_all(unit="qd.hx")
        assert len(all_hx) > len(recs)
        assert all(lxtest.unpack(r["ev"])["unit"].startswith("qd.hx.") for r in all_hx)
        r = d.request({"op": "replay", "types": ["nosuch"]})
        assert r["code"] == "E_BADREQ"
    finally:
        d.cleanup()


def test_plugin_setting_of_the_wrong_shape_is_refused(tmp_path):
    # A list where the plugin expects a single value is named with its line.
    err = _start_fails(str(tmp_path), "plugins:\n  - name: escalate\n    reminder_days: [1, 2]\n")
    assert re.search(r"p\.yaml:\d+: plugins\[0\]\.reminder_days: expected a single value, not a list",
                     err), err
