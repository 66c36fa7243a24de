# SPDX-License-Identifier: MIT
"""Keys, roles and jurisdictions over real CURVE sockets: unknown keys get
no connection, each role does what PROTOCOL.md's table allows and gets
E_DENIED for the rest, alert subscriptions are narrowed to the
subscriber's jurisdiction, SIGHUP reloads the registry, and plain sockets
are refused off loopback."""
import os
import re
import signal
import subprocess
import time

import pytest
import zmq

import lxtest
from lxtest import Daemon, appeal, visit, unpack, pack

CLIENTS = [  # name, role, jurisdiction
    ("field-hx", "field", "qd.hx"),
    ("sup-hx", "supervisor", "qd.hx"),
    ("sup-qd", "supervisor", "qd"),
    ("auditor", "auditor", "qd"),
    ("admin", "admin", "qd"),
]


def keygen(tmp, name):
    base = os.path.join(tmp, name)
    subprocess.run([lxtest.CLI, "keygen", base], check=True, capture_output=True)
    with open(base + ".key") as f:
        pub, sec = f.read().split()
    return pub, sec


def write_registry(tmp, keys, names):
    lines = []
    for name, role, jur in CLIENTS:
        if name in names:
            lines.append("- name: %s\n  key: \"%s\"\n  role: %s\n  jurisdiction: %s\n"
                         % (name, keys[name][0], role, jur))
    with open(os.path.join(tmp, "clients.yaml"), "w") as f:
        f.write("".join(lines) or "[]\n")


