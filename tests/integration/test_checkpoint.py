# SPDX-License-Identifier: MIT
"""Signed checkpoints: every N records and at clean shutdown the daemon
appends a `checkpoint` record naming the record before it, signed with its
Ed25519 key; `head` names the newest. Signatures are checked independently
with PyNaCl against the public key file `lianxin keygen --sign` wrote."""
import os
import re
import struct
import subprocess

import nacl.exceptions
import nacl.signing

import lxtest
from lxtest import Daemon, visit, unpack


def keygen(tmp):
    base = os.path.join(tmp, "daemon")
    subprocess.run([lxtest.CLI, "keygen", "--sign", base], check=True, capture_output=True)
    return base + ".sign.key", base + ".sign.pub"


def config(tmp, every, key_path):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    text += "\ncheckpoints:\n  key: %s\n  every: %d\n  interval: 3600\n" % (key_path, every)
    path = os.path.join(tmp, "ck.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def checkpoints(records):
    out = []
    for r in records:
        ev = unpack(r["ev"])
        if ev["type"] == "checkpoint":
            out.append((r, ev))
    return out


def test_checkpoints_every_n_and_at_shutdown(tmp_path):
    tmp = str(tmp_path)
    key, pub = keygen(tmp)
    d = Daemon(config=config(tmp, 10, key), tmp=tmp).start()
    try:
        with lxtest.Client(d.ingest) as c:
            for _ in range(25):
                assert c.call(lxtest.pack(visit()))["ok"]
        records, _ = d.replay_all()
        cps = checkpoints(records)
        assert len(cps) >= 2
        by_seq = {r["seq"]: r for r in records}
        with open(pub) as f:
            pubkey = bytes.fromhex(f.read().strip())
        for rec, ev in cps:
            body = ev["body"]
            # It names the record just before it, with that record's chain hash.
            assert body["seq"] == rec["seq"] - 1
            assert body["hash"] == by_seq[rec["seq"] - 1]["hash"]
            assert body["key"] == pubkey
            vk = nacl.signing.VerifyKey(pubkey)
            vk.verify(struct.pack(">Q", body["seq"]) + body["hash"], body["sig"])
            forged = bytearray(body["sig"])
            forged[0] ^= 1
            try:
                vk.verify(struct.pack(">Q", body["seq"]) + body["hash"], bytes(forged))
                raise AssertionError("a forged signature verified")
            except nacl.exceptions.BadSignatureError:
                pass
            assert ev["unit"] == "qd" and ev["actor"] == "checkpoint"
            assert ev["at"] == rec["rat"]
        head = d.request({"op": "head"})
        assert head["checkpoint"] == cps[-1][0]["seq"]
        lxtest.chain(records)
        assert d.stop() == 0
        # At clean shutdown: one more, naming the last record.
        d.start()
        records, _ = d.replay_all()
        last = checkpoints(records)[-1]
        assert last[0]["seq"] == records[-1]["seq"]
        assert d.request({"op": "head"})["checkpoint"] == last[0]["seq"]
        # Nothing new since: a second clean stop adds none.
        n = len(records)
        assert d.stop() == 0
        d.start()
        assert d.request({"op": "head"})["seq"] == n
    finally:
        d.cleanup()


def test_bad_key_file_refused_before_binding(tmp_path):
    tmp = str(tmp_path)
    bad = os.path.join(tmp, "bad.sign.key")
    with open(bad, "w") as f:
        f.write("not hex\n")
    d = Daemon(config=config(tmp, 10, bad), tmp=tmp)
    p = subprocess.run(d.args(), capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert re.search(r"bad\.sign\.key: expected one line of 128 hex digits", p.stderr), p.stderr
    assert not os.path.exists(os.path.join(tmp, "ingest.sock"))
