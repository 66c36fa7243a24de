#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's first command: install what is missing, build, and run
# lianxind in the foreground with the sample configuration, storing under
# ./data, with the web gateway lianxin-web beside it (http://127.0.0.1:7680/)
# once config/users.yaml exists. Extra arguments go to lianxind.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
if [ ! -f config/users.yaml ]; then
  echo "run.sh: no web gateway: add a user first:" \
       "build/lianxin passwd --jurisdiction qd admin >> config/users.yaml" >&2
  exec build/lianxind --config config/lianxin.yaml --data ./data "$@"
fi
build/lianxind --config config/lianxin.yaml --data ./data "$@" &
daemon=$!
build/lianxin-web --config config/lianxin.yaml &
web=$!
# Ctrl-C or a TERM stops both, by PID; either one ending stops the other.
trap 'kill $daemon $web 2>/dev/null' INT TERM
while kill -0 $daemon 2>/dev/null && kill -0 $web 2>/dev/null; do
  sleep 1
done
kill $daemon $web 2>/dev/null || true
wait