@pytest.fixture
def secure(tmp_path):
    tmp = str(tmp_path)
    keys = {n: keygen(tmp, n) for n, _, _ in CLIENTS}
    keys["stranger"] = keygen(tmp, "stranger")
    keys["server"] = keygen(tmp, "lianxind")
    write_registry(tmp, keys, [c[0] for c in CLIENTS])
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    text += "\nsecurity:\n  server_key: lianxind.key\n  clients: clients.yaml\n"
    cfg = os.path.join(tmp, "secure.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(text)
    # A fast clock, so appeals raise alerts (unanswered, warning) within a second.
    d = Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:200000" % int(time.time() * 1000)})
    d.keys = keys
    # The readiness probe needs a key too.
    d.request = lambda msg, endpoint=None, timeout=5.0, who="auditor": request(d, who, msg, endpoint or d.query, timeout)
    d.start()
    yield d
    d.cleanup()


def sock(d, who, kind, endpoint):
    s = d.ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    pub, sec = d.keys[who]
    s.curve_publickey = pub.encode()
    s.curve_secretkey = sec.encode()
    s.curve_serverkey = d.keys["server"][0].encode()
    s.connect(endpoint)
    return s


def request(d, who, msg, endpoint, timeout=5.0):
    s = sock(d, who, zmq.DEALER, endpoint)
    try:
        s.send(pack(msg))
        if not s.poll(int(timeout * 1000)):
            raise TimeoutError("no reply for %s" % who)
        return unpack(s.recv())
    finally:
        s.close()


def publish(d, who, ev):
    return request(d, who, ev, d.ingest)


def head(d):
    return request(d, "auditor", {"op": "head"}, d.query)["seq"]


def test_unknown_key_gets_no_connection(secure):
    d = secure
    n = head(d)
    with pytest.raises(TimeoutError):
        publish_timeout = request(d, "stranger", visit(), d.ingest, timeout=1.0)
    assert head(d) == n
    assert re.search(r"refused unknown key %s" % re.escape(d.keys["stranger"][0]), d.read_log())
    assert d.keys["stranger"][1] not in d.read_log()  # never a secret


def test_field_key_publishes_inside_its_jurisdiction_only(secure):
    d = secure
    ev = visit(unit="qd.hx.dy")
    r = publish(d, "field-hx", ev)
    assert r["ok"], r
    rec = request(d, "auditor", {"op": "replay", "from": r["seq"], "limit": 1}, d.query)["records"][0]
    stored = unpack(rec["ev"])
    assert stored["by"] == "field-hx" and stored["actor"] == ev["actor"]
    # A retry is compared without `by`: still a dup.
    again = publish(d, "field-hx", ev)
    assert again["ok"] and again["dup"] and again["seq"] == r["seq"]
    n = head(d)
    r = publish(d, "field-hx", visit(unit="qd.xs.sq"))
    assert r["code"] == "E_DENIED" and "jurisdiction" in r["error"], r
    for who in ("sup-hx", "auditor"):
        r = publish(d, who, visit(unit="qd.hx.dy"))
        assert r["code"] == "E_DENIED", (who, r)
    assert head(d) == n
    # An admin may publish anywhere in its jurisdiction (the county).
    assert publish(d, "admin", visit(unit="qd.xs.sq"))["ok"]


def test_queries_follow_the_role(secure):
    d = secure
    a_hx, a_xs = appeal(unit="qd.hx.dy"), appeal(unit="qd.xs.sq")
    assert publish(d, "admin", a_hx)["ok"] and publish(d, "admin", a_xs)["ok"]
    id_hx, id_xs = a_hx["body"]["appeal"], a_xs["body"]["appeal"]
    q = lambda who, m: request(d, who, m, d.query)
    # Auditors and admins see everything.
    for who in ("auditor", "admin"):
        units = {unpack(r["ev"])["unit"] for r in q(who, {"op": "replay"})["records"]}
        assert {"qd.hx.dy", "qd.xs.sq"} <= units
        assert q(who, {"op": "appeal", "appeal": id_xs})["ok"]
    # A township supervisor's replay is confined to its township, whatever it asks.
    recs = q("sup-hx", {"op": "replay"})["records"]
    assert recs and all(unpack(r["ev"])["unit"].startswith("qd.hx.") for r in recs)
    recs = q("sup-hx", {"op": "replay", "unit": "qd"})["records"]
    assert recs and all(unpack(r["ev"])["unit"].startswith("qd.hx.") for r in recs)
    assert q("sup-hx", {"op": "replay", "unit": "qd.xs"})["code"] == "E_DENIED"
    assert q("sup-hx", {"op": "appeal", "appeal": id_hx})["ok"]
    assert q("sup-hx", {"op": "appeal", "appeal": id_xs})["code"] == "E_DENIED"
    assert q("sup-qd", {"op": "appeal", "appeal": id_xs})["ok"]
    # A field key reads units and its own unit's appeals only.
    assert q("field-hx", {"op": "units"})["ok"]
    assert q("field-hx", {"op": "appeal", "appeal": id_hx})["ok"]
    assert q("field-hx", {"op": "appeal", "appeal": id_xs})["code"] == "E_DENIED"
    for op in ("replay", "head", "stats"):
        assert q("field-hx", {"op": op})["code"] == "E_DENIED", op


def collect(sub, seconds):
    out = []
    end = time.time() + seconds
    while time.time() < end:
        if sub.poll(50):
            topic, body = sub.recv_multipart()
            out.append(topic.decode())
    return out


def test_alert_subscriptions_are_narrowed_to_the_jurisdiction(secure):
    d = secure
    subs = {}
    for who, prefix in [("sup-hx", "qd."), ("sup-qd", "qd."), ("sup-hx", "qd.xs."),
                        ("field-hx", "qd.hx.")]:
        s = sock(d, who, zmq.SUB, d.alerts)
        s.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        subs[(who, prefix)] = s
    time.sleep(0.5)
    assert publish(d, "admin", appeal(unit="qd.hx.dy"))["ok"]
    assert publish(d, "admin", appeal(unit="qd.xs.sq"))["ok"]
    got = {k: collect(s, 3.0) for k, s in subs.items()}
    # The township supervisor asked for the whole county: it gets its township.
    assert got[("sup-hx", "qd.")] and all(t.startswith("qd.hx.") for t in got[("sup-hx", "qd.")])
    # The county supervisor gets both townships.
    assert {t.split(".")[1] for t in got[("sup-qd", "qd.")]} == {"hx", "xs"}
    # Outside the jurisdiction, or a role without alerts: nothing.
    assert got[("sup-hx", "qd.xs.")] == []
    assert got[("field-hx", "qd.hx.")] == []
    assert "outside its jurisdiction" in d.read_log()


def test_sighup_reloads_the_registry(secure):
    d = secure
    assert publish(d, "field-hx", visit(unit="qd.hx.dy"))["ok"]
    write_registry(d.tmp, d.keys, [c[0] for c in CLIENTS if c[0] != "field-hx"])
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    n = head(d)
    with pytest.raises(TimeoutError):
        publish_timeout = request(d, "field-hx", visit(unit="qd.hx.dy"), d.ingest, timeout=1.0)
    assert head(d) == n
    assert "registry reloaded" in d.read_log()


def test_plain_sockets_off_loopback_are_refused(tmp_path):
    d = Daemon(tmp=str(tmp_path))
    args = d.args()
    args[args.index("--ingest") + 1] = "tcp://0.0.0.0:17601"
    p = subprocess.run(args, capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "listen.ingest: tcp://0.0.0.0:17601 is not loopback" in p.stderr
    assert "lianxin keygen" in p.stderr


def test_plain_on_loopback_warns(tmp_path):
    with Daemon(tmp=str(tmp_path)) as d:
        assert "sockets are plain" in d.read_log()


def test_pipelined_ingest_with_keys(secure):
    """Many events in one batch, each rewritten with `by` (a batch whose
    buffer grows while events are rewritten once crashed the daemon)."""
    d = secure
    s = sock(d, "field-hx", zmq.DEALER, d.ingest)
    try:
        evs = [visit(unit="qd.hx.dy", note="n" * 200) for _ in range(3000)]
        sent = got = 0
        acks = []
        while got < len(evs):
            while sent < len(evs) and sent - got < 256:
                s.send(pack(evs[sent]))
                sent += 1
            assert s.poll(10000), "no ack"
            acks.append(unpack(s.recv()))
            got += 1
        assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]][:3]
        assert [a["id"] for a in acks] == [e["id"] for e in evs]
        recs = request(d, "auditor", {"op": "replay", "from": acks[0]["seq"], "limit": 3000},
                       d.query)["records"]
        assert len(recs) == 3000
        for r, e in zip(recs, evs):
            stored = unpack(r["ev"])
            assert stored["by"] == "field-hx" and stored["id"] == e["id"]
            assert stored["body"] == e["body"]
    finally:
        s.close()
    assert d.proc.poll() is None
