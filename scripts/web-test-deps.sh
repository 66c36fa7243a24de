#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs playwright-core (the library only: it drives the system's Debian
# chromium, no browser is downloaded) from the npm registry into DIR/node,
# once: the browser test (tests/integration/test_web_browser.py) calls this
# with its build directory, so later runs reuse the cache.
set -eu
dir="${1:?usage: web-test-deps.sh BUILD_DIR}/node"
version=1.60.0  # the newest that runs on Debian 12's node 18
if [ -f "$dir/node_modules/playwright-core/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dir/node_modules/playwright-core/package.json"; then
  exit 0
fi
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name": "lianxin-web-tests", "private": true}' > package.json
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent "playwright-core@$version"
