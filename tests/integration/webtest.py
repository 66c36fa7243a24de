# SPDX-License-Identifier: MIT
"""Helpers for the web gateway's tests: a real lianxin-web beside a real
lianxind (lxtest.Daemon), on 127.0.0.1 with a free port, with a users file
written by `lianxin passwd`, stopped by PID; HTTP (or, with web.tls, HTTPS
trusting the test's own certificate) through http.client."""
import base64
import datetime as dt
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time

import lxtest

GATEWAY = os.path.join(lxtest.BUILD, "lianxin-web")
CST = dt.timezone(dt.timedelta(hours=8))
USERS = {"alice": ("alice-pw", "qd"), "bob": ("bob-pw", "qd.hx"), "carol": ("carol-pw", "qd.xs")}


def ms(y, mo, d, h=0, mi=0):
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=CST).timestamp() * 1000)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def users_file(path, users=USERS):
    lines = []
    for name, (pw, jur) in users.items():
        out = subprocess.run([lxtest.CLI, "passwd", "--jurisdiction", jur, name], input=pw + "\n",
                             capture_output=True, text=True, check=True)
        lines.append(out.stdout)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(lines))


def _without_section(text, key):
    """TEXT without its top-level section KEY (from "KEY:" to the next
    top-level key or the end; comment lines stay)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        top = line[:1] not in ("", " ", "#", "\n")
        if top:
            inside = line.startswith(key + ":")
        if not inside:
            out.append(line)
    return "".join(out)


def web_config(tmp, base=lxtest.SAMPLE_CONFIG, web_extra="", plugins=None):
    """The daemon's sample config with a web: section of the test's (and, if
    given, its plugins list replaced)."""
    with open(base, encoding="utf-8") as f:
        text = _without_section(f.read(), "web")
    if plugins is not None:
        text = _without_section(text, "plugins").rstrip("\n") + "\nplugins:\n" + plugins
    text = text.rstrip("\n") + "\nweb:\n  users: users.yaml\n" + web_extra
    path = os.path.join(tmp, "lianxin.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if not os.path.exists(os.path.join(tmp, "users.yaml")):
        users_file(os.path.join(tmp, "users.yaml"))
    return path


def self_signed(tmp, name="web"):
    """A self-signed certificate for 127.0.0.1 and localhost and its key,
    made by openssl in TMP: returns (cert path, key path)."""
    cert, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Gateway:
    """A lianxin-web process serving the given daemon; with tls_ca (the
    certificate to trust), spoken to over HTTPS."""

    def __init__(self, daemon, config, port=None, extra_args=(), tls_ca=None):
        self.daemon, self.config = daemon, config
        self.tls_ca = tls_ca
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(daemon.tmp, "web-%d.log" % self.port)

    def start(self, timeout=10.0, following=True):
        """Returns once /metrics answers (and, with following, once the
        gateway follows the daemon's alerts, so /api/alerts is served)."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [GATEWAY, "--config", self.config, "--listen", "127.0.0.1:%d" % self.port,
             "--query", self.daemon.query, "--alerts", self.daemon.alerts] + self.extra_args,
            stdout=self.log, stderr=subprocess.STDOUT)
        lxtest.SERVERS.append(self.proc)
        end = time.time() + timeout * lxtest.TIMEOUT_SCALE
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("lianxin-web exited %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                if self.get("/metrics")[0] == 200 and (
                        not following or self.metrics()["lianxin_web_alerts_following"] == 1):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("lianxin-web did not answer:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        self.log.close()
        return rc

    def conn(self, timeout=10.0):
        if self.tls_ca:
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, user=None, password=None, headers=None, timeout=10.0):
        """Returns (status, headers, body bytes)."""
        h = dict(headers or {})
        if user:
            pw = password if password is not None else USERS[user][0]
            h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
        c = self.conn(timeout)
        try:
            c.request("GET", path, headers=h)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def json(self, path, user=None, **kw):
        status, headers, body = self.get(path, user, **kw)
        assert headers.get("Content-Type", "").startswith("application/json"), (status, body)
        return status, json.loads(body)

    def metrics(self):
        status, _, body = self.get("/metrics")
        assert status == 200
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


def auth_header(user):
    pw = USERS[user][0]
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


class SSE:
    """A raw /api/alerts stream on its own socket: events as (id, event, data)."""

    def __init__(self, gw, user, prefix=None, last_id=None, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)
        q = "/api/alerts" + ("?prefix=" + prefix if prefix else "")
        req = "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nAccept: text/event-stream\r\n" % (
            q, auth_header(user))
        if last_id is not None:
            req += "Last-Event-ID: %s\r\n" % last_id
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n", timeout)
        self.status = int(head.split(b" ", 2)[1])
        self.chunked = b"chunked" in head.lower()
        self.text = ""

    def _until(self, sep, timeout):
        end = time.time() + timeout
        while sep not in self.buf:
            self.sock.settimeout(max(0.01, end - time.time()))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("stream closed")
            self.buf += data
        out, self.buf = self.buf.split(sep, 1)
        return out

    def _read_chunk(self, timeout):
        if not self.chunked:
            end = time.time() + timeout
            if not self.buf:
                self.sock.settimeout(max(0.01, end - time.time()))
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError("stream closed")
                self.buf += d
            out, self.buf = self.buf, b""
            return out.decode()
        size = int(self._until(b"\r\n", timeout).split(b";")[0], 16)
        if size == 0:
            raise EOFError("stream ended")
        while len(self.buf) < size + 2:
            self.sock.settimeout(timeout)
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("stream closed")
            self.buf += d
        out, self.buf = self.buf[:size], self.buf[size + 2:]
        return out.decode()

    def events(self, n=None, timeout=10.0, until=None):
        """Reads events until n of them (or until(ev) holds, or timeout)."""
        got = []
        end = time.time() + timeout
        while time.time() < end and (n is None or len(got) < n):
            while "\n\n" in self.text:
                block, self.text = self.text.split("\n\n", 1)
                ev = {}
                for line in block.split("\n"):
                    if line.startswith(":") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    ev[k] = v[1:] if v.startswith(" ") else v
                if "data" in ev:
                    got.append((int(ev["id"]), ev["event"], json.loads(ev["data"])))
                    if until and until(got[-1]):
                        return got
                if n is not None and len(got) >= n:
                    return got
            try:
                self.text += self._read_chunk(max(0.05, end - time.time()))
            except socket.timeout:
                break
        return got

    def close(self):
        self.sock.close()


def alert_records(daemon, prefix=None):
    """The alert records of the log (every type but the clients' and the
    daemon's bookkeeping), as (seq, unit), in order."""
    recs, _ = daemon.replay_all(**({"unit": prefix} if prefix else {}))
    out = []
    for r in recs:
        ev = lxtest.unpack(r["ev"])
        if ev["type"] not in ("visit", "appeal", "resolution", "feedback", "checkpoint", "config"):
            out.append((r["seq"], ev["unit"]))
    return out


def daemon_now(daemon):
    """The daemon's clock (ms), as its `units` reply carries it."""
    return daemon.request({"op": "units"})["now"]


def wait_daemon_time(daemon, at, timeout=60.0):
    """Waits until the daemon's (test) clock reaches AT."""
    end = time.time() + timeout
    while daemon_now(daemon) < at:
        assert time.time() < end, "the daemon's clock did not reach %d" % at
        time.sleep(0.02)


def tmpdir():
    return tempfile.mkdtemp(prefix="lx-web-")
