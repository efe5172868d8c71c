"""The pod holder: Dockyard's own process that keeps a pod sandbox's namespaces (network, IPC, UTS,
and PID when the pod shares it) alive, so a sandbox starts with no image pulled. It is a small static
C program (holder/holder.c) compiled by scripts/install.sh — or here, the first time it is needed,
when the install did not — and imported into the image store as a one-file image, `HOLDER_IMAGE`."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from ..errors import InvalidArgument

log = logging.getLogger(__name__)
HERE = Path(__file__).parent / "holder"
SOURCE = HERE / "holder.c"
BINARY = HERE / "dockyard-pod-holder"
HOLDER_IMAGE = "dockyard.local/pod-holder:1"


def build(out: Path) -> Path:
    """Compile the holder statically into `out` (blocking: run in a worker thread)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise InvalidArgument("the pod holder is not built and no C compiler is installed: run scripts/install.sh, "
                              "or start dockyardd with --pod-infra-image")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    p = subprocess.run([cc, "-static", "-Os", "-s", "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
    if p.returncode != 0:
        raise InvalidArgument(f"building the pod holder failed: {p.stderr.strip()[-500:]}")
    os.replace(tmp, out)
    return out


def binary(cache_dir: Path) -> Path:
    """The holder program: the installed one, else one built into `cache_dir`."""
    if BINARY.is_file():
        return BINARY
    cached = cache_dir / "dockyard-pod-holder"
    if cached.is_file() and cached.stat().st_mtime >= SOURCE.stat().st_mtime:
        return cached
    log.info("building the pod holder into %s", cached)
    return build(cached)


def image_tar(path: Path) -> bytes:
    """A layer holding only `/pause` (the holder), as `docker import` takes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tf.gettarinfo(str(path), arcname="pause")
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mode = 0o755
        with open(path, "rb") as f:
            tf.addfile(ti, f)
    return buf.getvalue()
