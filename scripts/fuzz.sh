#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses (tests/fuzz/) with clang in build-fuzz/,
# runs every saved regression input once, then fuzzes each harness for
# SECONDS (default 60) from the committed seeds plus what earlier runs on
# this machine found (build-fuzz/corpus/). Exits non-zero if any harness
# crashed, leaked, timed out, ran out of memory or broke an invariant; the
# input that did it is in build-fuzz/crashes/HARNESS/.
#
#   scripts/fuzz.sh              # 60 s each (CI runs 45: scripts/test.sh)
#   scripts/fuzz.sh 600          # a longer run: 10 minutes each
#   scripts/fuzz.sh 3600 query   # one harness for an hour
#
# tests/fuzz/README.md says how to reproduce, minimise and keep a crash.
set -eu
cd "$(dirname "$0")/.."
secs="${1:-60}"
[ $# -gt 0 ] && shift
harnesses="${*:-event query config}"
case "$secs" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [event|query|config ...]" >&2; exit 2 ;; esac

scripts/deps.sh
dir=build-fuzz
echo "== fuzz build ($dir, clang, libFuzzer + ASan + UBSan) =="
CC=clang cmake -S . -B "$dir" -DLX_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=""
for h in $harnesses; do targets="$targets fuzz_$h"; done
cmake --build "$dir" -j"$(nproc)" --target $targets

# Leaks are failures; UBSan stops at its first report (the libraries are
# built in recover mode, so this is what makes undefined behaviour a crash).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LX_SOURCE_DIR="$PWD"
# The harnesses' scratch directories (the config file, the query store): a
# crash skips their cleanup, so they live here and go at the end.
export TMPDIR="$PWD/$dir/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

max_len() {
  case "$1" in
    config) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

failed=""
summary=""
for h in $harnesses; do
  bin="$dir/tests/fuzz/fuzz_$h"
  seeds="tests/fuzz/corpus/$h"
  regs="tests/fuzz/regressions/$h"
  work="$dir/corpus/$h"
  crashes="$dir/crashes/$h"
  log="$dir/fuzz-$h.log"
  mkdir -p "$work" "$crashes"

  # 1. Every crash ever kept, once each: they must stay fixed.
  if [ -d "$regs" ] && [ -n "$(ls -A "$regs")" ]; then
    echo "== fuzz_$h: regressions ($(ls "$regs" | wc -l) inputs) =="
    if ! "$bin" -timeout=10 -rss_limit_mb=2048 "$regs"/* </dev/null >"$dir/regress-$h.log" 2>&1; then
      tail -n 60 "$dir/regress-$h.log"
      echo "fuzz_$h: a saved regression input fails again (full log: $dir/regress-$h.log)"
      failed="$failed $h(regression)"
    fi
  fi

  # 2. Fuzz. New inputs go to $work (the first directory); the seeds are
  #    read only. The regressions are not seeds: one still open would stop
  #    every run at its first input, and step 1 has reported it already.
  echo "== fuzz_$h: ${secs} s =="
  rc=0
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$h")" \
    -dict="tests/fuzz/dict/$h.dict" -artifact_prefix="$crashes/" -print_final_stats=1 \
    "$work" "$seeds" </dev/null >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -n 1 | cut -d' ' -f2)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    tail -n 80 "$log"
    echo "fuzz_$h: FAILED (exit $rc); the input is in $crashes/, the log in $log"
    failed="$failed $h"
    result=FAILED
  else
    result=ok
  fi
  summary="$summary
fuzz_$h: $result, ${runs:-?} runs in ${took:-<$secs} s (${rate:-?} exec/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
done

rm -rf "$TMPDIR"
echo "== fuzz summary ==$summary"
if [ -n "$failed" ]; then
  echo "fuzzing failed:$failed"
  exit 1
fi
