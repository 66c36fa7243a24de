# SPDX-License-Identifier: MIT
"""Hostile and careless peers: a SUB that never reads while alerts flow,
1,000 idle DEALER connections, a client that sends and never reads its
acks, a flood of malformed frames and of 1 MiB frames. Through all of it a
well-behaved client is served correctly, every malformed frame gets its
error (or, past 1 MiB, its connection dropped), and the daemon's memory
stays bounded (its per-connection queues are capped: see proto/README.md).
How fast the well-behaved client goes meanwhile is measured by
bench/hostile.sh, not asserted here."""
import os
import threading
import time

import zmq

import lxtest
from lxtest import pack, unpack, visit, appeal
from test_escalate import ms, start

RSS_LIMIT_KB = 400 * 1024


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def well_behaved(d, n=300):
    with lxtest.Client(d.ingest) as c:
        for r in c.pipeline([pack(visit()) for _ in range(n)], window=64, timeout=10):
            assert r["ok"], r


def test_hostile_peers_do_not_hurt_a_good_client(tmp_path):
    d = start(str(tmp_path), ms(2026, 3, 2, 9, 0), speed=200000)
    ctx = d.ctx
    socks = []
    try:
        # A subscriber to everything that never reads, while appeals raise alerts.
        deaf = ctx.socket(zmq.SUB)
        deaf.setsockopt(zmq.SUBSCRIBE, b"")
        deaf.setsockopt(zmq.RCVHWM, 10)
        deaf.connect(d.alerts)
        socks.append(deaf)
        with lxtest.Client(d.ingest) as c:
            for r in c.pipeline([pack(appeal()) for _ in range(200)], window=64):
                assert r["ok"]
        # 1,000 idle connections.
        for _ in range(1000):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(d.ingest)
            socks.append(s)
        # A client that sends and never reads its acks.
        mute = ctx.socket(zmq.DEALER)
        mute.setsockopt(zmq.LINGER, 0)
        mute.setsockopt(zmq.SNDHWM, 100000)
        mute.connect(d.ingest)
        socks.append(mute)

        def flood_mute():
            for _ in range(20000):
                try:
                    mute.send(pack(visit()), zmq.NOBLOCK)
                except zmq.Again:
                    time.sleep(0.001)
        t = threading.Thread(target=flood_mute, daemon=True)
        t.start()
        well_behaved(d)
        t.join(60)

        # Malformed frames: each is answered, in order, with its error.
        junk = [b"", b"\xc1", b"\x81", b"\x91\x01", b"\xdd\x80\x00\x00\x00", b"\x82\xa1a\x01\xa1a\x02",
                b"not msgpack at all", b"\x80" * 3, bytes(range(256))]
        with lxtest.Client(d.ingest) as c:
            for _ in range(100):
                for j in junk:
                    c.send(j)
            for _ in range(100):
                for j in junk:
                    r = c.recv(10)
                    assert r["ok"] is False and r["code"] == "E_DECODE", (j, r)
            # 64 KiB .. 1 MiB: answered E_TOO_BIG.
            big = b"\x81\xa1x\xc6" + (1024 * 1024 - 8).to_bytes(4, "big") + b"y" * (1024 * 1024 - 8)
            assert len(big) == 1024 * 1024
            for _ in range(20):
                c.send(big)
            for _ in range(20):
                r = c.recv(10)
                assert r["code"] == "E_TOO_BIG", r
        # Past 1 MiB the transport drops the connection; the daemon goes on.
        huge = ctx.socket(zmq.DEALER)
        huge.setsockopt(zmq.LINGER, 0)
        huge.connect(d.ingest)
        for _ in range(20):
            huge.send(b"\x00" * (1024 * 1024 + 1))
        assert not huge.poll(500), "a frame over 1 MiB was answered instead of dropped"
        huge.close()

        well_behaved(d)
        stats = d.request({"op": "stats"})
        assert stats["rejected"] >= 100 * len(junk) + 20
        assert stats["appeals"] == 200
        peak = rss_kb(d.proc.pid, "VmHWM")
        print("daemon peak RSS %d KiB, replies lost to the mute client: %d" %
              (peak, stats["replies_lost"]))
        assert peak < RSS_LIMIT_KB, peak
        assert d.proc.poll() is None
    finally:
        for s in socks:
            s.close(0)
        d.cleanup()
