"""Content digests (`sha256:<hex>`)."""

from __future__ import annotations

import hashlib
import re

from ..errors import InvalidArgument

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def of_bytes(data: bytes) -> str:
    """Digest of a byte string."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def validate(digest: str) -> str:
    """Return the digest if well formed, else raise InvalidArgument."""
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest: {digest!r}")
    return digest


def hex_of(digest: str) -> str:
    """The hex part of a digest."""
    return validate(digest).split(":", 1)[1]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainIDs of a layer stack: chain(n) = sha256(chain(n-1) + " " + diffid(n))."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else of_bytes(f"{out[-1]} {d}".encode()))
    return out
