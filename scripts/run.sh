#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's first command: install what is missing, build, and run
# lianxind in the foreground with the sample configuration, storing under
# ./data. Extra arguments go to lianxind.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec build/lianxind --config config/lianxin.yaml --data ./data "$@"
