# SPDX-License-Identifier: MIT
"""lianxin-web over real HTTP, against a real lianxind (PROTOCOL.md, "The web
gateway"): every endpoint, the Open311 fields and filters, the SSE stream's
resume without gap or repeat, the login and the jurisdictions, and bad input:
wrong passwords, foreign prefixes, malformed queries, huge headers and bodies,
hundreds of idle connections, a client that never reads, the daemon down."""
import json
import os
import shutil
import socket
import statistics
import subprocess
import time

import pytest

import lxtest
import webtest
from lxtest import Daemon, appeal, resolution, feedback, visit
from webtest import Gateway, SSE, ms

T0 = ms(2026, 3, 5, 10)  # Thursday 10:00 local


def publish_ok(d, ev):
    r = d.publish(ev)
    assert r["ok"], r
    return r["seq"]


@pytest.fixture(scope="module")
def seeded():
    """A daemon on a fake clock at T0 (speed 1) with a few appeals, and a
    gateway without summaries. Escalate only: the ranking is not enabled."""
    tmp = webtest.tmpdir()
    cfg = webtest.web_config(tmp, web_extra="  open311: {publish_summary: false}\n",
                             plugins="  - name: escalate\n")
    d = Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:1" % T0}).start()
    publish_ok(d, appeal("W-urgent", household="hh-secret-1", priority="urgent",
                         summary="water pipe burst"))
    publish_ok(d, appeal("W-normal", household="hh-secret-2", summary="job near home"))
    publish_ok(d, appeal("W-done", unit="qd.xs.sq", household="hh-secret-3", category="housing",
                         summary="roof leaks"))
    publish_ok(d, visit(appeal="W-done", household="hh-secret-3"))
    publish_ok(d, resolution("W-done", unit="qd.xs.sq"))
    publish_ok(d, appeal("W-told", unit="qd.nh.hb", household="hh-secret-4", category="health"))
    publish_ok(d, resolution("W-told", outcome="explained", unit="qd.nh.hb"))
    gw = Gateway(d, cfg).start()
    yield d, gw
    assert gw.stop() == 0, gw.read_log()
    d.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)


# --- the daemon's side -------------------------------------------------------

def test_stats_carry_what_metrics_need(seeded):
    d, _ = seeded
    st = d.request({"op": "stats"})
    assert st["types"]["appeal"] == 4 and st["types"]["resolution"] == 2
    assert st["types"]["visit"] == 1 and "escalation" in st["types"]
    assert st["types_complete"] is True
    assert st["appeals_open_tier"] == {"community": 2, "township": 0, "county": 0}
    assert st["store_bytes"] > 0
    h = st["commit_seconds"]
    assert h["count"] >= 7 and h["buckets"][-1][1] <= h["count"]
    assert [b[1] for b in h["buckets"]] == sorted(b[1] for b in h["buckets"])


def test_units_counts_and_appeals_op(seeded):
    d, _ = seeded
    units = {u["path"]: u for u in d.request({"op": "units", "counts": True})["units"]}
    assert (units["qd"]["open"], units["qd"]["due_soon"], units["qd"]["overdue"]) == (2, 1, 0)
    assert units["qd.hx.dy"]["open"] == 2 and units["qd.xs"]["open"] == 0
    assert "open" not in d.request({"op": "units"})["units"][0]
    assert T0 <= d.request({"op": "units"})["now"] < T0 + 600000  # the daemon's (test) clock
    r = d.request({"op": "appeals", "status": ["open"], "unit": "qd.hx"})
    assert sorted(a["appeal"] for a in r["appeals"]) == ["W-normal", "W-urgent"]
    assert all("household" not in a for a in r["appeals"])
    page = d.request({"op": "appeals", "limit": 2})
    assert len(page["appeals"]) == 2 and page["next"] == page["appeals"][-1]["appeal"]
    rest = d.request({"op": "appeals", "after": page["next"]})
    assert rest["next"] is None and len(rest["appeals"]) == 2
    assert d.request({"op": "appeals", "appeal": "nope"})["appeals"] == []
    for bad in ({"status": "open"}, {"status": ["bogus"]}, {"limit": 0}, {"since": -1}, {"x": 1}):
        q = {"op": "appeals"}
        q.update(bad)
        assert d.request(q)["code"] == "E_BADREQ", bad


