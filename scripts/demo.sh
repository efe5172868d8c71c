#!/bin/sh
# Install everything, make a busybox image from Debian's busybox-static, start dockyardd and
# run `dockyard run --rm busybox echo hello`. Leaves the daemon running (socket below).
set -eu
cd "$(dirname "$0")/.."
scripts/install.sh
SOCK=${DOCKYARD_SOCK:-/run/dockyard.sock}
export DOCKER_HOST=unix://$SOCK
if ! .venv/bin/dockyard version >/dev/null 2>&1; then
  .venv/bin/dockyardd -H "unix://$SOCK" >/var/log/dockyardd.log 2>&1 &
  for i in $(seq 1 100); do .venv/bin/dockyard version >/dev/null 2>&1 && break; sleep 0.1; done
fi
if ! .venv/bin/dockyard image inspect busybox >/dev/null 2>&1; then
  scripts/make-busybox-rootfs.sh /tmp/busybox-rootfs.tar
  .venv/bin/dockyard import /tmp/busybox-rootfs.tar busybox:latest
fi
.venv/bin/dockyard run --rm busybox echo hello
echo "dockyardd is running on $DOCKER_HOST (log: /var/log/dockyardd.log); try: DOCKER_HOST=$DOCKER_HOST docker ps"
