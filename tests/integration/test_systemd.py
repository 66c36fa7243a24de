# SPDX-License-Identifier: MIT
"""systemd's notify protocol, with a Unix datagram socket of the test's own
as NOTIFY_SOCKET: READY=1 only when the sockets answer (a query sent right
after READY is answered), STATUS= lines, WATCHDOG=1 at least every half of
WATCHDOG_USEC from the loop, RELOADING=1 then READY=1 around a SIGHUP,
STOPPING=1 on SIGTERM; garbage WATCHDOG_USEC is warned about and ignored;
without NOTIFY_SOCKET nothing is sent.
"""
import os
import signal
import socket
import time

import lxtest
from lxtest import Daemon, appeal, time_limit


class Notify:
    """The test's stand-in for systemd: a datagram socket it reads."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got = []  # (monotonic time, {key: value})

    def recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
        self.got.append((time.monotonic(), msg))
        return msg

    def wait_for(self, key, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.recv(max(0.01, end - time.monotonic()))
            if m is not None and key in m:
                return m
        raise AssertionError("no %s; got %r" % (key, self.got))

    def collect(self, seconds):
        """Reads everything that comes for that long."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.recv(min(0.5, max(0.01, end - time.monotonic())))

    def close(self):
        self.sock.close()


def launch(tmp, n, watchdog_usec):
    """Starts the daemon with n as its NOTIFY_SOCKET, without waiting for it
    to answer (READY must say when it does)."""
    d = Daemon(tmp=tmp, env={"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": watchdog_usec})
    d.log = open(d.log_path, "ab")
    import subprocess
    d.proc = subprocess.Popen(d.args(), stdout=d.log, stderr=subprocess.STDOUT, env=d.env)
    return d


def test_ready_status_watchdog_reload_stopping(tmp_path):
    tmp = str(tmp_path)
    n = Notify(tmp)
    with time_limit(60):
        d = launch(tmp, n, "600000")
        try:
            ready = n.wait_for("READY")
            # Right after READY the sockets answer: no retry, no wait.
            r = d.request({"op": "head"}, timeout=2.0)
            assert r["ok"] and r["seq"] == 0
            assert ready["READY"] == "1"
            assert ready["STATUS"] == "serving: 0 records, 0 open appeals", ready
            assert int(ready["MAINPID"]) == d.proc.pid
            # STATUS follows the store.
            assert d.publish(appeal())["ok"]
            st = n.wait_for("STATUS", timeout=5)
            while "1 records" not in st["STATUS"]:
                st = n.wait_for("STATUS", timeout=5)
            assert st["STATUS"] == "serving: 1 records, 1 open appeals"
            # WATCHDOG=1 every 200 ms (a third of 600 ms): the median gap is
            # under half the interval, no gap reaches the whole interval (the
            # test's own reads may lag on a loaded machine), and no flood.
            n.got.clear()
            n.collect(3.0)
            pings = [t for t, m in n.got if m.get("WATCHDOG") == "1"]
            gaps = [b - a for a, b in zip(pings, pings[1:])]
            assert len(pings) >= 10 and len(pings) <= 30, len(pings)
            assert sorted(gaps)[len(gaps) // 2] < 0.3, gaps
            assert max(gaps) < 0.6, gaps
            # SIGHUP: RELOADING=1, then READY=1.
            n.got.clear()
            d.proc.send_signal(signal.SIGHUP)
            rel = n.wait_for("RELOADING")
            assert rel["RELOADING"] == "1" and "MONOTONIC_USEC" in rel
            again = n.wait_for("READY")
            assert again["READY"] == "1" and again["STATUS"].startswith("serving")
            assert d.request({"op": "head"})["ok"]
            # SIGTERM: STOPPING=1, and the daemon exits 0.
            n.got.clear()
            d.proc.send_signal(signal.SIGTERM)
            stop = n.wait_for("STOPPING")
            assert stop["STOPPING"] == "1"
            assert d.proc.wait(10) == 0
        finally:
            d.cleanup()
            n.close()


def test_garbage_watchdog_usec_is_ignored(tmp_path):
    tmp = str(tmp_path)
    n = Notify(tmp)
    with time_limit(40):
        d = launch(tmp, n, "soon")
        try:
            n.wait_for("READY")
            n.got.clear()
            n.collect(1.5)
            assert not any("WATCHDOG" in m for _, m in n.got), n.got
            assert d.request({"op": "head"})["ok"]
            assert d.stop() == 0
            log = d.read_log()
            assert "WATCHDOG_USEC is not a number" in log and "value=soon" in log, log
        finally:
            d.cleanup()
            n.close()


def test_nothing_without_notify_socket(tmp_path):
    tmp = str(tmp_path)
    n = Notify(tmp)  # bound, but not named to the daemon
    env = {"WATCHDOG_USEC": "200000"}
    with time_limit(40):
        saved = os.environ.pop("NOTIFY_SOCKET", None)
        try:
            d = Daemon(tmp=tmp, env=env).start()
        finally:
            if saved is not None:
                os.environ["NOTIFY_SOCKET"] = saved
        try:
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert d.stop() == 0
            assert n.recv(0.3) is None
            assert "[notify]" not in d.read_log()
        finally:
            d.cleanup()
            n.close()
