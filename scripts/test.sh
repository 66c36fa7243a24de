#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's second command: install what is missing, then build and run
# the whole suite twice: a normal build, and one with AddressSanitizer and
# UndefinedBehaviorSanitizer. Both must pass.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs="$(nproc)"
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
    ctest --test-dir "$dir" --output-on-failure -j2
done
# Then fuzz each input path (events, queries, the config loader) for 60 s,
# after replaying every crash ever kept (scripts/fuzz.sh, tests/fuzz/README.md).
echo "== fuzz =="
scripts/fuzz.sh 60