# --- metrics -------------------------------------------------------------------

def test_metrics_names_and_values(seeded):
    d, gw = seeded
    status, headers, body = gw.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m = gw.metrics()
    assert m["lianxin_up"] == 1
    assert m["lianxin_head_seq"] == d.head()["seq"]
    assert m['lianxin_events_total{type="appeal"}'] == 4
    assert m['lianxin_appeals_open{tier="community"}'] == 2
    assert m['lianxin_appeals_open{tier="county"}'] == 0
    assert m["lianxin_store_bytes"] > 0
    assert m['lianxin_commit_duration_seconds_bucket{le="+Inf"}'] == m["lianxin_commit_duration_seconds_count"] >= 7
    assert "lianxin_commit_duration_seconds_sum" in m
    text = body.decode()
    for fam, typ in (("lianxin_up", "gauge"), ("lianxin_events_total", "counter"),
                     ("lianxin_alerts_total", "counter"),
                     ("lianxin_commit_duration_seconds", "histogram")):
        assert "# TYPE %s %s\n" % (fam, typ) in text


# --- units, appeals, ranking, jurisdiction -------------------------------------

def test_units_per_jurisdiction(seeded):
    _, gw = seeded
    status, units = gw.json("/api/units", "alice")
    assert status == 200
    by = {u["path"]: u for u in units}
    assert len(by) == 13 and by["qd"]["name"] == "青德县" and by["qd.hx.dy"]["name"] == "东园社区"
    assert (by["qd.hx"]["open"], by["qd.hx"]["due_soon"], by["qd.hx"]["overdue"]) == (2, 1, 0)
    assert by["qd.nh"]["open"] == 0  # explained is not open
    status, units = gw.json("/api/units", "bob")
    assert sorted(u["path"] for u in units) == ["qd.hx", "qd.hx.bl", "qd.hx.dy", "qd.hx.xc"]


def test_unit_appeals_and_403(seeded):
    _, gw = seeded
    status, body = gw.json("/api/appeals?unit=qd.hx.dy", "bob")
    assert status == 200
    assert sorted(a["appeal"] for a in body["appeals"]) == ["W-normal", "W-urgent"]
    assert all(a["deadline"] for a in body["appeals"])
    status, body = gw.json("/api/appeals?unit=qd.xs", "bob")
    assert status == 403 and body["code"] == "E_DENIED"
    status, body = gw.json("/api/appeals?unit=qd", "bob")  # wider: narrowed
    assert status == 200 and len(body["appeals"]) == 2
    status, body = gw.json("/api/appeals?unit=QD!", "bob")
    assert status == 400


def test_ranking_not_enabled_is_not_5xx(seeded):
    _, gw = seeded
    status, body = gw.json("/api/ranking?tier=community&period=2026-03", "alice")
    assert status == 404 and body["code"] == "E_NOTENABLED" and "not enabled" in body["error"]
    status, body = gw.json("/api/ranking?tier=community", "alice")
    assert status == 404
    status, body = gw.json("/api/rates", "alice")  # the chart's months: the same note
    assert status == 404 and body["code"] == "E_NOTENABLED"
    for bad in ("/api/ranking", "/api/ranking?tier=county", "/api/ranking?tier=community&period=2026-13",
                "/api/ranking?tier=community&period=26-1", "/api/ranking?tier=community&period=2026-Q5"):
        status, body = gw.json(bad, "alice")
        assert status == 400 and body["ok"] is False and body["error"], bad


