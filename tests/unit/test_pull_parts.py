"""Issue 9's pull, the parts that need no registry: platforms, manifest-list selection, and
the stream that verifies a blob's digest while it decompresses."""

from __future__ import annotations

import gzip
import hashlib
import io

import pytest

from dockyard.errors import InvalidArgument, NotFound
from dockyard.registry import pull


def test_platforms():
    assert pull.parse_platform("linux/arm64/v8") == ("linux", "arm64", "v8")
    assert pull.parse_platform("linux/x86_64") == ("linux", "amd64", "")
    assert pull.parse_platform("") == pull.host_platform()
    with pytest.raises(InvalidArgument, match="unknown operating system or architecture"):
        pull.parse_platform("linux")


def test_select_from_an_index():
    idx = {"manifests": [{"digest": "a", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
                         {"digest": "b", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                         {"digest": "c", "platform": {"os": "windows", "architecture": "amd64"}}]}
    assert pull._select(idx, ("linux", "arm", "v7"), "x")["digest"] == "b"
    with pytest.raises(NotFound, match="no matching manifest for linux/amd64"):
        pull._select(idx, ("linux", "amd64", ""), "x")


def _verified(blob: bytes, digest: str, mt: str = "application/vnd.oci.image.layer.v1.tar+gzip"):
    seen: list[dict] = []
    return pull._Verified(io.BytesIO(blob), {"digest": digest, "size": len(blob), "mediaType": mt}, "x",
                          seen.append), seen


def test_a_blob_is_decompressed_and_checked():
    data = b"layer bytes" * 1000
    blob = gzip.compress(data)
    v, seen = _verified(blob, "sha256:" + hashlib.sha256(blob).hexdigest())
    assert v.read() == data and any(m["status"] == "Download complete" for m in seen)


def test_a_blob_whose_digest_does_not_match_fails_at_its_end():
    blob = gzip.compress(b"x" * 100)
    v, _ = _verified(blob, "sha256:" + "1" * 64)
    with pytest.raises(InvalidArgument, match="verification failed"):
        v.read()


def test_zstd_layers():
    import zstandard
    data = b"zstd layer" * 500
    blob = zstandard.ZstdCompressor().compress(data)
    v, _ = _verified(blob, "sha256:" + hashlib.sha256(blob).hexdigest(), "application/vnd.oci.image.layer.v1.tar+zstd")
    assert v.read() == data
