# SPDX-License-Identifier: MIT
"""The lianxin CLI against the real daemon.

Runs build/lianxin as a subprocess (every run bounded by a timeout) against a
lianxind on ipc endpoints of its own, and checks what it prints against what
the daemon holds, read directly over the wire with lxtest: publish (JSON
object, array and JSON Lines; acks in input order; local E_DECODE lines;
dup; rejections; --fill; --window), replay with paging and every filter,
head/units/stats/appeal, the exit codes 0/1/2, the endpoint environment
variables, and keygen's files.
"""
import json
import re
import os
import signal
import stat
import subprocess
import time
import uuid

import pytest

import lxtest
from lxtest import (CATEGORIES, COMMUNITIES, COMMUNITY, COMMUNITY2, RECV_TIMEOUT, TOWNSHIP,
                    appeal, decode_ev, resolution, running_daemon, stored_form, visit)

RUN_TIMEOUT = 60 * lxtest.TIMEOUT_SCALE


@pytest.fixture
def d():
    yield from running_daemon(limit=120)


def run(args, stdin=None, env=None):
    """Runs the CLI; returns (exit code, stdout text, stderr text)."""
    p = subprocess.run([lxtest.CLI] + list(args), input=stdin, capture_output=True,
                       timeout=RUN_TIMEOUT, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def cli(d, *args, stdin=None):
    return run(["--ingest", d.ingest, "--query", d.query] + list(args), stdin=stdin)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def jsonl(evs):
    return "".join(json.dumps(ev) + "\n" for ev in evs).encode()


def publish(d, evs, *args):
    rc, out, err = cli(d, "publish", *args, stdin=jsonl(evs))
    return rc, json_lines(out), err


def hexed(rec):
    """A record as the CLI prints it: hash in hex, ev decoded."""
    return {"seq": rec["seq"], "rat": rec["rat"], "hash": rec["hash"].hex(), "ev": decode_ev(rec)}


# --- help and usage ---------------------------------------------------------

def test_help_and_usage_errors():
    rc, out, _ = run(["--help"])
    assert rc == 0 and out.startswith("usage: lianxin")
    for cmd in ("publish", "replay", "head", "units", "stats", "appeal", "keygen"):
        assert cmd in out
        rc, out2, _ = run([cmd, "--help"])
        assert rc == 0 and out2.startswith("usage: lianxin " + cmd), cmd
        rc, out3, _ = run(["help", cmd])
        assert rc == 0 and out3 == out2
    for args in ([], ["frobnicate"], ["head", "--bogus"], ["head", "extra"],
                 ["replay", "--limit", "0"], ["replay", "--from", "x"], ["appeal"],
                 ["--timeout", "0", "head"], ["publish", "--window", "0"]):
        rc, _, err = run(args)
        assert rc == 2, (args, err)
        assert err.strip(), args
    rc, _, err = run(["publish", "/nonexistent/events.json"])
    assert rc == 2 and err.startswith("lianxin: ")


# --- publish ------------------------------------------------------------------

def test_publish_json_lines_acks_in_input_order(d):
    evs = [visit(household="hh-%03d" % i) for i in range(300)]
    rc, acks, err = publish(d, evs, "--window", "7")
    assert rc == 0, err
    assert [a["id"] for a in acks] == [ev["id"] for ev in evs]
    assert all(a["ok"] is True and a["dup"] is False for a in acks)
    assert [a["seq"] for a in acks] == list(range(1, 301))
    recs, _ = d.replay_all()
    assert [decode_ev(r) for r in recs] == [stored_form(ev) for ev in evs]


@pytest.mark.parametrize("window", ["1", "256", "1000"])
def test_publish_window(d, window):
    evs = [visit() for _ in range(500)]
    rc, acks, err = publish(d, evs, "--window", window)
    assert rc == 0, err
    assert [a["id"] for a in acks] == [ev["id"] for ev in evs]
    assert d.head()["seq"] == 500


def test_publish_invalid_lines_are_reported_locally_in_place(d):
    good = [visit() for _ in range(3)]
    text = (json.dumps(good[0]) + "\n\n   \n{not json\n" + json.dumps(good[1]) + "\n[1, 2]\n"
            + json.dumps(good[2]) + "\r\n")
    rc, out, err = cli(d, "publish", stdin=text.encode())
    assert rc == 1, err
    acks = json_lines(out)
    assert len(acks) == 5
    assert acks[0]["ok"] is True and acks[0]["id"] == good[0]["id"]
    bad = acks[1]
    assert set(bad) == {"ok", "id", "code", "error"}
    assert bad["ok"] is False and bad["id"] is None and bad["code"] == "E_DECODE"
    assert bad["error"].startswith("line 4: ")
    assert acks[2]["id"] == good[1]["id"] and acks[2]["ok"] is True
    assert acks[3]["code"] == "E_DECODE" and acks[3]["error"].startswith("line 6: ")
    assert acks[4]["id"] == good[2]["id"] and acks[4]["ok"] is True
    assert d.head()["seq"] == 3  # nothing of the bad lines was sent


def test_publish_one_object_and_an_array(d, tmp_path):
    one = visit()
    f = tmp_path / "one.json"
    f.write_text(json.dumps(one, indent=2))
    rc, out, err = cli(d, "publish", str(f))
    assert rc == 0, err
    assert json_lines(out) == [{"ok": True, "id": one["id"], "seq": 1, "dup": False}]

    evs = [visit(), appeal(), visit()]
    f = tmp_path / "many.json"
    f.write_text(json.dumps([evs[0], "not an event", evs[1], evs[2]], indent=1))
    rc, out, err = cli(d, "publish", str(f))
    assert rc == 1, err
    acks = json_lines(out)
    assert [a.get("id") for a in acks] == [evs[0]["id"], None, evs[1]["id"], evs[2]["id"]]
    assert acks[1]["code"] == "E_DECODE" and acks[1]["ok"] is False
    assert [a["seq"] for a in acks if a["ok"]] == [2, 3, 4]

    f = tmp_path / "broken.json"
    f.write_text('[\n  {"v": 1},\n  {"v": \n]\n')
    rc, out, _ = cli(d, "publish", str(f))
    assert rc == 1
    [bad] = json_lines(out)
    assert bad["code"] == "E_DECODE" and bad["error"].startswith("line 4: ")
    assert d.head()["seq"] == 4


def test_publish_from_stdin_dash(d):
    ev = visit()
    rc, out, err = cli(d, "publish", "-", stdin=jsonl([ev]))
    assert rc == 0, err
    assert json_lines(out)[0]["id"] == ev["id"]


def test_publish_retry_is_dup_and_accepted(d):
    ev = visit()
    rc, acks, _ = publish(d, [ev, ev])
    assert rc == 0
    assert acks[0] == {"ok": True, "id": ev["id"], "seq": 1, "dup": False}
    assert acks[1] == {"ok": True, "id": ev["id"], "seq": 1, "dup": True}
    rc, acks, _ = publish(d, [ev])
    assert rc == 0 and acks[0]["dup"] is True


def test_publish_rejections_exit_1_and_store_nothing(d):
    ok = visit()
    township = visit(unit=TOWNSHIP)
    unknown_key = visit()
    unknown_key["colour"] = "red"
    daemon_type = dict(visit(), type="escalation")
    conflict = dict(ok, actor="someone-else")
    rc, acks, _ = publish(d, [ok, township, unknown_key, daemon_type, conflict])
    assert rc == 1
    assert acks[0]["ok"] is True
    assert [a.get("code") for a in acks[1:]] == ["E_UNIT", "E_SCHEMA", "E_TYPE", "E_CONFLICT"]
    for a, ev in zip(acks[1:], [township, unknown_key, daemon_type, conflict]):
        assert a["ok"] is False and a["id"] == ev["id"] and a["error"]
    assert d.head()["seq"] == 1


def test_publish_too_big_is_rejected(d):
    ev = visit(note="x" * 70000)
    rc, acks, _ = publish(d, [ev, visit()])
    assert rc == 1
    assert acks[0]["code"] == "E_TOO_BIG" and acks[1]["ok"] is True


def test_publish_fill(d):
    small = {"type": "visit", "unit": COMMUNITY, "actor": "cadre-7",
             "body": {"household": "hh-001", "mode": "roving"}}
    before = int(time.time() * 1000)
    rc, acks, err = publish(d, [small, dict(small, id="given-id-0000000001", at=12345)], "--fill")
    after = int(time.time() * 1000)
    assert rc == 0, err
    u = uuid.UUID(acks[0]["id"])
    assert u.version == 4 and str(u) == acks[0]["id"]
    assert acks[1]["id"] == "given-id-0000000001"
    recs, _ = d.replay_all()
    ev0, ev1 = decode_ev(recs[0]), decode_ev(recs[1])
    assert ev0["v"] == 1 and before <= ev0["at"] <= after
    assert ev1["at"] == 12345
    # Without --fill the same event lacks v, id and at.
    rc, acks, _ = publish(d, [small])
    assert rc == 1 and acks[0]["code"] == "E_SCHEMA"


def test_publish_keeps_integer_types(d):
    ev = visit(minutes=45)
    ev["at"] = 1700000000123
    rc, _, err = publish(d, [ev])
    assert rc == 0, err
    stored = decode_ev(d.replay_all()[0][0])
    assert stored["at"] == 1700000000123 and isinstance(stored["at"], int)
    assert stored["body"]["minutes"] == 45 and isinstance(stored["body"]["minutes"], int)


def test_publish_streams_acks_before_the_input_ends(d):
    """A person typing events (or a pipe fed slowly) sees each ack at once."""
    p = subprocess.Popen([lxtest.CLI, "--ingest", d.ingest, "publish", "--fill"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(3):
            p.stdin.write(b'{"type":"visit","unit":"qd.hx.dy","actor":"c-1",'
                          b'"body":{"household":"hh-1","mode":"fixed"}}\n')
            p.stdin.flush()
            ack = json.loads(p.stdout.readline())  # bounded by the fixture's time limit
            assert ack["ok"] is True and ack["seq"] == i + 1
        p.stdin.close()
        assert p.wait(RUN_TIMEOUT) == 0
    finally:
        p.kill()
        p.wait()


def test_transport_timeouts_exit_2(d, tmp_path):
    nobody = "ipc://%s/nobody.sock" % tmp_path
    rc, out, err = run(["--ingest", nobody, "--timeout", "300", "publish"], stdin=jsonl([visit()]))
    assert rc == 2 and out == "" and err.startswith("lianxin: ")
    rc, out, err = run(["--query", nobody, "--timeout", "300", "head"])
    assert rc == 2 and out == "" and err.startswith("lianxin: ")
    rc, out, err = run(["--query", nobody, "--timeout", "300", "replay"])
    assert rc == 2 and out == "" and err.startswith("lianxin: ")
    # A daemon that stops answering mid-stream: the acks already received are
    # printed, then the wait for the next one times out.
    first = visit()
    rc, acks, _ = publish(d, [first])
    d.proc.send_signal(signal.SIGSTOP)
    try:
        rc, out, err = cli(d, "--timeout", "500", "publish", stdin=jsonl([visit(), visit()]))
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert rc == 2 and "no ack" in err and err.startswith("lianxin: ")


# --- replay -------------------------------------------------------------------

def fill_log(d):
    ap = appeal(appeal_id="ap-cli-1")
    evs = [visit(), ap, visit(unit=COMMUNITY2), visit(appeal="ap-cli-1"),
           resolution("ap-cli-1"), visit(unit="qd.hx.xc")] + [visit() for _ in range(14)]
    rc, acks, err = publish(d, evs)
    assert rc == 0, err
    return evs


def replay(d, *args):
    rc, out, err = cli(d, "replay", *args)
    assert rc == 0, err
    return json_lines(out)


def test_replay_prints_the_log(d):
    assert replay(d) == []  # an empty log
    fill_log(d)
    recs, _ = d.replay_all()
    want = [hexed(r) for r in recs]
    assert replay(d) == want
    assert replay(d, "--limit", "3") == want  # paging gives the same records
    assert replay(d, "--limit", "1", "--from", "5") == want[4:]
    assert replay(d, "--from", "4", "--to", "9", "--limit", "2") == want[3:9]
    assert replay(d, "--to", "1000") == want


def test_replay_filters(d):
    fill_log(d)
    recs, _ = d.replay_all()
    rats = sorted({r["rat"] for r in recs})
    cases = [
        (["--types", "appeal,resolution"], {"types": ["appeal", "resolution"]}),
        (["--unit", "qd.xs"], {"unit": "qd.xs"}),
        (["--unit", TOWNSHIP, "--types", "visit"], {"unit": TOWNSHIP, "types": ["visit"]}),
        (["--appeal", "ap-cli-1"], {"appeal": "ap-cli-1"}),
        (["--since", str(rats[0]), "--until", str(rats[-1])],
         {"since": rats[0], "until": rats[-1]}),
        (["--until", str(rats[0] - 1)], {"until": rats[0] - 1}),
        (["--from", "3", "--to", "6", "--types", "visit"], {"from": 3, "to": 6, "types": ["visit"]}),
    ]
    for args, filters in cases:
        want, _ = d.replay_all(**filters)
        got = replay(d, "--limit", "2", *args)
        assert got == [hexed(r) for r in want], args
    assert len(replay(d, "--appeal", "ap-cli-1")) == 3


def test_replay_refused_exits_1(d):
    # An empty unit is outside "1 to 4096 bytes", so the daemon answers E_BADREQ.
    rc, out, err = cli(d, "replay", "--unit", "")
    assert rc == 1 and out == ""
    assert err.startswith("lianxin: replay: E_BADREQ: ")


# --- head, units, stats, appeal ---------------------------------------------

def test_head_units_stats(d):
    fill_log(d)
    head = d.head()
    rc, out, err = cli(d, "head")
    assert rc == 0, err
    assert len(out.splitlines()) > 1  # pretty by default
    got = json.loads(out)
    assert got["seq"] == head["seq"] == 20 and got["hash"] == head["hash"].hex()
    assert got["checkpoint"] == head["checkpoint"]
    rc, out, _ = cli(d, "head", "--compact")
    assert rc == 0 and len(out.splitlines()) == 1 and json.loads(out) == got

    rc, out, _ = cli(d, "units")
    units = json.loads(out)
    assert rc == 0 and units["ok"] is True
    assert {u["path"] for u in units["units"]} >= set(COMMUNITIES)
    assert units["categories"] == CATEGORIES

    rc, out, _ = cli(d, "stats", "--compact")
    stats = json.loads(out)
    assert rc == 0 and stats["ok"] is True and stats["events"] == 20
    for key in ("appeals_open", "escalations", "uptime_ms"):
        assert isinstance(stats[key], int)


def test_appeal(d):
    fill_log(d)
    rc, out, err = cli(d, "appeal", "ap-cli-1", "--compact")
    assert rc == 0, err
    r = json.loads(out)
    want = d.request({"op": "appeal", "appeal": "ap-cli-1"}, timeout=RECV_TIMEOUT)
    assert r == want
    assert r["appeal"]["status"] == "resolved" and r["appeal"]["events"] == [2, 4, 5]

    recs, _ = d.replay_all(appeal="ap-cli-1")
    opened = recs[0]["rat"]
    rc, out, _ = cli(d, "appeal", "--at", str(opened), "ap-cli-1")
    assert rc == 0 and json.loads(out)["appeal"]["opened"] == opened
    rc, out, _ = cli(d, "appeal", "--at", str(opened - 1), "ap-cli-1")
    assert rc == 1 and json.loads(out)["code"] == "E_NOTFOUND"
    rc, out, _ = cli(d, "appeal", "no-such-appeal")
    assert rc == 1 and json.loads(out)["code"] == "E_NOTFOUND"


def test_endpoints_from_environment(d):
    env = dict(os.environ, LIANXIN_INGEST=d.ingest, LIANXIN_QUERY=d.query)
    ev = visit()
    rc, out, err = run(["publish"], stdin=jsonl([ev]), env=env)
    assert rc == 0, err
    rc, out, err = run(["head", "--compact"], env=env)
    assert rc == 0 and json.loads(out)["seq"] == 1
    # A flag wins over the environment.
    bad = dict(env, LIANXIN_QUERY="ipc:///nonexistent/q.sock")
    rc, out, err = run(["--query", d.query, "head"], env=bad)
    assert rc == 0, err


# --- keygen -------------------------------------------------------------------

def test_keygen(tmp_path):
    base = str(tmp_path / "field-7")
    rc, out, err = run(["keygen", base])
    assert rc == 0, err
    pub = (tmp_path / "field-7.pub").read_text()
    key = (tmp_path / "field-7.key").read_text().splitlines()
    assert pub == out and len(pub.strip()) == 40 and pub.endswith("\n")
    assert key[0] == pub.strip() and len(key) == 2 and len(key[1]) == 40
    assert stat.S_IMODE(os.stat(base + ".key").st_mode) == 0o600
    rc, _, err = run(["keygen", base])
    assert rc == 2 and "exists" in err  # never overwrites a key

    rc, out, err = run(["keygen", "--sign", base])
    assert rc == 0, err
    spub = (tmp_path / "field-7.sign.pub").read_text()
    skey = (tmp_path / "field-7.sign.key").read_text()
    assert len(spub) == 65 and len(skey) == 129
    assert int(spub, 16) >= 0 and int(skey, 16) >= 0 and spub.strip() == spub.strip().lower()
    assert skey.strip()[64:] == spub.strip()  # seed followed by the public key
    assert stat.S_IMODE(os.stat(base + ".sign.key").st_mode) == 0o600


# --- the load generator -------------------------------------------------------

def test_loadgen_both_modes(d):
    loadgen = os.path.join(lxtest.BUILD, "lx-loadgen")
    for args, events in ((["--mode", "sync", "--events", "50"], 50),
                         (["--mode", "pipe", "--clients", "3", "--window", "16", "--events", "1000",
                           "--size", "500"], 1000)):
        p = subprocess.run([loadgen, "--ingest", d.ingest] + args, capture_output=True,
                           timeout=RUN_TIMEOUT)
        out = p.stdout.decode()
        assert p.returncode == 0, (out, p.stderr.decode())
        fields = dict(line.split(None, 1) for line in out.splitlines() if " " in line)
        assert fields["events"] == str(events) and fields["rejected"] == "0"
        assert fields["missing"] == "0"
    assert d.head()["seq"] == 1050
    recs, _ = d.replay_all(**{"from": 51, "to": 51})
    assert len(recs[0]["ev"]) == 500  # --size is the msgpack size of the event


def test_loadgen_uuid_ids(d):
    """--ids uuid: every event stored, each under its own UUIDv4-shaped id,
    in mix mode too (where visits and resolutions name earlier appeals)."""
    loadgen = os.path.join(lxtest.BUILD, "lx-loadgen")
    first = d.head()["seq"] + 1  # after the daemon's own records
    for kind in ("visit", "mix"):
        p = subprocess.run([loadgen, "--ingest", d.ingest, "--ids", "uuid", "--type", kind,
                            "--events", "200", "--clients", "2", "--window", "8"],
                           capture_output=True, timeout=RUN_TIMEOUT)
        assert p.returncode == 0, (p.stdout.decode(), p.stderr.decode())
    recs, _ = d.replay_all(**{"from": first})
    evs = [e for e in map(lxtest.decode_ev, recs) if not e["id"].startswith("lx-")]  # not the daemon's
    ids = [e["id"] for e in evs]
    assert len(evs) == 400 and len(set(ids)) == 400
    shape = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert [i for i in ids if not re.fullmatch(shape, i)] == []
    answers = [e["body"]["appeal"] for e in evs[200:] if e["type"] == "visit" and "appeal" in e["body"]]
    assert answers and set(answers) <= {"ap-" + i for i in ids[200:]}
    bad = subprocess.run([loadgen, "--ingest", d.ingest, "--ids", "random"], capture_output=True,
                         timeout=RUN_TIMEOUT)
    assert bad.returncode == 2 and b"bad value 'random'" in bad.stderr


def test_loadgen_counts_rejections(d):
    loadgen = os.path.join(lxtest.BUILD, "lx-loadgen")
    p = subprocess.run([loadgen, "--ingest", d.ingest, "--unit", TOWNSHIP, "--events", "20"],
                       capture_output=True, timeout=RUN_TIMEOUT)
    assert p.returncode == 1
    assert "rejected    20" in p.stdout.decode() and "E_UNIT" in p.stderr.decode()
