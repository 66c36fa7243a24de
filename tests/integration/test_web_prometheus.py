# SPDX-License-Identifier: MIT
"""A real Prometheus server (Debian `prometheus`, started here on 127.0.0.1
with a free port and a scratch directory) scrapes lianxin-web's /metrics;
its HTTP API must then return the series PROTOCOL.md names, with the values
the daemon holds."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

import webtest
from lxtest import Daemon, appeal, resolution
from webtest import Gateway

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def query(port, expr):
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(expr))
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="prometheus is not installed (scripts/deps.sh)")
def test_prometheus_scrapes_the_gateway():
    tmp = webtest.tmpdir()
    cfg = webtest.web_config(tmp)
    d = Daemon(config=cfg, tmp=tmp).start()
    gw = Gateway(d, cfg).start()
    prom = None
    try:
        for i in range(3):
            assert d.publish(appeal("P-%d" % i))["ok"]
        assert d.publish(resolution("P-0"))["ok"]
        port = webtest.free_port()
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n  - job_name: lianxin\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % gw.port)
        log = open(os.path.join(tmp, "prometheus.log"), "wb")
        prom = subprocess.Popen([PROMETHEUS, "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                                 "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=log, stderr=subprocess.STDOUT)
        end = time.time() + 60
        got = []
        while time.time() < end:
            try:
                got = query(port, 'lianxin_events_total{type="appeal"}')
                if got:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert got, open(os.path.join(tmp, "prometheus.log")).read()[-3000:]
        assert got[0]["value"][1] == "3" and got[0]["metric"]["job"] == "lianxin"
        assert query(port, "lianxin_up")[0]["value"][1] == "1"
        assert query(port, 'lianxin_appeals_open{tier="community"}')[0]["value"][1] == "2"
        assert query(port, "lianxin_head_seq")[0]["value"][1] == str(d.head()["seq"])
        assert float(query(port, "lianxin_store_bytes")[0]["value"][1]) > 0
        buckets = query(port, "lianxin_commit_duration_seconds_bucket")
        assert {b["metric"]["le"] for b in buckets} >= {"0.001", "0.01", "1", "+Inf"}
        assert float(query(port, "lianxin_commit_duration_seconds_count")[0]["value"][1]) >= 4
        # the scrape itself was healthy
        assert query(port, 'up{job="lianxin"}')[0]["value"][1] == "1"
    finally:
        if prom:
            prom.terminate()
            prom.wait(20)
        assert gw.stop() == 0
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