def test_ranking_when_enabled(tmp_path):
    # The sample config loads the rank plugin: the gateway passes its reply on.
    tmp = str(tmp_path)
    cfg = webtest.web_config(tmp)
    with Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:1" % T0}) as d:
        publish_ok(d, appeal("R-1", summary="street light"))
        gw = Gateway(d, cfg).start()
        try:
            status, body = gw.json("/api/ranking?tier=community&period=2026-03", "alice")
            assert status == 200 and body["ok"] is True, body
            rows = body["ranking"]["rows"]
            assert body["ranking"]["tier"] == "community" and len(rows) == 9
            assert [r["unit"] for r in rows if r["received"]] == ["qd.hx.dy"]
        finally:
            assert gw.stop() == 0, gw.read_log()


def test_me_and_dashboard_files(seeded):
    _, gw = seeded
    assert gw.json("/api/me", "carol") == (200, {"name": "carol", "jurisdiction": "qd.xs",
                                                 "utc_offset_minutes": 480})
    status, headers, body = gw.get("/", "carol")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/app.js"' in body and b"http" not in body.split(b"<body>")[0].replace(b'http-equiv', b'')
    for name, typ in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, _ = gw.get(name, "carol")
        assert status == 200 and headers["Content-Type"].startswith(typ)
    assert gw.get("/../lianxin.yaml", "carol")[0] == 404
    assert gw.get("/nope.js", "carol")[0] == 404
    assert gw.get("/api/nope", "carol")[0] == 404


# --- login ---------------------------------------------------------------------

def test_login_refusals(seeded):
    _, gw = seeded
    for path in ("/", "/api/units", "/api/alerts", "/api/ranking?tier=community", "/app.js"):
        status, headers, body = gw.get(path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), path
        assert json.loads(body)["code"] == "E_LOGIN"
    status, headers, _ = gw.get("/api/units", "alice", password="wrong")
    assert status == 401 and "Basic" in headers["WWW-Authenticate"]
    status, _, _ = gw.get("/api/units", headers={"Authorization": "Basic !!!notbase64"})
    assert status == 401
    status, _, _ = gw.get("/api/units", headers={"Authorization": "Bearer abc"})
    assert status == 401
    # Open311 and metrics need no login.
    assert gw.get("/metrics")[0] == 200 and gw.get("/open311/v2/services.json")[0] == 200


def test_wrong_password_costs_the_same_for_any_name(seeded):
    """An unknown name is checked against a dummy Argon2id hash, so its refusal
    takes as long as a wrong password for a real name."""
    _, gw = seeded

    def timed(user):
        t = time.perf_counter()
        assert gw.get("/api/units", headers={"Authorization": "Basic " + __import__("base64").b64encode(
            ("%s:nope-%f" % (user, t)).encode()).decode()})[0] == 401
        return time.perf_counter() - t

    # Interleaved, so a machine busy with other work slows both alike.
    pairs = [(timed("alice"), timed("mallory")) for _ in range(7)]
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    assert known > 0.005 and unknown > 0.005  # each is a real Argon2 run
    assert 0.5 < known / unknown < 2.0, (known, unknown)
    # A right password is remembered: the next requests are fast.
    gw.get("/api/me", "alice")
    t = time.perf_counter()
    for _ in range(5):
        assert gw.get("/api/me", "alice")[0] == 200
    assert (time.perf_counter() - t) / 5 < known


# --- Open311 -------------------------------------------------------------------

OPEN311_FIELDS = {"service_request_id", "status", "status_notes", "service_code", "service_name",
                  "agency_responsible", "service_notice", "requested_datetime",
                  "updated_datetime", "expected_datetime"}


def test_open311_services(seeded):
    _, gw = seeded
    status, services = gw.json("/open311/v2/services.json")
    assert status == 200
    by = {s["service_code"]: s for s in services}
    assert by["housing"]["service_name"] == "住房" and len(by) == 9
    assert set(by["jobs"]) >= {"service_code", "service_name", "description", "metadata", "type",
                               "keywords", "group"}


