#!/bin/sh
# Install what Dockyard needs on Debian (as root) and the project into ./.venv.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null 2>&1; then
  apt-get update -q
  # docker.io: the reference docker CLI (and dockerd for benchmarks); runc/crun: swappable runtimes
  apt-get install -y -q --no-install-recommends busybox-static runc crun docker.io libseccomp2 iptables \
    python3-venv ca-certificates tar gzip e2fsprogs util-linux docker-registry skopeo openssl tmux tini iproute2 \
    docker-compose chromium chromium-driver containernetworking-plugins gcc libc6-dev etcd-server etcd-client iperf3
  # e2fsprogs: the full-disk test's loop fs; docker-registry (Distribution 2.8) and skopeo: the registry
  # tests; openssl: their CA and certificates; tmux: terminal tests (debootstrap: benchmarks only)
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
# the CRI's messages and services, from the project's own .proto (grpcio-tools)
.venv/bin/python -m grpc_tools.protoc -I src --python_out=src --grpc_python_out=src --pyi_out=src \
  src/dockyard/cri/proto/runtime_v1.proto
# the pod holder (a static C program: each pod sandbox's namespaces are held by it)
cc -static -Os -s -o src/dockyard/cri/holder/dockyard-pod-holder src/dockyard/cri/holder/holder.c
# the exec helper (a static C program: joins a running container and execs a process in it —
# runtime/execplan.py; without it the monitor forks its Python runtime, ~10 ms slower per exec)
cc -static -O2 -s -Wall -o src/dockyard/runtime/nsexec/dockyard-nsexec src/dockyard/runtime/nsexec/nsexec.c
src/dockyard/runtime/nsexec/dockyard-nsexec -v
# the CLI's launcher: the interpreter without `site` (-S: no .pth files, no site-packages scan, no
# setuptools' distutils hook — ~4 ms of every command), its paths written here instead
site_dir=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > .venv/bin/dockyard <<EOF
#!$PWD/.venv/bin/python3 -S
import sys
sys.path[1:1] = ["$PWD/src", "$site_dir"]
from dockyard.cli.main import main
sys.exit(main())
EOF
chmod +x .venv/bin/dockyard
# byte-compile now: with PYTHONDONTWRITEBYTECODE set, every CLI start would otherwise recompile
# (level 2 too: the monitor runs with -OO)
.venv/bin/python -m compileall -q -o 0 -o 2 src/dockyard >/dev/null
