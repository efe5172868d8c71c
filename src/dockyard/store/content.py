"""Content-addressed blob store: `blobs/sha256/<hex>`, written via `ingest/` and committed
by digest-verified `os.replace`, so a crash never leaves a half blob under its digest."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidArgument, NotFound
from ..oci import digest as dg


class ContentStore:
    """Blobs by digest. Lifecycle: writer() → write → commit(expected) → open()/delete()."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "ingest").mkdir(parents=True, exist_ok=True)
        (root / "partial").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where a committed blob lives."""
        return self.root / "blobs" / "sha256" / dg.hex_of(digest)

    def exists(self, digest: str) -> bool:
        """Whether the blob is committed."""
        return self.path(digest).exists()

    def open(self, digest: str) -> BinaryIO:
        """Open a committed blob for reading."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def read(self, digest: str) -> bytes:
        """Whole blob as bytes (for small blobs: configs, manifests)."""
        with self.open(digest) as f:
            return f.read()

    def put(self, data: bytes) -> str:
        """Store bytes, return their digest."""
        w = self.writer()
        w.write(data)
        return w.commit()

    def writer(self) -> "BlobWriter":
        """A writer into a fresh ingest file."""
        return BlobWriter(self)

    def delete(self, digest: str) -> None:
        """Remove a blob if present."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[str]:
        """Digests of every committed blob."""
        for p in (self.root / "blobs" / "sha256").iterdir():
            yield "sha256:" + p.name

    def partial_path(self, digest: str) -> Path:
        """Where the first bytes of a blob being downloaded are kept across attempts and restarts
        (a pull resumes from them)."""
        return self.root / "partial" / dg.hex_of(digest)

    def sweep_partials(self, older_than: float | None = 24 * 3600, busy: set[str] | None = None) -> int:
        """Remove partial downloads not touched for `older_than` seconds (None: all) that are
        not `busy` (digests being downloaded); returns the bytes freed."""
        import time
        freed = 0
        now = time.time()
        for p in (self.root / "partial").iterdir():
            if busy and f"sha256:{p.name}" in busy:
                continue
            try:
                st = p.stat()
                if older_than is None or now - st.st_mtime > older_than:
                    p.unlink()
                    freed += st.st_size
            except FileNotFoundError:
                pass
        return freed

    def spool_path(self) -> Path:
        """A fresh file name in the ingest area (removed at start-up if left behind)."""
        return self.root / "ingest" / uuid.uuid4().hex

    def clean_ingest(self) -> None:
        """Drop leftovers of writes interrupted by a crash."""
        for p in (self.root / "ingest").iterdir():
            p.unlink(missing_ok=True)


class BlobWriter:
    """Streams into `ingest/`, hashing as it goes; commit verifies and renames."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self.tmp = store.root / "ingest" / uuid.uuid4().hex
        self.f = open(self.tmp, "wb")
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append data."""
        self.f.write(data)
        self.h.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        """Digest of what was written so far."""
        return "sha256:" + self.h.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        """Verify against `expected` (if given), fsync and move into place."""
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        d = self.digest
        if expected is not None and expected != d:
            self.tmp.unlink(missing_ok=True)
            raise InvalidArgument(f"digest mismatch: expected {expected}, got {d}")
        os.replace(self.tmp, self.store.path(d))
        return d

    def abort(self) -> None:
        """Throw the partial write away."""
        if not self.f.closed:
            self.f.close()
        self.tmp.unlink(missing_ok=True)
