# SPDX-License-Identifier: MIT
"""A store that fills: events answer E_FULL, nothing of them is stored,
the daemon keeps serving queries, and growth up to map_max is used first."""
import os
import re

import lxtest
from lxtest import Daemon, chain, visit


def small_config(tmp, map_size, map_max):
    with open(lxtest.SAMPLE_CONFIG, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"map_size: \S+", "map_size: %s" % map_size, text)
    text = re.sub(r"map_max: \S+", "map_max: %s" % map_max, text)
    path = os.path.join(tmp, "small.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def big_visit():
    return visit(note="n" * 4000, household="h" * 4000)


def fill(d, limit=2000):
    """Publishes big events until one is refused; returns (acks, refusal)."""
    acks = []
    with lxtest.Client(d.ingest) as c:
        for _ in range(limit):
            ev = big_visit()
            r = c.call(lxtest.pack(ev), timeout=10)
            if not r["ok"]:
                return acks, (ev, r)
            acks.append((ev, r))
    raise AssertionError("the store never filled")


def test_full_store_answers_e_full_and_keeps_serving(tmp_path):
    cfg = small_config(str(tmp_path), "1MiB", "1MiB")
    with Daemon(config=cfg, tmp=str(tmp_path)) as d:
        acks, (ev, r) = fill(d)
        assert r["code"] == "E_FULL", r
        assert r["id"] == ev["id"]
        assert "full" in r["error"]
        assert len(acks) > 10
        head = d.request({"op": "head"})
        assert head["seq"] == acks[-1][1]["seq"]
        # Still serving: queries work, and a retry is still refused cleanly.
        records, _ = d.replay_all()
        assert len(records) == head["seq"]
        assert chain(records) == head["hash"]
        r2 = d.publish(ev)
        assert r2["code"] == "E_FULL"
        # A retry of an acked event is still a dup (no write needed).
        first_ev, first_ack = acks[0]
        r3 = d.publish(first_ev)
        assert r3["ok"] and r3["dup"] and r3["seq"] == first_ack["seq"]
        assert d.request({"op": "stats"})["events"] == head["seq"]


def test_map_grows_before_refusing(tmp_path):
    cfg = small_config(str(tmp_path), "1MiB", "4MiB")
    with Daemon(config=cfg, tmp=str(tmp_path)) as d:
        acks, (_, r) = fill(d, limit=4000)
        assert r["code"] == "E_FULL"
        stats = d.request({"op": "stats"})
        assert stats["map_size"] == 4 * 1024 * 1024
        # Far more fit than in a 1 MiB map (about 8 KiB each).
        assert len(acks) > 300
        assert "map grown" in d.read_log()