def test_open311_requests_fields_and_privacy(seeded):
    _, gw = seeded
    status, headers, body = gw.get("/open311/v2/requests.json")
    assert status == 200
    assert b"hh-secret" not in body and b"household" not in body
    reqs = {r["service_request_id"]: r for r in json.loads(body)}
    assert set(reqs) == {"W-urgent", "W-normal", "W-done", "W-told"}
    for r in reqs.values():
        assert set(r) == OPEN311_FIELDS  # no description: publish_summary is false
    u = reqs["W-urgent"]
    assert u["status"] == "open" and u["status_notes"] is None
    assert u["service_code"] == "jobs" and u["service_name"] == "就业"
    assert u["agency_responsible"] == "东园社区"
    assert u["requested_datetime"].startswith("2026-03-05T10:") and u["requested_datetime"].endswith("+08:00")
    assert u["expected_datetime"] == "2026-03-06T18:00:00+08:00"  # urgent: one working day
    assert reqs["W-done"]["status"] == "closed" and reqs["W-done"]["status_notes"] == "resolved"
    assert reqs["W-done"]["expected_datetime"] is None
    assert reqs["W-done"]["updated_datetime"] >= reqs["W-done"]["requested_datetime"]
    assert reqs["W-told"]["status"] == "open" and reqs["W-told"]["status_notes"] == "explained"
    status, one = gw.json("/open311/v2/requests/W-done.json")
    assert status == 200 and one == [reqs["W-done"]]
    status, body = gw.json("/open311/v2/requests/no-such.json")
    assert status == 404 and body["code"] == "E_NOTFOUND"


def test_open311_filters(seeded):
    _, gw = seeded

    def ids(q):
        status, body = gw.json("/open311/v2/requests.json" + q)
        assert status == 200, body
        return sorted(r["service_request_id"] for r in body)

    assert ids("?service_code=housing") == ["W-done"]
    assert ids("?status=closed") == ["W-done"]
    assert ids("?status=open") == ["W-normal", "W-told", "W-urgent"]
    assert ids("?status=open&service_code=health") == ["W-told"]
    assert ids("?start_date=2026-03-05T00:00:00%2B08:00&end_date=2026-03-05T23:59:59%2B08:00") == \
        ["W-done", "W-normal", "W-told", "W-urgent"]
    assert ids("?start_date=2026-03-06") == []
    assert ids("?end_date=2026-03-04T23:59:59Z") == []
    assert ids("?start_date=2026-03-05T01:00:00Z") == ["W-done", "W-normal", "W-told", "W-urgent"]
    for bad in ("?status=pending", "?start_date=yesterday", "?start_date=2026-02-30",
                "?end_date=2026-03-05T25:00", "?start_date=2026-03-06&end_date=2026-03-05",
                "?service_code=", "?colour=blue", "?status=open&status=closed", "?start_date=2026-3-5"):
        status, body = gw.json("/open311/v2/requests.json" + bad)
        assert status == 400 and body["code"] == "E_BADREQ" and body["error"], bad


def test_open311_summary_only_when_configured(seeded):
    d, _ = seeded
    tmp = webtest.tmpdir()
    shutil.copy(os.path.join(d.tmp, "users.yaml"), tmp)
    cfg = webtest.web_config(tmp, web_extra="  open311: {publish_summary: true}\n")
    gw = Gateway(d, cfg).start()
    try:
        status, body = gw.json("/open311/v2/requests/W-urgent.json")
        assert status == 200 and body[0]["description"] == "water pipe burst"
        assert "household" not in json.dumps(body)
    finally:
        assert gw.stop() == 0
        shutil.rmtree(tmp, ignore_errors=True)


def q_date(ms_, offset=0):
    """An ISO 8601 time for a query string (the + of the offset escaped)."""
    return dt_iso(ms_ + offset).replace("+", "%2B")


def dt_iso(ms_):
    return webtest.dt.datetime.fromtimestamp(ms_ / 1000, webtest.CST).isoformat(timespec="seconds")


DAY = 86400 * 1000


