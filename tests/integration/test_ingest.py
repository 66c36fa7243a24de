# SPDX-License-Identifier: MIT
"""Ingest socket, against PROTOCOL.md "Events" and "Ack".

Every event type is accepted and stored as sent; every error code comes back
with the field named, the event's id when it could be read, and nothing
stored (head unchanged, the id still free); retries answer dup:true with the
original seq, also across a restart and after the appeal moved on; the appeal
state machine is checked through the query socket's `appeal` op; pipelined
acks come back in order with rejections mixed in; a REQ client works; a flood
of garbage leaves the daemon serving.
"""
import random
import struct

import lxtest
import pytest
import zmq

from lxtest import (CATEGORIES, COMMUNITIES, COMMUNITY, COMMUNITY2, RECV_TIMEOUT, WIRE_CODES,
                    Raw, appeal, chain, decode_ev, feedback, new_id, pack, pack_lenient,
                    raw_map, resolution, running_daemon, stored_form, unpack, visit)

ANY = object()   # the reply's id may be nil or a str
DEL = object()   # remove the key


@pytest.fixture
def d(tmp_path):
    # Some tests count every seq: no hotspot of their own appeals in the log.
    yield from running_daemon(limit=90, config=lxtest.sample_without(str(tmp_path), "hotspot"))


# --- helpers ------------------------------------------------------------------

def env(ev, **changes):
    """A copy of ev with envelope keys changed (DEL removes one)."""
    out = dict(ev)
    out["body"] = dict(ev["body"])
    for k, v in changes.items():
        if v is DEL:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def body(ev, **changes):
    """A copy of ev with body keys changed (DEL removes one)."""
    out = dict(ev)
    b = dict(ev["body"])
    for k, v in changes.items():
        if v is DEL:
            b.pop(k, None)
        else:
            b[k] = v
    out["body"] = b
    return out


def frame_of(msg):
    return bytes(msg) if isinstance(msg, bytes) else pack_lenient(msg)


def sent_id(msg):
    """The id the reply should carry: the str id, else nil."""
    if isinstance(msg, dict):
        i = msg.get("id")
        return i if isinstance(i, str) else None
    return ANY


def check_accepted(r, ev_id, dup=False):
    assert r.get("ok") is True, "expected an accepted ack, got %r" % (r,)
    assert r.get("id") == ev_id, r
    assert r.get("dup") is dup, r
    assert isinstance(r.get("seq"), int) and r["seq"] >= 1, r
    return r["seq"]


def publish_ok(cli, ev, dup=False):
    return check_accepted(cli.call(ev), ev["id"], dup)


def record_at(d, seq):
    r = d.request({"op": "replay", "from": seq, "limit": 1}, timeout=RECV_TIMEOUT)
    assert r["ok"], r
    assert r["records"] and r["records"][0]["seq"] == seq, r
    return r["records"][0]


def appeal_state(d, aid, **extra):
    q = {"op": "appeal", "appeal": aid}
    q.update(extra)
    return d.request(q, timeout=RECV_TIMEOUT)


def run_rejections(d, cases):
    """cases: (name, msg, code, field-substring or None, expected id or ANY).

    Sends each case on one DEALER, checks the reply and that head did not move.
    Collects every mismatch and fails once with all of them, quoting request
    and reply, so one run shows the whole picture."""
    failures = []
    h0 = d.head()
    with d.client("ingest") as cli:
        for name, msg, code, field, want_id in cases:
            frame = frame_of(msg)
            try:
                r = cli.call(frame)
            except TimeoutError:
                failures.append("%s: no reply (request %r)" % (name, frame[:200]))
                cli.close()
                cli = d.client("ingest")
                continue
            problems = []
            if r.get("ok") is not False:
                problems.append("ok is %r" % (r.get("ok"),))
            if r.get("code") != code:
                problems.append("code %r, want %r" % (r.get("code"), code))
            if "error" not in r or not isinstance(r.get("error"), str):
                problems.append("no error text")
            elif field is not None and field not in r["error"]:
                problems.append("error does not name %r" % field)
            if "id" not in r:
                problems.append("no id key")
            elif want_id is ANY:
                if r["id"] is not None and not isinstance(r["id"], str):
                    problems.append("id %r is neither nil nor str" % (r["id"],))
            elif r["id"] != want_id:
                problems.append("id %r, want %r" % (r["id"], want_id))
            h = d.head()
            if h["seq"] != h0["seq"] or h["hash"] != h0["hash"]:
                problems.append("head moved from %d to %d: something was stored"
                                % (h0["seq"], h["seq"]))
                h0 = h
            if problems:
                failures.append("%s: %s\n    request %r\n    reply   %r"
                                % (name, "; ".join(problems), frame[:300], r))
    assert not failures, "%d of %d cases wrong:\n%s" % (len(failures), len(cases),
                                                         "\n".join(failures))


def cases_for(code, field, base, items, envelope=True):
    """Builds cases that each change one key of base (envelope or body)."""
    out = []
    for key, value in items:
        msg = env(base, **{key: value}) if envelope else body(base, **{key: value})
        label = "%s=%s" % (key, "<deleted>" if value is DEL else repr(value)[:40])
        out.append(("%s %s %s" % (code, base["type"], label), msg, code, field or key,
                    sent_id(msg)))
    return out


BAD_UTF8 = ["\udcff", "ok\udcc0\udcaf", "\udced\udca0\udc80", "\udce4\udcb8", "\udcf8\udc88\udc80\udc80\udc80"]
# (lone 0xff, overlong '/', UTF-16 surrogate U+D800, truncated 3-byte, 5-byte form)


# --- accepted events ----------------------------------------------------------

