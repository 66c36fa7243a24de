# SPDX-License-Identifier: MIT
"""SIGHUP reloads the whole configuration, over real sockets, with a DEALER
that stays connected across reloads: a bad file (YAML syntax, unknown key,
a removed unit that records use, a changed endpoint, an unreadable file, a
calendar file that vanished) is refused whole with FILE:LINE reasons while
the daemon serves under the old one; an added unit is accepted at once; a
changed deadline applies only to appeals filed after it and the audit stays
clean; a storm of SIGHUPs leaves the last good file in force; a SIGHUP
during a pipelined load loses and repeats nothing; the `config` record
(PROTOCOL.md) is appended once per change and at a restart with a changed
file, never at the first start of a store.
"""
import os
import re
import signal
import subprocess
import threading
import time

import lxtest
from lxtest import Client, Daemon, appeal, new_id, time_limit, unpack, visit
from test_escalate import ms, workdays_after

with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
    SAMPLE = f.read()

NEW_COMMUNITY = "          - {code: xq, name: 新区社区}\n"


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # a reload never reads a half-written file


def with_new_unit(text=SAMPLE):
    anchor = "          - {code: bl, name: 北岭村}\n"
    return text.replace(anchor, anchor + NEW_COMMUNITY)


class Live:
    """A daemon on a config file of the test's own, and one DEALER kept open."""

    def __init__(self, tmp, text=SAMPLE, env=None, cls=Daemon):
        self.path = os.path.join(tmp, "lianxin.yaml")
        write(self.path, text)
        self.d = cls(config=self.path, tmp=tmp, env=env).start()
        self.dealer = Client(self.d.ingest)
        self.dealer.__enter__()

    def hup(self, text=None, expect="configuration reloaded|configuration unchanged"):
        """Writes text (if given), sends SIGHUP, waits for the outcome line."""
        before = self.count(expect)
        if text is not None:
            write(self.path, text)
        self.d.proc.send_signal(signal.SIGHUP)
        end = time.time() + 10
        while time.time() < end and self.count(expect) == before:
            time.sleep(0.02)
        assert self.count(expect) > before, self.d.read_log()[-3000:]

    def count(self, pattern):
        return len(re.findall(pattern, self.d.read_log()))

    def units(self):
        return [u["path"] for u in self.d.request({"op": "units"})["units"]]

    def serving(self):
        """The kept DEALER still publishes, and queries answer."""
        r = self.dealer.call(visit())
        assert r["ok"], r
        return r["seq"]

    def configs(self):
        recs, _ = self.d.replay_all(types=["config"])
        return [(r["seq"], unpack(r["ev"])) for r in recs]

    def close(self):
        self.dealer.__exit__(None, None, None)
        rc = self.d.stop()
        self.d.cleanup()
        return rc


def refused(live, text, *needles):
    """text is refused whole: the reasons are logged, the old config stays."""
    units = live.units()
    seq = live.serving()
    live.hup(text, expect="the new configuration is refused")
    log = live.d.read_log()
    for n in needles:
        assert n in log, (n, log[-3000:])
    assert live.units() == units
    assert live.serving() == seq + 1
    assert live.configs() == []


def test_bad_files_are_refused_whole(tmp_path):
    tmp = str(tmp_path)
    with time_limit(120):
        live = Live(tmp)
        try:
            p = live.path
            # YAML syntax error, with a new unit that must not slip in.
            refused(live, with_new_unit() + "oops: [unclosed\n", "%s:" % p, "syntax error")
            assert "qd.hx.xq" not in live.units()
            # An unknown key, at its line.
            n = with_new_unit().count("\n") + 1
            refused(live, with_new_unit() + "colour: blue\n",
                    "%s:%d: colour: unknown key" % (p, n))
            # A unit that records use cannot be removed; one that none uses could.
            assert live.dealer.call(visit(unit="qd.nh.yj"))["ok"]
            text = SAMPLE.replace("          - {code: yj, name: 渔家村}\n", "")
            refused(live, text, "unit qd.nh.yj is removed, but records use it")
            # A category that records use.
            assert live.dealer.call(appeal(category="health"))["ok"]
            text = SAMPLE.replace("  - {code: health, name: 医疗}\n", "")
            refused(live, text, "category health is removed, but records use it")
            # An unreadable file: a directory where the file was.
            os.replace(p, p + ".away")
            os.mkdir(p)
            refused(live, None, "%s: cannot open: Is a directory" % p)
            os.rmdir(p)
            os.unlink(p + ".away")
            live.hup(SAMPLE)  # the file in force again: unchanged, no record
            assert live.configs() == []
            assert live.close() == 0
        finally:
            live.d.cleanup()


class FileDaemon(Daemon):
    """Takes its query endpoint and store path from the config file, not
    the command line (which a reload would keep)."""

    def args(self):
        a = super().args()
        for flag in ("--query", "--data"):
            i = a.index(flag)
            a = a[:i] + a[i + 2:]
        return a


