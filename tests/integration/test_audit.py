# SPDX-License-Identifier: MIT
"""The auditor's tools of the CLI: verify, backup, export, import, and the
human dates of replay --since/--until and appeal --at.

verify is run online (through replay pages) and offline (straight from a
store directory) on an honest log, then on COPIES of a stopped daemon's
store changed behind its back by tests/tools/lx-tamper (one byte of an
event, a deleted record, two records swapped, a forged checkpoint
signature, a rewritten chain). backup is taken while two clients pipeline
events; the copy must verify and a daemon must start from it. export ->
import -> verify must give the same head; an edited export is refused.

Checkpoint tests need a daemon that writes `checkpoint` records (config
section `checkpoints:`); they are skipped, saying why, when the daemon
refuses that section.
"""
import calendar
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import zmq

import lxtest
from lxtest import (COMMUNITY, COMMUNITY2, Daemon, appeal, feedback, resolution, unpack,
                    visit)

RUN_TIMEOUT = 120 * lxtest.TIMEOUT_SCALE
TAMPER = os.path.join(lxtest.BUILD, "tests", "lx-tamper")
OK_RE = re.compile(r"^OK: (\d+) records, seq (\d+)\.\.(\d+), (\d+) checkpoints "
                   r"(verified|not checked \(no --key\)), head ([0-9a-f]{64})")


