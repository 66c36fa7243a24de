#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs scripts/demo.sh as a newcomer would and checks that it finished
# (exit 0, within ctest's 60 s) and showed at least one escalation, with the
# unit's name, and stopped what it started.
set -u
out=$("$(dirname "$0")/../scripts/demo.sh" 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 0 ] || { echo "demo_test: demo.sh exited $rc" >&2; exit 1; }
printf '%s\n' "$out" | grep -q '\[alert\] .* escalated qd\.[a-z.-]* ([^)]*) appeal ' ||
  { echo "demo_test: no escalation alert with a unit name" >&2; exit 1; }
printf '%s\n' "$out" | grep -q '^== done' || { echo "demo_test: no summary" >&2; exit 1; }
