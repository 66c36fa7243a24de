#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""compare_report.py: the table bench/compare prints (and --write-results saves).

usage: compare_report.py META RESULTS.tsv REPLAY.tsv [PROFILE.txt]

META: key=value lines (machine, versions, workload). RESULTS.tsv: one line per
run: system mode run eps p50 p99 p999 rss_kb cpu errors cut events.
REPLAY.tsv: system run rps records. Prints Markdown: medians per system and
mode, each figure with its ratio to lianxind's in the same mode, the replay
table, what each row's ack means, and the team's targets.
"""
import os
import statistics
import sys

SYSTEMS = [
    # key, name in the table, durable ack?, what the ack means
    ("lianxind", "lianxind", "yes",
     "acked after the batch's LMDB commit and fdatasync; validates, dedups, "
     "hash-chains and indexes every event"),
    ("lianxind-tmpfs", "lianxind, store on tmpfs", "no",
     "the same daemon with its store on /dev/shm: the commit's flush costs nothing, "
     "so this is what decoding, validation, hashing, indexing and the transport cost "
     "without the disk"),
    ("zmq-raw", "ZeroMQ raw (no storage)", "none",
     "a ROUTER that acks every event at once and stores nothing: the transport's "
     "limit (same lx-loadgen client)"),
    ("lmdb-raw", "LMDB raw (no network)", "yes",
     "one process appending to LMDB, commit + fdatasync: the disk's limit (sync: one "
     "transaction per event; pipe: {lmdb_batch} events per transaction)"),
    ("nats-js", "NATS JetStream (file)", "no",
     "stream with file storage, publish with ack; {nats_sync}"),
    ("redis-always", "Redis XADD, AOF always", "yes",
     "appendonly yes, appendfsync always: the reply follows the AOF fsync (one fsync "
     "per event-loop pass, shared by all commands read in it)"),
    ("redis-everysec", "Redis XADD, AOF everysec", "no",
     "appendfsync everysec: acked before fsync; up to about 1 s of acked writes lost "
     "on power failure"),
    ("pg-1row", "PostgreSQL, 1 row/tx", "yes",
     "synchronous_commit on, one INSERT per transaction (pipe: libpq pipeline mode, "
     "a Sync after each INSERT); acked when the commit returns"),
    ("pg-batch", "PostgreSQL, {pg_batch} rows/tx", "yes",
     "synchronous_commit on, {pg_batch} pipelined INSERTs per transaction, as a client "
     "batches; a row is acked when its transaction's commit returns"),
]
DURABLE_PEERS = ["redis-always", "pg-1row", "pg-batch"]


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    return meta


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def num(s):
    try:
        v = float(s)
    except ValueError:
        return None
    return None if v != v else v  # NaN


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, kind):
    if v is None:
        return "—"
    if kind == "eps":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    if kind == "mb":
        return f"{v / 1024:.1f}"
    if kind == "cpu":
        return f"{v:.2f}"
    return str(v)


def cell(v, ref, kind, is_ref):
    s = fmt(v, kind)
    if is_ref or v is None or not ref:
        return s
    return f"{s} ({v / ref:.2f}x)"


def main():
    meta = read_meta(sys.argv[1])
    runs = read_tsv(sys.argv[2])
    replays = read_tsv(sys.argv[3])
    profile = sys.argv[4] if len(sys.argv) > 4 and os.path.exists(sys.argv[4]) else None
    subst = {k: meta.get(k, "") for k in ("lmdb_batch", "pg_batch", "nats_sync")}
    names = {k: n.format(**subst) for k, n, _, _ in SYSTEMS}

    # Medians per (system, mode).
    rows = {}
    for r in runs:
        sysname, mode = r[0], r[1]
        d = rows.setdefault((sysname, mode), {"eps": [], "p50": [], "p99": [], "p999": [],
                                              "rss": [], "cpu": [], "errors": 0, "cut": False, "n": 0})
        for key, i in (("eps", 3), ("p50", 4), ("p99", 5), ("p999", 6), ("rss", 7), ("cpu", 8)):
            v = num(r[i])
            d[key].append(v if v is None or v >= 0 else None)
        d["errors"] += int(num(r[9]) or 0)
        d["cut"] |= r[10] == "1"
        d["n"] += 1
    m = {k: {f: (med(v) if isinstance(v, list) else v) for f, v in d.items()} for k, d in rows.items()}

    out = []
    w = out.append
    w("# lianxind beside the alternatives (`bench/compare`)")
    w("")
    w(f"- date: {meta.get('date')}")
    w(f"- machine: {meta.get('cpus')} CPUs ({meta.get('cpu')}), {meta.get('mem')} memory, "
      f"disk {meta.get('disk')}; {meta.get('host')}")
    w(f"- other load on the machine: {meta.get('load')} (anything else running shares "
      "the cores and the disk, and moves every figure)")
    w(f"- lianxind: {meta.get('lianxind')}; {meta.get('versions')}")
    w(f"- workload: {meta.get('size')}-byte events. (a) **sync**: one publisher, send, wait for "
      f"the ack, repeat; {meta.get('sync_events')} events per run. (b) **pipe**: "
      f"{meta.get('clients')} publishers, {meta.get('window')} events in flight each; "
      f"{meta.get('events')} events per run. {meta.get('runs')} rounds, each running every "
      f"system once in turn (sync, then pipe); medians shown; "
      f"no run sends after {meta.get('max_seconds')} s. Everything on 127.0.0.1.")
    w("")
    w("## Ingest")
    w("")
    w("Each figure with its ratio to lianxind's in the same mode (events/s: higher is better; "
      "latency and memory: lower is better).")
    w("")
    w("| system | durable ack | mode | events/s | ack p50 ms | ack p99 ms | ack p999 ms | "
      "peak RSS MB | server CPU |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|")
    any_cut = any_pss = False
    for mode in ("sync", "pipe"):
        ref = m.get(("lianxind", mode), {})
        for key, _, durable, _ in SYSTEMS:
            d = m.get((key, mode))
            if not d:
                continue
            is_ref = key == "lianxind"
            eps = cell(d["eps"], ref.get("eps"), "eps", is_ref)
            if d["cut"]:
                eps += " †"
                any_cut = True
            rss = cell(d["rss"], ref.get("rss"), "mb", is_ref)
            if key.startswith("pg-"):
                rss += " ‡"
                any_pss = True
            if key == "lmdb-raw":
                rss += " §"
            if key == "nats-js" and "always" in meta.get("nats_sync", ""):
                durable = "yes"
            errs = f" ({d['errors']} failed)" if d["errors"] else ""
            w(f"| {names[key]}{errs} | {durable} | {mode} | {eps} | "
              f"{cell(d['p50'], ref.get('p50'), 'ms', is_ref)} | "
              f"{cell(d['p99'], ref.get('p99'), 'ms', is_ref)} | "
              f"{cell(d['p999'], ref.get('p999'), 'ms', is_ref)} | {rss} | "
              f"{fmt(d['cpu'], 'cpu')} |")
    w("")
    if any_cut:
        w(f"† at least one run reached --max-seconds ({meta.get('max_seconds')} s) before its "
          "last event; events/s is over the events acknowledged in the time it ran.")
    if any_pss:
        w("‡ PostgreSQL runs one process per connection: the sum of the proportional set size "
          "(Pss) of the postmaster and all its children, read at the end of the run while the "
          "clients are still connected (shared buffers counted once).")
    w("§ the loop's own VmHWM (there is no server). Other rows: the server's VmHWM "
      "(/proc/PID/status) read after each run, so it is the peak since the server started "
      "for that round (each round restarts every server on its data).")
    w("Server CPU: the server's user+system CPU time during the run divided by the run's wall "
      "time (1.00 = one core busy); the load generators share the same cores.")
    w("")

    # Replay.
    rp = {}
    for r in replays:
        rp.setdefault(r[0], ([], [], [], []))
        for i in range(4):
            v = num(r[2 + i]) if len(r) > 2 + i else None
            rp[r[0]][i].append(v if v is None or v >= 0 else None)
    if rp:
        w("## Replay")
        w("")
        w("Records per second streamed from each system's log to one client (the whole log as "
          "written by the runs above). CPU: the server's and the reading client's CPU time over "
          "the replay's wall time (LMDB raw has no server: the scan is the client).")
        w("")
        w("| system | how | records/s | x lianxind | records | server CPU | client CPU |")
        w("|---|---|---:|---:|---:|---:|---:|")
        how = {
            "lianxind": "`replay` pages, limit 10000, over the query socket",
            "lmdb-raw": "one read transaction, cursor scan",
            "nats-js": "ordered push consumer",
            "redis-always": "XRANGE pages of 10000",
            "redis-everysec": "XRANGE pages of 10000",
            "pg-1row": "COPY (SELECT … ORDER BY seq) TO STDOUT, binary",
            "pg-batch": "COPY (SELECT … ORDER BY seq) TO STDOUT, binary",
        }
        lx = med(rp.get("lianxind", ([],))[0])
        for key, _, _, _ in SYSTEMS:
            if key not in rp:
                continue
            v = med(rp[key][0])
            name = "PostgreSQL" if key.startswith("pg-") else names[key]
            ratio = f"{v / lx:.2f}x" if lx and v is not None else "—"
            recs = med(rp[key][1])
            w(f"| {name} | {how.get(key, '')} | {fmt(v, 'eps')} | {ratio} | "
              f"{fmt(recs, 'eps')} | {fmt(med(rp[key][2]), 'cpu')} | {fmt(med(rp[key][3]), 'cpu')} |")
        w("")

    w("## What each row's ack means")
    w("")
    for key, name, durable, what in SYSTEMS:
        if any(k[0] == key for k in m) or key in rp:
            w(f"- **{names[key]}** (durable: {durable}): {what.format(**subst)}.")
    w("")

    # Targets.
    def get(key, mode, f):
        return m.get((key, mode), {}).get(f)

    lx_p99 = get("lianxind", "sync", "p99")
    lx_rep = med(rp.get("lianxind", ([],))[0])

    # Events/s of each round. bench/compare runs every system once per round,
    # so a ratio within a round compares figures taken minutes apart at most;
    # a target is judged on the median of those paired ratios.
    by_round = {}
    for r in runs:
        v = num(r[3])
        if v is not None and v > 0:
            by_round.setdefault((r[0], r[1]), {})[r[2]] = v

    def per_round(mode, f, *systems):
        """f(eps of each system) for each round that has them all, in round order."""
        cols = [by_round.get((s, mode), {}) for s in systems]
        keys = sorted(set.intersection(*(set(c) for c in cols)), key=int)
        return [f(*(c[k] for c in cols)) for k in keys]

    def rounds_text(values):
        return ", ".join(f"{v:.2f}x" for v in values)

    w("## Targets (ratios of lianxind to each peer within a round; median of the rounds)")
    w("")

    def verdict(ok, miss):
        """' — **met**', or ' — **not met**; MISS' (how far off)."""
        return " — **met**" if ok else f" — **not met**; {miss}"

    def target(label, values, need):
        if not values:
            w(f"- {label}: not measured")
            return
        r = statistics.median(values)
        w(f"- {label}: **{r:.2f}x** (rounds: {rounds_text(values)})"
          + verdict(r >= need, f"{need / r:.2f}x short"))

    def bound(text, values):
        if values:
            w(f"  - {text}: {statistics.median(values):.2f}x (rounds: {rounds_text(values)})")

    target("pipelined durable ingest ≥ 0.5x raw ZeroMQ", per_round("pipe", lambda l, z: l / z,
           "lianxind", "zmq-raw"), 0.5)
    bound("lianxind with its store on tmpfs (no flush: what its own work allows before the "
          "disk)", per_round("pipe", lambda t, z: t / z, "lianxind-tmpfs", "zmq-raw"))
    best = max(((get(k, "pipe", "eps") or 0, k) for k in DURABLE_PEERS), default=(0, None))
    if best[1] and best[0]:
        target(f"pipelined durable ingest ≥ 2.5x the best durable peer ({names[best[1]]})",
               per_round("pipe", lambda l, p: l / p, "lianxind", best[1]), 2.5)
        bound("2.5x that peer, as a share of the raw ZeroMQ round trip with the same client and "
              "no storage at all", per_round("pipe", lambda p, z: 2.5 * p / z, best[1], "zmq-raw"))
    target("one synchronous publisher ≥ 0.85x raw LMDB, one transaction per event",
           per_round("sync", lambda l, m: l / m, "lianxind", "lmdb-raw"), 0.85)
    # A server that only receives, commits one raw LMDB transaction and
    # answers pays both in full: 1 / (1/lmdb + 1/zmq) events/s at best.
    bound("ceiling for any server that acks after an LMDB commit (raw LMDB's commit plus the "
          "raw ZeroMQ round trip, with no decoding, hashing or index)",
          per_round("sync", lambda m, z: z / (m + z), "lmdb-raw", "zmq-raw"))
    bound("ceiling with lianxind's own work (raw LMDB's commit plus lianxind on tmpfs, which "
          "never flushes)", per_round("sync", lambda m, t: t / (m + t), "lmdb-raw", "lianxind-tmpfs"))
    if lx_p99 is not None:
        w(f"- one synchronous publisher p99 < 1.5 ms: {lx_p99:.3f} ms"
          + verdict(lx_p99 < 1.5, f"{lx_p99 / 1.5:.2f}x too slow"))
    if lx_rep is not None:
        w(f"- replay ≥ 1,000,000 records/s: {lx_rep:,.0f}/s"
          + verdict(lx_rep >= 1e6, f"{1e6 / lx_rep:.2f}x short"))
    w("")
    if profile:
        w("## Profile of lianxind, pipe mode (`perf record -g` on the daemon, one extra run)")
        w("")
        w("```")
        with open(profile) as f:
            w(f.read().rstrip())
        w("```")
        w("")
    w(f"Total time {meta.get('elapsed')} s; runs with failures: {meta.get('failures')}.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
