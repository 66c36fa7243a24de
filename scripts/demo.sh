#!/bin/sh
# SPDX-License-Identifier: MIT
#
# demo.sh: the whole loop in under a minute, with nothing but a built tree.
#
# Starts lianxind on a scratch directory with the test clock running fast
# (one day of daemon time in about 0.4 s), on ipc:// endpoints inside that
# directory (so it never collides with a daemon on the default ports),
# follows the alerts with `lianxin watch`, publishes a small sample (visits
# to a few households; appeals of several categories: one resolved and
# confirmed by the resident, one explained, one referred, one left alone),
# waits until the one left alone has climbed community -> township -> county
# and gone overdue, prints a short summary (`lianxin stats`, the appeal's
# state and its history), and stops everything it started. Exit 0.
#
#   scripts/demo.sh            (LX_BUILD_DIR=DIR for a build elsewhere than ./build)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LX_BUILD_DIR:-$ROOT/build}
for exe in lianxind lianxin; do
  if [ ! -x "$BUILD/$exe" ]; then
    echo "demo: $BUILD/$exe is missing; build first:" >&2
    echo "  cmake -S . -B build && cmake --build build -j2" >&2
    exit 2
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lianxin-demo-XXXXXX")
DAEMON_PID=
WATCH_PID=
WEB_PID=
stop_all() {
  for pid in $WATCH_PID $WEB_PID $DAEMON_PID; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  WATCH_PID=
  WEB_PID=
  DAEMON_PID=
}
cleanup() {
  stop_all
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The client finds the daemon through these (lianxin --help).
LIANXIN_INGEST="ipc://$TMP/ingest.sock"
LIANXIN_ALERTS="ipc://$TMP/alerts.sock"
LIANXIN_QUERY="ipc://$TMP/query.sock"
export LIANXIN_INGEST LIANXIN_ALERTS LIANXIN_QUERY
LX="$BUILD/lianxin"

# Monday 2026-03-02 09:00 in Qingde (UTC+8), 200,000 times faster than real.
START_MS=1772413200000
SPEED=200000

say() { printf '\n== %s\n' "$*"; }

say "starting lianxind on $TMP (test clock from 2026-03-02 09:00 +08:00, x$SPEED)"
LIANXIN_FAKE_CLOCK="$START_MS:$SPEED" "$BUILD/lianxind" --config "$ROOT/config/lianxin.yaml" \
  --data "$TMP/data" --ingest "$LIANXIN_INGEST" --alerts "$LIANXIN_ALERTS" \
  --query "$LIANXIN_QUERY" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
i=0
until "$LX" --timeout 300 head >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 50 ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "demo: lianxind did not start:" >&2
    cat "$TMP/daemon.log" >&2
    exit 1
  fi
done
echo "listening on $LIANXIN_INGEST, $LIANXIN_ALERTS, $LIANXIN_QUERY"

# The supervisors' dashboard beside it, when the gateway is built: a user
# "demo" (password "demo") who sees the whole county, on a port of its own.
if [ -x "$BUILD/lianxin-web" ]; then
  printf 'demo\ndemo\n' | "$LX" passwd --jurisdiction qd demo >"$TMP/users.yaml"
  cp "$ROOT/config/lianxin.yaml" "$TMP/lianxin.yaml"
  WEB_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$BUILD/lianxin-web" --config "$TMP/lianxin.yaml" --listen "127.0.0.1:$WEB_PORT" \
    --query "$LIANXIN_QUERY" --alerts "$LIANXIN_ALERTS" 2>"$TMP/web.log" &
  WEB_PID=$!
  echo "dashboard: http://127.0.0.1:$WEB_PORT/ (user demo, password demo; it stops with the demo)"
fi

say "lianxin watch qd: every alert in the county, as it comes"
TZ=Asia/Shanghai "$LX" watch qd >"$TMP/watch.txt" 2>&1 &
WATCH_PID=$!
sleep 0.3 # let the subscription reach the daemon before anything happens
SHOWN=0
show_alerts() { # prints the watch lines that came since the last call
  n=$(wc -l <"$TMP/watch.txt")
  if [ "$n" -gt "$SHOWN" ]; then
    sed -n "$((SHOWN + 1)),${n}p" "$TMP/watch.txt" | sed 's/^/  [alert] /'
    SHOWN=$n
  fi
}

say "publishing: 4 visits, 4 appeals"
"$LX" publish --fill <<'JSON' | sed 's/^/  ack /'
{"type":"visit","unit":"qd.hx.dy","actor":"cadre-li","body":{"household":"hh-dy-001","mode":"periodic","minutes":40}}
{"type":"visit","unit":"qd.xs.sq","actor":"cadre-wang","body":{"household":"hh-sq-017","mode":"pairing"}}
{"type":"visit","unit":"qd.nh.hb","actor":"cadre-zhao","body":{"household":"hh-hb-008","mode":"roving","note":"old well needs a cover"}}
{"type":"appeal","unit":"qd.hx.dy","actor":"cadre-li","body":{"appeal":"AP-JOBS-1","household":"hh-dy-001","category":"jobs","summary":"son back from the city, needs work near home"}}
{"type":"appeal","unit":"qd.xs.sq","actor":"cadre-wang","body":{"appeal":"AP-HOUSE-2","household":"hh-sq-017","category":"housing","summary":"roof leaks since the storm"}}
{"type":"appeal","unit":"qd.hx.xc","actor":"cadre-chen","body":{"appeal":"AP-HEALTH-3","household":"hh-xc-004","category":"health","priority":"urgent","summary":"needs a specialist the clinic does not have"}}
{"type":"appeal","unit":"qd.nh.hb","actor":"cadre-zhao","body":{"appeal":"AP-ENV-4","household":"hh-hb-008","category":"environment","summary":"rubbish dumped by the lake every night"}}
{"type":"visit","unit":"qd.hx.dy","actor":"cadre-li","body":{"household":"hh-dy-001","mode":"appointment","appeal":"AP-JOBS-1"}}
{"type":"resolution","unit":"qd.hx.dy","actor":"cadre-li","body":{"appeal":"AP-JOBS-1","outcome":"resolved","note":"placed at the co-op's packing line"}}
{"type":"feedback","unit":"qd.hx.dy","actor":"member-3","body":{"appeal":"AP-JOBS-1","satisfied":true}}
{"type":"resolution","unit":"qd.xs.sq","actor":"cadre-wang","body":{"appeal":"AP-HOUSE-2","outcome":"explained","note":"repair fund opens in April; family told and added to the list"}}
{"type":"resolution","unit":"qd.hx.xc","actor":"cadre-chen","body":{"appeal":"AP-HEALTH-3","outcome":"referred","note":"referred to the county hospital"}}
JSON

say "AP-ENV-4 is left alone: watch it climb community -> township -> county (about 11 s)"
i=0
until grep -q " overdue " "$TMP/watch.txt" 2>/dev/null; do
  show_alerts
  i=$((i + 1))
  if [ "$i" -ge 400 ]; then
    echo "demo: no overdue alert within 40 s" >&2
    exit 1
  fi
  sleep 0.1
done
sleep 0.3
show_alerts

say "lianxin stats"
"$LX" stats

say "lianxin appeal AP-ENV-4"
TZ=Asia/Shanghai "$LX" appeal AP-ENV-4

say "its history: lianxin replay --appeal AP-ENV-4"
"$LX" replay --appeal AP-ENV-4 |
  sed -E 's/^\{"seq":([0-9]+),"rat":([0-9]+).*"type":"([a-z]+)".*/  seq \1  \3  &/' |
  sed -E 's/  \{.*"kind":"([a-z]+)".*"to":"([a-z]+)".*/  \1 -> \2/; s/  \{.*"tier":"([a-z]+)".*/  (\1)/; s/  \{.*//'

stop_all
say "done: lianxind and watch stopped, $TMP removed"