def test_changed_endpoint_or_store_is_refused(tmp_path):
    tmp = str(tmp_path)
    with time_limit(60):
        ep = "ipc://" + os.path.join(tmp, "query.sock")  # what FileDaemon talks to
        data = os.path.join(tmp, "data")
        text = SAMPLE.replace("query:  tcp://127.0.0.1:7603", "query:  " + ep)
        text = text.replace("path: ../data", "path: " + data)
        live = Live(tmp, text, cls=FileDaemon)
        try:
            refused(live, text.replace(ep, ep + "x"),
                    "listen.query: changed from %s to %sx: needs a restart" % (ep, ep))
            refused(live, text.replace(data, data + "2"),
                    "store.path: changed from %s to %s2: needs a restart" % (data, data))
        finally:
            assert live.close() == 0


def test_vanished_calendar_file_is_refused(tmp_path):
    tmp = str(tmp_path)
    cal = os.path.join(tmp, "cn-2027.yaml")
    write(cal, "year: 2027\nholidays: [2027-01-01]\n")
    text = SAMPLE.replace("  weekend: [sat, sun]\n", "  weekend: [sat, sun]\n  files: [cn-2027.yaml]\n")
    with time_limit(60):
        live = Live(tmp, text)
        try:
            os.unlink(cal)
            refused(live, with_new_unit(text), "calendar.files[0]: cannot open", "cn-2027.yaml")
            assert "qd.hx.xq" not in live.units()
        finally:
            live.close()


def test_added_unit_accepted_at_once_and_recorded(tmp_path):
    tmp = str(tmp_path)
    with time_limit(60):
        live = Live(tmp)
        try:
            assert not live.dealer.call(visit(unit="qd.hx.xq"))["ok"]
            live.hup(with_new_unit())
            assert "qd.hx.xq" in live.units()
            r = live.dealer.call(visit(unit="qd.hx.xq"))
            assert r["ok"], r
            cfgs = live.configs()
            assert len(cfgs) == 1
            seq, ev = cfgs[0]
            assert seq == r["seq"] - 1  # before the first record it governs
            assert ev["type"] == "config" and ev["unit"] == "qd"
            assert ev["body"]["changes"] == ["unit qd.hx.xq added (community, 新区社区)"]
            import hashlib
            with open(live.path, "rb") as f:
                assert ev["body"]["hash"] == hashlib.blake2b(f.read(), digest_size=32).digest()
            # The same file again: no second record. A restart on it: none either.
            live.hup()
            assert len(live.configs()) == 1
            live.d.stop()
            live.d.start()
            assert len(live.configs()) == 1
            # A restart on a changed file: one record, before anything else.
            live.dealer.__exit__(None, None, None)
            write(live.path, with_new_unit().replace("新区社区", "新区"))
            head = live.d.head()["seq"]
            live.d.stop()
            live.d.start()
            live.dealer = Client(live.d.ingest).__enter__()
            cfgs = live.configs()
            assert len(cfgs) == 2 and cfgs[1][0] == head + 1
            assert cfgs[1][1]["body"]["changes"] == ["unit qd.hx.xq renamed from 新区社区 to 新区"]
        finally:
            live.close()


def test_first_start_has_no_config_record(tmp_path):
    with time_limit(30):
        live = Live(str(tmp_path))
        try:
            assert live.d.head()["seq"] == 0
            assert live.serving() == 1
        finally:
            live.close()