def test_every_event_type_accepted_and_stored_as_sent(d):
    aid = "ap-" + new_id()[:12]
    evs = [
        visit(),
        visit(COMMUNITY2, mode="fixed", minutes=45, note="家访：老人身体好"),
        visit(mode="roving", minutes=0, note=""),
        visit(mode="appointment", minutes=100000),
        visit(mode="pairing"),
        appeal(aid, priority="urgent"),
        appeal(),                                   # no priority: stored with "normal"
        visit(appeal=aid, note="answered the appeal in person"),
        resolution(aid, "resolved"),
        feedback(aid, True, note="满意"),
        env(visit(), at=0),                         # at is any int >= 0
        env(visit(), id="i" * 16, actor="a" * 64),  # boundaries: id 16, actor 64 bytes
        env(visit(), id="J" * 64, actor="x"),
        body(visit(), household="h" * 4096, note="中" * 1365 + "a"),  # 4096 bytes each
        appeal("a", category="other"),              # appeal id of 1 byte
        appeal("b" * 64),
        env(visit(), id="!#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"),  # printable ASCII
    ]
    for cat in CATEGORIES:
        evs.append(appeal(category=cat))
    for unit in COMMUNITIES:
        evs.append(visit(unit))
    with d.client("ingest") as cli:
        for i, ev in enumerate(evs, start=1):
            r = cli.call(ev)
            assert r.get("ok") is True, "request %r\nreply %r" % (ev, r)
            assert r == dict(r, ok=True, id=ev["id"], seq=i, dup=False), (ev, r)
    assert d.head()["seq"] == len(evs)
    records, _ = d.replay_all()
    assert [x["seq"] for x in records] == list(range(1, len(evs) + 1))
    for rec, ev in zip(records, evs):
        assert decode_ev(rec) == stored_form(ev), "seq %d" % rec["seq"]
    assert chain(records) == d.head()["hash"]


def test_ack_is_durable_when_sent(d):
    """An acked event is in the log when the ack arrives (query sees it at once)."""
    with d.client("ingest") as cli:
        for _ in range(20):
            ev = visit()
            seq = publish_ok(cli, ev)
            assert decode_ev(record_at(d, seq)) == stored_form(ev)


# --- rejections -----------------------------------------------------------------

def test_e_too_big(d):
    base = visit()
    # Find the note length that makes the frame exactly 65536 bytes.
    probe = len(pack(body(base, note="x" * 60000)))
    exact = body(base, note="x" * (60000 + 65536 - probe))
    assert len(pack(exact)) == 65536
    over = body(base, note="x" * (60000 + 65537 - probe))
    assert len(pack(over)) == 65537
    bad_v = env(over, v=2)
    cases = [
        ("65537-byte event", over, "E_TOO_BIG", None, ANY),
        ("65537-byte event with v=2 (size checked first)", bad_v, "E_TOO_BIG", None, ANY),
        ("100000 bytes of garbage (size before decode)", b"\xc1" * 100000, "E_TOO_BIG", None, ANY),
        ("500 KiB event", body(base, note="y" * 500000), "E_TOO_BIG", None, ANY),
        # exactly 64 KiB is not too big: it fails on the note's 4096-byte limit instead.
        ("65536-byte event: not too big", exact, "E_SCHEMA", "body.note", base["id"]),
    ]
    run_rejections(d, cases)


