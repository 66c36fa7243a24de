# SPDX-License-Identifier: MIT
"""Shared helpers for the integration tests.

Each test starts the real lianxind (from LX_BUILD_DIR) on a temporary
directory with ipc:// endpoints of its own, talks to it over real ZeroMQ
sockets with msgpack, written against PROTOCOL.md alone, and stops it by PID.
"""
import atexit
import hashlib
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid

import msgpack
import zmq

BUILD = os.environ.get("LX_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("LX_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DAEMON = os.path.join(BUILD, "lianxind")
CLI = os.path.join(BUILD, "lianxin")
SAMPLE_CONFIG = os.path.join(SOURCE, "config", "lianxin.yaml")

# Every server a test starts (lianxind, lianxin-web, nats-server) is noted
# here. A test that fails between its start and its stop (an assert in a
# finally, say) would leave it running after pytest; at exit each one still
# running is killed by its PID.
SERVERS = []


def _stop_leftovers():
    for p in SERVERS:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_stop_leftovers)

# Units and categories of config/lianxin.yaml that the tests rely on.
COMMUNITY = "qd.hx.dy"
COMMUNITY2 = "qd.xs.sq"
TOWNSHIP = "qd.hx"
COUNTY = "qd"


def sample_text_without(*names):
    """The sample config's text without the named plugins' entries: a test
    that checks every seq of its own load must not meet a `hotspot` record
    that the load itself set off."""
    with open(SAMPLE_CONFIG, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, skip = [], False
    for line in lines:
        if line.startswith("  - name: "):
            skip = line.split(":", 1)[1].strip() in names
        elif skip and (line.startswith("    ") or line.startswith("  #")):
            continue
        if not skip:
            out.append(line)
    return "\n".join(out)


def sample_without(directory, *names):
    """Writes sample_text_without(*names) into directory; returns its path."""
    path = os.path.join(directory, "sample-without-%s.yaml" % "-".join(names))
    with open(path, "w", encoding="utf-8") as f:
        f.write(sample_text_without(*names))
    return path


def new_id():
    return str(uuid.uuid4())


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


CRASH_SIGNALS = (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL)


def allow_core():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def crash_report(tmp, pid, rc, log_text=""):
    """A daemon died of a signal nobody sent: prints the end of its log (where
    a sanitizer writes its report before it aborts) and every thread's stack
    from its core (gdb, when installed) to stderr, which pytest shows with the
    failure, and keeps core and stack under $LX_CORE_DIR (default
    /tmp/lx-cores) as artefacts."""
    cores = [os.path.join(tmp, f) for f in os.listdir(tmp)
             if f == "core" or f == "core.%d" % pid]
    keep = os.environ.get("LX_CORE_DIR", "/tmp/lx-cores")
    print("lianxind (pid %d) died of signal %d; core: %s" % (pid, -rc, cores or "none written"),
          file=sys.stderr)
    if log_text:
        print("the end of its log:\n" + log_text[-12000:], file=sys.stderr)
    if not cores:
        return
    os.makedirs(keep, exist_ok=True)
    dest = os.path.join(keep, "core.%d" % pid)
    shutil.move(cores[0], dest)
    gdb = shutil.which("gdb")
    if gdb:
        bt = subprocess.run([gdb, "-batch", "-ex", "thread apply all bt", DAEMON, dest],
                            capture_output=True, text=True, timeout=120).stdout
        with open(dest + ".txt", "w") as f:
            f.write(bt)
        print(bt[-20000:], file=sys.stderr)


class Daemon:
    """A lianxind process on its own temporary data dir and ipc endpoints."""

    def __init__(self, config=SAMPLE_CONFIG, tmp=None, extra_args=(), env=None):
        self.owns_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix="lx-it-")
        self.config = config
        self.data = os.path.join(self.tmp, "data")
        self.ingest = "ipc://" + os.path.join(self.tmp, "ingest.sock")
        self.alerts = "ipc://" + os.path.join(self.tmp, "alerts.sock")
        self.query = "ipc://" + os.path.join(self.tmp, "query.sock")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.ctx = zmq.Context.instance()
        self.log_path = os.path.join(self.tmp, "daemon.log")

    def args(self):
        return [DAEMON, "--config", self.config, "--data", self.data,
                "--ingest", self.ingest, "--alerts", self.alerts,
                "--query", self.query] + self.extra_args

    def start(self, timeout=10.0):
        # A second start would leave the first daemon running on the same
        # store, unseen by stop() (`with Daemon(...).start()` did that).
        assert self.proc is None or self.proc.poll() is not None, "lianxind is already running"
        self.log = open(self.log_path, "ab")
        # Core dumps on, in the temp dir (the cwd), so that a crash the test
        # did not cause is explained by stop() (crash_report) and not lost.
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.tmp, preexec_fn=allow_core)
        SERVERS.append(self.proc)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lianxind exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                r = self.request({"op": "head"}, timeout=0.3)
                if r.get("ok"):
                    return self
            except TimeoutError:
                pass
        raise RuntimeError("lianxind did not answer within %.1fs:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the daemon by PID; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        pid = self.proc.pid
        self.proc = None
        self.log.close()
        if rc is not None and -rc in CRASH_SIGNALS and sig != -rc:
            crash_report(self.tmp, pid, rc, self.read_log())
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        if self.owns_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # --- sockets -----------------------------------------------------------

    def dealer(self, endpoint):
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        return s

    def request(self, msg, endpoint=None, timeout=5.0):
        """One request on a fresh DEALER; returns the decoded reply."""
        s = self.dealer(endpoint or self.query)
        try:
            s.send(msg if isinstance(msg, bytes) else pack(msg))
            if not s.poll(int(timeout * 1000)):
                raise TimeoutError("no reply")
            return unpack(s.recv())
        finally:
            s.close()

    def publish(self, ev, timeout=5.0):
        return self.request(ev, endpoint=self.ingest, timeout=timeout)

    def replay_all(self, **filters):
        """Pages through replay until done; returns (records, last reply)."""
        out = []
        frm = filters.pop("from", 1)
        while True:
            q = {"op": "replay", "from": frm}
            q.update(filters)
            r = self.request(q)
            assert r["ok"], r
            out.extend(r["records"])
            frm = r["next"]
            # done when next passes head, or passes `to` when one was given
            if frm > r["head"] or ("to" in filters and frm > filters["to"]):
                return out, r


def chain(records, start=b"\0" * 32):
    """Recomputes PROTOCOL.md's hash chain over replayed records."""
    h = start
    for r in records:
        h = hashlib.blake2b(h + struct.pack(">QQ", r["seq"], r["rat"]) + r["ev"],
                            digest_size=32).digest()
        assert h == r["hash"], "chain breaks at seq %d" % r["seq"]
    return h


def visit(unit=COMMUNITY, **body):
    b = {"household": "hh-001", "mode": "periodic"}
    b.update(body)
    return {"v": 1, "id": new_id(), "type": "visit", "at": int(time.time() * 1000),
            "unit": unit, "actor": "cadre-7", "body": b}


def appeal(appeal_id=None, unit=COMMUNITY, **body):
    b = {"appeal": appeal_id or ("ap-" + new_id()[:8]), "household": "hh-002",
         "category": "jobs", "summary": "needs work near home"}
    b.update(body)
    return {"v": 1, "id": new_id(), "type": "appeal", "at": int(time.time() * 1000),
            "unit": unit, "actor": "cadre-7", "body": b}


def resolution(appeal_id, outcome="resolved", unit=COMMUNITY, **body):
    b = {"appeal": appeal_id, "outcome": outcome, "note": "found a job at the co-op"}
    b.update(body)
    return {"v": 1, "id": new_id(), "type": "resolution", "at": int(time.time() * 1000),
            "unit": unit, "actor": "cadre-7", "body": b}


def feedback(appeal_id, satisfied=True, unit=COMMUNITY, **body):
    b = {"appeal": appeal_id, "satisfied": satisfied}
    b.update(body)
    return {"v": 1, "id": new_id(), "type": "feedback", "at": int(time.time() * 1000),
            "unit": unit, "actor": "member-3", "body": b}


# --- additions for the core integration suite --------------------------------
# (test_ingest.py, test_query.py, test_load.py, test_daemon.py)

import contextlib
import threading

# Every wait in these tests is bounded. LX_TIMEOUT_SCALE stretches them for
# slow builds (AddressSanitizer, valgrind).
TIMEOUT_SCALE = float(os.environ.get("LX_TIMEOUT_SCALE", "1"))
RECV_TIMEOUT = 10.0 * TIMEOUT_SCALE

COUNTY_UNITS = ["qd"]
TOWNSHIPS = ["qd.hx", "qd.xs", "qd.nh"]
COMMUNITIES = ["qd.hx.dy", "qd.hx.xc", "qd.hx.bl", "qd.xs.sq", "qd.xs.lq", "qd.xs.gy",
               "qd.nh.hb", "qd.nh.wh", "qd.nh.yj"]
CATEGORIES = ["jobs", "schooling", "housing", "health", "environment", "public-order",
              "labour-dispute", "social-security", "other"]
ZERO_HASH = b"\0" * 32

WIRE_CODES = {"E_DECODE", "E_TOO_BIG", "E_VERSION", "E_SCHEMA", "E_TYPE", "E_UNIT",
              "E_CONFLICT", "E_STATE", "E_DENIED", "E_FULL", "E_INTERNAL"}


def unpack_lenient(b):
    """Decodes a reply; strings that are not valid UTF-8 survive as surrogates."""
    return msgpack.unpackb(b, raw=False, strict_map_key=False,
                           unicode_errors="surrogateescape")


def pack_lenient(obj):
    """Packs obj; str values holding surrogate escapes become invalid UTF-8 on the wire."""
    return msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogateescape")


class Raw(bytes):
    """Pre-encoded msgpack bytes, spliced verbatim by raw_map."""


def _enc(x):
    return bytes(x) if isinstance(x, Raw) else pack_lenient(x)


def raw_map(pairs):
    """Encodes a msgpack map from (key, value) pairs verbatim: keys may repeat or be
    non-strings, values may be Raw. Returns Raw."""
    n = len(pairs)
    if n < 16:
        head = bytes([0x80 | n])
    elif n < 65536:
        head = b"\xde" + struct.pack(">H", n)
    else:
        head = b"\xdf" + struct.pack(">I", n)
    return Raw(head + b"".join(_enc(k) + _enc(v) for k, v in pairs))


def ev_pairs(ev):
    """An event dict as a list of pairs (body as a nested pair list is up to the caller)."""
    return list(ev.items())


def stored_form(ev):
    """What the daemon stores for a sent event (compared as decoded maps)."""
    out = dict(ev)
    out["body"] = dict(ev["body"])
    if out["type"] == "appeal" and "priority" not in out["body"]:
        out["body"]["priority"] = "normal"
    return out


def decode_ev(rec):
    return unpack(rec["ev"])


class Client:
    """A long-lived client socket (DEALER by default, or REQ) with bounded receives."""

    def __init__(self, endpoint, kind=zmq.DEALER, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, msg):
        self.sock.send(msg if isinstance(msg, bytes) else pack(msg))

    def recv(self, timeout=None):
        t = RECV_TIMEOUT if timeout is None else timeout
        if not self.sock.poll(int(t * 1000)):
            raise TimeoutError("no reply within %.1fs" % t)
        return unpack_lenient(self.sock.recv())

    def try_recv(self, timeout):
        """Returns the decoded reply, or None when none came within timeout."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return unpack_lenient(self.sock.recv())

    def call(self, msg, timeout=None):
        self.send(msg)
        return self.recv(timeout)

    def pipeline(self, msgs, window=256, timeout=None):
        """Sends msgs with at most `window` outstanding; returns the replies in arrival order."""
        replies = []
        sent = 0
        while len(replies) < len(msgs):
            while sent < len(msgs) and sent - len(replies) < window:
                self.send(msgs[sent])
                sent += 1
            replies.append(self.recv(timeout))
        return replies

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _daemon_head(self):
    r = self.request({"op": "head"}, timeout=RECV_TIMEOUT)
    assert r.get("ok"), r
    return r


def _daemon_client(self, which="ingest", kind=zmq.DEALER):
    return Client({"ingest": self.ingest, "query": self.query}[which], kind, self.ctx)


Daemon.head = _daemon_head
Daemon.client = _daemon_client


@contextlib.contextmanager
def time_limit(seconds, what="test"):
    """Raises TimeoutError in the main thread if the block runs longer than seconds
    (pytest-timeout is not installed; SIGALRM interrupts zmq polls too)."""
    seconds = seconds * TIMEOUT_SCALE

    def on_alarm(signum, frame):
        raise TimeoutError("%s exceeded its time limit of %.0fs" % (what, seconds))

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def running_daemon(limit=60.0, **kw):
    """Generator body for a function-scoped pytest fixture: starts a Daemon, yields
    it under a time limit, then stops it with SIGTERM and checks it exited 0 (so a
    crash or a sanitizer report during the test fails it)."""
    d = Daemon(**kw)
    try:
        d.start(timeout=10.0 * TIMEOUT_SCALE)
        with time_limit(limit):
            yield d
        alive = d.proc is not None and d.proc.poll() is None
        crashed = d.proc is not None and not alive
        rc = d.stop(timeout=10.0 * TIMEOUT_SCALE)
        if crashed or (rc not in (None, 0)):
            raise AssertionError("lianxind exited with %s (%s):\n%s"
                                 % (rc, "died during the test" if crashed else "on SIGTERM",
                                    d.read_log()[-6000:]))
    finally:
        d.cleanup()
