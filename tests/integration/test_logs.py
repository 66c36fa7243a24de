# SPDX-License-Identifier: MIT
"""Structured logs: with --log-format json (or `log: {format: json}` in the
config) every line the daemon writes on stderr is one JSON object with ts,
level, component and msg, and a message's fields are keys of it; text stays
the default; a bad format is refused with FILE:LINE.
"""
import datetime
import json
import os
import subprocess

import lxtest
from lxtest import DAEMON, Daemon, appeal, resolution, time_limit, visit


def config_with(tmp, extra):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    path = os.path.join(tmp, "log.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n" + extra)
    return path


def run_some(d):
    """Starts d, publishes a little, makes an error line, stops it."""
    d.start()
    a = appeal()
    assert d.publish(a)["ok"]
    assert d.publish(visit(appeal=a["body"]["appeal"]))["ok"]
    assert d.publish(resolution(a["body"]["appeal"]))["ok"]
    assert not d.publish(visit(unit="qd.nowhere.x"))["ok"]
    assert d.stop() == 0
    return d.read_log()


def parse_all(text):
    objs = []
    for n, line in enumerate(text.splitlines(), 1):
        o = json.loads(line)  # every line, not just most of them
        assert isinstance(o, dict), (n, line)
        for k in ("ts", "level", "component", "msg"):
            assert isinstance(o.get(k), str), (n, k, line)
        assert o["level"] in ("error", "warn", "info", "debug"), line
        datetime.datetime.strptime(o["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        objs.append(o)
    return objs


def test_json_lines_from_flag(tmp_path):
    with time_limit(60):
        d = Daemon(tmp=str(tmp_path), extra_args=["--log-format", "json", "--log-level", "debug"],
                   env={"LIANXIN_FAKE_CLOCK": "1775000000000:1"})
        try:
            objs = parse_all(run_some(d))
        finally:
            d.cleanup()
    listening = {o["socket"]: o["endpoint"] for o in objs if o["msg"] == "listening"}
    assert listening == {"ingest": d.ingest, "alerts": d.alerts, "query": d.query}
    store = [o for o in objs if o["msg"] == "store open"]
    assert store and store[0]["records"] == 0 and store[0]["path"] == d.data
    stopped = [o for o in objs if o["msg"] == "stopped"]
    assert stopped and stopped[0]["seq"] >= 3
    assert any(o["level"] == "warn" for o in objs)  # the fake clock's warning
    assert any(o["component"].startswith("plugin:") for o in objs)


def test_json_lines_from_config_key(tmp_path):
    with time_limit(60):
        cfg = config_with(str(tmp_path), "log: {format: json}\n")
        d = Daemon(config=cfg, tmp=str(tmp_path))
        try:
            objs = parse_all(run_some(d))
        finally:
            d.cleanup()
    assert any(o["msg"] == "listening" for o in objs)


def test_text_stays_the_default(tmp_path):
    with time_limit(60):
        d = Daemon(tmp=str(tmp_path))
        try:
            text = run_some(d)
        finally:
            d.cleanup()
    lines = text.splitlines()
    assert lines and not any(l.startswith("{") for l in lines)
    assert any(" INFO  [main] listening socket=ingest endpoint=" in l for l in lines)


def test_config_errors_are_json_lines_too(tmp_path):
    with time_limit(30):
        cfg = config_with(str(tmp_path), "bogus: 1\n")
        p = subprocess.run([DAEMON, "--config", cfg, "--log-format", "json", "--data",
                            str(tmp_path / "data")], stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 1
    objs = parse_all(p.stderr.decode())
    assert any(o["level"] == "error" and ("%s:" % cfg) in o["msg"] and "bogus" in o["msg"]
               for o in objs)


def test_bad_log_settings_are_refused(tmp_path):
    with time_limit(30):
        cfg = config_with(str(tmp_path), "log:\n  format: xml\n  level: loud\n")
        n = sum(1 for _ in open(cfg, encoding="utf-8"))
        p = subprocess.run([DAEMON, "--check-config", cfg], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        err = p.stderr.decode()
        assert p.returncode == 1
        assert "%s:%d: log.format: expected text or json" % (cfg, n - 1) in err, err
        assert "%s:%d: log.level: expected error, warn, info or debug" % (cfg, n) in err, err
        p = subprocess.run([DAEMON, "--config", cfg, "--log-format", "yaml"],
                           stderr=subprocess.PIPE, timeout=20)
        assert p.returncode == 2 and b"--log-format" in p.stderr
