#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages Lianxin needs to build, run and test,
# skipping the apt work entirely when everything is already there.
set -eu
PKGS="build-essential cmake pkg-config
      libuv1-dev libzmq3-dev libmsgpack-dev liblmdb-dev lmdb-utils libsodium-dev
      libyaml-dev libcjson-dev libsystemd-dev libcmocka-dev clang libclang-rt-14-dev
      python3 python3-zmq python3-msgpack python3-pytest python3-nacl python3-lmdb
      libmicrohttpd-dev libgnutls28-dev openssl chromium prometheus fonts-wqy-microhei
      libnats-dev nats-server gdb"
# The browser test installs playwright-core with npm; a machine that already
# has node and npm (Debian's or NodeSource's, which bundles npm and conflicts
# with Debian's npm package) keeps them.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
