"""Removing big trees without stalling anyone: a tree is first renamed into the data root's
`trash/` (one atomic step: from then on it is gone for every reader, and a crash leaves it
where start-up empties it), then deleted by `rm -rf` in a process of its own, which holds no
lock of ours and no GIL (a Python walk of a million files in a worker thread takes the GIL
from the event loop thousands of times)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from . import mount


def remove_tree(path: Path, trash: Path) -> None:
    """Delete `path` (blocking: call it from a worker thread)."""
    purge(move(path, trash))


def move(path: Path, trash: Path) -> Path | None:
    """Step one: out of sight, atomically (None if it was not there)."""
    for m in mount.mounts_under(str(path)):   # a crash may have left one (a view of an export)
        mount.unmount(m)
    trash.mkdir(exist_ok=True)
    dest = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    except OSError:   # another filesystem, or a mount point: delete in place
        shutil.rmtree(path, ignore_errors=True)
        return None
    return dest


def purge(p: Path | None) -> None:
    """Step two: the deletion itself, in a process of its own."""
    if p is not None:
        _rm(p)


def purge_all(paths: list[Path]) -> None:
    """`purge` each of them."""
    for p in paths:
        _rm(p)


def empty(trash: Path) -> None:
    """What a crash left in the trash (blocking)."""
    if trash.is_dir():
        for p in trash.iterdir():
            _rm(p)


def _rm(p: Path) -> None:
    # --one-file-system: a mount left inside (it should not be) is never descended into
    r = subprocess.run(["rm", "-rf", "--one-file-system", "--", str(p)], capture_output=True)
    if r.returncode != 0 and p.exists():
        shutil.rmtree(p, ignore_errors=True)
