#!/usr/bin/env bash
# Install and start a Docker engine, then build the offline session images the docker runtime and its tests use:
#   local/bookworm-py          a Debian 12 base with Python 3.11, made with debootstrap (no registry needed)
#   nsml-harness/session:latest the default session image from ./Dockerfile on that base, with the CPU torch wheel
#                               from /opt/wheels when there is one (on a GPU machine: `harness image build`
#                               with the default CUDA PyTorch base instead)
# Idempotent: what exists is kept. Needs root and Debian's package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker version >/dev/null 2>&1; then
  setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
fi
docker version --format 'docker engine {{.Server.Version}}'

debian_mirror() {  # the Debian mirror this machine's apt uses: the harness's one rule (harness.runtime.eras)
  "$PY" -c 'from harness.runtime.eras import debian_mirror; print(debian_mirror())'
}

if ! docker image inspect local/bookworm-py >/dev/null 2>&1; then
  rootfs=$(mktemp -d /tmp/rootfs.XXXXXX)
  mirror=$(debian_mirror)
  echo "debootstrap from $mirror"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates bookworm "$rootfs" \
    "$mirror" >/tmp/debootstrap.log 2>&1 || { tail -20 /tmp/debootstrap.log; exit 1; }
  tar -C "$rootfs" -c . | docker import - local/bookworm-py:latest >/dev/null
  rm -rf "$rootfs"
fi

want=$("$PY" -c 'from harness.runtime.images import dockerfile_digest; print(dockerfile_digest())')
have=$(docker image inspect nsml-harness/session:latest \
       --format '{{ index .Config.Labels "nsml-harness.dockerfile" }}' 2>/dev/null || true)
if [ "$have" != "$want" ]; then  # missing, or built from an older Dockerfile
  wheels=()
  for w in /opt/wheels/torch-2.13.0+cpu-*.whl; do [ -f "$w" ] && wheels+=(--wheel "$w"); done
  "$PY" -m harness image build --base-image local/bookworm-py:latest "${wheels[@]}"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'bookworm-py|nsml-harness' || true
