"""Digests the registry accepts (sha256, sha512), repository names and tags, per the spec's grammar."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .errors import RegistryError

_HEX = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


def parse(digest: str, code: str = "DIGEST_INVALID") -> tuple[str, str]:
    """(algorithm, hex) of a well-formed digest, else the spec's DIGEST_INVALID."""
    m = _DIGEST_RE.match(digest or "")
    if not m or len(m.group(2)) != _HEX[m.group(1)]:
        raise RegistryError(code, "invalid digest", {"digest": digest})
    return m.group(1), m.group(2)


def is_digest(ref: str) -> bool:
    """Whether a manifest reference looks like a digest (`alg:...`) rather than a tag."""
    return ":" in ref


def hasher(algorithm: str) -> Any:
    """A fresh hashlib object for an algorithm parse() accepted."""
    return hashlib.new(algorithm)


def of_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of bytes."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_name(name: str) -> str:
    """A repository name as the spec's grammar allows (≤ 255 characters), else NAME_INVALID."""
    if len(name) > 255 or not _NAME_RE.match(name):
        raise RegistryError("NAME_INVALID", "invalid repository name", {"name": name})
    return name


def check_tag(tag: str) -> str:
    """A tag as the spec's grammar allows, else TAG_INVALID (400)."""
    if not TAG_RE.match(tag):
        raise RegistryError("TAG_INVALID", "manifest tag did not match URI pattern", {"tag": tag})
    return tag
