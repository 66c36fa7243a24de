# SPDX-License-Identifier: MIT
"""Store and disk faults. A store on a small filesystem of the test's own
(a tmpfs it mounts, as root, and removes): when the disk fills, ingest
answers E_FULL, nothing acked is lost, queries keep working, and ingest
resumes when space is freed, without a restart. And stale reader slots
left by a killed reader process are cleared at start."""
import os
import re
import signal
import subprocess
import time

import pytest

import lxtest
from lxtest import Daemon, visit, chain


@pytest.fixture
def small_fs(tmp_path):
    mnt = str(tmp_path / "fs")
    os.mkdir(mnt)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt])


def config(tmp, map_size, map_max):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"map_size: \S+", "map_size: " + map_size, text)
    text = re.sub(r"map_max: \S+", "map_max: " + map_max, text)
    path = os.path.join(tmp, "disk.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def test_full_disk_answers_e_full_and_recovers_when_freed(tmp_path, small_fs):
    tmp = str(tmp_path)
    filler = os.path.join(small_fs, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (2 << 20))
    d = Daemon(config=config(tmp, "1MiB", "64MiB"), tmp=tmp)
    d.data = os.path.join(small_fs, "data")
    d.start()
    try:
        acked = {}
        refused = None
        with lxtest.Client(d.ingest) as c:
            for i in range(3000):
                ev = visit(note="x" * 3000, household="h" * 1000)
                r = c.call(lxtest.pack(ev), timeout=10)
                if not r["ok"]:
                    refused = (ev, r)
                    break
                acked[ev["id"]] = r["seq"]
        assert refused, "the disk never filled"
        ev, r = refused
        assert r["code"] == "E_FULL" and r["id"] == ev["id"], (r, d.read_log()[-3000:])
        # Nothing acked is lost; queries keep working.
        records, _ = d.replay_all()
        assert len(records) == len(acked) and chain(records) == d.request({"op": "head"})["hash"]
        assert d.publish(ev)["code"] == "E_FULL"
        # Space comes back: the same event now goes in, with no restart.
        os.unlink(filler)
        r = d.publish(ev)
        assert r["ok"] and not r["dup"] and r["seq"] == len(acked) + 1, r
        more = [d.publish(visit()) for _ in range(20)]
        assert all(m["ok"] for m in more)
        records, _ = d.replay_all()
        assert len(records) == len(acked) + 21
        chain(records)
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0


def test_stale_reader_slots_are_cleared_at_start(tmp_path):
    with Daemon(tmp=str(tmp_path)) as d:
        assert d.publish(visit())["ok"]
    # A reader (an auditor's tool, say) dies holding a read transaction,
    # while another process keeps the store open (were none left, LMDB
    # would reset its reader table when the daemon opens it anyway).
    keeper = subprocess.Popen(["/usr/bin/python3", "-c",
                               "import lmdb, sys\n"
                               "env = lmdb.open(sys.argv[1], max_dbs=64, readonly=True)\n"
                               "print('open', flush=True)\n"
                               "sys.stdin.read()\n", d.data],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert keeper.stdout.readline().strip() == b"open"
    code = ("import lmdb, os, signal, sys\n"
            "env = lmdb.open(sys.argv[1], max_dbs=64, readonly=True)\n"
            "txn = env.begin()\n"
            "txn.get(b'x', db=env.open_db(b'log', txn=txn, create=False))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    p = subprocess.run(["/usr/bin/python3", "-c", code, d.data])
    assert p.returncode == -signal.SIGKILL
    try:
        d.start()
        assert re.search(r"cleared 1 stale reader slot", d.read_log()), d.read_log()
        assert d.publish(visit())["ok"]
    finally:
        keeper.stdin.close()
        keeper.wait(10)
        d.cleanup()


def test_map_grows_when_the_plugins_writes_fill_it(tmp_path):
    """Appeals make the escalate plugin write its index in the same
    transaction; when one of those writes finds the map full, the batch is
    run again in a grown map, as when the log's own write does."""
    tmp = str(tmp_path)
    with Daemon(config=config(tmp, "1MiB", "64MiB"), tmp=tmp) as d:
        # Long appeal ids: the plugin's index keys carry them three times
        # over, so its writes are the ones that need new pages most often.
        evs = [lxtest.appeal(("ap-%s-%s" % (lxtest.new_id(), "x" * 80))[:64], summary="s")
               for _ in range(4000)]
        with lxtest.Client(d.ingest) as c:
            replies = c.pipeline([lxtest.pack(ev) for ev in evs], window=64, timeout=30)
        bad = [r for r in replies if not r.get("ok")]
        assert not bad, (len(bad), bad[:3])
        stats = d.request({"op": "stats"})
        assert stats["appeals"] == 4000 and stats["map_size"] > (1 << 20), stats
        assert "failed" not in d.read_log(), d.read_log()[-2000:]