def test_e_decode(d):
    ev = visit()
    good = pack(ev)
    b = ev["body"]
    cases = [
        ("empty frame", b"", "E_DECODE", None, ANY),
        ("never-used byte 0xc1", b"\xc1", "E_DECODE", None, ANY),
        ("map header without entries", b"\x87", "E_DECODE", None, ANY),
        ("truncated by one byte", good[:-1], "E_DECODE", None, ANY),
        ("truncated in half", good[:len(good) // 2], "E_DECODE", None, ANY),
        ("trailing nil", good + b"\xc0", "E_DECODE", None, ANY),
        ("two maps in one frame", good + pack(visit()), "E_DECODE", None, ANY),
        ("array", pack([ev]), "E_DECODE", None, ANY),
        ("str", pack("visit"), "E_DECODE", None, ANY),
        ("int", pack(1), "E_DECODE", None, ANY),
        ("nil", pack(None), "E_DECODE", None, ANY),
        ("bin holding a map", pack(good), "E_DECODE", None, ANY),
        ("int key", raw_map(list(ev.items()) + [(1, "x")]), "E_DECODE", None, ANY),
        ("bin key", raw_map([(b"v", 1)] + [(k, v) for k, v in ev.items() if k != "v"]),
         "E_DECODE", None, ANY),
        ("nil key", raw_map(list(ev.items()) + [(None, 1)]), "E_DECODE", None, ANY),
        ("array key", raw_map(list(ev.items()) + [(Raw(b"\x91\xa1v"), 1)]), "E_DECODE", None, ANY),
        ("repeated key v", raw_map(list(ev.items()) + [("v", 1)]), "E_DECODE", None, ANY),
        ("repeated key id, same value", raw_map(list(ev.items()) + [("id", ev["id"])]),
         "E_DECODE", None, ANY),
        ("repeated key in body",
         raw_map([(k, v) for k, v in ev.items() if k != "body"]
                 + [("body", raw_map(list(b.items()) + [("mode", "fixed")]))]),
         "E_DECODE", None, ANY),
        ("int key in body",
         raw_map([(k, v) for k, v in ev.items() if k != "body"]
                 + [("body", raw_map(list(b.items()) + [(7, "x")]))]),
         "E_DECODE", None, ANY),
        ("repeated key and v=2 (decode before version)",
         raw_map(list(env(ev, v=2).items()) + [("actor", "x")]), "E_DECODE", None, ANY),
        ("map32 of 4G entries", b"\xdf\xff\xff\xff\xff", "E_DECODE", None, ANY),
        ("array32 of 4G entries", b"\x81\xa4body\xdd\xff\xff\xff\xff", "E_DECODE", None, ANY),
        ("str32 of 4 GiB", b"\x81\xa2id\xdb\xff\xff\xff\xff" + b"x" * 20, "E_DECODE", None, ANY),
        ("bin32 of 2 GiB", b"\x81\xa2id\xc6\x7f\xff\xff\xff" + b"x" * 20, "E_DECODE", None, ANY),
        ("ext32 of 4 GiB", b"\x81\xa2at\xc9\xff\xff\xff\xff\x01", "E_DECODE", None, ANY),
        ("map claiming 15 entries, holding 7", b"\x8f" + good[1:], "E_DECODE", None, ANY),
    ]
    run_rejections(d, cases)


def test_e_version(d):
    ev = visit()
    cases = [("v=%r" % v, env(ev, v=v), "E_VERSION", "v", ev["id"])
             for v in (0, 2, -1, 255, 2 ** 32 + 1, 2 ** 64 - 1, -2 ** 63)]
    cases.append(("v=2 and an unknown type (version first)", env(ev, v=2, type="bogus"),
                  "E_VERSION", "v", ev["id"]))
    cases.append(("v=2 and a bad unit", env(ev, v=2, unit="qd"), "E_VERSION", "v", ev["id"]))
    run_rejections(d, cases)


def test_e_schema_envelope(d):
    ev = visit()
    cases = []
    cases += cases_for("E_SCHEMA", "v", ev, [("v", DEL), ("v", "1"), ("v", 1.0), ("v", True),
                                             ("v", None), ("v", b"\x01")])
    cases += cases_for("E_SCHEMA", "type", ev, [("type", DEL), ("type", 7), ("type", None),
                                                ("type", b"visit"), ("type", ["visit"])])
    cases += cases_for("E_SCHEMA", "id", ev, [
        ("id", DEL), ("id", 1234567890123456789), ("id", None), ("id", b"bin-id-0123456789abc"),
        ("id", "x" * 15), ("id", "x" * 65), ("id", ""), ("id", "has space in the id 0123"),
        ("id", "tab\tin-the-id-0123456789"), ("id", "ctl\x01char-0123456789"),
        ("id", "del\x7fchar-0123456789"), ("id", "nul\x00char-0123456789"),
        ("id", "dél-0123456789abcdef"), ("id", "编号-0123456789abcdef")])
    cases += cases_for("E_SCHEMA", "at", ev, [("at", DEL), ("at", "1700000000000"), ("at", 1.5),
                                              ("at", -1), ("at", None), ("at", True),
                                              ("at", -2 ** 63)])
    cases += cases_for("E_SCHEMA", "unit", ev, [("unit", DEL), ("unit", 7), ("unit", None),
                                                ("unit", b"qd.hx.dy"), ("unit", ["qd", "hx", "dy"])])
    cases += cases_for("E_SCHEMA", "actor", ev, [("actor", DEL), ("actor", ""), ("actor", "a" * 65),
                                                 ("actor", 7), ("actor", b"cadre-7"),
                                                 ("actor", "中" * 22)])   # 66 bytes
    cases += cases_for("E_SCHEMA", "body", ev, [("body", DEL), ("body", []), ("body", "x"),
                                                ("body", None), ("body", 5)])
    # unknown envelope keys, including the daemon-added `by` and record fields
    cases += cases_for("E_SCHEMA", None, ev, [("extra", 1), ("by", "phone-1"), ("seq", 5),
                                              ("rat", 5), ("Type", "visit")])
    # the invalid-UTF-8 id is a str on the wire but not one the reply can echo faithfully
    for s in BAD_UTF8:
        cases.append(("E_SCHEMA invalid UTF-8 in actor %r" % s, env(ev, actor=s), "E_SCHEMA",
                      "actor", ev["id"]))
    run_rejections(d, cases)


def test_e_schema_visit_body(d):
    ev = visit()
    cases = []
    cases += cases_for("E_SCHEMA", "body.household", ev, [
        ("household", DEL), ("household", ""), ("household", "h" * 4097),
        ("household", "中" * 1366),  # 1366 chars but 4098 bytes: the limit is bytes
        ("household", 7), ("household", None), ("household", b"hh-001")], envelope=False)
    cases += cases_for("E_SCHEMA", "body.mode", ev, [
        ("mode", DEL), ("mode", "weekly"), ("mode", ""), ("mode", "Periodic"), ("mode", "periodic "),
        ("mode", 7), ("mode", b"periodic")], envelope=False)
    cases += cases_for("E_SCHEMA", "body.minutes", ev, [
        ("minutes", -1), ("minutes", 100001), ("minutes", 2 ** 64 - 1), ("minutes", "10"),
        ("minutes", 1.5), ("minutes", None), ("minutes", True)], envelope=False)
    cases += cases_for("E_SCHEMA", "body.note", ev, [
        ("note", 7), ("note", "n" * 4097), ("note", b"note"), ("note", None)], envelope=False)
    cases += cases_for("E_SCHEMA", "body.appeal", ev, [("appeal", 7), ("appeal", b"ap")],
                       envelope=False)
    cases += cases_for("E_SCHEMA", None, ev, [("housenold", "typo"), ("category", "jobs"),
                                              ("outcome", "resolved")], envelope=False)
    for s in BAD_UTF8:
        cases.append(("E_SCHEMA invalid UTF-8 in body.household %r" % s, body(ev, household=s),
                      "E_SCHEMA", "body.household", ev["id"]))
    run_rejections(d, cases)


def test_e_schema_appeal_resolution_feedback_bodies(d):
    ap = appeal("ap-schema-1")
    cases = []
    cases += cases_for("E_SCHEMA", "body.appeal", ap, [("appeal", DEL), ("appeal", ""),
                                                       ("appeal", "a" * 65), ("appeal", 7)],
                       envelope=False)
    cases += cases_for("E_SCHEMA", "body.household", ap, [("household", DEL), ("household", 1)],
                       envelope=False)
    cases += cases_for("E_SCHEMA", "body.category", ap, [
        ("category", DEL), ("category", "food"), ("category", "Jobs"), ("category", ""),
        ("category", 7), ("category", "jobs\x00")], envelope=False)
    cases += cases_for("E_SCHEMA", "body.priority", ap, [
        ("priority", "high"), ("priority", ""), ("priority", "URGENT"), ("priority", 7),
        ("priority", None), ("priority", True)], envelope=False)
    cases += cases_for("E_SCHEMA", "body.summary", ap, [("summary", DEL), ("summary", ""),
                                                        ("summary", "s" * 4097), ("summary", [])],
                       envelope=False)
    cases += cases_for("E_SCHEMA", None, ap, [("mode", "periodic"), ("minutes", 5)], envelope=False)

    res = resolution("ap-schema-1")
    cases += cases_for("E_SCHEMA", "body.appeal", res, [("appeal", DEL), ("appeal", 7)],
                       envelope=False)
    cases += cases_for("E_SCHEMA", "body.outcome", res, [
        ("outcome", DEL), ("outcome", "closed"), ("outcome", "open"), ("outcome", "done"),
        ("outcome", ""), ("outcome", 7)], envelope=False)
    cases += cases_for("E_SCHEMA", "body.note", res, [("note", DEL), ("note", ""), ("note", 7),
                                                      ("note", "n" * 4097)], envelope=False)
    cases += cases_for("E_SCHEMA", None, res, [("satisfied", True)], envelope=False)

    fb = feedback("ap-schema-1")
    cases += cases_for("E_SCHEMA", "body.satisfied", fb, [
        ("satisfied", DEL), ("satisfied", "yes"), ("satisfied", 1), ("satisfied", 0),
        ("satisfied", None)], envelope=False)
    cases += cases_for("E_SCHEMA", "body.appeal", fb, [("appeal", DEL), ("appeal", 7)],
                       envelope=False)
    cases += cases_for("E_SCHEMA", "body.note", fb, [("note", 7), ("note", "n" * 4097)],
                       envelope=False)
    cases += cases_for("E_SCHEMA", None, fb, [("outcome", "resolved")], envelope=False)
    run_rejections(d, cases)


def test_e_type(d):
    ev = visit()
    esc_body = {"appeal": "ap-x", "kind": "escalated", "from": "community", "to": "township",
                "deadline": 1, "next": 2}
    cp_body = {"seq": 1, "hash": b"\0" * 32, "key": b"\0" * 32, "sig": b"\0" * 64}
    cases = [
        ("escalation from a client", env(ev, type="escalation", body=esc_body), "E_TYPE", "type",
         ev["id"]),
        ("checkpoint from a client", env(ev, type="checkpoint", body=cp_body, unit="qd"),
         "E_TYPE", "type", ev["id"]),
        ("unknown type", env(ev, type="bogus"), "E_TYPE", "type", ev["id"]),
        ("type case matters", env(ev, type="Visit"), "E_TYPE", "type", ev["id"]),
        ("type with trailing space", env(ev, type="visit "), "E_TYPE", "type", ev["id"]),
        # type comes before the other envelope and body fields and the unit
        ("escalation with an unknown key and a bad unit", env(ev, type="escalation", unit="qd",
                                                              extra=1),
         "E_TYPE", "type", ev["id"]),
    ]
    run_rejections(d, cases)


def test_e_unit(d):
    ev = visit()
    bad = ["qd.hx", "qd", "qd.xs", "qd.hx.zz", "qd.zz.dy", "zz.hx.dy", "qd.xs.dy", "qd.hx.dy.x",
           "QD.HX.DY", "qd..dy", ".qd.hx.dy", "qd.hx.dy.", "qd.hx.d", "qd.hx.dyy", "qd/hx/dy",
           "qd.hx.dy ", " qd.hx.dy", "qd.hx.dy\x00", "qd.hx.dy\x00junk", "q", "x" * 200]
    cases = [("unit %r" % u, env(ev, unit=u), "E_UNIT", "unit", ev["id"]) for u in bad]
    ap = appeal()
    cases.append(("appeal at a township", env(ap, unit="qd.hx"), "E_UNIT", "unit", ap["id"]))
    cases.append(("appeal at the county", env(ap, unit="qd"), "E_UNIT", "unit", ap["id"]))
    run_rejections(d, cases)


def test_error_precedence(d):
    ev = visit()
    i = ev["id"]
    cases = [
        ("v missing beats unknown type", env(ev, v=DEL, type="bogus"), "E_SCHEMA", "v", i),
        ("v non-integer beats daemon-only type", env(ev, v="1", type="escalation"),
         "E_SCHEMA", "v", i),
        ("type missing beats bad unit", env(ev, type=DEL, unit="qd"), "E_SCHEMA", "type", i),
        ("unknown envelope key beats bad unit", env(ev, unit="qd", extra=1), "E_SCHEMA", "extra", i),
        ("bad body.mode beats bad unit", body(env(ev, unit="qd"), mode="weekly"),
         "E_SCHEMA", "body.mode", i),
        ("bad category beats bad unit", body(env(appeal(), unit="qd.hx"), category="food"),
         "E_SCHEMA", "body.category", None),
        ("bad at beats bad unit", env(ev, at=-5, unit="zz.zz.zz"), "E_SCHEMA", "at", i),
        ("bad unit beats unknown appeal", env(resolution("no-such-appeal"), unit="qd.hx"),
         "E_UNIT", "unit", None),
        ("bad unit beats feedback state", env(feedback("no-such-appeal"), unit="qd"),
         "E_UNIT", "unit", None),
    ]
    cases = [(n, m, c, f, (m["id"] if wid is None else wid)) for n, m, c, f, wid in cases]
    run_rejections(d, cases)


def test_e_state(d):
    with d.client("ingest") as cli:
        aid = "ap-state-" + new_id()[:8]
        publish_ok(cli, appeal(aid))
        closed = "ap-closed-" + new_id()[:8]
        publish_ok(cli, appeal(closed))
        publish_ok(cli, resolution(closed))
        publish_ok(cli, feedback(closed, True))
        resolved = "ap-resolved-" + new_id()[:8]
        publish_ok(cli, appeal(resolved))
        publish_ok(cli, resolution(resolved, "resolved"))
    cases = []
    for name, m in [
        ("resolution of an unknown appeal", resolution("no-such-appeal-1")),
        ("feedback on an unknown appeal", feedback("no-such-appeal-1")),
        ("visit answering an unknown appeal", visit(appeal="no-such-appeal-1")),
        ("feedback on an open appeal", feedback(aid, True)),
        ("unsatisfied feedback on an open appeal", feedback(aid, False)),
        ("resolution of a closed appeal", resolution(closed, "resolved")),
        ("explained on a closed appeal", resolution(closed, "explained")),
        ("feedback on a closed appeal", feedback(closed, False)),
        ("resolution of a resolved appeal", resolution(resolved, "resolved")),
        ("referral of a resolved appeal", resolution(resolved, "referred")),
        ("appeal ids are case-sensitive", resolution(aid.upper())),
    ]:
        cases.append((name, m, "E_STATE", None, m["id"]))
    run_rejections(d, cases)


def test_rejected_event_leaves_its_id_free(d):
    """Nothing of a rejected event is stored: the same id is accepted later, fresh."""
    with d.client("ingest") as cli:
        bad = body(visit(), mode="weekly")
        r = cli.call(bad)
        assert r.get("code") == "E_SCHEMA", r
        good = body(bad, mode="periodic")
        assert publish_ok(cli, good) == 1

        aid = "ap-free-" + new_id()[:8]
        fb = feedback(aid, True)
        assert cli.call(fb).get("code") == "E_STATE"      # no such appeal yet
        publish_ok(cli, appeal(aid))
        assert cli.call(fb).get("code") == "E_STATE"      # still open
        publish_ok(cli, resolution(aid))
        assert publish_ok(cli, fb) == 4                   # same event, now fits
        st = appeal_state(d, aid)
        assert st["ok"] and st["appeal"]["status"] == "closed", st


# --- duplicates and conflicts ---------------------------------------------------

def test_dup_retry_answers_original_seq(d):
    with d.client("ingest") as cli:
        first = visit()
        s1 = publish_ok(cli, first)
        for _ in range(30):
            publish_ok(cli, visit())
        head = d.head()
        for _ in range(3):
            assert publish_ok(cli, first, dup=True) == s1
        # keys in another order are the same content
        reordered = {k: first[k] for k in reversed(list(first))}
        reordered["body"] = {k: first["body"][k] for k in reversed(list(first["body"]))}
        assert publish_ok(cli, reordered, dup=True) == s1
        assert d.head() == head, "a retry stored something"


def test_dup_of_appeal_without_priority_retried_with_default(d):
    """The stored appeal has "priority": "normal"; a retry that spells the default out
    is the same content once normalised."""
    with d.client("ingest") as cli:
        ap = appeal()
        s = publish_ok(cli, ap)
        r = cli.call(body(ap, priority="normal"))
        assert r == dict(r, ok=True, id=ap["id"], seq=s, dup=True), r


def test_dup_after_the_appeal_moved_on(d):
    """Retrying is always safe, however late: a retried appeal or resolution answers
    dup, not E_CONFLICT or E_STATE, after the state changed."""
    with d.client("ingest") as cli:
        aid = "ap-late-" + new_id()[:8]
        ap, res, v, fb = appeal(aid), resolution(aid), visit(appeal=aid), feedback(aid, True)
        s_ap, s_res, s_v, s_fb = [publish_ok(cli, ev) for ev in (ap, res, v, fb)]
        head = d.head()
        assert publish_ok(cli, ap, dup=True) == s_ap
        assert publish_ok(cli, res, dup=True) == s_res
        assert publish_ok(cli, fb, dup=True) == s_fb
        assert publish_ok(cli, v, dup=True) == s_v
        assert d.head() == head
        st = appeal_state(d, aid)
        assert st["appeal"]["status"] == "closed", st
        assert st["appeal"]["events"] == [s_ap, s_res, s_v, s_fb], st


def test_dup_and_conflict_within_one_pipelined_batch(d):
    """Events that arrive together (one group commit) see each other."""
    with d.client("ingest") as cli:
        a = visit()
        a_conf = body(a, household="someone-else")
        aid = "ap-batch-" + new_id()[:8]
        ap1, ap2 = appeal(aid), appeal(aid, household="hh-other")
        res, fb = resolution(aid), feedback(aid, True)
        msgs = [a, a, a_conf, ap1, ap2, res, fb, a]
        for m in msgs:
            cli.send(m)
        rs = [cli.recv() for _ in msgs]
    desc = "\n".join("%r -> %r" % (m["id"], r) for m, r in zip(msgs, rs))
    assert rs[0] == dict(rs[0], ok=True, id=a["id"], dup=False, seq=1), desc
    assert rs[1] == dict(rs[1], ok=True, id=a["id"], dup=True, seq=1), desc
    assert rs[2].get("ok") is False and rs[2].get("code") == "E_CONFLICT", desc
    assert rs[3] == dict(rs[3], ok=True, id=ap1["id"], dup=False, seq=2), desc
    assert rs[4].get("code") == "E_CONFLICT" and "body.appeal" in rs[4].get("error", ""), desc
    assert rs[4].get("id") == ap2["id"], desc
    assert rs[5] == dict(rs[5], ok=True, id=res["id"], dup=False, seq=3), desc
    assert rs[6] == dict(rs[6], ok=True, id=fb["id"], dup=False, seq=4), desc
    assert rs[7] == dict(rs[7], ok=True, id=a["id"], dup=True, seq=1), desc
    assert d.head()["seq"] == 4


def test_dup_across_restart(d):
    with d.client("ingest") as cli:
        aid = "ap-restart-" + new_id()[:8]
        evs = [visit(), appeal(aid), visit(COMMUNITY2, minutes=30), resolution(aid, "explained")]
        seqs = [publish_ok(cli, ev) for ev in evs]
    head = d.head()
    assert d.stop() == 0, d.read_log()
    d.start()
    assert d.head() == head
    with d.client("ingest") as cli:
        for ev, s in zip(evs, seqs):
            assert publish_ok(cli, ev, dup=True) == s
        conflicting = body(evs[0], household="changed")
        r = cli.call(conflicting)
        assert r.get("code") == "E_CONFLICT", r
        assert publish_ok(cli, visit()) == len(evs) + 1
        # appeal state survived too
        assert publish_ok(cli, feedback(aid, False)) == len(evs) + 2
    st = appeal_state(d, aid)
    assert st["ok"] and st["appeal"]["status"] == "open", st


def test_e_conflict_same_id_other_content(d):
    with d.client("ingest") as cli:
        orig = visit(minutes=10)
        s = publish_ok(cli, orig)
        publish_ok(cli, visit())
    i = orig["id"]
    cases = [
        ("other household", body(orig, household="hh-999"), "E_CONFLICT", "id", i),
        ("other minutes", body(orig, minutes=11), "E_CONFLICT", "id", i),
        ("minutes dropped", body(orig, minutes=DEL), "E_CONFLICT", "id", i),
        ("note added", body(orig, note="x"), "E_CONFLICT", "id", i),
        ("other at", env(orig, at=orig["at"] + 1), "E_CONFLICT", "id", i),
        ("other unit", env(orig, unit=COMMUNITY2), "E_CONFLICT", "id", i),
        ("other actor", env(orig, actor="cadre-8"), "E_CONFLICT", "id", i),
        ("other type", env(appeal(), id=i), "E_CONFLICT", "id", i),
    ]
    run_rejections(d, cases)
    with d.client("ingest") as cli:
        assert publish_ok(cli, orig, dup=True) == s
    assert decode_ev(record_at(d, s)) == stored_form(orig)


def test_e_conflict_appeal_id_reused(d):
    with d.client("ingest") as cli:
        aid = "ap-reuse-" + new_id()[:8]
        ap = appeal(aid)
        s = publish_ok(cli, ap)
        publish_ok(cli, resolution(aid))
        publish_ok(cli, feedback(aid, True))   # closed: the id stays taken
    before = appeal_state(d, aid)
    cases = [
        ("new appeal, same appeal id", appeal(aid), "E_CONFLICT", "body.appeal", None),
        ("same appeal id at another unit", appeal(aid, unit=COMMUNITY2), "E_CONFLICT",
         "body.appeal", None),
        ("same appeal id, same body, new event id", env(ap, id=new_id()), "E_CONFLICT",
         "body.appeal", None),
    ]
    cases = [(n, m, c, f, m["id"]) for n, m, c, f, _ in cases]
    # an existing event id with other content and an unknown appeal: conflict first
    res = resolution("no-such-appeal-9")
    cases.append(("reused event id naming an unknown appeal", env(res, id=ap["id"]),
                  "E_CONFLICT", "id", ap["id"]))
    run_rejections(d, cases)
    assert appeal_state(d, aid) == before
    assert decode_ev(record_at(d, s)) == stored_form(ap)


def test_schema_and_unit_checks_come_before_dedup(d):
    with d.client("ingest") as cli:
        orig = visit()
        publish_ok(cli, orig)
    cases = [
        ("stored id resent with a bad mode", body(orig, mode="weekly"), "E_SCHEMA", "body.mode",
         orig["id"]),
        ("stored id resent at a township", env(orig, unit="qd.hx"), "E_UNIT", "unit", orig["id"]),
        ("stored id resent with v=2", env(orig, v=2), "E_VERSION", "v", orig["id"]),
    ]
    run_rejections(d, cases)


# --- the appeal state machine ---------------------------------------------------

def test_appeal_state_machine(d):
    aid = "ap-sm-" + new_id()[:8]
    other = "ap-other-" + new_id()[:8]
    with d.client("ingest") as cli:
        s_ap = publish_ok(cli, appeal(aid, priority="urgent"))
        st = appeal_state(d, aid)
        assert st.get("ok") is True, st
        a = st["appeal"]
        rec = record_at(d, s_ap)
        assert a == dict(a, appeal=aid, unit=COMMUNITY, status="open", tier="community",
                         opened=rec["rat"], events=[s_ap]), a
        # The sample config runs the escalation plugin: an open appeal has a
        # deadline on the calendar (urgent: 1 working day at the community).
        assert isinstance(a["deadline"], int) and a["deadline"] > rec["rat"], a

        seqs = [s_ap]
        publish_ok(cli, visit())                             # names no appeal
        publish_ok(cli, appeal(other, unit=COMMUNITY2))      # another appeal
        seqs.append(publish_ok(cli, visit(appeal=aid)))      # answers it
        assert appeal_state(d, aid)["appeal"]["status"] == "open"

        steps = [
            (resolution(aid, "resolved"), "resolved"),
            (feedback(aid, False, note="not fixed"), "open"),
            (resolution(aid, "explained"), "explained"),
            (resolution(aid, "referred"), "referred"),       # allowed on explained
            (visit(appeal=aid, unit=COMMUNITY), "referred"),  # a visit does not change status
            (resolution(aid, "resolved"), "resolved"),       # allowed on referred
            (feedback(aid, True), "closed"),
        ]
        for ev, status in steps:
            seqs.append(publish_ok(cli, ev))
            st = appeal_state(d, aid)
            assert st["ok"] and st["appeal"]["status"] == status, (ev, st)
            assert st["appeal"]["events"] == seqs, st
            assert st["appeal"]["tier"] == "community"
            assert st["appeal"]["opened"] == rec["rat"]

        head = d.head()
        for ev in [resolution(aid, "resolved"), resolution(aid, "explained"),
                   feedback(aid, True), feedback(aid, False)]:
            r = cli.call(ev)
            assert r.get("code") == "E_STATE", (ev, r)
        assert d.head() == head
    other_st = appeal_state(d, other)
    assert other_st["appeal"]["status"] == "open" and other_st["appeal"]["unit"] == COMMUNITY2
    assert len(other_st["appeal"]["events"]) == 1


@pytest.mark.parametrize("outcome,satisfied,final", [
    ("explained", True, "closed"), ("explained", False, "open"),
    ("referred", True, "closed"), ("referred", False, "open"),
    ("resolved", False, "open")])
def test_feedback_after_each_outcome(d, outcome, satisfied, final):
    aid = "ap-fb-" + new_id()[:8]
    with d.client("ingest") as cli:
        publish_ok(cli, appeal(aid))
        publish_ok(cli, resolution(aid, outcome))
        assert appeal_state(d, aid)["appeal"]["status"] == outcome
        publish_ok(cli, feedback(aid, satisfied))
        assert appeal_state(d, aid)["appeal"]["status"] == final
        if final == "open":                       # reopened: can be resolved again
            publish_ok(cli, resolution(aid, "resolved"))
            publish_ok(cli, feedback(aid, True))
            assert appeal_state(d, aid)["appeal"]["status"] == "closed"


# --- pipelining, REQ, garbage ------------------------------------------------------

def test_pipelined_acks_in_order_with_rejections_mixed_in(d):
    rnd = random.Random(1234)
    msgs, want = [], []     # want: (id or None, ok, code, dup-of index or None)
    good_idx = []
    open_appeals = []
    for i in range(400):
        k = rnd.randrange(10)
        if k == 0:
            msgs.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40))) + b"\xc1")
            want.append((None, False, "E_DECODE", None))
        elif k == 1:
            m = body(visit(), mode="weekly")
            msgs.append(m)
            want.append((m["id"], False, "E_SCHEMA", None))
        elif k == 2 and good_idx:
            j = rnd.choice(good_idx)
            msgs.append(msgs[j])
            want.append((msgs[j]["id"], True, None, j))
        elif k == 3:
            m = env(visit(), unit="qd.hx")
            msgs.append(m)
            want.append((m["id"], False, "E_UNIT", None))
        elif k == 4:
            aid = "ap-pl-%d" % i
            m = appeal(aid)
            open_appeals.append(aid)
            msgs.append(m)
            want.append((m["id"], True, None, None))
            good_idx.append(i)
        elif k == 5 and open_appeals:
            m = resolution(open_appeals.pop(0))    # fits: its appeal was sent earlier
            msgs.append(m)
            want.append((m["id"], True, None, None))
            good_idx.append(i)
        elif k == 6:
            m = resolution("ap-never-%d" % i)
            msgs.append(m)
            want.append((m["id"], False, "E_STATE", None))
        elif k == 7 and i % 50 == 7:
            m = body(visit(), note="z" * 70000)
            msgs.append(m)
            want.append((None, False, "E_TOO_BIG", None))
        else:
            m = visit(COMMUNITIES[i % len(COMMUNITIES)], minutes=i)
            msgs.append(m)
            want.append((m["id"], True, None, None))
            good_idx.append(i)
    with d.client("ingest") as cli:
        for m in msgs:                     # all at once, no waiting
            cli.send(m)
        replies = [cli.recv() for _ in msgs]
        assert cli.try_recv(0.2) is None, "an extra reply"
    next_seq = 1
    seq_of = {}
    for i, (m, r, (wid, ok, code, dup_of)) in enumerate(zip(msgs, replies, want)):
        where = "reply %d to request %r:\n  %r" % (i, frame_of(m)[:120], r)
        assert r.get("ok") is ok, where
        if wid is not None:
            assert r.get("id") == wid, where
        if not ok:
            assert r.get("code") == code, where
            continue
        if dup_of is None:
            assert r.get("dup") is False and r.get("seq") == next_seq, where
            seq_of[i] = next_seq
            next_seq += 1
        else:
            assert r.get("dup") is True and r.get("seq") == seq_of[dup_of], where
    assert d.head()["seq"] == next_seq - 1
    records, _ = d.replay_all()
    for i, s in seq_of.items():
        assert decode_ev(records[s - 1]) == stored_form(msgs[i])
    assert chain(records) == d.head()["hash"]


