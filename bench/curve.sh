#!/bin/sh
# SPDX-License-Identifier: MIT
# Ingest throughput with CURVE off, then on: the same daemon binary, the same
# workload (lx-loadgen, 4 clients pipelining 256 and one synchronous
# client), on tcp loopback; with CURVE, every connection is encrypted and
# every message carries its key's registry name (so `by` is stored).
# Usage: bench/curve.sh [BUILD_DIR] [EVENTS]
set -eu
cd "$(dirname "$0")/.."
build="${1:-build}"
events="${2:-100000}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/lx-curve-XXXXXX")"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$((20000 + $$ % 20000))
"$build/lianxin" keygen "$tmp/lianxind" >/dev/null
"$build/lianxin" keygen "$tmp/bench" >/dev/null
printf -- '- name: bench\n  key: "%s"\n  role: field\n  jurisdiction: qd\n' "$(cat "$tmp/bench.pub")" > "$tmp/clients.yaml"
cp config/lianxin.yaml "$tmp/plain.yaml"
{ cat config/lianxin.yaml; printf '\nsecurity:\n  server_key: lianxind.key\n  clients: clients.yaml\n'; } > "$tmp/curve.yaml"

run() { # name config [keys...]
  name="$1"; cfg="$2"; shift 2
  rm -rf "$tmp/data"
  "$build/lianxind" --config "$cfg" --data "$tmp/data" --ingest "tcp://127.0.0.1:$port" \
    --alerts "tcp://127.0.0.1:$((port + 1))" --query "tcp://127.0.0.1:$((port + 2))" \
    --log-level warn 2>"$tmp/$name.log" &
  pid=$!
  sleep 0.5
  for mode in pipe sync; do
    n="$events"; [ "$mode" = sync ] && n=$((events / 50))
    printf '%-6s %-5s ' "$name" "$mode"
    "$build/lx-loadgen" --ingest "tcp://127.0.0.1:$port" --mode "$mode" --events "$n" "$@" |
      awk '/^events\/s/ {r=$2} /^latency/ {p50=$4; p99=$6} END {printf "%10s events/s  p50 %s ms  p99 %s ms\n", r, p50, p99}'
  done
  kill "$pid"; wait "$pid" || true; pid=""
}
echo "CURVE off vs on, $events events pipelined (4 x 256), $((events / 50)) synchronous; $(nproc) cores"
run plain "$tmp/plain.yaml"
run curve "$tmp/curve.yaml" --key "$tmp/bench.key" --server-key "$tmp/lianxind.pub"
