#!/bin/sh
# SPDX-License-Identifier: MIT
# The long crash loop: 200 cycles (or $1) of pipelining clients with retries
# while lianxind is SIGKILLed at random moments and restarted on the same
# data, then the kill-during-catch-up run. Prints the summary line of each.
# Needs a build in ./build (scripts/test.sh or cmake -S . -B build).
set -eu
cd "$(dirname "$0")/.."
cycles="${1:-200}"
LX_BUILD_DIR="${LX_BUILD_DIR:-$PWD/build}" LX_SOURCE_DIR="$PWD" LX_CRASH_CYCLES="$cycles" \
  LX_CATCHUP_APPEALS="${LX_CATCHUP_APPEALS:-5000}" \
  /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/integration/test_crash.py 2>&1 |
  grep -E "crash loop:|catch-up escalations|passed|failed|Error"
