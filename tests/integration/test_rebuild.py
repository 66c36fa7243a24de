# SPDX-License-Identifier: MIT
"""`lianxind --audit DIR`: rebuild every derived state from the log alone,
compare it with the stored state, re-check every escalation. An honest log
(with escalations on the fast test clock) reports no discrepancy; a log
with a forged, unjustified escalation appended (written straight into a
copy with LMDB, chain and head kept valid) is caught at that seq; and
stored state that disagrees with the log is named by appeal."""
import hashlib
import os
import shutil
import struct
import subprocess
import time
import uuid

import lmdb
import msgpack

import lxtest
from lxtest import appeal, resolution, visit
from test_escalate import ms, start, escalations


def audit(d, data):
    p = subprocess.run([lxtest.DAEMON, "--config", d.config, "--audit", data],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def honest_store(tmp):
    d = start(tmp, ms(2026, 3, 2, 9, 0))
    ids = []
    for i in range(6):
        ev = appeal(unit="qd.hx.dy" if i % 2 else "qd.xs.sq", priority="urgent" if i == 3 else "normal")
        ids.append(ev["body"]["appeal"])
        assert d.publish(ev)["ok"]
    assert d.publish(visit(appeal=ids[0], unit="qd.xs.sq"))["ok"]
    assert d.publish(resolution(ids[1], unit="qd.hx.dy", outcome="explained"))["ok"]
    end = time.time() + 30
    while time.time() < end:  # until one has gone overdue and been reminded
        kinds = [e[2]["body"]["kind"] for e in escalations(d, ids[2])]
        if "reminder" in kinds:
            break
        time.sleep(0.2)
    assert "reminder" in kinds
    assert d.publish(resolution(ids[2], unit="qd.hx.dy"))["ok"]
    return d, ids


def test_audit_of_an_honest_log_and_of_a_forged_escalation(tmp_path):
    tmp = str(tmp_path)
    d, ids = honest_store(tmp)
    try:
        # On the live store, while the daemon serves.
        rc, out = audit(d, d.data)
        assert rc == 0, out
        assert "0 discrepancies" in out and "escalations checked" in out
        n_esc = int(out.split(" escalations checked")[0].split(", ")[-1])
        assert n_esc >= 3
    finally:
        assert d.stop() == 0
    rc, out = audit(d, d.data)
    assert rc == 0, out

    # A copy with an escalation nobody was due: an appeal still at the
    # community, its deadline weeks away, "escalated" anyway.
    forged = os.path.join(tmp, "forged")
    shutil.copytree(d.data, forged)
    env = lmdb.open(forged, max_dbs=64, map_size=64 << 20)
    log, meta = env.open_db(b"log"), env.open_db(b"meta")
    with env.begin(write=True) as txn:
        hv = txn.get(b"head", db=meta)
        seq, rat = struct.unpack(">QQ", hv[:16])
        prev, rest = hv[16:48], hv[48:]
        victim = ids[4]
        ev = {"v": 1, "id": "lx-" + uuid.uuid4().hex, "type": "escalation", "at": rat,
              "unit": "qd.xs.sq", "actor": "escalate",
              "body": {"appeal": victim, "kind": "escalated", "from": "community",
                       "to": "township", "deadline": rat + 10 ** 9, "next": rat + 2 * 10 ** 9}}
        evb = msgpack.packb(ev, use_bin_type=True)
        n = seq + 1
        h = hashlib.blake2b(prev + struct.pack(">QQ", n, rat) + evb, digest_size=32).digest()
        txn.put(struct.pack(">Q", n), struct.pack(">Q", rat) + h + evb, db=log)
        txn.put(b"head", struct.pack(">QQ", n, rat) + h + rest, db=meta)
    env.close()
    rc, out = audit(d, forged)
    assert rc == 1, out
    assert "seq %d: unjustified escalated of appeal %s" % (n, victim) in out, out
    # The stored state never saw that record: the rebuild (which does) differs.
    assert "appeal %s: live state [open at " % victim in out, out
    assert "rebuilt from the log [open at township" in out, out


def test_audit_names_state_that_disagrees_with_the_log(tmp_path):
    tmp = str(tmp_path)
    d, ids = honest_store(tmp)
    assert d.stop() == 0
    bent = os.path.join(tmp, "bent")
    shutil.copytree(d.data, bent)
    env = lmdb.open(bent, max_dbs=64, map_size=64 << 20)
    appeals = env.open_db(b"appeals")
    with env.begin(write=True) as txn:
        raw = bytearray(txn.get(ids[5].encode(), db=appeals))
        raw[4:8] = struct.pack("<i", 5)  # status: closed, which no record says
        txn.put(ids[5].encode(), bytes(raw), db=appeals)
    env.close()
    rc, out = audit(d, bent)
    assert rc == 1, out
    assert "appeal %s: live state [closed" % ids[5] in out, out
    assert "rebuilt from the log [open" in out


def test_lianxin_audit_runs_the_same_audit(tmp_path):
    tmp = str(tmp_path)
    d, ids = honest_store(tmp)
    try:
        p = subprocess.run([lxtest.CLI, "audit", "--config", d.config, "--data", d.data],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "0 discrepancies" in p.stdout
    finally:
        d.cleanup()
