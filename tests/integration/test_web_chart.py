# SPDX-License-Identifier: MIT
"""The dashboard's chart of response and resolution rates by month, over
real HTTP: appeals filed over three months of a fast test clock, answered
or not, and /api/rates (what the page draws the chart from) giving the
hand-counted figures for each month, for users of the county, a township
and a community; the months end with the daemon's month, not the host's."""
import os
import shutil

import pytest

import webtest
from lxtest import Daemon, appeal, resolution, visit
from webtest import Gateway, ms

SPEED = 500000  # a day in 0.17 s: three months in about 12 s
HX, XS = "qd.hx.dy", "qd.xs.sq"
USERS = dict(webtest.USERS, dan=("dan-pw", HX))  # a community's supervisor


def month(d, start, before, filed, answers):
    """Waits for START on the daemon's clock, files the appeals {id: unit}
    and then the answers (records), in one pipeline; checks they all landed
    before BEFORE (still in the same month)."""
    webtest.wait_daemon_time(d, start)
    msgs = [appeal(a, unit=u) for a, u in filed.items()] + answers
    with d.client("ingest") as c:
        replies = c.pipeline(msgs)
    assert all(r["ok"] for r in replies), replies
    assert webtest.daemon_now(d) < before, "the test clock ran past the month: the machine is too slow"


def rates(gw, user):
    status, body = gw.json("/api/rates?months=6", user, password=USERS[user][0])
    assert status == 200, body
    return {p["period"]: p for p in body["months"]}, body


def figures(points, period):
    p = points[period]
    return p["received"], p["responded"], p["resolved"], p["response_rate"], p["resolution_rate"]


def test_rates_by_month_over_three_months():
    tmp = webtest.tmpdir()
    webtest.users_file(os.path.join(tmp, "users.yaml"), USERS)
    cfg = webtest.web_config(tmp)  # the sample's plugins: escalate and rank among them
    d = Daemon(config=cfg, tmp=tmp, env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (ms(2026, 1, 1), SPEED)}).start()
    gw = Gateway(d, cfg).start()
    try:
        hh = {"household": "hh-002"}  # the appeals' household: a visit names it
        # January: 4 in qd.hx.dy; A1, A2 resolved (and so answered), A3
        # visited, A4 never answered. Response 3/4, resolution 2/4.
        month(d, ms(2026, 1, 6, 9), ms(2026, 2, 1),
              {"A1": HX, "A2": HX, "A3": HX, "A4": HX},
              [resolution("A1"), resolution("A2"), visit(appeal="A3", **hh)])
        # February: B1 resolved, B2 unanswered (qd.hx.dy); B3 visited
        # (qd.xs.sq). Response 2/3, resolution 1/3.
        month(d, ms(2026, 2, 3, 9), ms(2026, 3, 1),
              {"B1": HX, "B2": HX, "B3": XS},
              [resolution("B1"), visit(unit=XS, appeal="B3", **hh)])
        # March (the daemon's current month): C1 visited, C2-C4 unanswered
        # (qd.hx.dy); C5 resolved (qd.xs.sq). Response 2/5, resolution 1/5.
        month(d, ms(2026, 3, 3, 9), ms(2026, 3, 25),
              {"C1": HX, "C2": HX, "C3": HX, "C4": HX, "C5": XS},
              [visit(appeal="C1", **hh), resolution("C5", unit=XS)])
        # Ask at once: April is 4 s away.
        county, body = rates(gw, "alice")
        bob, _ = rates(gw, "bob")
        carol, _ = rates(gw, "carol")
        dan, dan_body = rates(gw, "dan")
        assert webtest.daemon_now(d) < ms(2026, 4, 1), "the test clock ran into April: the machine is too slow"
        assert [p["period"] for p in body["months"]] == \
            ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
        assert body["tier"] == "township" and dan_body["tier"] == "community"
        for p in ("2025-10", "2025-11", "2025-12"):
            assert figures(county, p) == (0, 0, 0, None, None)
        assert figures(county, "2026-01") == (4, 3, 2, 0.75, 0.5)
        assert figures(county, "2026-02") == (3, 2, 1, pytest.approx(2 / 3), pytest.approx(1 / 3))
        assert figures(county, "2026-03") == (5, 2, 1, 0.4, 0.2)
        assert county["2026-01"]["final"] and county["2026-02"]["final"]
        assert not county["2026-03"]["final"]  # figures so far
        # Each supervisor's own jurisdiction.
        assert figures(bob, "2026-01") == (4, 3, 2, 0.75, 0.5)
        assert figures(bob, "2026-02") == (2, 1, 1, 0.5, 0.5)
        assert figures(bob, "2026-03") == (4, 1, 0, 0.25, 0.0)
        assert figures(carol, "2026-01") == (0, 0, 0, None, None)
        assert figures(carol, "2026-02") == (1, 1, 0, 1.0, 0.0)
        assert figures(carol, "2026-03") == (1, 1, 1, 1.0, 1.0)
        assert {p: figures(dan, p) for p in dan} == {p: figures(bob, p) for p in bob}
        # The ranking's default period is the daemon's month too.
        status, body = gw.json("/api/ranking?tier=township", "alice")
        assert status == 200 and body["ranking"]["period"] == "2026-03", body
        # Bad input.
        for bad in ("?months=0", "?months=25", "?months=six", "?months=", "?colour=red",
                    "?months=3&months=4"):
            status, body = gw.json("/api/rates" + bad, "alice")
            assert status == 400 and body["code"] == "E_BADREQ", bad
        assert gw.get("/api/rates")[0] == 401
        status, body = gw.json("/api/rates?months=1", "alice")
        assert status == 200 and [p["period"] for p in body["months"]] == ["2026-03"]
    finally:
        assert gw.stop() == 0, gw.read_log()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