def test_open311_90_day_window(tmp_path):
    """GeoReport v2: with no dates, the 90 days up to now (the daemon's
    clock, here a fast test clock); one date, the 90 days from or up to it;
    a range longer than 90 days is a 400."""
    tmp = str(tmp_path)
    cfg = webtest.web_config(tmp, plugins="  - name: escalate\n")
    speed = 1000000  # a day in 86 ms
    with Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (T0, speed)}) as d:
        gw = Gateway(d, cfg).start()
        try:
            publish_ok(d, appeal("O-old"))
            opened = {"O-old": d.request({"op": "appeal", "appeal": "O-old"})["appeal"]["opened"]}
            webtest.wait_daemon_time(d, opened["O-old"] + 50 * DAY)
            publish_ok(d, appeal("O-mid", category="housing"))
            webtest.wait_daemon_time(d, opened["O-old"] + 100 * DAY)
            publish_ok(d, appeal("O-new"))
            # At once: the window slides with the daemon's clock (90 days in 7.8 s).
            status, body = gw.json("/open311/v2/requests.json")
            now = webtest.daemon_now(d)
            assert status == 200, body
            assert now - opened["O-old"] > 90 * DAY
            assert sorted(r["service_request_id"] for r in body) == ["O-mid", "O-new"]
            # The old one is still there for whoever asks for its dates.
            old = opened["O-old"] // 1000 * 1000  # requested_datetime has whole seconds

            def ids(query):
                status, body = gw.json("/open311/v2/requests.json" + query)
                assert status == 200, (query, body)
                return sorted(r["service_request_id"] for r in body)

            assert ids("?start_date=" + q_date(old)) == ["O-mid", "O-old"]  # 90 days from it
            assert ids("?end_date=" + q_date(old, DAY)) == ["O-old"]  # 90 days up to it
            assert ids("?start_date=%s&end_date=%s" % (q_date(old), q_date(old, 90 * DAY))) == \
                ["O-mid", "O-old"]  # exactly 90 days: allowed
            assert ids("?service_code=housing") == ["O-mid"]  # filters keep the window
            status, body = gw.json("/open311/v2/requests.json?start_date=%s&end_date=%s"
                                   % (q_date(old), q_date(old, 90 * DAY + 1000)))
            assert status == 400 and body["code"] == "E_BADREQ" and "90 days" in body["error"]
            # One request by id is not windowed.
            status, body = gw.json("/open311/v2/requests/O-old.json")
            assert status == 200 and body[0]["service_request_id"] == "O-old"
        finally:
            assert gw.stop() == 0, gw.read_log()


def test_open311_first_1000_requests(tmp_path):
    """GeoReport v2's "first 1000 requests returned": 1,001 appeals in the
    window give 1,000, in appeal id order."""
    tmp = str(tmp_path)
    cfg = webtest.web_config(tmp, plugins="  - name: escalate\n")
    with Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:1" % T0}) as d:
        with d.client("ingest") as c:
            replies = c.pipeline([appeal("M-%04d" % i) for i in range(1001)])
        assert all(r["ok"] for r in replies)
        gw = Gateway(d, cfg).start()
        try:
            status, body = gw.json("/open311/v2/requests.json")
            assert status == 200
            assert [r["service_request_id"] for r in body] == ["M-%04d" % i for i in range(1000)]
            status, body = gw.json("/open311/v2/requests.json?status=open")
            assert status == 200 and len(body) == 1000
            assert gw.json("/open311/v2/requests/M-1000.json")[0] == 200
        finally:
            assert gw.stop() == 0, gw.read_log()


# --- malformed and oversized requests -----------------------------------------

