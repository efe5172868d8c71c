"""The storage-driver seam. Paths are '/'-separated and relative to the driver's root; every
method blocks (the registry calls them in worker threads). A missing path raises FileNotFoundError."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Stat:
    """Size in bytes and modification time (seconds since the epoch)."""
    size: int
    mtime: float


class Driver(abc.ABC):
    """What the registry needs of a store: small files written atomically, big files streamed,
    listings, and upload data that grows by appends and is committed by a move."""

    name = "driver"
    append_size = 4 << 20      # how many bytes of a request body are gathered before one append()

    @abc.abstractmethod
    def get(self, path: str) -> bytes:
        """A whole (small) file."""

    @abc.abstractmethod
    def put(self, path: str, data: bytes) -> None:
        """Write a file atomically: readers see the old content or the new, never a part."""

    @abc.abstractmethod
    def stat(self, path: str) -> Stat:
        """Size and mtime of a file."""

    @abc.abstractmethod
    def list(self, path: str) -> list[str]:
        """Names directly under a directory ([] when it does not exist)."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Remove a file or a whole directory; nothing to do when it is missing."""

    @abc.abstractmethod
    def touch(self, path: str) -> None:
        """Set a file's mtime to now (the garbage collector's grace period counts from it)."""

    @abc.abstractmethod
    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        """A file opened for reading at `offset`."""

    def local(self, path: str) -> Path | None:
        """The file on the local filesystem, when there is one (served with sendfile)."""
        return None

    @abc.abstractmethod
    def walk(self, path: str) -> Iterator[tuple[str, Stat]]:
        """Every file under a directory, as (path, stat)."""

    # upload data: appended to, then committed under a blob's path
    @abc.abstractmethod
    def append(self, path: str, parts: Sequence[bytes], offset: int) -> int:
        """Append the buffers at `offset` (the current size); returns the new size."""

    @abc.abstractmethod
    def upload_size(self, path: str) -> int:
        """How many bytes an upload holds (0 when it has none yet)."""

    @abc.abstractmethod
    def upload_reader(self, path: str) -> BinaryIO:
        """The upload's bytes from the start (to hash them again)."""

    @abc.abstractmethod
    def commit(self, upload: str, dest: str) -> None:
        """Make the upload's bytes the file `dest`, atomically (an existing `dest` is kept)."""