def test_changed_deadline_applies_to_new_appeals_only(tmp_path):
    tmp = str(tmp_path)
    t0 = ms(2026, 3, 2, 9, 0)  # Monday 09:00
    with time_limit(120):
        live = Live(tmp, env={"LIANXIN_FAKE_CLOCK": "%d:%d" % (t0, 100000)})
        try:
            a = appeal()
            ra = live.dealer.call(a)
            assert ra["ok"], ra
            faster = SAMPLE.replace("normal: {community: 3, township: 5, county: 10}",
                                    "normal: {community: 1, township: 2, county: 10}")
            live.hup(faster)
            b = appeal()
            assert live.dealer.call(b)["ok"]
            ia = live.d.request({"op": "appeal", "appeal": a["body"]["appeal"]})["appeal"]
            ib = live.d.request({"op": "appeal", "appeal": b["body"]["appeal"]})["appeal"]
            assert ia["deadline"] == workdays_after(ia["opened"], 3)  # as promised
            assert ib["deadline"] == workdays_after(ib["opened"], 1)
            # Both escalate; each next tier's time is what its appeal was promised.
            esc = {}
            end = time.time() + 60
            while len(esc) < 2 and time.time() < end:
                recs, _ = live.d.replay_all(types=["escalation"])
                for r in recs:
                    body = unpack(r["ev"])["body"]
                    esc.setdefault(body["appeal"], body)
                time.sleep(0.1)
            ea, eb = esc[a["body"]["appeal"]], esc[b["body"]["appeal"]]
            assert ea["next"] == workdays_after(ea["deadline"], 5)
            assert eb["next"] == workdays_after(eb["deadline"], 2)
            assert live.close() == 0
            p = subprocess.run([lxtest.DAEMON, "--config", live.path, "--audit", live.d.data],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            out = p.stdout.decode()
            assert p.returncode == 0 and "0 discrepancies" in out, out + p.stderr.decode()
        finally:
            live.d.cleanup()


def test_sighup_storm_last_good_file_wins(tmp_path):
    tmp = str(tmp_path)
    with time_limit(90):
        live = Live(tmp)
        try:
            for i in range(100):
                text = with_new_unit().replace("新区社区", "新区%d" % i)
                if i % 3 == 1:
                    text += "bad key: [\n"  # broken ones in between
                write(live.path, text)
                live.d.proc.send_signal(signal.SIGHUP)
                time.sleep(0.01)
            write(live.path, with_new_unit().replace("新区社区", "新区99"))
            live.hup()
            names = {u["path"]: u["name"] for u in live.d.request({"op": "units"})["units"]}
            assert names["qd.hx.xq"] == "新区99"
            assert live.d.proc.poll() is None
            live.serving()
            # Every record it appended names a file that was in force.
            for _, ev in live.configs():
                assert len(ev["body"]["hash"]) == 32 and ev["body"]["changes"]
        finally:
            assert live.close() == 0


def test_sighup_during_pipelined_load(tmp_path):
    tmp = str(tmp_path)
    with time_limit(120):
        live = Live(tmp)
        try:
            evs = [visit(note="n%d" % i) for i in range(6000)]
            out = {}

            def load():
                with Client(live.d.ingest) as c:
                    out["replies"] = c.pipeline(evs, window=256)

            t = threading.Thread(target=load)
            t.start()
            for i in range(20):
                text = with_new_unit().replace("新区社区", "新区%d" % i)
                write(live.path, text)
                live.d.proc.send_signal(signal.SIGHUP)
                time.sleep(0.05)
            t.join()
            rs = out["replies"]
            assert len(rs) == len(evs)
            assert [r["id"] for r in rs] == [e["id"] for e in evs]  # each once, in order
            assert all(r["ok"] and not r["dup"] for r in rs)
            seqs = [r["seq"] for r in rs]
            assert len(set(seqs)) == len(seqs)
            recs, _ = live.d.replay_all(types=["visit"])
            stored = {unpack(r["ev"])["id"] for r in recs}
            assert {e["id"] for e in evs} <= stored
            lxtest.chain(live.d.replay_all()[0])
        finally:
            assert live.close() == 0


def test_plugin_settings(tmp_path):
    """escalate reloads its settings (a bad value refuses the file at its
    line); a plugin without a reload callback refuses a change to its own."""
    tmp = str(tmp_path)
    so = os.path.join(lxtest.BUILD, "tests", "no_reload.so")
    extra = "  - name: no_reload\n    path: %s\n    x: 1\n" % so
    # Second in the list, after escalate (the sample's list is not the file's end).
    at = SAMPLE.index("  - name: rank\n")
    base = SAMPLE[:at] + extra + SAMPLE[at:]
    with time_limit(60):
        live = Live(tmp, base)
        try:
            line = next(i for i, l in enumerate(base.splitlines(), 1) if "reminder_days:" in l)
            refused(live, base.replace("reminder_days: 1 ", "reminder_days: 0 "),
                    "%s:%d: plugins[0].reminder_days: expected an integer from 1 to 60"
                    % (live.path, line))
            refused(live, base.replace("    x: 1\n", "    x: 2\n"),
                    "plugins[1] (no_reload): its settings changed, but this plugin cannot "
                    "reload them: restart the daemon to apply them")
            live.hup(base.replace("reminder_days: 1 ", "reminder_days: 2 "))
            (_, ev), = live.configs()
            assert ev["body"]["changes"] == ["plugin escalate: settings changed"]
            assert "[plugin:escalate] settings reloaded" in live.d.read_log()
            live.serving()
        finally:
            assert live.close() == 0


def test_checkpoints_turned_on_by_reload(tmp_path):
    tmp = str(tmp_path)
    base = os.path.join(tmp, "daemon")
    p = subprocess.run([lxtest.CLI, "keygen", "--sign", base], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 0, p.stderr
    on = SAMPLE.rstrip("\n") + "\ncheckpoints:\n  key: daemon.sign.key\n  every: 3\n"
    with time_limit(60):
        live = Live(tmp)
        try:
            # A key that is not there refuses the file.
            refused(live, on.replace("daemon.sign.key", "nokey.sign.key"),
                    "checkpoints.key: %s/nokey.sign.key: cannot open" % tmp)
            live.hup(on)
            for _ in range(4):
                live.serving()
            recs, _ = live.d.replay_all(types=["checkpoint"])
            assert recs, live.d.read_log()[-2000:]
            assert live.configs()[0][1]["body"]["changes"] == ["checkpoints changed"]
        finally:
            assert live.close() == 0
