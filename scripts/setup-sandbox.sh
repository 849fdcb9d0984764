#!/usr/bin/env bash
# Install Debian's bubblewrap, which the process runtime uses to sandbox participant code (no network, its own
# mounts only, as nobody). Idempotent; needs root and Debian's package registry. Without it, process-runtime
# runs are not isolated and say so.
set -euo pipefail
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "bubblewrap is not installed and this is not root: process-runtime runs will not be isolated" >&2
    exit 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
bwrap --version
