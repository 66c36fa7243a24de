# SPDX-License-Identifier: MIT
"""The daemon stays available while a backlog of deadlines falls due (issue
15): 50,000 appeals are published, the daemon is stopped and started again on
the test clock (LIANXIN_FAKE_CLOCK) two months later, when every appeal's
response, community, township and county deadlines have passed. The escalate
plugin then makes 200,000 records; while it does, a `head` query is answered
and a new event is acked, each before the catch-up's last record, and alerts
go out as the records commit. Nothing here is timed: the assertions compare
sequence numbers."""
import datetime as dt
import os
import subprocess
import time

import zmq

import lxtest
from lxtest import Daemon, appeal, pack, unpack, visit
from test_escalate import config_with_plugin

CST = dt.timezone(dt.timedelta(hours=8))
APPEALS = 50000
PER_APPEAL = 4  # unanswered, escalated x2, overdue


def ms(y, mo, d, h=0):
    return int(dt.datetime(y, mo, d, h, tzinfo=CST).timestamp() * 1000)


def publish_backlog(d, n):
    """Publishes n appeals through one pipelined DEALER; returns their ids."""
    ids = ["ap-cu-%06d" % i for i in range(n)]
    units = lxtest.COMMUNITIES
    msgs = [pack(appeal(aid, unit=units[i % len(units)])) for i, aid in enumerate(ids)]
    with d.client("ingest") as c:
        replies = c.pipeline(msgs, window=1000)
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
    return ids


def restart(d, at_ms):
    """Starts the stopped daemon again on the test clock at at_ms (real speed),
    without waiting: the caller's first request is the probe."""
    d.env["LIANXIN_FAKE_CLOCK"] = "%d:1" % at_ms
    d.log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(d.args(), stdout=d.log, stderr=subprocess.STDOUT, env=d.env)


def first_reply(d, endpoint, msg, limit):
    """Sends msg to endpoint until the daemon is up and answers; returns the
    reply. Each try is a fresh socket, so a late reply is never mistaken."""
    end = time.time() + limit
    while time.time() < end:
        assert d.proc.poll() is None, d.read_log()
        sock = d.dealer(endpoint)
        try:
            sock.send(pack(msg))
            if sock.poll(300):
                return unpack(sock.recv())
        finally:
            sock.close(0)
    raise AssertionError("no reply within %.0fs:\n%s" % (limit, d.read_log()[-3000:]))


def wait_head(d, seq, limit):
    end = time.time() + limit
    while time.time() < end:
        h = d.request({"op": "head"}, timeout=lxtest.RECV_TIMEOUT)["seq"]
        if h >= seq:
            return h
        time.sleep(0.2)
    raise AssertionError("head stayed below %d" % seq)


def test_query_and_ack_during_a_50k_catch_up(tmp_path):
    tmp = str(tmp_path)
    t0 = ms(2026, 3, 2, 9)
    d = Daemon(config=config_with_plugin(tmp), tmp=tmp,
               env={"LIANXIN_FAKE_CLOCK": "%d:1" % t0})  # real speed: nothing falls due yet
    limit = 240 * lxtest.TIMEOUT_SCALE
    try:
        d.start()
        with lxtest.time_limit(limit, "the catch-up test"):
            ids = publish_backlog(d, APPEALS)
            h0 = d.head()["seq"]
            assert h0 == APPEALS
            assert d.stop() == 0
            final = h0 + PER_APPEAL * APPEALS + 1  # and the visit below

            restart(d, ms(2026, 5, 4, 9))  # every deadline of every appeal has passed
            head = first_reply(d, d.query, {"op": "head"}, 10 * lxtest.TIMEOUT_SCALE)
            sub = d.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"qd.")
            sub.connect(d.alerts)
            ack = d.publish(visit(), timeout=lxtest.RECV_TIMEOUT)  # it is up: one send
            assert sub.poll(int(lxtest.RECV_TIMEOUT * 1000)), "no alert during the catch-up"
            alert = unpack(sub.recv_multipart()[1])
            seen = d.request({"op": "head"})["seq"]

            # Answered, acked and alerted while escalation records were still
            # being appended: each saw a head short of the catch-up's end.
            assert head["ok"] and h0 <= head["seq"] < final - 1, (head, final)
            assert ack["ok"] and not ack["dup"], ack
            assert h0 < ack["seq"] < final, (ack, final)
            assert h0 < alert["seq"] < final and seen < final, (alert["seq"], seen, final)

            assert wait_head(d, final, limit) == final
            sub.close(0)
            stats = d.request({"op": "stats"})
            assert stats["escalations"] == 3 * APPEALS, stats
            # The first appeal's own records, in deadline order, each once.
            recs, _ = d.replay_all(appeal=ids[0], types=["escalation", "unanswered", "warning"])
            kinds = [(unpack(r["ev"])["type"], unpack(r["ev"])["body"].get("kind")) for r in recs]
            assert kinds == [("unanswered", None), ("escalation", "escalated"),
                             ("escalation", "escalated"), ("escalation", "overdue")], kinds
            # Nothing more to do: a restart adds nothing.
            assert d.stop() == 0
            d.start()
            assert d.head()["seq"] == final
    finally:
        d.cleanup()