def test_two_peers_interleaved_each_in_order(d):
    a, b = d.client("ingest"), d.client("ingest")
    try:
        ma = [visit(minutes=i) for i in range(150)]
        mb = [body(visit(), mode="weekly") if i % 3 == 0 else visit(COMMUNITY2, minutes=i)
              for i in range(150)]
        for x, y in zip(ma, mb):
            a.send(x)
            b.send(y)
        ra = [a.recv() for _ in ma]
        rb = [b.recv() for _ in mb]
    finally:
        a.close()
        b.close()
    assert [r.get("id") for r in ra] == [m["id"] for m in ma]
    assert [r.get("id") for r in rb] == [m["id"] for m in mb]
    assert all(r.get("ok") for r in ra)
    assert [r.get("ok") for r in rb] == [i % 3 != 0 for i in range(150)]
    seqs = sorted(r["seq"] for r in ra + rb if r.get("ok"))
    assert seqs == list(range(1, 251))


def test_req_socket_client(d):
    with d.client("ingest", zmq.REQ) as req:
        ev = visit()
        r = req.call(ev)
        assert r == dict(r, ok=True, id=ev["id"], seq=1, dup=False), r
        r = req.call(b"\xc1garbage")
        assert r.get("ok") is False and r.get("code") == "E_DECODE", r
        r = req.call(body(visit(), mode="x"))
        assert r.get("code") == "E_SCHEMA", r
        r = req.call(ev)
        assert r == dict(r, ok=True, seq=1, dup=True), r
        r = req.call(appeal())
        assert r.get("ok") and r.get("seq") == 2, r
    with d.client("query", zmq.REQ) as req:
        r = req.call({"op": "head"})
        assert r.get("ok") and r.get("seq") == 2, r
        r = req.call({"op": "bogus"})
        assert r.get("ok") is False and r.get("code") == "E_BADREQ", r
        r = req.call({"op": "replay", "from": 1})
        assert r.get("ok") and len(r["records"]) == 2, r


