#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's second command: install what is missing, then build and run
# the whole suite twice: a normal build, and one with AddressSanitizer and
# UndefinedBehaviorSanitizer. Both must pass. Then the suites with threads
# beside the loop under ThreadSanitizer, and the fuzzers.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs="$(nproc)"
passed=0
for variant in release asan; do
  dir="build-test-$variant"
  flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
  [ "$variant" = asan ] && flags="-DCMAKE_BUILD_TYPE=Debug -DLX_SANITIZE=ON"
  echo "== $variant build =="
  cmake -S . -B "$dir" $flags >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $variant tests =="
  # ASan's leak checker cannot run under ptrace-restricted sandboxes; keep it on
  # where it works, and halt on the first error everywhere.
  ASAN_OPTIONS="abort_on_error=1:detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir "$dir" --output-on-failure -j2 | tee "$dir/ctest.out"
  # set -e does not see through the pipe: a failed run stops here.
  grep -q "^100% tests passed, 0 tests failed" "$dir/ctest.out"
  n=$(sed -n 's/^100% tests passed, 0 tests failed out of \([0-9]*\)$/\1/p' "$dir/ctest.out")
  passed=$((passed + n))
done
# Then the suites whose programs run threads beside their loop (lianxind:
# the count of stored records, census.c, and the JetStream mirror;
# lianxin-web: the alert follower beside the HTTP handlers), built with
# ThreadSanitizer: a race fails the test, as the program then exits 66. The
# whole suite under TSan would double CI's time.
echo "== tsan build =="
cmake -S . -B build-test-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLX_TSAN=ON >/dev/null
cmake --build build-test-tsan -j"$jobs" --target lianxind lianxin lx-loadgen escalate rank quota \
  hotspot jetstream lianxin-web lianxin-web-assets
echo "== tsan tests =="
# setarch -R: without address randomisation, as kernels with more mmap
# randomness than TSan's memory layout allows refuse it otherwise.
TSAN_OPTIONS="suppressions=$(pwd)/tests/tsan.supp:halt_on_error=0:exitcode=66" \
  setarch "$(uname -m)" -R ctest --test-dir build-test-tsan --output-on-failure -j2 -R '^it_test_(census|jetstream|web)$' \
  | tee build-test-tsan/ctest.out
grep -q "^100% tests passed, 0 tests failed" build-test-tsan/ctest.out
n=$(sed -n 's/^100% tests passed, 0 tests failed out of \([0-9]*\)$/\1/p' build-test-tsan/ctest.out)
passed=$((passed + n))
# Then fuzz each input path (events, queries, the config loader) for 45 s,
# after replaying every crash ever kept (scripts/fuzz.sh, tests/fuzz/README.md);
# 45 rather than 60 since the TSan stage came, to keep CI near 15 minutes.
echo "== fuzz =="
scripts/fuzz.sh 45
# One line for the whole run: every ctest suite of the builds, and the three
# fuzzers (each an ok above, or this script has already stopped).
echo "summary: $((passed + 3)) passed, 0 failed"
