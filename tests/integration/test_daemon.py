# SPDX-License-Identifier: MIT
"""The daemon as a process: --help, --check-config (exit codes, FILE:LINE:
key: reason), SIGTERM/SIGINT exit 0 and a restart sees the data (also with
clients in flight), and an invalid config exits non-zero before binding.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from lxtest import (DAEMON, SAMPLE_CONFIG, TIMEOUT_SCALE, Client, Daemon, appeal, chain,
                    decode_ev, resolution, running_daemon, stored_form, time_limit, visit)

RUN_TIMEOUT = 20 * TIMEOUT_SCALE


@pytest.fixture
def d():
    yield from running_daemon(limit=90)


@pytest.fixture
def tmp():
    t = tempfile.mkdtemp(prefix="lx-it-cfg-")
    with time_limit(60):
        yield t
    shutil.rmtree(t, ignore_errors=True)


def run(*args):
    p = subprocess.run([DAEMON] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sample_lines():
    with open(SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    if not text.endswith("\n"):
        text += "\n"
    return text.splitlines(keepends=True)


def config_with_extra_keys(tmp, keys, name="bad.yaml"):
    """The sample config with unknown top-level keys appended; returns (path, [line numbers])."""
    lines = sample_lines()
    lines = [l for l in lines]
    # drop a trailing document end marker so the keys stay in the document
    while lines and lines[-1].strip() in ("", "..."):
        lines.pop()
    nums = []
    for k in keys:
        lines.append("%s: 1\n" % k)
        nums.append(len(lines))
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return path, nums


# --- command line ----------------------------------------------------------------

def test_help_lists_every_flag():
    with time_limit(30):
        rc, out, err = run("--help")
    assert rc == 0, (rc, out, err)
    text = out + err
    for flag in ("--config", "--data", "--ingest", "--alerts", "--query", "--check-config",
                 "--help"):
        assert flag in text, "--help does not mention %s:\n%s" % (flag, text)


def test_unknown_flag_fails():
    with time_limit(30):
        rc, out, err = run("--no-such-flag")
    assert rc != 0, (out, err)


def test_check_config_good():
    with time_limit(30):
        rc, out, err = run("--check-config", SAMPLE_CONFIG)
    assert rc == 0, (rc, out, err)
    assert "%s: ok (" % SAMPLE_CONFIG in out and " 4 plugins)" in out, out
    assert err == "", "a good file prints no problems (and no plugin log lines):\n" + err


def sample_edited(tmp, edits, name="edited.yaml"):
    """The sample config with each (old, new), in file order, replaced on the one line that
    holds old (new may add lines); returns (path, [the edited line numbers])."""
    lines = sample_lines()
    nums = []
    for old, new in edits:
        hits = [i for i, l in enumerate(lines) if old in l]
        assert len(hits) == 1, (old, hits)
        lines[hits[0]] = lines[hits[0]].replace(old, new)
        lines = "".join(lines).splitlines(keepends=True)
        nums.append(hits[0] + 1)
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return path, nums


def test_check_config_checks_the_plugins_settings(tmp):
    """Settings only a plugin understands fail the check, not only the start: each at its own
    FILE:LINE, all in one run, and the configured store is not even created."""
    store = os.path.join(tmp, "never")
    path, (n_store, n_resp, n_w, n_act) = sample_edited(tmp, [
        ("path: ../data", "path: " + store),
        ("response_days: 1", "response_days: 0"),
        ("weights: {response: 0.30,", "weights: {response: -0.30,"),
        ("actors: {leader-1: 90}", "actors: {leader-1: lots}")])
    with time_limit(30):
        rc, out, err = run("--check-config", path)
    assert rc == 1, (rc, out, err)
    assert "ok" not in out, out
    problems = err.splitlines()
    assert "%s:%d: plugins[0].response_days: expected an integer from 1 to 60" % (path, n_resp) \
        in problems, err
    assert "%s:%d: plugins[1].weights.response: expected a number of 0 or more, e.g. 0.35" % (
        path, n_w) in problems, err
    assert "%s:%d: plugins[2].actors.leader-1: expected field days from 0 to 366" % (
        path, n_act) in problems, err
    assert len(problems) == 3, err
    assert not os.path.exists(store), "--check-config created the store"


def test_check_config_loads_the_plugin_objects(tmp):
    """A plugin that cannot be loaded, or a key no plugin reads, is a check failure."""
    path, (n_key, n_path) = sample_edited(tmp, [
        ("list_size: 3", "list_size: 3\n    colour: red"),
        ("- name: hotspot", "- name: hotspot\n    path: %s/nope.so" % tmp)])
    with time_limit(30):
        rc, out, err = run("--check-config", path)
    assert rc == 1, (rc, out, err)
    assert "%s:%d: plugins[3] (hotspot): cannot load %s/nope.so" % (path, n_path, tmp) in err, err
    assert "%s:%d: plugins[1].colour: unknown key for plugin rank" % (path, n_key + 1) in err, err


def test_check_config_bad_names_file_line_and_key(tmp):
    path, (n1, n2) = config_with_extra_keys(tmp, ["bogus_key", "another_typo"])
    rc, out, err = run("--check-config", path)
    text = out + err
    assert rc != 0, text
    lines = [l for l in text.splitlines() if l.startswith(path + ":")]
    assert any(l.startswith("%s:%d:" % (path, n1)) and "bogus_key" in l for l in lines), \
        "no %s:%d: bogus_key line in:\n%s" % (path, n1, text)
    assert any(l.startswith("%s:%d:" % (path, n2)) and "another_typo" in l for l in lines), \
        "every problem is reported; no %s:%d: another_typo line in:\n%s" % (path, n2, text)


def test_check_config_missing_file(tmp):
    rc, out, err = run("--check-config", os.path.join(tmp, "nope.yaml"))
    assert rc != 0, (out, err)


def test_check_config_yaml_syntax_error(tmp):
    lines = sample_lines()
    lines.append("units: [unclosed\n")
    path = os.path.join(tmp, "syntax.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    rc, out, err = run("--check-config", path)
    assert rc != 0, (out, err)
    assert path + ":" in out + err, out + err


def test_invalid_config_exits_before_binding(tmp):
    path, (n1,) = config_with_extra_keys(tmp, ["bogus_key"])
    dm = Daemon(config=path, tmp=tmp)
    p = subprocess.run(dm.args(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT)
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, text
    assert "%s:%d:" % (path, n1) in text, text
    for ep in (dm.ingest, dm.alerts, dm.query):
        assert not os.path.exists(ep[len("ipc://"):]), "bound %s before checking the config" % ep


def test_missing_config_file_exits_nonzero(tmp):
    dm = Daemon(config=os.path.join(tmp, "nope.yaml"), tmp=tmp)
    p = subprocess.run(dm.args(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT)
    assert p.returncode != 0
    assert not os.path.exists(dm.ingest[len("ipc://"):])


# --- signals and restart -----------------------------------------------------------

def publish(d, evs):
    with d.client("ingest") as cli:
        rs = cli.pipeline(evs)
    for ev, r in zip(evs, rs):
        assert r.get("ok") is True and r.get("id") == ev["id"], (ev, r)
    return [r["seq"] for r in rs]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_and_restart_sees_the_data(d, sig):
    evs = [visit(), appeal("ap-keep"), visit("qd.nh.yj", minutes=5), resolution("ap-keep")]
    publish(d, evs)
    head = d.head()
    recs, _ = d.replay_all()
    rc = d.stop(sig)
    assert rc == 0, "exit %r on %s:\n%s" % (rc, sig.name, d.read_log()[-4000:])
    d.start()
    assert d.head() == head
    recs2, _ = d.replay_all()
    assert recs2 == recs
    assert chain(recs2) == head["hash"]
    for rec, ev in zip(recs2, evs):
        assert decode_ev(rec) == stored_form(ev)
    st = d.request({"op": "appeal", "appeal": "ap-keep"})
    assert st.get("ok") and st["appeal"]["status"] == "resolved", st
    assert publish(d, [visit()]) == [5]


def test_sigterm_with_clients_in_flight(d):
    """A graceful stop while a client pipelines: exit 0, and every acked event is
    in the log after a restart."""
    evs = [visit(minutes=i % 500) for i in range(3000)]
    replies = []
    stop = threading.Event()

    def writer():
        cli = Client(d.ingest)
        sent, idle = 0, 0
        try:
            while len(replies) < len(evs) and idle < 5:
                while not stop.is_set() and sent < len(evs) and sent - len(replies) < 128:
                    cli.send(evs[sent])
                    sent += 1
                r = cli.try_recv(0.2)
                if r is None:
                    idle += 1 if stop.is_set() else 0
                else:
                    replies.append(r)
        finally:
            cli.close()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    deadline = time.time() + 30 * TIMEOUT_SCALE
    while len(replies) < 500 and time.time() < deadline and t.is_alive():
        time.sleep(0.002)
    assert len(replies) >= 500, "no acks"
    rc = d.stop(signal.SIGTERM)
    stop.set()
    t.join(30)
    assert not t.is_alive()
    assert rc == 0, d.read_log()[-4000:]
    d.start()
    recs, _ = d.replay_all()
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert chain(recs) == d.head()["hash"]
    for ev, r in zip(evs, replies):
        assert r.get("ok") is True and r.get("id") == ev["id"], r
        assert decode_ev(recs[r["seq"] - 1]) == stored_form(ev)
