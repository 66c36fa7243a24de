#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run.sh: the Lianxin benchmark in one command.
#
# Starts lianxind from a build dir on a fresh temporary data dir with
# endpoints of its own (ipc:// sockets in the temp dir, or tcp loopback
# ports), runs lx-loadgen in mode sync (the latency of one durable write at a
# time) and mode pipe (throughput with many events in flight), prints the
# figures and the daemon's peak RSS (VmHWM), stops the daemon by PID and
# removes the temp dir. See bench/README.md for what the figures mean.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
config="$here/../config/lianxin.yaml"
transport=ipc
sync_events=2000
pipe_events=200000
clients=4
window=256
size=300
type=visit
parent="${TMPDIR:-/tmp}"

usage() {
  cat <<EOF
usage: bench/run.sh [options]

  --build DIR        build dir with lianxind, lianxin, lx-loadgen (default: ../build)
  --config FILE      daemon config (default: config/lianxin.yaml)
  --transport T      ipc (default) or tcp (loopback)
  --sync-events N    events for mode sync (default $sync_events)
  --pipe-events N    events for mode pipe (default $pipe_events)
  --clients N        mode pipe clients (default $clients)
  --window W         mode pipe events in flight per client (default $window)
  --size BYTES       msgpack bytes per event (default $size)
  --type T           visit (default), appeal or mix: what mode pipe publishes (lx-loadgen --type)
  --dir DIR          where to make the temp data dir (default \$TMPDIR or /tmp);
                     put it on the disk you mean to measure: tmpfs makes fsync free
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --sync-events) sync_events=$2; shift 2 ;;
    --pipe-events) pipe_events=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --type) type=$2; shift 2 ;;
    --dir) parent=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

for bin in lianxind lianxin lx-loadgen; do
  if [ ! -x "$build/$bin" ]; then
    echo "run.sh: $build/$bin not found; build with: cmake --build $build" >&2
    exit 2
  fi
done

tmp=$(mktemp -d "$parent/lx-bench.XXXXXX")
pid=

cleanup() {
  # Stop only the daemon this script started, by its PID.
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "$transport" in
  ipc)
    ingest="ipc://$tmp/ingest.sock"; alerts="ipc://$tmp/alerts.sock"; query="ipc://$tmp/query.sock" ;;
  tcp)
    # Three consecutive ports in a random high range, so that parallel runs
    # and a daemon on the default ports do not collide.
    port=$((20000 + RANDOM % 40000))
    ingest="tcp://127.0.0.1:$port"; alerts="tcp://127.0.0.1:$((port + 1))"
    query="tcp://127.0.0.1:$((port + 2))" ;;
  *) echo "run.sh: --transport must be ipc or tcp" >&2; exit 2 ;;
esac

"$build/lianxind" --config "$config" --data "$tmp/data" --ingest "$ingest" \
  --alerts "$alerts" --query "$query" --log-level warn >"$tmp/daemon.log" 2>&1 &
pid=$!

# Ready when it answers a head query.
for _ in $(seq 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run.sh: lianxind exited during start:" >&2; cat "$tmp/daemon.log" >&2; exit 1
  fi
  "$build/lianxin" --query "$query" --timeout 200 head >/dev/null 2>&1 && break
  sleep 0.1
done
"$build/lianxin" --query "$query" --timeout 1000 head >/dev/null

echo "== lianxin benchmark"
echo "host        $(uname -srm), $(nproc) CPUs"
echo "data dir    $tmp/data ($(df -T "$tmp" | awk 'NR == 2 { print $2 }'))"
echo "transport   $transport ($ingest)"
echo

status=0
echo "== (a) sync: one client, one event in flight"
"$build/lx-loadgen" --ingest "$ingest" --mode sync --events "$sync_events" --size "$size" || status=1
echo
echo "== (b) pipe: $clients clients, $window in flight each"
"$build/lx-loadgen" --ingest "$ingest" --mode pipe --clients "$clients" --window "$window" \
  --events "$pipe_events" --size "$size" --type "$type" || status=1
echo

echo "== daemon"
stored=$("$build/lianxin" --query "$query" head --compact 2>/dev/null \
  | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')
echo "records     ${stored:-?} (published $((sync_events + pipe_events)))"
echo "store size  $(du -sh "$tmp/data" | cut -f1)"
echo "peak RSS    $(awk '/^VmHWM/ { print $2, $3 }' "/proc/$pid/status")"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
echo "exit        lianxind exited $rc after SIGTERM"
[ "$rc" -eq 0 ] || status=1
# The daemon may add records of its own (checkpoints, escalations), never fewer.
[ "${stored:-0}" -ge "$((sync_events + pipe_events))" ] || status=1
exit $status
