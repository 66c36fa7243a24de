# SPDX-License-Identifier: MIT
"""The dashboard in a real browser: headless Debian chromium driven by
playwright-core (installed from the npm registry into the build directory by
scripts/web-test-deps.sh) runs tests/web/browser.mjs against a real gateway
and daemon: log in, the seeded units and their counts, a unit's appeals, the
ranking or its not-enabled note, and an escalation made during the test
arriving in the live feed without a reload. Screenshots are kept in
BUILD/web-screenshots."""
import json
import os
import shutil
import subprocess
import threading

import pytest

import lxtest
import webtest
from lxtest import Daemon, appeal
from webtest import Gateway, ms

CHROMIUM = "/usr/bin/chromium"
SPEED = 20000  # a working day in a few seconds: the urgent appeal escalates during the test


@pytest.mark.skipif(not os.path.exists(CHROMIUM) or not shutil.which("npm"),
                    reason="chromium and npm come from scripts/deps.sh")
def test_dashboard_in_chromium():
    subprocess.run([os.path.join(lxtest.SOURCE, "scripts", "web-test-deps.sh"), lxtest.BUILD],
                   check=True, timeout=300)
    shots = os.path.join(lxtest.BUILD, "web-screenshots")
    os.makedirs(shots, exist_ok=True)
    tmp = webtest.tmpdir()
    cfg = webtest.web_config(tmp)
    d = Daemon(config=cfg, tmp=tmp,
               env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (ms(2026, 3, 5, 10), SPEED)}).start()
    gw = Gateway(d, cfg).start()
    node = None
    try:
        for aid, unit in (("B-1", "qd.hx.dy"), ("B-2", "qd.hx.dy"), ("B-3", "qd.xs.sq")):
            assert d.publish(appeal(aid, unit=unit))["ok"]
        expect = {
            "units": {"qd.hx.dy": {"name": "东园社区", "open": 2},
                      "qd.xs.sq": {"name": "山泉村", "open": 1},
                      "qd": {"name": "青德县", "open": 3}},
            "open_unit": "qd.hx.dy", "appeals": ["B-1", "B-2"], "escalated": "B-URGENT",
            "chart_month": "2026-03"}
        env = dict(os.environ, LX_URL="http://127.0.0.1:%d/" % gw.port, LX_USER="alice",
                   LX_PASS=webtest.USERS["alice"][0], LX_SHOTS=shots, LX_EXPECT=json.dumps(expect),
                   NODE_PATH=os.path.join(lxtest.BUILD, "node", "node_modules"))
        script = os.path.join(lxtest.BUILD, "node", "browser.mjs")
        shutil.copy(os.path.join(lxtest.SOURCE, "tests", "web", "browser.mjs"), script)
        node = subprocess.Popen(["node", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        # browser.mjs bounds each of its waits (conditions, not sleeps) and
        # ends by itself; the timer only ends a browser that hung.
        out = []
        killer = threading.Timer(600, node.kill)
        killer.start()
        try:
            for line in node.stdout:
                out.append(line)
                if line.strip() == "READY":
                    # The escalation happens now, while the page is open.
                    assert d.publish(appeal("B-URGENT", priority="urgent"))["ok"]
            rc = node.wait(60)
        finally:
            killer.cancel()
        assert rc == 0 and "OK\n" in out, "".join(out) + gw.read_log()[-2000:]
        for name in ("dashboard.png", "dashboard-live.png", "dashboard-phone.png"):
            assert os.path.getsize(os.path.join(shots, name)) > 1000
    finally:
        if node and node.poll() is None:
            node.kill()
            node.wait()
        assert gw.stop() == 0
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
