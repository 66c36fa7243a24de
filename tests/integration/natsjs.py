# SPDX-License-Identifier: MIT
"""A 3-node nats-server cluster with JetStream on loopback, and a small NATS
client, for the tests of the jetstream mirror.

Debian 12 has no Python NATS client, so Client below speaks the NATS text
protocol itself (CONNECT, SUB, PUB/HPUB, MSG/HMSG, PING/PONG) and the
JetStream API as the server documents it: JSON requests on $JS.API.* subjects.
That keeps the test independent of libnats, which the daemon uses.

Cluster starts every node with its own free client and route ports and a
scratch store directory, waits until JetStream answers through each node,
and stops nodes by PID (one at a time, or all).
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import lxtest  # SERVERS: what is still running at exit is killed

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Three nats-server processes forming one JetStream cluster."""

    def __init__(self, nodes=3, tmp=None, name="lxtest", nice=0):
        self.tmp = tmp or tempfile.mkdtemp(prefix="lx-nats-")
        self.nice = nice  # a benchmark lowers the servers' priority (bench/mirror --nats-nice)
        self.name = name
        self.n = nodes
        self.ports = [free_port() for _ in range(nodes)]
        self.routes = [free_port() for _ in range(nodes)]
        self.procs = [None] * nodes

    @property
    def urls(self):
        return ["nats://127.0.0.1:%d" % p for p in self.ports]

    def _conf(self, i):
        d = os.path.join(self.tmp, "n%d" % i)
        os.makedirs(d, exist_ok=True)
        routes = ", ".join("nats-route://127.0.0.1:%d" % r for j, r in enumerate(self.routes) if j != i)
        conf = os.path.join(d, "nats.conf")
        with open(conf, "w") as f:
            f.write("server_name: n%d\nlisten: 127.0.0.1:%d\n" % (i, self.ports[i]))
            f.write("jetstream { store_dir: %s }\n" % json.dumps(os.path.join(d, "js")))
            f.write("cluster { name: %s\n listen: 127.0.0.1:%d\n routes: [%s] }\n"
                    % (self.name, self.routes[i], routes))
        return conf, d

    def start_node(self, i):
        conf, d = self._conf(i)
        log = open(os.path.join(d, "server.log"), "ab")
        if self.nice == "idle":  # SCHED_IDLE: only the CPU nothing else wants
            pre = lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            pre = (lambda: os.nice(self.nice)) if self.nice else None
        self.procs[i] = subprocess.Popen([NATS_SERVER, "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=pre)
        lxtest.SERVERS.append(self.procs[i])
        log.close()

    def start(self, timeout=30.0):
        # free_port() closes its probe before the server binds, so in a busy
        # CI run another process may take the port meanwhile: the first
        # start then fails with "address already in use" and is tried again
        # on fresh ports (only the first start: a restarted node keeps its).
        first = all(p is None for p in self.procs)
        for attempt in range(3):
            for i in range(self.n):
                if self.procs[i] is None:
                    self.start_node(i)
            try:
                self.wait_ready(timeout)
                return self
            except RuntimeError as e:
                if not first or attempt == 2 or "address already in use" not in str(e):
                    raise
                self.stop()
                for i in range(self.n):
                    shutil.rmtree(os.path.join(self.tmp, "n%d" % i), ignore_errors=True)
                self.ports = [free_port() for _ in range(self.n)]
                self.routes = [free_port() for _ in range(self.n)]
        return self

    def wait_ready(self, timeout=30.0):
        """Until every running node answers $JS.API.INFO with a cluster leader
        (a stream can then be created with R3)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            for p in self.procs:
                if p is not None and p.poll() is not None:
                    raise RuntimeError("nats-server exited: %s" % self.log())
            try:
                ok = True
                for i, p in enumerate(self.procs):
                    if p is None:
                        continue
                    with Client(self.urls[i]) as c:
                        r = c.api("$JS.API.INFO", {}, timeout=2)
                        ok = ok and "error" not in r
                if ok:
                    with Client(self.urls[0]) as c:
                        probe = "LXPROBE%d" % os.getpid()
                        r = c.api("$JS.API.STREAM.CREATE." + probe,
                                  {"name": probe, "subjects": ["lxprobe.>"], "storage": "memory",
                                   "num_replicas": sum(p is not None for p in self.procs)}, timeout=5)
                        if "error" not in r:
                            c.api("$JS.API.STREAM.DELETE." + probe, {}, timeout=5)
                            return
                        last = r
            except (OSError, TimeoutError, ValueError) as e:
                last = e
            time.sleep(0.3)
        raise RuntimeError("the cluster did not become ready: %r\n%s" % (last, self.log()))

    def stop_node(self, i, kill=True):
        p = self.procs[i]
        if p is None:
            return
        if p.poll() is None:
            p.kill() if kill else p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs[i] = None

    def stop(self):
        for i in range(self.n):
            self.stop_node(i)

    def log(self):
        out = []
        for i in range(self.n):
            try:
                with open(os.path.join(self.tmp, "n%d" % i, "server.log"), "rb") as f:
                    out.append(f.read()[-3000:].decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def parse_headers(block):
    """b'NATS/1.0\\r\\nK: V\\r\\n\\r\\n' -> {K: V} (last value wins)."""
    out = {}
    lines = block.decode("utf-8").split("\r\n")
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def make_headers(h):
    s = "NATS/1.0\r\n" + "".join("%s: %s\r\n" % (k, v) for k, v in h.items()) + "\r\n"
    return s.encode("utf-8")


class Client:
    """A blocking NATS client: enough for the JetStream API and publishing."""

    def __init__(self, url, timeout=5.0):
        host, port = url.replace("nats://", "").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.sid = 0
        self.inbox = "_INBOX.%s" % uuid.uuid4().hex
        self._line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\n')
        self.sock.sendall(b"SUB " + self.inbox.encode() + b".* 1\r\n")
        self.sid = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def next_msg(self, timeout=5.0):
        """The next MSG/HMSG: (subject, reply, headers dict, data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                line = self._line()
                if line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                    continue
                if line.startswith(b"-ERR"):
                    raise OSError(line.decode())
                parts = line.split()
                if not parts or parts[0] not in (b"MSG", b"HMSG"):
                    continue
                subj = parts[1].decode()
                if parts[0] == b"MSG":
                    reply = parts[3].decode() if len(parts) == 5 else ""
                    data = self._bytes(int(parts[-1]))
                    return subj, reply, {}, data
                reply = parts[3].decode() if len(parts) == 6 else ""
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._bytes(total)
                return subj, reply, parse_headers(raw[:hlen]), raw[hlen:]
        except socket.timeout:
            raise TimeoutError("no message within %.1fs" % timeout)

    def publish(self, subject, data=b"", headers=None, reply=""):
        r = (" " + reply) if reply else ""
        if headers:
            hb = make_headers(headers)
            self.sock.sendall(b"HPUB %s%s %d %d\r\n" % (subject.encode(), r.encode(), len(hb), len(hb) + len(data))
                              + hb + data + b"\r\n")
        else:
            self.sock.sendall(b"PUB %s%s %d\r\n" % (subject.encode(), r.encode(), len(data)) + data + b"\r\n")

    def request(self, subject, data=b"", headers=None, timeout=5.0):
        reply = "%s.%s" % (self.inbox, uuid.uuid4().hex)
        self.publish(subject, data, headers, reply)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no reply on " + subject)
            subj, _, hdrs, data = self.next_msg(left)
            if subj == reply:
                return hdrs, data

    def api(self, subject, req, timeout=5.0):
        _, data = self.request(subject, json.dumps(req).encode(), timeout=timeout)
        if not data:
            raise TimeoutError("no responders on " + subject)
        return json.loads(data)

    # --- JetStream, as the API documents it -------------------------------------

    def stream_info(self, stream):
        return self.api("$JS.API.STREAM.INFO." + stream, {})

    def get_msg(self, stream, seq):
        """(subject, headers, data) of message seq, or None if there is none."""
        r = self.api("$JS.API.STREAM.MSG.GET." + stream, {"seq": seq})
        if "error" in r:
            return None
        m = r["message"]
        hdrs = parse_headers(base64.b64decode(m["hdrs"])) if m.get("hdrs") else {}
        return m["subject"], hdrs, base64.b64decode(m.get("data", ""))

    def all_msgs(self, stream):
        """Every message of the stream, by stream seq: [(seq, subject, headers, data)]."""
        st = self.stream_info(stream)["state"]
        out = []
        for seq in range(st["first_seq"], st["last_seq"] + 1):
            m = self.get_msg(stream, seq)
            if m is not None:
                out.append((seq,) + m)
        return out

    def delete_all_streams(self):
        for name in self.api("$JS.API.STREAM.NAMES", {}).get("streams") or []:
            self.api("$JS.API.STREAM.DELETE." + name, {})

    def delete_msg(self, stream, seq):
        return self.api("$JS.API.STREAM.MSG.DELETE." + stream, {"seq": seq, "no_erase": True})

    def js_publish(self, subject, data, headers=None):
        _, reply = self.request(subject, data, headers)
        return json.loads(reply)

    def durable_consumer(self, stream, name, subject=None):
        cfg = {"durable_name": name, "ack_policy": "explicit", "deliver_policy": "all"}
        if subject:
            cfg["filter_subject"] = subject
        return self.api("$JS.API.CONSUMER.DURABLE.CREATE.%s.%s" % (stream, name),
                        {"stream_name": stream, "config": cfg})

    def fetch(self, stream, name, batch=100, timeout=2.0):
        """Pulls up to batch messages from a durable pull consumer, acking
        each: [(stream seq, subject, headers, data)]."""
        reply = "%s.%s" % (self.inbox, uuid.uuid4().hex)
        self.publish("$JS.API.CONSUMER.MSG.NEXT.%s.%s" % (stream, name),
                     json.dumps({"batch": batch, "no_wait": True}).encode(), reply=reply)
        out = []
        while len(out) < batch:
            try:
                subj, ack, hdrs, data = self.next_msg(timeout)
            except TimeoutError:
                break
            if not ack.startswith("$JS.ACK."):
                if hdrs or not data:  # a status message (404 no messages, 408 timeout)
                    break
                continue
            # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
            sseq = int(ack.split(".")[5])
            out.append((sseq, subj, hdrs, data))
            self.publish(ack, b"")
        return out