def test_dealer_with_delimiter_gets_delimiter_back(d):
    """A DEALER speaking REQ's envelope ([empty, request]) gets [empty, reply]."""
    with d.client("ingest") as cli:
        ev = visit()
        cli.sock.send_multipart([b"", pack(ev)])
        assert cli.sock.poll(int(RECV_TIMEOUT * 1000)), "no reply"
        parts = cli.sock.recv_multipart()
        assert len(parts) == 2 and parts[0] == b"", parts
        r = unpack(parts[1])
        assert r.get("ok") and r.get("id") == ev["id"], r


def _mutations(rnd, n):
    base = pack(appeal(priority="urgent"))
    out = []
    for i in range(n):
        k = i % 6
        if k == 0:
            out.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300))))
        elif k == 1:
            b = bytearray(base)
            for _ in range(rnd.randrange(1, 4)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            out.append(bytes(b))
        elif k == 2:
            out.append(base[:rnd.randrange(len(base))])
        elif k == 3:
            p = rnd.randrange(len(base))
            out.append(base[:p] + bytes([rnd.choice([0xc1, 0xdb, 0xdf, 0xdd, 0xc6, 0xc9, 0xff])])
                       + base[p:])
        elif k == 4:
            out.append(bytes([rnd.choice([0xdc, 0xdd, 0xde, 0xdf])]) + b"\xff" * rnd.randrange(2, 6))
        else:
            out.append(pack(rnd.choice([None, True, 1.5, -7, "s", [1, {}], {"v": [1] * 30},
                                        {"v": 1, "body": {"a": {"b": {"c": [None]}}}}])))
    return out


def test_garbage_flood_then_good_event(d):
    rnd = random.Random(99)
    frames = _mutations(rnd, 1500)
    # deep nesting that still fits in 64 KiB: a recursive parser must not overflow
    frames.append(b"\x82\xa1v\x01\xa4body" + b"\x91" * 60000 + b"\xc0")
    frames.append(b"\x81\xa4body" + b"\x81\xa1a" * 20000 + b"\xc0")
    frames.append(b"\xc1" * 300000)
    with d.client("ingest") as cli:
        replies = cli.pipeline(frames, window=256)
    accepted = 0
    for f, r in zip(frames, replies):
        assert r.get("ok") in (True, False), (f[:80], r)
        if r["ok"]:
            accepted += 1
            continue
        assert r.get("code") in WIRE_CODES and isinstance(r.get("error"), str), (f[:80], r)
        assert r.get("code") not in ("E_INTERNAL", "E_FULL"), (f[:80], r)
    # peers that send and vanish before their ack
    for _ in range(30):
        c = d.client("ingest")
        c.send(visit())
        c.send(b"\xc1")
        c.close()
    # one frame over 1 MiB: the transport may drop the peer; no reply is required
    big = d.client("ingest")
    big.send(b"\x00" * (2 * 1024 * 1024))
    big.try_recv(0.5)
    big.close()
    with d.client("ingest") as cli:
        ev = visit()
        r = cli.call(ev)
        assert r.get("ok") is True and r.get("dup") is False, r
        assert r["seq"] == d.head()["seq"]
    records, _ = d.replay_all()
    assert [x["seq"] for x in records] == list(range(1, len(records) + 1))
    assert chain(records) == d.head()["hash"]
    assert decode_ev(records[-1]) == stored_form(ev)


def _wide(x):
    """x encoded with the widest msgpack form: int64/uint64, str32, map32."""
    if isinstance(x, bool) or x is None:
        return Raw(pack(x))
    if isinstance(x, int):
        return Raw(b"\xd3" + struct.pack(">q", x)) if x < 2 ** 63 else Raw(b"\xcf" + struct.pack(">Q", x))
    if isinstance(x, str):
        b = x.encode()
        return Raw(b"\xdb" + struct.pack(">I", len(b)) + b)
    if isinstance(x, dict):
        return Raw(b"\xdf" + struct.pack(">I", len(x))
                   + b"".join(bytes(_wide(k)) + bytes(_wide(v)) for k, v in x.items()))
    raise TypeError(x)


def test_same_content_in_other_encodings_is_a_dup(d):
    """Content, not bytes: an event sent with the widest msgpack forms is stored as the
    same map, and a retry in the compact form answers dup with the original seq."""
    with d.client("ingest") as cli:
        ev = visit(minutes=7, note="宽编码")
        r = cli.call(bytes(_wide(ev)))
        s = check_accepted(r, ev["id"])
        assert decode_ev(record_at(d, s)) == stored_form(ev)
        assert publish_ok(cli, ev, dup=True) == s
        ap = appeal(priority="urgent")
        s2 = publish_ok(cli, ap)
        assert check_accepted(cli.call(bytes(_wide(ap))), ap["id"], dup=True) == s2
