#!/usr/bin/env bash
# Install Debian's headless Chromium for the web dashboard's browser tests (Playwright drives
# /usr/bin/chromium; no browser is ever downloaded by Playwright). Idempotent; needs root and Debian's package
# registry (the mirror apt is configured with).
set -euo pipefail
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium is not installed and this is not root: install it (apt-get install chromium)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version