def run(args, stdin=None, env=None):
    p = subprocess.run(list(args), input=stdin, capture_output=True, timeout=RUN_TIMEOUT,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def cli(*args, **kw):
    return run([lxtest.CLI] + list(args), **kw)


def verify(*args):
    rc, out, err = cli("verify", *args)
    return rc, out.strip(), err


def ok(line):
    m = OK_RE.match(line)
    assert m, line
    return {"n": int(m.group(1)), "first": int(m.group(2)), "last": int(m.group(3)),
            "cps": int(m.group(4)), "checked": m.group(5) == "verified", "head": m.group(6)}


def tamper(data, *args, rechain=False):
    rc, out, err = run([TAMPER] + (["--rechain"] if rechain else []) + [data] + [str(a) for a in args])
    assert rc == 0, err
    return out.strip()


def keygen(tmp, name="daemon"):
    base = os.path.join(tmp, name)
    rc, _, err = cli("keygen", "--sign", base)
    assert rc == 0, err
    return base + ".sign.key", base + ".sign.pub"


def ck_config(tmp, key, every):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    text += "\ncheckpoints:\n  key: %s\n  every: %d\n  interval: 3600\n" % (key, every)
    path = os.path.join(tmp, "audit.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def daemon_on(data, tmp, config=lxtest.SAMPLE_CONFIG):
    """A Daemon (not started) on store directory `data`, its sockets in tmp
    (with the store's own config file: another one would be recorded)."""
    os.makedirs(tmp, exist_ok=True)
    d = Daemon(config=config, tmp=tmp)
    d.data = data
    return d


def start_daemon(tmp, key=None, every=40):
    """A daemon with signed checkpoints when it supports them; returns
    (daemon, writes_checkpoints)."""
    os.makedirs(tmp, exist_ok=True)
    if key is not None:
        d = Daemon(config=ck_config(tmp, key, every), tmp=tmp)
        try:
            return d.start(timeout=10 * lxtest.TIMEOUT_SCALE), True
        except RuntimeError:
            d.stop()
    d = Daemon(tmp=tmp)
    return d.start(timeout=10 * lxtest.TIMEOUT_SCALE), False


def populate(d, rounds=12):
    """Appeals with their resolutions and feedback, and visits, pipelined."""
    evs, ids = [], []
    for i in range(rounds):
        a = "ap-audit-%d-%s" % (i, lxtest.new_id()[:6])
        ids.append(a)
        unit = COMMUNITY if i % 2 else COMMUNITY2
        evs += [appeal(a, unit=unit, priority="urgent" if i % 3 == 0 else "normal"),
                visit(unit=unit, appeal=a, note="答复 %d" % i)]
        if i % 4 != 3:
            evs.append(resolution(a, outcome=["resolved", "explained", "referred"][i % 3], unit=unit))
        if i % 4 == 0:
            evs.append(feedback(a, satisfied=i % 8 == 0, unit=unit))
        evs += [visit(unit=unit, minutes=i) for _ in range(4)]
    with d.client() as c:
        replies = c.pipeline(evs, window=64)
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
    return evs, ids


def export_lines(*args):
    rc, out, err = cli("export", *args)
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def checkpoint_seqs(lines):
    return [r["seq"] for r in lines if r["ev"]["type"] == "checkpoint"]


# --- an honest store, made once --------------------------------------------------


class Store:
    pass


@pytest.fixture(scope="module")
def store():
    """A daemon's store with signed checkpoints (when supported), checked
    online while the daemon runs, then stopped. Tests work on copies."""
    s = Store()
    s.tmp = tempfile.mkdtemp(prefix="lx-audit-")
    s.key, s.pub = keygen(s.tmp)
    d, s.ckpt = start_daemon(s.tmp, s.key, every=15)
    s.config = d.config
    try:
        with lxtest.time_limit(120):
            s.events, s.appeals = populate(d)
            s.online = {
                "key": verify("--query", d.query, "--key", s.pub),
                "nokey": verify("--query", d.query),
                "range": verify("--query", d.query, "--from", "10", "--to", "50"),
            }
            s.online_head = d.head()
            s.online_export = export_lines("--query", d.query)
            s.appeal_states = {a: d.request({"op": "appeal", "appeal": a})["appeal"]
                               for a in s.appeals}
            s.stats = d.request({"op": "stats"})
    finally:
        assert d.stop() == 0
    s.data = d.data
    yield s
    shutil.rmtree(s.tmp, ignore_errors=True)


def copy_of(store, tmp_path, name="copy"):
    dst = os.path.join(str(tmp_path), name)
    shutil.copytree(store.data, dst)
    return dst


def need_checkpoints(store):
    if not store.ckpt:
        pytest.skip("this lianxind refuses a `checkpoints:` config section: it writes no "
                    "checkpoint records yet")


# --- verify on an honest log -------------------------------------------------------


def test_verify_online_honest(store):
    rc, line, err = store.online["key"]
    assert rc == 0, (line, err)
    v = ok(line)
    h = store.online_head
    assert v["first"] == 1 and v["last"] == h["seq"] and v["n"] == h["seq"]
    assert v["head"] == h["hash"].hex()
    if store.ckpt:
        assert v["checked"] and v["cps"] >= 1, line
        assert h["checkpoint"] is not None
    rc, line, _ = store.online["nokey"]
    assert rc == 0 and "not checked (no --key)" in line, line
    rc, line, _ = store.online["range"]
    assert rc == 0, line
    v = ok(line)
    assert (v["n"], v["first"], v["last"]) == (41, 10, 50)
    assert "the chain before seq 10 is taken on trust" in line
    assert "head not checked" in line


def test_verify_offline_honest(store, tmp_path):
    rc, line, err = verify("--data", store.data, "--key", store.pub)
    assert rc == 0, (line, err)
    v = ok(line)
    lines = export_lines("--data", store.data)
    assert v["n"] == len(lines) and v["last"] == lines[-1]["seq"]
    assert v["head"] == lines[-1]["hash"]
    # The daemon ran on past what the online check saw: a checkpoint at shutdown.
    assert v["last"] >= store.online_head["seq"]
    if store.ckpt:
        cps = checkpoint_seqs(lines)
        assert v["cps"] == len(cps) >= 2 and cps[-1] == v["last"], (v, cps)
        # Another key: the checkpoints were not signed by it.
        _, other = keygen(str(tmp_path), "other")
        rc, line, _ = verify("--data", store.data, "--key", other)
        assert rc == 1 and line == "FAIL at seq %d: checkpoint key mismatch" % cps[0], line
    # Ranges: after the start (on trust), before the end (head not checked),
    # up to the last record (head checked), past it (to the end).
    rc, line, _ = verify("--data", store.data, "--from", "5")
    assert rc == 0 and ok(line)["first"] == 5 and "taken on trust" in line
    assert "head not checked" not in line
    rc, line, _ = verify("--data", store.data, "--from", "3", "--to", "20")
    assert rc == 0 and (ok(line)["first"], ok(line)["last"]) == (3, 20), line
    assert "head not checked" in line
    for to in (v["last"], v["last"] + 100):
        rc, line, _ = verify("--data", store.data, "--to", str(to))
        assert rc == 0 and ok(line)["last"] == v["last"] and "head not checked" not in line, line
    rc, out, err = cli("export", "--data", store.data, "--to", "20")
    assert rc == 0 and len(out.splitlines()) == 20, err


def test_verify_online_export_matches_offline(store):
    offline = export_lines("--data", store.data)
    n = len(store.online_export)
    assert n == store.online_head["seq"]
    assert store.online_export == offline[:n]
    for r in offline:
        assert bytes.fromhex(r["ev_msgpack"]) and r["ev"]["v"] == 1
    assert offline[0]["ev"]["body"]["appeal"] == store.appeals[0]


def test_verify_usage_errors(store, tmp_path):
    for args in (["--from", "0"], ["--to", "x"], ["--from", "9", "--to", "3"], ["extra"],
                 ["--data", str(tmp_path / "none")], ["--data", store.data, "--key", "/nonexistent"],
                 ["--data", store.data, "--from", "100000"]):
        rc, _, err = verify(*args)
        assert rc == 2 and err.strip(), (args, err)
    bad = tmp_path / "bad.sign.pub"
    bad.write_text("xyz\n")
    rc, _, err = verify("--data", store.data, "--key", str(bad))
    assert rc == 2 and "64 hex digits" in err
    rc, out, _ = cli("verify", "--help")
    assert rc == 0 and out.startswith("usage: lianxin verify")
    for cmd in ("backup", "export", "import"):
        rc, out, _ = cli("help", cmd)
        assert rc == 0 and out.startswith("usage: lianxin " + cmd)


def test_verify_empty_log(tmp_path):
    d = Daemon(tmp=str(tmp_path)).start()
    try:
        rc, line, err = verify("--query", d.query)
        assert rc == 0, err
        assert line.startswith("OK: 0 records") and line.endswith("0" * 64), line
    finally:
        assert d.stop() == 0
    rc, line, _ = verify("--data", d.data)
    assert rc == 0 and line.startswith("OK: 0 records"), line


def test_verify_read_only_backup_without_lock(store, tmp_path):
    """A backup on read-only media: verify reads it without LMDB's lock file.
    Root may write anything, so as root the check runs as user nobody (with
    setpriv), on a copy in a directory that user can enter, with a copy of the
    CLI there too (the build dir may be closed to it)."""
    as_nobody = []
    base = str(tmp_path)
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("as root, the read-only case needs setpriv to run verify as nobody")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        base = tempfile.mkdtemp(prefix="lx-ro-")
        os.chmod(base, 0o755)
    dst = copy_of(store, base)
    exe = lxtest.CLI
    if as_nobody:
        exe = os.path.join(base, "lianxin")
        shutil.copy(lxtest.CLI, exe)
        os.chmod(exe, 0o755)
    for f in os.listdir(dst):
        os.chmod(os.path.join(dst, f), 0o444)
    os.chmod(dst, 0o555)
    before = {f: os.stat(os.path.join(dst, f)).st_mtime_ns for f in os.listdir(dst)}
    try:
        rc, line, err = run(as_nobody + [exe, "verify", "--data", dst])
        line = line.strip()
        assert rc == 0 and "without LMDB's lock file" in err, (line, err)
        assert line == verify("--data", store.data)[1]  # the same records and head
        after = {f: os.stat(os.path.join(dst, f)).st_mtime_ns for f in os.listdir(dst)}
        assert after == before  # nothing written
    finally:
        os.chmod(dst, 0o755)
        if as_nobody:
            shutil.rmtree(base, ignore_errors=True)


# --- tampering ---------------------------------------------------------------------


@pytest.mark.parametrize("change,expect", [
    (("byte", 17), "FAIL at seq 17: hash mismatch"),
    (("byte", 30, 5), "FAIL at seq 30: hash mismatch"),
    (("delete", 17), "FAIL at seq 17: gap (expected 17, got 18)"),
    (("swap", 20, 30), "FAIL at seq 20: hash mismatch"),
    (("delete", 1), "FAIL at seq 1: gap (expected 1, got 2)"),
])
def test_tampered_store_fails_at_the_seq(store, tmp_path, change, expect):
    data = copy_of(store, tmp_path)
    tamper(data, *change)
    rc, line, err = verify("--data", data, "--key", store.pub)
    assert rc == 1 and line == expect, (line, err)
    # export still writes every record, and says the log does not verify
    rc, out, err = cli("export", "--data", data)
    assert rc == 1 and expect in err, err
    assert len(out.splitlines()) == len(export_lines("--data", store.data)) - (change[0] == "delete")
    # A range after the change does not see it; one that spans it does.
    seq = change[1]
    assert verify("--data", data, "--from", str(seq + 12))[0] == 0
    assert verify("--data", data, "--from", str(max(1, seq - 3)))[0] == 1


def test_tampering_inside_large_batches(tmp_path):
    """verify hashes records in batches spread over threads: a change deep
    inside a batch is named exactly as one record at a time names it."""
    base = str(tmp_path / "gen")
    assert tamper(base, "gen", 20000, 200) == "20000"
    for t in ("1", "4"):
        rc, out, err = run([lxtest.CLI, "verify", "--data", base], env={"LIANXIN_THREADS": t})
        assert rc == 0 and ok(out)["n"] == 20000, (out, err)
    for i, (change, expect) in enumerate([
            (("byte", 12345), "FAIL at seq 12345: hash mismatch"),
            (("swap", 9000, 9001), "FAIL at seq 9000: hash mismatch"),
            (("delete", 16385), "FAIL at seq 16385: gap (expected 16385, got 16386)"),
            (("byte", 4097), "FAIL at seq 4097: hash mismatch")]):
        data = str(tmp_path / ("t%d" % i))
        shutil.copytree(base, data)
        tamper(data, *change)
        for t in ("1", "4"):
            rc, out, err = run([lxtest.CLI, "verify", "--data", data], env={"LIANXIN_THREADS": t})
            assert rc == 1 and out.strip() == expect, (change, t, out, err)


def test_deleted_last_record_is_a_head_mismatch(store, tmp_path):
    data = copy_of(store, tmp_path)
    last = export_lines("--data", data)[-1]["seq"]
    tamper(data, "delete", last)
    rc, line, err = verify("--data", data)
    assert rc == 1 and line == "FAIL at seq %d: head mismatch" % last, (line, err)
    assert "the log ends at seq %d" % (last - 1) in err


def test_forged_checkpoint_signature(store, tmp_path):
    need_checkpoints(store)
    cps = checkpoint_seqs(export_lines("--data", store.data))
    # The signature bytes changed: the chain breaks there first...
    data = copy_of(store, tmp_path, "a")
    tamper(data, "sig", cps[0])
    rc, line, _ = verify("--data", data, "--key", store.pub)
    assert rc == 1 and line == "FAIL at seq %d: hash mismatch" % cps[0], line
    # ... and a forger who rewrites the chain after it is caught by the signature.
    data = copy_of(store, tmp_path, "b")
    tamper(data, "sig", cps[0], rechain=True)
    rc, line, _ = verify("--data", data, "--key", store.pub)
    assert rc == 1 and line == "FAIL at seq %d: bad checkpoint signature" % cps[0], line


def test_rewritten_chain_is_caught_by_the_next_checkpoint(store, tmp_path):
    need_checkpoints(store)
    cps = checkpoint_seqs(export_lines("--data", store.data))
    data = copy_of(store, tmp_path)
    tamper(data, "byte", 7, rechain=True)
    expect = "FAIL at seq %d: checkpoint hash mismatch" % min(c for c in cps if c > 7)
    for args in (["--key", store.pub], []):
        rc, line, err = verify("--data", data, *args)
        assert rc == 1 and line == expect, (args, line, err)
    # Without checkpoints, such a rewrite would pass: show that is what was caught.
    assert verify("--data", data, "--to", str(cps[0] - 1))[0] == 0


def test_checkpoint_appended_by_lx_tamper(store, tmp_path):
    """The checkpoint path of verify, with a record signed here as the daemon
    signs them (runs whether or not the daemon writes checkpoints)."""
    key, pub = keygen(str(tmp_path), "mine")
    data = copy_of(store, tmp_path)
    seq = int(tamper(data, "checkpoint", key))
    rc, line, err = verify("--data", data, "--key", pub, "--from", str(seq))
    assert rc == 0, (line, err)
    v = ok(line)
    assert v["cps"] == 1 and v["last"] == seq
    tamper(data, "sig", seq, rechain=True)
    rc, line, _ = verify("--data", data, "--key", pub, "--from", str(seq))
    assert rc == 1 and line == "FAIL at seq %d: bad checkpoint signature" % seq, line
    # A daemon reads the head lx-tamper wrote: checkpoint names the record.
    data2 = copy_of(store, tmp_path, "c2")
    seq = int(tamper(data2, "checkpoint", key))
    d = daemon_on(data2, str(tmp_path / "d2"), store.config).start()
    try:
        h = d.head()
        assert h["seq"] == seq and h["checkpoint"] == seq
        rc, line, _ = verify("--query", d.query, "--key", pub, "--from", str(seq))
        assert rc == 0 and ok(line)["cps"] == 1, line
    finally:
        d.stop()


# --- backup ------------------------------------------------------------------------


BACKUP_RE = re.compile(r"^backup: (.+): seq (\d+), head ([0-9a-f]{64}), checkpoint (\d+), (\d+) bytes$")


def test_backup_while_clients_pipeline(tmp_path):
    tmp = str(tmp_path)
    key, pub = keygen(tmp)
    d, ckpt = start_daemon(os.path.join(tmp, "live"), key, every=500)
    errors = []

    def load(n):
        try:
            with d.client() as c:
                replies = c.pipeline([visit(note="x" * 200) for _ in range(n)], window=128)
            if not all(r["ok"] for r in replies):
                errors.append("rejected")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    try:
        with lxtest.time_limit(180):
            threads = [threading.Thread(target=load, args=(4000,)) for _ in range(2)]
            for t in threads:
                t.start()
            while d.head()["seq"] < 500 and any(t.is_alive() for t in threads):
                time.sleep(0.01)
            before = d.head()["seq"]
            dst = os.path.join(tmp, "bk", "data")
            os.makedirs(os.path.dirname(dst))
            rc, out, err = cli("backup", dst, "--data", d.data)
            for t in threads:
                t.join()
            assert not errors, errors
            assert rc == 0, err
            m = BACKUP_RE.match(out.strip())
            assert m and m.group(1) == dst, out
            seq, head = int(m.group(2)), m.group(3)
            assert before <= seq <= d.head()["seq"]
            # The live store verifies offline too, the daemon serving beside.
            rc, line, err = verify("--data", d.data, "--key", pub)
            assert rc == 0 and ok(line)["last"] >= seq, (line, err)
            # A second backup into a directory that is not empty is refused.
            rc, _, err = cli("backup", dst, "--data", d.data)
            assert rc == 2 and "not an empty directory" in err
            rc, _, err = cli("backup", os.path.join(tmp, "bk2"), "--data", os.path.join(tmp, "nope"))
            assert rc == 2 and not os.path.exists(os.path.join(tmp, "bk2"))
    finally:
        assert d.stop() == 0
    rc, line, err = verify("--data", dst, "--key", pub)
    assert rc == 0, (line, err)
    v = ok(line)
    assert v["last"] == seq and v["head"] == head
    if ckpt:
        assert v["cps"] >= 1
    # The copy is a store a daemon starts from.
    b = Daemon(config=d.config, tmp=os.path.join(tmp, "bk"))
    b.start()
    try:
        h = b.head()
        assert h["seq"] == seq and h["hash"].hex() == head
        with b.client() as c:
            assert c.call(visit())["seq"] == seq + 1
    finally:
        assert b.stop() == 0
    assert verify("--data", dst)[0] == 0


# --- export and import -------------------------------------------------------------


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for r in lines:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def test_export_import_verify_same_head(store, tmp_path):
    exp = str(tmp_path / "log.jsonl")
    rc, out, err = cli("export", "--data", store.data, "--key", store.pub)
    assert rc == 0, err
    with open(exp, "w") as f:
        f.write(out)
    lines = [json.loads(line) for line in out.splitlines()]
    new = str(tmp_path / "imported")
    rc, out, err = cli("import", exp, "--data", new, "--key", store.pub,
                       "--config", lxtest.SAMPLE_CONFIG)
    assert rc == 0, err
    assert out.startswith("imported %d records, seq 1..%d" % (len(lines), len(lines))), out
    assert lines[-1]["hash"] in out
    assert "plugin" not in err, err
    rc, line, err = verify("--data", new, "--key", store.pub)
    assert rc == 0, (line, err)
    assert ok(line)["head"] == lines[-1]["hash"] == ok(verify("--data", store.data)[1])["head"]
    # Stdin works too; without --config no plugin runs, and import says so.
    with open(exp, "rb") as f:
        rc, _, err = cli("import", "-", "--data", str(tmp_path / "from-stdin"), stdin=f.read())
    assert rc == 0 and "plugin state" in err, err
    assert ok(verify("--data", str(tmp_path / "from-stdin"))[1])["head"] == lines[-1]["hash"]
    # A daemon on the imported store: same head, same appeals, dedup intact.
    d = daemon_on(new, str(tmp_path / "d")).start()
    try:
        h = d.head()
        assert h["seq"] == len(lines) and h["hash"].hex() == lines[-1]["hash"]
        assert any(st["deadline"] is not None for st in store.appeal_states.values())
        for a, want in store.appeal_states.items():
            got = d.request({"op": "appeal", "appeal": a})["appeal"]
            for k in ("status", "tier", "unit", "opened", "events", "category", "priority",
                      "deadline"):
                assert got[k] == want[k], (a, k, got, want)
        st = d.request({"op": "stats"})
        for k in ("appeals", "appeals_open", "escalations"):
            assert st[k] == store.stats[k], k
        with d.client() as c:
            first = store.events[0]
            r = c.call(first)
            assert r["ok"] and r["dup"] and r["seq"] == 1, r
            r = c.call(resolution(store.appeals[3]))  # i % 4 == 3: still open
            assert r["ok"] and not r["dup"], r
    finally:
        assert d.stop() == 0


def edited(lines, seq, fn):
    out = [dict(r) for r in lines]
    fn(out[seq - 1])
    return out


@pytest.mark.parametrize("what,fn,expect", [
    ("rat", lambda r: r.update(rat=r["rat"] + 1), "hash mismatch"),
    ("hash", lambda r: r.update(hash="00" * 32), "hash mismatch"),
    ("ev_msgpack", lambda r: r.update(ev_msgpack=r["ev_msgpack"][:-2] + (
        "00" if r["ev_msgpack"][-2:] != "00" else "01")), "hash mismatch"),
    ("ev", lambda r: r["ev"].update(actor="someone-else"), "ev does not match ev_msgpack"),
])
def test_import_refuses_an_edited_line(store, tmp_path, what, fn, expect):
    lines = export_lines("--data", store.data)
    path = str(tmp_path / "edited.jsonl")
    write_lines(path, edited(lines, 23, fn))
    new = str(tmp_path / "new")
    rc, out, err = cli("import", path, "--data", new)
    assert rc == 1, (out, err)
    assert out.strip() == "FAIL at seq 23: %s" % expect, (out, err)
    assert not os.path.exists(new), "a refused import left a store behind"


def test_import_refusals(store, tmp_path):
    lines = export_lines("--data", store.data)
    new = str(tmp_path / "new")
    # a line removed
    path = str(tmp_path / "gap.jsonl")
    write_lines(path, lines[:10] + lines[11:])
    rc, out, _ = cli("import", path, "--data", new)
    assert rc == 1 and out.strip() == "FAIL at seq 11: gap (expected 11, got 12)", out
    # an export of a range cannot make a new store
    path = str(tmp_path / "range.jsonl")
    write_lines(path, lines[4:])
    rc, out, err = cli("import", path, "--data", new)
    assert rc == 1 and out.strip() == "FAIL at seq 1: gap (expected 1, got 5)", out
    assert "without --from" in err
    # not JSON
    path = str(tmp_path / "junk.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(lines[0]) + "\nnot json\n")
    rc, out, _ = cli("import", path, "--data", new)
    assert rc == 1 and "line 2" in out, out
    # an event whose chain holds but which is not a well-formed event: rebuild
    # the hashes so only the schema check can catch it
    import hashlib
    import struct
    import msgpack
    bad = [dict(r) for r in lines[:3]]
    ev = unpack(bytes.fromhex(bad[2]["ev_msgpack"]))
    ev["surprise"] = 1
    raw = msgpack.packb(ev, use_bin_type=True)
    prev = bytes.fromhex(bad[1]["hash"])
    bad[2]["ev_msgpack"] = raw.hex()
    bad[2]["ev"] = json.loads(json.dumps(ev, default=lambda b: b.hex()))
    bad[2]["hash"] = hashlib.blake2b(prev + struct.pack(">QQ", 3, bad[2]["rat"]) + raw,
                                     digest_size=32).hexdigest()
    path = str(tmp_path / "schema.jsonl")
    write_lines(path, bad)
    rc, out, _ = cli("import", path, "--data", new)
    assert rc == 1 and out.startswith("FAIL at seq 3: not a well-formed event: E_SCHEMA"), out
    assert not os.path.exists(new)
    # a target that is not empty
    os.makedirs(new)
    open(os.path.join(new, "x"), "w").close()
    path = str(tmp_path / "ok.jsonl")
    write_lines(path, lines)
    rc, _, err = cli("import", path, "--data", new)
    assert rc == 2 and "not an empty directory" in err
    assert os.listdir(new) == ["x"]


# --- human dates -------------------------------------------------------------------


def utc_ms(*fields):
    return calendar.timegm(datetime.datetime(*fields).timetuple()) * 1000


def sent_since(text, tz, opt="--since"):
    """Runs `lianxin replay OPT TEXT` against a stand-in query socket and
    returns the value the CLI sent (or None when it exited first)."""
    ctx = zmq.Context.instance()
    tmp = tempfile.mkdtemp(prefix="lx-tp-")
    ep = "ipc://" + os.path.join(tmp, "q.sock")
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(ep)
    try:
        p = subprocess.Popen([lxtest.CLI, "--query", ep, "replay", opt, text],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, TZ=tz))
        got = None
        end = time.time() + 5
        while time.time() < end and p.poll() is None and not s.poll(20):
            pass  # a usage error exits at once: do not wait the full time for it
        if s.poll(0):
            frames = s.recv_multipart()
            req = unpack(frames[-1])
            got = req.get(opt[2:])
            s.send_multipart(frames[:-1] + [lxtest.pack(
                {"ok": True, "records": [], "next": 1, "head": 0})])
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        return got, p.returncode, err.decode()
    finally:
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("text,tz,want", [
    ("1793491200000", "UTC0", 1793491200000),
    ("2026-11-01", "UTC0", utc_ms(2026, 11, 1)),
    ("2026-11-01", "CST-8", utc_ms(2026, 10, 31, 16)),
    ("2026-11-01T08:00", "CST-8", utc_ms(2026, 11, 1)),
    ("2026-11-01T08:00+08:00", "UTC0", utc_ms(2026, 11, 1)),
    ("2026-11-01T08:00+0800", "EST5EDT,M3.2.0,M11.1.0", utc_ms(2026, 11, 1)),
    ("2026-11-01T00:00Z", "CST-8", utc_ms(2026, 11, 1)),
    ("2026-11-01t00:00z", "CST-8", utc_ms(2026, 11, 1)),
    ("2026-11-01 08:00:30.25+08", "UTC0", utc_ms(2026, 11, 1, 0, 0, 30) + 250),
    ("2026-10-31T18:30-05:30", "UTC0", utc_ms(2026, 11, 1)),
    ("2026-07-01", "EST5EDT,M3.2.0,M11.1.0", utc_ms(2026, 7, 1, 4)),
    ("2026-12-01", "EST5EDT,M3.2.0,M11.1.0", utc_ms(2026, 12, 1, 5)),
    ("2024-02-29T23:59:59.999Z", "UTC0", utc_ms(2024, 3, 1) - 1),
])
def test_time_forms(text, tz, want):
    got, rc, err = sent_since(text, tz)
    assert rc == 0 and got == want, (text, tz, got, want, err)
    got, rc, _ = sent_since(text, tz, "--until")
    assert rc == 0 and got == want


@pytest.mark.parametrize("text", ["2026-02-29", "2026-13-01", "2026-04-31", "2026-11-01T24:00",
                                  "2026-11-01T08", "2026-11-01T08:00+8", "2026-11-01T08:00:61Z",
                                  "yesterday", "-5", "", "1969-12-31T23:59:59Z",
                                  "2026-11-01T08:00Zjunk", "2026-11-1"])
def test_bad_times_are_usage_errors(text):
    got, rc, err = sent_since(text, "UTC0")
    assert rc == 2 and got is None and "--since" in err and "2026-11-01" in err, (text, err)


def iso(ms, offset_min=0):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone(
        datetime.timedelta(minutes=offset_min)))
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ms % 1000) + (
        "Z" if offset_min == 0 else t.strftime("%z")[:3] + ":" + t.strftime("%z")[3:])


