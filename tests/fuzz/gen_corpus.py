#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/*).

Run once from anywhere with Debian's /usr/bin/python3 (python3-msgpack); the
files it writes are committed, so a run of the fuzzers never needs Python.
Re-running it rewrites the same files (it removes nothing: seeds added by
hand stay).

  event/   one mode byte (0: a client's context, 1: the daemon's, with
           plugin types) then one event frame: every type, valid, and
           near-misses for each check in proto/README.md's order
  query/   one request frame: every op, each filter, and refusals
  config/  a YAML config: the sample, a minimal one, per-year files, and
           broken variants of each section
"""
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


# --- events -------------------------------------------------------------------

AT = 1767600000000


def ev(type_, body, unit="qd.hx.dy", actor="cadre-7", id_="01JH5ZQ8J6X1Y2Z3A4B5C6D7E8", **extra):
    m = {"v": 1, "id": id_, "type": type_, "at": AT, "unit": unit, "actor": actor, "body": body}
    m.update(extra)
    return m


def event(name, obj, mode=0):
    put("event", name, bytes([mode]) + (obj if isinstance(obj, bytes) else pack(obj)))


def gen_events():
    visit = {"household": "hh-001", "mode": "periodic"}
    appeal = {"appeal": "AP-1", "household": "hh-001", "category": "housing",
              "summary": "屋顶漏水"}
    event("visit-ok", ev("visit", visit))
    event("visit-full", ev("visit", {"household": "hh-001", "mode": "appointment",
                                     "minutes": 45, "note": "入户走访", "appeal": "AP-1"}))
    event("appeal-ok", ev("appeal", appeal))
    event("appeal-urgent", ev("appeal", dict(appeal, priority="urgent", category="public-order"),
                              unit="qd.nh.wh"))
    event("resolution-ok", ev("resolution", {"appeal": "AP-1", "outcome": "referred",
                                             "note": "handed to the housing bureau"}))
    event("feedback-ok", ev("feedback", {"appeal": "AP-1", "satisfied": False, "note": "slow"}))
    event("escalation-daemon", ev("escalation", {
        "appeal": "AP-1", "kind": "escalated", "from": "community", "to": "township",
        "deadline": 1767862800000, "next": 1768467600000}, actor="escalate",
        id_="lx-0123456789abcdef0123456789abcdef"), mode=1)
    event("overdue-daemon", ev("escalation", {
        "appeal": "AP-1", "kind": "overdue", "from": "county", "to": "county",
        "deadline": 1768467600000, "next": None}, actor="escalate",
        id_="lx-0123456789abcdef0123456789abcdee"), mode=1)
    event("checkpoint-daemon", ev("checkpoint", {"seq": 41, "hash": bytes(32), "key": bytes(32),
                                                 "sig": bytes(64)}, unit="qd", actor="lianxind",
                                  id_="lx-0123456789abcdef0123456789abcded"), mode=1)
    event("config-daemon", ev("config", {"hash": bytes(32), "changes": ["unit qd.hx.xq added",
                                                                    "deadlines: normal township 5 -> 4 working days"]},
                              unit="qd", actor="config", id_="lx-0123456789abcdef0123456789abcdeb"),
          mode=1)
    event("warning-plugin", ev("warning", {"appeal": "AP-1", "tier": "township",
                                           "deadline": 1768467600000, "share": 0.8},
                               actor="escalate", id_="lx-0123456789abcdef0123456789abcdec",
                               by="device-1"), mode=1)
    event("unanswered-plugin", ev("unanswered", {"appeal": "AP-3", "tier": "community",
                                                 "due": 1767700800000, "urgent": True},
                                  actor="escalate", id_="lx-0123456789abcdef0123456789abcdeb"),
          mode=1)
    # Same content as visit-ok, written the long way: keys reordered, ints wide.
    wide = (b"\x87" + pack("body") + pack(visit) + pack("actor") + pack("cadre-7") +
            pack("unit") + pack("qd.hx.dy") + pack("at") + b"\xcf" + AT.to_bytes(8, "big") +
            pack("type") + pack("visit") + pack("id") + pack("01JH5ZQ8J6X1Y2Z3A4B5C6D7E8") +
            pack("v") + b"\xcc\x01")
    event("visit-wide-ints", wide)
    # Near-misses, in the order of the checks.
    event("bad-version", ev("visit", visit, v=2))
    event("bad-type-daemon-only", ev("escalation", {"appeal": "AP-1"}))
    event("bad-by-from-client", ev("visit", visit, by="device-1"))
    event("bad-unknown-body-key", ev("visit", dict(visit, colour="blue")))
    event("bad-missing-summary", ev("appeal", {k: v for k, v in appeal.items() if k != "summary"}))
    event("bad-category", ev("appeal", dict(appeal, category="weather")))
    event("bad-id-short", ev("visit", visit, id_="short"))
    # An overlong "/" (0xc0 0xaf) inside a str: packed as "@@", then swapped in.
    event("bad-utf8-note", pack(ev("visit", dict(visit, note="@@"))).replace(b"\xa2@@", b"\xa2\xc0\xaf"))
    event("bad-unit-township", ev("visit", visit, unit="qd.hx"))
    event("bad-repeated-key", b"\x82" + pack("v") + b"\x01" + pack("v") + b"\x01")
    event("bad-truncated", pack(ev("visit", visit))[:-3])
    event("bad-count-lie", b"\xdf\x7f\xff\xff\xff" + pack("v") + b"\x01")


# --- queries ------------------------------------------------------------------

def gen_queries():
    q = lambda name, obj: put("query", name, obj if isinstance(obj, bytes) else pack(obj))
    q("replay-all", {"op": "replay"})
    q("replay-from-limit", {"op": "replay", "from": 3, "limit": 2})
    q("replay-to-since-until", {"op": "replay", "from": 0, "to": 9,
                                "since": 1767578400000, "until": 1767607200000})
    q("replay-unit", {"op": "replay", "unit": "qd.hx"})
    q("replay-unit-topic", {"op": "replay", "unit": "qd.nh.", "limit": 100000})
    q("replay-types", {"op": "replay", "types": ["appeal", "resolution", "escalation",
                                                 "checkpoint"]})
    q("replay-appeal", {"op": "replay", "appeal": "AP-1", "types": ["visit", "feedback"]})
    q("replay-bad-limit", {"op": "replay", "limit": 0})
    q("replay-bad-type", {"op": "replay", "types": ["warning", 7]})
    q("appeal", {"op": "appeal", "appeal": "AP-1"})
    q("appeal-at", {"op": "appeal", "appeal": "AP-1", "at": 1767585600000})
    q("appeal-closed", {"op": "appeal", "appeal": "AP-2"})
    q("appeal-not-found", {"op": "appeal", "appeal": "AP-none"})
    q("appeal-missing", {"op": "appeal", "at": 5})
    q("appeal-long-id", {"op": "appeal", "appeal": "A" * 600})
    q("replay-appeal-long-id", {"op": "replay", "appeal": "B" * 512, "limit": 1})
    q("head", {"op": "head"})
    q("units", {"op": "units"})
    q("stats", {"op": "stats"})
    q("bad-op", {"op": "delete"})
    q("bad-key", {"op": "head", "from": 1})
    q("bad-not-map", pack(["op", "head"]))
    q("bad-trailing", pack({"op": "head"}) + b"\xc0")


# --- configs ------------------------------------------------------------------

MIN = """units:
  - code: qd
    name: 青德县
    townships:
      - code: hx
        name: 和兴镇
        communities:
          - {code: dy, name: 东园社区}
