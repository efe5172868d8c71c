"""Overlay snapshotter. Vocabulary (as containerd): a *committed* snapshot is an immutable
layer named by its ChainID; an *active* snapshot (keyed by container ID) is a writable
upper dir on top of a committed parent. The snapshotter returns mounts and mounts nothing.

Layout: `<root>/<n>/fs` (contents) and `<root>/<n>/work` (overlay workdir for active ones),
where `<n>` is a short number from the metadata store so option strings stay short."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import AlreadyExists, NotFound
from . import trash
from .metadata import Metadata
from .mount import Mount


class Snapshotter:
    """Prepare/commit/remove/mounts over overlayfs directories."""

    def __init__(self, root: Path, meta: Metadata) -> None:
        self.root = root
        self.meta = meta
        self.trash = root.parent / "trash"
        root.mkdir(parents=True, exist_ok=True)

    def _dir(self, sid: int) -> Path:
        return self.root / str(sid)

    def exists(self, key: str) -> bool:
        """Whether a snapshot with that key exists."""
        return self.meta.snapshot(key) is not None

    def fs_path(self, key: str) -> Path:
        """The `fs` directory of a snapshot."""
        row = self.meta.snapshot(key)
        if row is None:
            raise NotFound(f"snapshot {key} not found")
        return self._dir(row["id"]) / "fs"

    def prepare_layer(self, key: str, parent: str | None) -> Path:
        """Start a new committed-to-be layer; returns its empty `fs` dir to unpack into.
        It stays invisible (kind 'extracting') until commit_layer."""
        return self._new(key, parent, "extracting") / "fs"

    def commit_layer(self, key: str, size: int) -> None:
        """Mark an extracted layer committed."""
        self.meta.set_snapshot_kind(key, "committed", size)

    def commit_staged(self, staging_key: str, key: str, parent: str | None, size: int) -> None:
        """Commit a layer extracted under a temporary key (before its parent was known) as `key`
        on top of `parent`: overlay layer dirs do not depend on their parents' contents."""
        if self.meta.snapshot(key) is not None:
            raise AlreadyExists(f"snapshot {key} exists")
        self.meta.rekey_snapshot(staging_key, key, parent, "committed", size)

    def layer_dir(self, key: str) -> Path:
        """The directory holding a snapshot's `fs` (and, for layers, its `tarsplit`)."""
        return self.fs_path(key).parent

    def prepare_active(self, key: str, parent: str | None) -> None:
        """Create a writable snapshot on top of `parent`."""
        (self._new(key, parent, "active") / "work").mkdir()

    def _new(self, key: str, parent: str | None, kind: str) -> Path:
        if self.meta.snapshot(key) is not None:
            raise AlreadyExists(f"snapshot {key} exists")
        d = self._dir(self.meta.add_snapshot(key, parent, kind))
        shutil.rmtree(d, ignore_errors=True)
        (d / "fs").mkdir(parents=True)
        return d

    def chain(self, key: str | None) -> list[Path]:
        """`fs` dirs from `key` down to the base layer (topmost first)."""
        out = []
        while key is not None:
            row = self.meta.snapshot(key)
            if row is None:
                raise NotFound(f"snapshot {key} not found")
            out.append(self._dir(row["id"]) / "fs")
            key = row["parent"]
        return out

    def mounts(self, key: str) -> list[Mount]:
        """How to mount an active snapshot."""
        row = self.meta.snapshot(key)
        if row is None:
            raise NotFound(f"snapshot {key} not found")
        d = self._dir(row["id"])
        lowers = self.chain(row["parent"])
        if not lowers:
            return [Mount("bind", str(d / "fs"), ("rbind",))]
        return [Mount("overlay", "overlay", (
            "lowerdir=" + ":".join(str(p) for p in lowers),
            f"upperdir={d / 'fs'}", f"workdir={d / 'work'}", "index=off"))]

    def view_mounts(self, key: str) -> list[Mount]:
        """A read-only view of any snapshot (its own dir on top of its parents), for export,
        diff and copy out of a container that is not running."""
        return [Mount("overlay", "overlay", ("lowerdir=" + ":".join(str(p) for p in self.chain(key)), "ro"))]

    def remove(self, key: str, later: list[Path] | None = None) -> None:
        """Delete a snapshot (caller checks no child uses it). With `later`, the snapshot is gone
        when this returns but its files are only moved to the trash: their path is appended for
        the caller to purge off its critical path."""
        row = self.meta.snapshot(key)
        if row is None:
            return
        gone = trash.move(self._dir(row["id"]), self.trash)   # a crash from here on leaves no half layer
        self.meta.remove_snapshot(key)
        if later is not None and gone is not None:
            later.append(gone)
        else:
            trash.purge(gone)

    def usage(self, key: str) -> int:
        """Bytes used by the snapshot's own directory."""
        return dir_size(self.fs_path(key))

    def cleanup_incomplete(self) -> None:
        """Remove layers whose extraction was interrupted by a crash, and orphan dirs."""
        for key in self.meta.snapshots_of_kind("extracting"):
            self.remove(key)
        known = {str(r) for r in self.meta.snapshot_ids()}
        for p in self.root.iterdir():
            if p.name not in known:
                shutil.rmtree(p, ignore_errors=True)


def dir_size(path: Path) -> int:
    """Apparent size of the files below `path` (hardlinks counted once)."""
    import os
    total, seen = 0, set()
    for dirpath, _dirnames, filenames in os.walk(path):
        for n in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