def raw(gw, data, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def test_huge_headers_and_bodies_refused(seeded):
    _, gw = seeded
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    out = raw(gw, big)
    assert out == b"" or out.split(b" ", 2)[1] in (b"413", b"414", b"431"), out[:100]
    long_url = b"GET /metrics?" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    out = raw(gw, long_url)
    assert out == b"" or out.split(b" ", 2)[1] in (b"413", b"414", b"431"), out[:100]
    # A body is refused by its declared size before any of it is read.
    c = gw.conn()
    c.putrequest("POST", "/api/units")
    c.putheader("Content-Length", str(50 * 1024 * 1024))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413 and json.loads(r.read())["code"] == "E_TOO_BIG"
    c.close()
    out = raw(gw, b"PUT /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"100000\r\n" + b"x" * 1000)
    assert out.split(b" ", 2)[1] == b"413"
    status, _, body = gw.get("/metrics")  # and it still serves
    assert status == 200
    c = gw.conn()
    c.request("DELETE", "/api/units")
    assert c.getresponse().status == 405
    c.close()


def test_five_hundred_idle_connections(seeded):
    _, gw = seeded
    idle = []
    try:
        for _ in range(500):
            idle.append(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
        t = time.perf_counter()
        status, units = gw.json("/api/units", "alice")
        assert status == 200 and len(units) == 13
        assert gw.get("/metrics")[0] == 200
        assert time.perf_counter() - t < 2.0
    finally:
        for s in idle:
            s.close()
    assert gw.get("/metrics")[0] == 200


# --- the SSE stream ------------------------------------------------------------

FAST = 500000  # one day of daemon time in 0.17 s: escalations come quickly


@pytest.fixture
def fast():
    """A daemon on a fast clock (alerts flow) and its gateway, with a short
    idle timeout so that a client that never reads is dropped quickly."""
    tmp = webtest.tmpdir()
    cfg = webtest.web_config(tmp, web_extra="  timeout: 3\n")
    d = Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (T0, FAST)}).start()
    gw = Gateway(d, cfg).start()
    yield d, gw
    rc = gw.stop()
    d.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
    assert rc == 0


def wait_for_alerts(d, n, prefix=None, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        recs = webtest.alert_records(d, prefix)
        if len(recs) >= n:
            return recs
        time.sleep(0.1)
    raise AssertionError("only %d alert records" % len(webtest.alert_records(d, prefix)))


def test_sse_live_then_resume_without_gap_or_repeat(fast):
    d, gw = fast
    s1 = SSE(gw, "bob", prefix="qd.hx.")
    assert s1.status == 200
    publish_ok(d, appeal("S-1", priority="urgent"))
    publish_ok(d, appeal("S-2", unit="qd.xs.sq", priority="urgent"))  # carol's: bob never sees it
    first = s1.events(n=3, timeout=20)
    assert len(first) == 3
    s1.close()
    last = first[-1][0]
    time.sleep(1.0)  # alerts go on while bob is away
    s2 = SSE(gw, "bob", prefix="qd.hx.", last_id=last)
    wait_for_alerts(d, 3 + 5, prefix="qd.hx")
    log = [seq for seq, _ in webtest.alert_records(d, "qd.hx")]
    second = s2.events(until=lambda ev: ev[0] >= log[-1], timeout=20)
    s2.close()
    got = [e[0] for e in first + second]
    assert got == sorted(set(got)), "a repeat or out of order"
    start = log.index(first[0][0])
    assert got == log[start:start + len(got)], "a gap"
    for seq, kind, data in first + second:
        assert data["seq"] == seq and data["kind"] == kind and data["unit"].startswith("qd.hx")
        if kind in ("escalated", "overdue", "reminder"):
            assert data["appeal"] == "S-1" and data["tier"] == data["to"]


def test_sse_replay_from_log_and_narrowing(fast):
    d, gw = fast
    publish_ok(d, appeal("R-1", priority="urgent"))
    publish_ok(d, appeal("R-2", unit="qd.xs.sq", priority="urgent"))
    wait_for_alerts(d, 10)
    log_hx = [seq for seq, _ in webtest.alert_records(d, "qd.hx")]
    m = gw.metrics()
    assert m['lianxin_alerts_total{kind="escalated"}'] >= 2 and m['lianxin_alerts_total{kind="unanswered"}'] >= 2
    assert m['lianxin_events_total{type="escalation"}'] >= 2
    # bob asks for the whole county: narrowed to qd.hx; from the log first.
    s = SSE(gw, "bob", prefix="qd.", last_id=0)
    evs = s.events(until=lambda ev: ev[0] >= log_hx[-1], timeout=20)
    s.close()
    assert [e[0] for e in evs][:len(log_hx)] == log_hx
    assert all(e[2]["unit"].startswith("qd.hx") for e in evs)
    # the same records through the gateway's ring give the same events
    s = SSE(gw, "alice", prefix="qd.hx", last_id=log_hx[2])
    again = s.events(until=lambda ev: ev[0] >= log_hx[-1], timeout=20)
    s.close()
    assert [e[0] for e in again][:len(log_hx) - 3] == log_hx[3:]
    # outside the jurisdiction, and malformed ids
    s = SSE(gw, "bob", prefix="qd.xs.")
    assert s.status == 403
    s.close()
    for bad in ("abc", "-1", "1" * 25):
        s = SSE(gw, "bob", last_id=bad)
        assert s.status == 400, bad
        s.close()
    assert gw.get("/api/alerts?prefix=q%20d", "bob")[0] == 400


def test_sse_client_that_never_reads_is_dropped(fast):
    d, gw = fast
    for i in range(60):
        publish_ok(d, appeal("N-%d" % i, priority="urgent"))
    wait_for_alerts(d, 600, timeout=30)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", gw.port))
    s.sendall(("GET /api/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nLast-Event-ID: 0\r\n\r\n"
               % webtest.auth_header("alice")).encode())
    try:
        end = time.time() + 5
        while time.time() < end and gw.metrics()["lianxin_web_sse_clients"] < 1:
            time.sleep(0.05)
        assert gw.metrics()["lianxin_web_sse_clients"] == 1
        # it reads nothing; meanwhile everyone else is served
        healthy = SSE(gw, "bob", prefix="qd.hx.", last_id=0)
        assert len(healthy.events(n=5, timeout=10)) == 5
        healthy.close()
        assert d.head()["seq"] > 0 and gw.get("/api/units", "alice")[0] == 200
        end = time.time() + 20
        while time.time() < end and gw.metrics()["lianxin_web_sse_clients"] > 0:
            time.sleep(0.2)
        assert gw.metrics()["lianxin_web_sse_clients"] == 0, "the stuck client was not dropped"
    finally:
        s.close()
    assert gw.proc.poll() is None and d.proc.poll() is None


# --- the daemon down and back --------------------------------------------------

def test_daemon_down_then_back(seeded):
    d, gw = seeded
    assert gw.metrics()["lianxin_up"] == 1
    d.stop()
    try:
        time.sleep(1.1)  # past the units cache
        m = gw.metrics()
        assert m["lianxin_up"] == 0 and "lianxin_head_seq" not in m
        status, body = gw.json("/api/units", "alice")
        assert status == 503 and body["code"] == "E_DAEMON"
        status, body = gw.json("/open311/v2/requests.json")
        assert status == 503
        status, body = gw.json("/api/ranking?tier=community", "alice")
        assert status == 503
    finally:
        d.start()
    end = time.time() + 10
    while time.time() < end and gw.metrics()["lianxin_up"] != 1:
        time.sleep(0.1)
    assert gw.metrics()["lianxin_up"] == 1
    assert gw.json("/api/units", "alice")[0] == 200


def test_refuses_non_loopback_and_bad_config(tmp_path):
    cfg = webtest.web_config(str(tmp_path))
    out = subprocess.run([webtest.GATEWAY, "--config", cfg, "--listen", "0.0.0.0:%d" % webtest.free_port()],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "behind_proxy" in out.stderr and "TLS" in out.stderr
    with open(cfg, "a") as f:
        f.write("  colour: blue\n")
    out = subprocess.run([webtest.GATEWAY, "--config", cfg], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "lianxin.yaml:" in out.stderr and "colour" in out.stderr
    out = subprocess.run([webtest.GATEWAY, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--config FILE" in out.stdout
    out = subprocess.run([webtest.GATEWAY], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    # the daemon accepts the web: section, whatever it holds, and ignores it
    out = subprocess.run([lxtest.DAEMON, "--check-config", cfg], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr


def test_passwd_writes_a_line_the_gateway_accepts(tmp_path):
    import nacl.pwhash
    out = subprocess.run([lxtest.CLI, "passwd", "--jurisdiction", "qd.hx", "dave"], input="s3cret\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    line = out.stdout.strip()
    assert line.startswith('- {name: "dave", password_hash: "$argon2id$') and 'jurisdiction: "qd.hx"' in line
    h = line.split('password_hash: "')[1].split('"')[0]
    assert nacl.pwhash.verify(h.encode(), b"s3cret")
    out = subprocess.run([lxtest.CLI, "passwd", "dave"], input="", capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    out = subprocess.run([lxtest.CLI, "passwd", "bad name"], input="x\n", capture_output=True, text=True)
    assert out.returncode == 2


def test_gateway_with_its_own_curve_key(tmp_path):
    """With security on, the gateway talks to the daemon with a key of its
    own (web.key), registered as a supervisor; an unregistered key gets no
    answer, so the gateway says the daemon is down."""
    import test_security as ts
    tmp = str(tmp_path)
    keys = {n: ts.keygen(tmp, n) for n in ("web", "admin", "field-hx", "sup-xs")}
    keys["server"] = ts.keygen(tmp, "lianxind")
    with open(os.path.join(tmp, "clients.yaml"), "w") as f:
        for name, role, jur in (("web", "supervisor", "qd"), ("admin", "admin", "qd"),
                                ("field-hx", "field", "qd.hx"), ("sup-xs", "supervisor", "qd.xs")):
            f.write('- {name: %s, key: "%s", role: %s, jurisdiction: %s}\n' % (name, keys[name][0], role, jur))
    cfg = webtest.web_config(tmp, web_extra="  key: web.key\n")
    with open(cfg, "a") as f:
        f.write("security:\n  server_key: lianxind.key\n  clients: clients.yaml\n")
    d = Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (T0, FAST)})
    d.keys = keys
    d.request = lambda msg, endpoint=None, timeout=5.0: ts.request(d, "admin", msg, endpoint or d.query, timeout)
    d.start()
    gw = Gateway(d, cfg).start()
    try:
        assert gw.metrics()["lianxin_up"] == 1
        s = SSE(gw, "bob", prefix="qd.hx.")
        r = ts.publish(d, "field-hx", appeal("K-1", priority="urgent"))
        assert r["ok"], r
        evs = s.events(n=1, timeout=20)
        s.close()
        assert evs and evs[0][2]["appeal"] == "K-1"
        status, units = gw.json("/api/units", "alice")
        assert status == 200 and {u["path"]: u for u in units}["qd.hx.dy"]["open"] == 1
        # the daemon's appeals op follows the key's role and jurisdiction
        q = lambda who, **kw: ts.request(d, who, dict({"op": "appeals"}, **kw), d.query)
        assert q("field-hx")["code"] == "E_DENIED"
        assert q("sup-xs")["appeals"] == []  # no unit: its own jurisdiction
        assert q("sup-xs", unit="qd.hx")["code"] == "E_DENIED"
        assert [a["appeal"] for a in q("web", unit="qd.hx")["appeals"]] == ["K-1"]
    finally:
        assert gw.stop() == 0
    # the same gateway with a key the daemon does not know
    ts.keygen(tmp, "stranger")
    text = open(cfg).read().replace("key: web.key", "key: stranger.key")
    with open(cfg, "w") as f:
        f.write(text)
    gw = Gateway(d, cfg).start(following=False)
    try:
        assert gw.metrics()["lianxin_up"] == 0
        assert gw.metrics()["lianxin_web_alerts_following"] == 0
        assert gw.get("/api/units", "alice")[0] == 503
    finally:
        assert gw.stop() == 0
        d.cleanup()