categories:
  - {code: jobs, name: 就业}
"""


def gen_configs():
    c = lambda name, text: put("config", name, text)
    with open(os.path.join(ROOT, "config", "lianxin.yaml"), encoding="utf-8") as f:
        c("sample.yaml", f.read())
    c("minimal.yaml", MIN)
    c("calendar-files.yaml", MIN + "calendar:\n  utc_offset: \"-03:30\"\n  workday_end: \"17:30\"\n"
      "  weekend: [fri, sat]\n  years:\n    - year: 2026\n      holidays: [2026-02-15..2026-02-17]\n"
      "      workdays: [2026-01-02]\n  files: [cn-2027.yaml, calendar/cn-2028.yaml]\n")
    c("calendar-bad-file.yaml", MIN + "calendar:\n  files: [bad-year.yaml, no-such.yaml, ./cn-2027.yaml,"
      " cn-2027.yaml]\n")
    c("full-sections.yaml", "listen: {ingest: 'ipc:///tmp/a.sock', alerts: 'tcp://127.0.0.1:8602',"
      " query: 'tcp://127.0.0.1:8603'}\nstore: {path: /var/lib/lianxin, map_size: 1GiB,"
      " map_max: 1TiB}\n" + MIN + "deadlines:\n  normal: {community: 2, township: 4, county: 8}\n"
      "  urgent: {community: 1}\n  categories:\n    jobs: {normal: {county: 20}, urgent: {township: 1}}\n"
      "plugins:\n  - name: escalate\n    warn_share: 0.5\n  - name: audit\n    path: ./audit.so\n"
      "checkpoints: {key: keys/lx.sign.key, every: 500, interval: 30}\n"
      "security: {server_key: server.key, clients: clients.yaml}\n")
    c("bad-syntax.yaml", MIN + "store:\n  path: [unclosed\n")
    c("bad-unknown-keys.yaml", MIN + "colour: blue\nstore:\n  pathh: x\n")
    c("bad-duplicates.yaml", MIN.replace("  - {code: jobs, name: 就业}\n",
                                         "  - {code: jobs, name: 就业}\n  - {code: jobs, name: 再就业}\n")
      + "categories: []\n")
    c("bad-values.yaml", MIN + "store: {map_size: 10ZiB, map_max: 1KiB}\n"
      "deadlines: {normal: {community: 0, township: 366}, categories: {weather: {normal: {county: 1}}}}\n"
      "calendar: {utc_offset: '+25:00', workday_end: '24:01', weekend: [sat, sat, noday],"
      " years: [{year: 1969}, {year: 2026, holidays: [2026-02-30, 2026-03-05..2026-03-01],"
      " workdays: [2026-01-05]}, {year: 2026}]}\n")
    c("bad-units.yaml", "units:\n  - code: QD\n    name: ''\n    townships:\n      - code: hx\n"
      "        communities: {code: dy}\n  - code: " + "x" * 40 + "\n    name: too long\n"
      "categories:\n  - {code: jobs}\n")
    c("bad-aliases.yaml", "units: &u\n  - {code: qd, name: x, townships: []}\ncategories: *u\n")
    c("bad-two-docs.yaml", MIN + "---\n" + MIN)
    c("bad-plugins.yaml", MIN + "plugins:\n  - name: escalate\n    tiers: [a, b]\n  - name: escalate\n"
      "  - path: x.so\n")
    c("empty.yaml", "")


# --- dictionaries (libFuzzer -dict=) --------------------------------------------

def dict_line(b):
    return '"' + "".join(chr(c) if 0x20 <= c < 0x7f and chr(c) not in '"\\' else "\\x%02x" % c
                         for c in b) + '"'


def put_dict(kind, tokens):
    d = os.path.join(HERE, "dict")
    os.makedirs(d, exist_ok=True)
    lines = [f"# {kind}: tokens for libFuzzer (-dict=); written by gen_corpus.py"]
    seen = set()
    for t in tokens:
        b = t if isinstance(t, bytes) else pack(t)
        if b not in seen:
            seen.add(b)
            lines.append(dict_line(b))
    with open(os.path.join(d, kind + ".dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


def gen_dicts():
    words = ["v", "id", "type", "at", "unit", "actor", "by", "body", "household", "mode",
             "minutes", "note", "appeal", "category", "priority", "summary", "outcome",
             "satisfied", "kind", "from", "to", "deadline", "next", "seq", "hash", "key", "sig",
             "changes", "config",
             "visit", "resolution", "feedback", "escalation", "checkpoint", "warning",
             "unanswered", "periodic", "fixed", "roving", "appointment", "pairing", "normal",
             "urgent", "resolved", "explained", "referred", "escalated", "overdue", "reminder",
             "community", "township", "county", "qd", "qd.hx", "qd.hx.dy", "qd.nh.wh",
             "housing", "jobs", "AP-1", "01JH5ZQ8J6X1Y2Z3A4B5C6D7E8"]
    typed = [b"\xcc", b"\xcd", b"\xce", b"\xcf", b"\xd3", b"\xd9", b"\xda", b"\xdc", b"\xde",
             b"\xc4\x20", b"\xc4\x40", b"\xcb", b"\xca", b"\xc0", b"\xc2", b"\xc3",
             (AT).to_bytes(8, "big"), b"\xcf" + (253402300799999).to_bytes(8, "big")]
    put_dict("event", words + typed)
    qwords = ["op", "replay", "appeal", "head", "units", "stats", "from", "limit", "to", "since",
              "until", "unit", "types", "at", "AP-1", "AP-2", "AP-3", "qd.hx", "qd.nh.", "visit",
              "escalation", "checkpoint", "warning"]
    put_dict("query", qwords + typed[:9] + [b"\xcf" + (1767578400000).to_bytes(8, "big")])
    ywords = ["listen:", "ingest:", "alerts:", "query:", "store:", "path:", "map_size:",
              "map_max:", "units:", "code:", "name:", "townships:", "communities:", "categories:",
              "deadlines:", "normal:", "urgent:", "community:", "township:", "county:",
              "calendar:", "utc_offset:", "workday_end:", "weekend:", "years:", "year:",
              "holidays:", "workdays:", "files:", "plugins:", "checkpoints:", "key:", "every:",
              "interval:", "security:", "server_key:", "clients:", "cn-2027.yaml",
              "calendar/cn-2028.yaml", "bad-year.yaml", "lianxin.yaml", "2026-02-15..2026-02-23",
              "2026-01-04", "9999-12-31", "1970-01-01", "+08:00", "18:00", "64MiB", "16GiB",
              "TiB", "sat", "sun", "- ", ": ", "{", "}", "[", "]", "&a ", "*a", "---", "...",
              "!!str ", "? ", "|\n", ">\n", "\"\\u0000\"", "'", "#"]
    put_dict("config", [w.encode() for w in ywords])


def main():
    gen_events()
    gen_queries()
    gen_configs()
    gen_dicts()
    total = 0
    for kind in ("event", "query", "config"):
        d = os.path.join(HERE, "corpus", kind)
        files = os.listdir(d)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        total += size
        print(f"{kind}: {len(files)} files, {size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
