# SPDX-License-Identifier: MIT
"""Crash loop: pipelining clients that retry every unacked event (same id,
same content) after reconnecting, while the daemon is SIGKILLed at random
moments and restarted on the same data. After every cycle: every acked id
is in the log exactly once, at its acked seq, with its content; no id
appears twice; seqs are dense; the chain verifies; and the daemon serves
again within 1 s of its restart. LX_CRASH_CYCLES sets the count (CI: 20;
scripts/crashloop.sh runs 200 and prints the summary).

Also: SIGKILL during escalation catch-up over thousands of overdue appeals,
restart, and nothing escalates twice."""
import os
import random
import threading
import time

import zmq

import lxtest
from lxtest import Daemon, pack, unpack, visit, appeal
from test_escalate import ms, start, config_with_plugin

CYCLES = int(os.environ.get("LX_CRASH_CYCLES", "20"))
WINDOW = 128


class Publisher(threading.Thread):
    """Pipelines events until its daemon dies; keeps what was acked and
    what was sent but not acked (to retry after the restart)."""

    def __init__(self, d, retry, tag):
        super().__init__(daemon=True)
        self.d, self.retry, self.tag = d, list(retry), tag
        self.acked = {}       # id -> (seq, event)
        self.unacked = {}     # id -> event
        self.stop = False

    def run(self):
        s = self.d.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.d.ingest)
        inflight = []         # events in send order; acks come back in that order
        try:
            while not self.stop:
                while len(inflight) < WINDOW and not self.stop:
                    ev = self.retry.pop() if self.retry else visit(note=self.tag)
                    s.send(pack(ev))
                    inflight.append(ev)
                if not s.poll(200):
                    if self.d.proc is None or self.d.proc.poll() is not None:
                        break     # the daemon is gone
                    continue
                r = unpack(s.recv())
                ev = inflight.pop(0)
                assert r["id"] == ev["id"], (r, ev["id"])
                assert r["ok"], r
                self.acked[ev["id"]] = (r["seq"], ev)
            for ev in inflight:
                self.unacked[ev["id"]] = ev
        finally:
            s.close()


class LogCheck:
    """What has been verified of the log so far, so each cycle replays only
    the records that are new since (the chain links them to the rest)."""

    def __init__(self):
        self.upto, self.hash, self.by_id = 0, b"\0" * 32, {}

    def update(self, d):
        records, _ = d.replay_all(**{"from": self.upto + 1})
        want = list(range(self.upto + 1, self.upto + 1 + len(records)))
        assert [r["seq"] for r in records] == want, "seqs not dense"
        self.hash = lxtest.chain(records, self.hash) if records else self.hash
        assert self.hash == d.request({"op": "head"})["hash"]
        for r in records:
            ev = unpack(r["ev"])
            assert ev["id"] not in self.by_id, "id %s stored twice" % ev["id"]
            self.by_id[ev["id"]] = (r["seq"], ev)
        self.upto += len(records)
        return self.upto

    def check(self, acked):
        for eid, (seq, sent) in acked.items():
            assert eid in self.by_id, "acked id %s lost" % eid
            got_seq, got = self.by_id[eid]
            assert got_seq == seq, (eid, seq, got_seq)
            assert got == sent, (got, sent)


def test_crash_loop_loses_nothing_acked(tmp_path):
    tmp = str(tmp_path)
    d = Daemon(tmp=tmp)
    acked, retry, fresh = {}, [], {}
    log = LogCheck()
    rnd = random.Random(int(os.environ.get("LX_CRASH_SEED", "7")))
    slowest = 0.0
    for cycle in range(CYCLES):
        t0 = time.time()
        d.start()
        slowest = max(slowest, time.time() - t0)
        log.update(d)
        log.check(fresh)  # what the last cycle acked is there, as acked
        pubs = [Publisher(d, retry[i::2], "c%d-%d" % (cycle, i)) for i in range(2)]
        for p in pubs:
            p.start()
        time.sleep(rnd.uniform(0.05, 0.4))
        d.kill()
        for p in pubs:
            p.stop = True
            p.join(10)
            assert not p.is_alive()
        retry, fresh = [], {}
        for p in pubs:
            fresh.update(p.acked)
            acked.update(p.acked)
            retry.extend(ev for eid, ev in p.unacked.items() if eid not in acked)
    d.start()
    try:
        # Every retry of anything ever acked answers dup with its seq.
        with lxtest.Client(d.ingest) as c:
            for eid, (seq, ev) in list(acked.items())[:500]:
                r = c.call(pack(ev))
                assert r["ok"] and r["dup"] and r["seq"] == seq, r
        log.update(d)
        log.check(acked)  # everything ever acked, against everything verified
        total = LogCheck().update(d)  # and the whole chain once more from seq 1
    finally:
        d.cleanup()
    print("crash loop: %d cycles, %d events acked, %d records, slowest restart %.3f s"
          % (CYCLES, len(acked), total, slowest))
    assert len(acked) > CYCLES * 10
    # Serves again within 1 s of its restart (start() waits for `head`).
    assert slowest < 1.0 * float(os.environ.get("LX_TIMEOUT_SCALE", "1")) + 0.5


def count_escalations(data):
    import lmdb
    env = lmdb.open(data, max_dbs=64, readonly=True, lock=False)
    n = 0
    with env.begin() as txn:
        for _, v in txn.cursor(db=env.open_db(b"log", txn=txn, create=False)):
            n += unpack(bytes(v[40:]))["type"] == "escalation"
    env.close()
    return n


def test_kill_during_escalation_catch_up(tmp_path):
    tmp = str(tmp_path)
    n = int(os.environ.get("LX_CATCHUP_APPEALS", "1500"))
    d = start(tmp, ms(2026, 3, 2, 9, 0), speed=1)
    ids = []
    try:
        with lxtest.Client(d.ingest) as c:
            evs = [appeal(unit=("qd.hx.dy", "qd.xs.sq", "qd.nh.hb")[i % 3]) for i in range(n)]
            ids = [e["body"]["appeal"] for e in evs]
            for r in c.pipeline([pack(e) for e in evs], window=256):
                assert r["ok"], r
    finally:
        assert d.stop() == 0
    # A month later every appeal is due thrice (two tiers up, then overdue):
    # kill the daemon in the middle of catching up, then let it finish.
    later = Daemon(config=d.config, tmp=tmp,
                   env={"LIANXIN_FAKE_CLOCK": "%d:1" % ms(2026, 4, 6, 9, 0)})
    want = 3 * n
    # Start it, and kill it before it can have caught up (the catch-up runs
    # in rounds of commits; the count stored at the kill says where it was).
    import subprocess
    counts = []
    for delay in (0.08, 0.15, 0.3, 0.6):  # kill it again and again as it catches up
        proc = subprocess.Popen(later.args(), env=later.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        counts.append(count_escalations(later.data))
        if counts[-1] >= want:
            break
    print("catch-up escalations stored at each kill: %s of %d" % (counts, want))
    later.start()
    try:
        end = time.time() + 60
        while time.time() < end:
            got = later.request({"op": "stats"})["escalations"]
            if got >= want:
                break
            time.sleep(0.2)
        records, _ = later.replay_all(types=["escalation"])
        seen = {}
        for r in records:
            b = unpack(r["ev"])["body"]
            key = (b["appeal"], b["kind"], b["from"], b["to"])
            assert key not in seen, "escalated twice: %r (seq %d and %d)" % (key, seen[key], r["seq"])
            seen[key] = r["seq"]
        assert len(seen) == want, (len(seen), want)
        assert later.request({"op": "stats"})["escalations"] == want
    finally:
        later.cleanup()
