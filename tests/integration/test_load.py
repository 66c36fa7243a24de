# SPDX-License-Identifier: MIT
"""Load and crash: 20,000 events pipelined by 4 concurrent DEALER clients
(window 256), and SIGKILL while 4 clients pipeline, then a restart on the
same data dir: every acked event is in the log at its acked seq, the log is
dense and its chain verifies, retries answer dup with the original seq and
unacked events can still be sent.
"""
import os
import re
import shutil
import tempfile
import threading
import time

import lxtest
import pytest
import zmq

from lxtest import (COMMUNITIES, RECV_TIMEOUT, SAMPLE_CONFIG, TIMEOUT_SCALE, Client, appeal,
                    chain, decode_ev, pack, resolution, running_daemon, stored_form, visit)

CLIENTS = 4
WINDOW = 256


@pytest.fixture
def cfgdir():
    t = tempfile.mkdtemp(prefix="lx-it-cfg-")
    yield t
    shutil.rmtree(t, ignore_errors=True)


@pytest.fixture
def d(cfgdir):
    # These tests count every seq: no hotspot of their own load in the log.
    yield from running_daemon(limit=240, config=lxtest.sample_without(cfgdir, "hotspot"))


def store_config(cfgdir, map_size, map_max, name="store.yaml"):
    """The sample config with other store sizes (and no hotspot plugin)."""
    text = lxtest.sample_text_without("hotspot")
    text, n1 = re.subn(r"(?m)^(\s+map_size:\s*)\S+", r"\g<1>" + map_size, text)
    text, n2 = re.subn(r"(?m)^(\s+map_max:\s*)\S+", r"\g<1>" + map_max, text)
    assert n1 == 1 and n2 == 1, "the sample config has no store.map_size/map_max lines"
    path = os.path.join(cfgdir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def make_events(tag, n):
    """n events for one client: visits, and appeals each resolved 5 events later
    (on the same socket, so the resolution always arrives after its appeal)."""
    out = []
    for i in range(n):
        if i % 10 == 0:
            out.append(appeal("ap-%s-%d" % (tag, i), unit=COMMUNITIES[i % 9]))
        elif i % 10 == 5:
            out.append(resolution("ap-%s-%d" % (tag, i - 5), unit=COMMUNITIES[(i - 5) % 9]))
        else:
            out.append(visit(COMMUNITIES[i % 9], minutes=i % 1000, note="load %s %d" % (tag, i)))
    return out


class Writer(threading.Thread):
    """One client on its own DEALER: keeps up to WINDOW events in flight and
    records every reply in order. Stops when all are acked, or, once `stop` is
    set, when nothing more arrives."""

    def __init__(self, endpoint, events, stop=None):
        super().__init__(daemon=True)
        self.endpoint, self.events, self.stop = endpoint, events, stop
        self.frames = [pack(e) for e in events]
        self.replies = []
        self.sent = 0
        self.error = None

    def run(self):
        cli = Client(self.endpoint)
        try:
            idle = 0
            while len(self.replies) < len(self.frames):
                stopping = self.stop is not None and self.stop.is_set()
                while (not stopping and self.sent < len(self.frames)
                       and self.sent - len(self.replies) < WINDOW):
                    try:
                        cli.sock.send(self.frames[self.sent], zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.sent += 1
                r = cli.try_recv(0.2 if self.stop is not None else RECV_TIMEOUT)
                if r is not None:
                    self.replies.append(r)
                    idle = 0
                elif self.stop is None:
                    raise TimeoutError("no ack within %.0fs after %d replies"
                                       % (RECV_TIMEOUT, len(self.replies)))
                elif stopping:
                    idle += 1
                    if idle >= 3:
                        break
        except Exception as e:          # reported by the main thread
            self.error = e
        finally:
            cli.close()                 # linger 0: nothing unsent reaches a restarted daemon

    def acked(self):
        """(event, ack) for every reply, checking that replies came in send order."""
        out = []
        for ev, r in zip(self.events, self.replies):
            assert r.get("id") == ev["id"], "ack out of order: sent %r, got %r" % (ev["id"], r)
            out.append((ev, r))
        return out


def verify_log(d):
    """Replays everything; checks density and the chain; returns the records."""
    recs, last = d.replay_all()
    head = d.head()
    assert [r["seq"] for r in recs] == list(range(1, head["seq"] + 1)), "log is not dense"
    assert chain(recs) == head["hash"], "chain does not reach head's hash"
    return recs


def prefix_hashes(recs):
    import hashlib
    import struct
    h, out = b"\0" * 32, {0: b"\0" * 32}
    for r in recs:
        h = hashlib.blake2b(h + struct.pack(">QQ", r["seq"], r["rat"]) + r["ev"],
                            digest_size=32).digest()
        out[r["seq"]] = h
    return out


class Reader(threading.Thread):
    """Watches head and replays while the writers work; every head seen must be
    a prefix of the final log, and every replay page must be dense."""

    def __init__(self, d, done):
        super().__init__(daemon=True)
        self.d, self.done = d, done
        self.heads, self.error, self.pages = [], None, 0

    def run(self):
        cli = Client(self.d.query)
        try:
            while not self.done.is_set():
                h = cli.call({"op": "head"})
                assert h.get("ok"), h
                self.heads.append((h["seq"], h["hash"]))
                r = cli.call({"op": "replay", "from": max(1, h["seq"] - 300), "limit": 500})
                assert r.get("ok"), r
                seqs = [x["seq"] for x in r["records"]]
                assert seqs == list(range(max(1, h["seq"] - 300), max(1, h["seq"] - 300)
                                          + len(seqs))), "replay page not dense"
                assert r["head"] >= h["seq"]
                self.pages += 1
                time.sleep(0.02)
        except Exception as e:
            self.error = e
        finally:
            cli.close()


def test_20000_events_from_4_pipelining_clients(d):
    per = 20000 // CLIENTS
    writers = [Writer(d.ingest, make_events("c%d" % c, per)) for c in range(CLIENTS)]
    done = threading.Event()
    reader = Reader(d, done)
    t0 = time.time()
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(180 * TIMEOUT_SCALE)
        assert not w.is_alive(), "a writer is stuck"
    elapsed = time.time() - t0
    done.set()
    reader.join(30)
    for w in writers:
        assert w.error is None, "writer failed: %r" % (w.error,)
    assert reader.error is None, "reader failed: %r" % (reader.error,)

    seq_of = {}
    for w in writers:
        pairs = w.acked()
        assert len(pairs) == per
        for ev, r in pairs:
            assert r.get("ok") is True and r.get("dup") is False, (ev, r)
            seq_of[ev["id"]] = (r["seq"], ev)
    seqs = sorted(s for s, _ in seq_of.values())
    assert seqs == list(range(1, 20001)), "seqs are not dense 1..20000 without duplicates"

    recs = verify_log(d)
    assert len(recs) == 20000
    for rec in recs:
        ev = decode_ev(rec)
        s, sent = seq_of[ev["id"]]
        assert s == rec["seq"] and ev == stored_form(sent), rec["seq"]

    # every head seen during the load was a true prefix of the final log
    ph = prefix_hashes(recs)
    assert reader.heads, "the reader saw no head"
    for s, h in reader.heads:
        assert ph[s] == h, "head at seq %d was not the chain of the final log" % s

    # a reply never holds more than 10000 records
    r = d.request({"op": "replay", "from": 1, "limit": 10000}, timeout=60)
    assert r.get("ok") and len(r["records"]) == 10000 and r["next"] == 10001, \
        (len(r.get("records", [])), r.get("next"))
    r = d.request({"op": "replay", "from": 1, "limit": 20000}, timeout=60)
    if r.get("ok"):
        assert len(r["records"]) <= 10000, len(r["records"])
        assert r["next"] == len(r["records"]) + 1
    else:
        assert r.get("code") == "E_BADREQ", r

    st = d.request({"op": "stats"})
    assert st.get("ok") and st["events"] == 20000, st
    print("20000 events from %d clients in %.2fs (%.0f/s)" % (CLIENTS, elapsed, 20000 / elapsed))


def test_sigkill_under_load_then_restart(d):
    per = 6000
    stop = threading.Event()
    writers = [Writer(d.ingest, make_events("k%d" % c, per), stop) for c in range(CLIENTS)]
    for w in writers:
        w.start()
    deadline = time.time() + 60 * TIMEOUT_SCALE
    while sum(len(w.replies) for w in writers) < 3000:
        assert time.time() < deadline, "the writers got no acks"
        assert all(w.is_alive() or w.error is None for w in writers), [w.error for w in writers]
        time.sleep(0.002)
    d.kill()
    stop.set()
    for w in writers:
        w.join(30)
        assert not w.is_alive(), "a writer is stuck"
        assert w.error is None, repr(w.error)

    acked, unacked = [], []
    for w in writers:
        pairs = w.acked()
        for ev, r in pairs:
            assert r.get("ok") is True and r.get("dup") is False, (ev, r)
            acked.append((ev, r["seq"]))
        unacked.extend(w.events[len(pairs):w.sent])
    assert acked and len(acked) < CLIENTS * per
    assert len({s for _, s in acked}) == len(acked), "two events acked with one seq"

    d.start()          # same data dir
    recs = verify_log(d)
    n = len(recs)
    by_seq = {r["seq"]: decode_ev(r) for r in recs}
    for ev, s in acked:
        assert s <= n, "acked seq %d is past the log's end %d after the crash" % (s, n)
        assert by_seq[s] == stored_form(ev), "acked event %s is not at its seq %d" % (ev["id"], s)
    log_ids = [e["id"] for e in by_seq.values()]
    assert len(set(log_ids)) == len(log_ids), "an id is stored twice"
    sent_by_id = {ev["id"]: ev for w in writers for ev in w.events[:w.sent]}
    for s, e in by_seq.items():
        assert e["id"] in sent_by_id and e == stored_form(sent_by_id[e["id"]]), s
    seq_by_id = {e["id"]: s for s, e in by_seq.items()}

    # state beside the log survived the crash in step with it
    appeals = [(s, e) for s, e in sorted(by_seq.items()) if e["type"] == "appeal"]
    resolved = {e["body"]["appeal"] for e in by_seq.values() if e["type"] == "resolution"}
    with Client(d.query) as qc:
        for s, e in appeals[::max(1, len(appeals) // 60)]:
            aid = e["body"]["appeal"]
            r = qc.call({"op": "appeal", "appeal": aid})
            assert r.get("ok"), (aid, r)
            assert r["appeal"]["status"] == ("resolved" if aid in resolved else "open"), (aid, r)
            assert r["appeal"]["events"][0] == s, (aid, r)

    # retrying every acked event answers dup with the original seq
    with Client(d.ingest) as cli:
        rs = cli.pipeline([ev for ev, _ in acked], window=WINDOW)
    for (ev, s), r in zip(acked, rs):
        assert r == dict(r, ok=True, id=ev["id"], seq=s, dup=True), (ev["id"], s, r)
    assert d.head()["seq"] == n

    # unacked events (in flight at the kill) can be sent again, each stored once
    with Client(d.ingest) as cli:
        rs = cli.pipeline(unacked, window=WINDOW)
    new = 0
    for ev, r in zip(unacked, rs):
        assert r.get("ok") is True and r.get("id") == ev["id"], (ev, r)
        if ev["id"] in seq_by_id:
            assert r["dup"] is True and r["seq"] == seq_by_id[ev["id"]], (ev["id"], r)
        else:
            new += 1
            assert r["dup"] is False and r["seq"] == n + new, (ev["id"], r)
    recs = verify_log(d)
    assert len(recs) == n + new
    print("killed with %d acked, %d in flight (%d of them stored, acks lost)"
          % (len(acked), len(unacked), len(unacked) - new))
    ids = [decode_ev(r)["id"] for r in recs]
    assert len(set(ids)) == len(ids)
    assert set(ids) == {ev["id"] for ev, _ in acked} | {ev["id"] for ev in unacked}


def test_map_grows_under_load(cfgdir):
    """A 1 MiB initial map takes ~15 MB of events from 4 pipelining clients: the
    map grows between batches and no event is refused or lost."""
    gen = running_daemon(limit=240, config=store_config(cfgdir, "1MiB", "512MiB"))
    d = next(gen)
    try:
        per = 2500
        writers = []
        for c in range(CLIENTS):
            evs = [visit(COMMUNITIES[i % 9], minutes=i % 1000, note=("%d-%d " % (c, i)) * 150)
                   for i in range(per)]
            writers.append(Writer(d.ingest, evs))
        for w in writers:
            w.start()
        for w in writers:
            w.join(180 * TIMEOUT_SCALE)
            assert not w.is_alive() and w.error is None, repr(w.error)
        seq_of = {}
        for w in writers:
            for ev, r in w.acked():
                assert r.get("ok") is True and r.get("dup") is False, r
                seq_of[r["seq"]] = ev
        assert sorted(seq_of) == list(range(1, CLIENTS * per + 1))
        recs = verify_log(d)
        for rec in recs:
            assert decode_ev(rec) == stored_form(seq_of[rec["seq"]])
    finally:
        for _ in gen:
            pass


def test_e_full_then_retry_after_growing(cfgdir):
    """With a 2 MiB ceiling the store fills: events answer E_FULL with nothing stored,
    the daemon keeps serving, and after a restart with a larger ceiling the same
    events are accepted (nothing was lost, retry later)."""
    gen = running_daemon(limit=240, config=store_config(cfgdir, "1MiB", "2MiB"))
    d = next(gen)
    try:
        evs = [visit(COMMUNITIES[i % 9], note="f%05d " % i + "x" * 3500) for i in range(1500)]
        with Client(d.ingest) as cli:
            rs = cli.pipeline(evs, window=64)
        acked = [(ev, r["seq"]) for ev, r in zip(evs, rs) if r.get("ok")]
        full = [(ev, r) for ev, r in zip(evs, rs) if not r.get("ok")]
        assert full, "2 MiB never filled up with ~5 MB of events"
        print("store full after %d events; %d answered E_FULL" % (len(acked), len(full)))
        for ev, r in full:
            assert r.get("code") == "E_FULL" and r.get("id") == ev["id"], r
            assert isinstance(r.get("error"), str)
        assert all(r.get("dup") is False for r in rs if r.get("ok"))
        assert [s for _, s in acked] == list(range(1, len(acked) + 1))
        recs = verify_log(d)
        assert len(recs) == len(acked), "an E_FULL event was stored"
        for (ev, s), rec in zip(acked, recs):
            assert decode_ev(rec) == stored_form(ev)
        # still serving: queries work, a retry of an acked event is a dup
        st = d.request({"op": "stats"})
        assert st.get("ok") and st["events"] == len(acked), st
        with Client(d.ingest) as cli:
            ev0, s0 = acked[0]
            r = cli.call(ev0)
            assert r == dict(r, ok=True, seq=s0, dup=True), r

        assert d.stop() == 0, d.read_log()[-4000:]
        d.config = store_config(cfgdir, "1MiB", "64MiB", name="bigger.yaml")
        d.start()
        # The changed file is recorded first (PROTOCOL.md "config").
        assert d.head()["seq"] == len(acked) + 1
        with Client(d.ingest) as cli:
            rs = cli.pipeline([ev for ev, _ in full], window=64)
        for i, ((ev, _), r) in enumerate(zip(full, rs)):
            assert r == dict(r, ok=True, id=ev["id"], seq=len(acked) + 2 + i, dup=False), r
        recs = verify_log(d)
        assert len(recs) == len(evs) + 1
    finally:
        for _ in gen:
            pass
