#!/usr/bin/env bash
# Install the headless browser the web-page tests drive: Debian's `chromium`
# and `chromium-driver`. Idempotent and quiet: does nothing when
# /usr/bin/chromium and /usr/bin/chromedriver are already there.
# Needs root (apt-get); on a machine without apt-get it says so and fails.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: apt-get not found; install chromium and chromium-driver by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "browser.sh: could not install chromium and chromium-driver" >&2
  exit 1
fi
echo "browser.sh: installed $(/usr/bin/chromium --version 2>/dev/null)"