def test_replay_since_until_with_dates(tmp_path):
    d = Daemon(tmp=str(tmp_path)).start()
    try:
        with d.client() as c:
            a = "ap-dates-" + lxtest.new_id()[:6]
            assert c.call(appeal(a))["ok"]
            for _ in range(5):
                time.sleep(0.02)
                assert c.call(visit())["ok"]
            time.sleep(0.02)
            assert c.call(resolution(a))["ok"]
        recs, _ = d.replay_all()
        rats = [r["rat"] for r in recs]

        def seqs(*args, tz="UTC0"):
            rc, out, err = cli("--query", d.query, "replay", *args, env={"TZ": tz})
            assert rc == 0, err
            return [json.loads(line)["seq"] for line in out.splitlines()]

        every = [r["seq"] for r in recs]
        k = 3
        from_k = [r["seq"] for r in recs if r["rat"] >= rats[k]]
        upto_k = [r["seq"] for r in recs if r["rat"] <= rats[k]]
        assert seqs("--since", iso(rats[k])) == from_k
        assert seqs("--since", iso(rats[k], 480), tz="EST5EDT,M3.2.0,M11.1.0") == from_k
        assert seqs("--until", iso(rats[k], -300)) == upto_k
        assert seqs("--since", str(rats[k])) == from_k
        today_utc = datetime.datetime.fromtimestamp(rats[0] / 1000, datetime.timezone.utc)
        assert seqs("--since", today_utc.strftime("%Y-%m-%d")) == every
        assert seqs("--until", today_utc.strftime("%Y-%m-%d")) == []
        minute = today_utc.strftime("%Y-%m-%dT%H:%M")
        assert seqs("--since", minute) == every
        # appeal --at with a date: the appeal as it was before its resolution
        rc, out, _ = cli("--query", d.query, "appeal", "--compact", "--at", iso(rats[0]), a)
        assert rc == 0 and json.loads(out)["appeal"]["status"] == "open"
        rc, out, _ = cli("--query", d.query, "appeal", "--compact", "--at", iso(rats[-1], 480), a)
        assert rc == 0 and json.loads(out)["appeal"]["status"] == "resolved"
        rc, _, err = cli("--query", d.query, "appeal", "--at", "2026-02-30", a)
        assert rc == 2 and "--at" in err
    finally:
        assert d.stop() == 0
