#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing.
# The tests drive it with Playwright (no browser download: they use this binary).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "WARNING: chromium is not installed and apt-get is not available; the browser tests will be skipped." >&2
  exit 0
fi
run=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then run=(sudo -n); else
    echo "WARNING: chromium is missing and installing it needs root; the browser tests will be skipped." >&2
    exit 0
  fi
fi
echo "installing Debian's chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
  "${run[@]}" apt-get update -q >/dev/null
  "${run[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null
