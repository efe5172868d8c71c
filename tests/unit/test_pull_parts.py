"""Issue 9's pull, the parts that need no registry: platforms, manifest-list selection, and
the stream that verifies a blob's digest while it decompresses."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from dockyard.errors import InvalidArgument, NotFound
from dockyard.images import unpacker
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


def _blob(tmp_path, blob: bytes, digest: str, mt: str = "application/vnd.oci.image.layer.v1.tar+gzip"):
    """The worker's reader of a blob (images.unpacker), from a file."""
    f = tmp_path / "blob"
    f.write_bytes(blob)
    seen: list[dict] = []
    return unpacker._Blob({"source": {"file": str(f)}, "digest": digest, "size": len(blob), "media_type": mt},
                          seen.append)


def test_a_blob_is_decompressed_and_checked(tmp_path):
    data = b"layer bytes" * 1000
    blob = gzip.compress(data)
    assert _blob(tmp_path, blob, "sha256:" + hashlib.sha256(blob).hexdigest()).read() == data


def test_a_blob_whose_digest_does_not_match_fails_at_its_end(tmp_path):
    blob = gzip.compress(b"x" * 100)
    with pytest.raises(InvalidArgument, match="verification failed"):
        _blob(tmp_path, blob, "sha256:" + "1" * 64).read()


def test_a_blob_shorter_than_the_manifest_says_is_worth_another_try(tmp_path):
    blob = gzip.compress(b"y" * 100)
    b = _blob(tmp_path, blob, "sha256:" + hashlib.sha256(blob).hexdigest())
    b.size += 10
    with pytest.raises(unpacker.Transient, match="unexpected EOF"):
        b.read()


def test_zstd_and_uncompressed_layers(tmp_path):
    import zstandard
    data = b"zstd layer" * 500
    blob = zstandard.ZstdCompressor().compress(data)
    assert _blob(tmp_path, blob, "sha256:" + hashlib.sha256(blob).hexdigest(),
                 "application/vnd.oci.image.layer.v1.tar+zstd").read() == data
    assert _blob(tmp_path, data, "sha256:" + hashlib.sha256(data).hexdigest(),
                 "application/vnd.oci.image.layer.v1.tar").read() == data


def test_not_gzip_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidArgument, match="cannot decompress"):
        _blob(tmp_path, b"not gzip at all" * 10, "").read()


def test_claims_of_blobs_are_shared_then_forgotten():
    """Two pulls of one layer: the second waits for the first; when both let go, nothing of
    the digest is kept (the table of blobs in flight does not grow with every pull)."""
    import threading
    import time

    from dockyard.registry import pull
    order: list[str] = []
    with pull._claim({"sha256:a", "sha256:b"}):
        assert pull.busy_blobs() == {"sha256:a", "sha256:b"}

        def second() -> None:
            with pull._claim({"sha256:b"}):
                order.append("second")
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]
    assert pull.busy_blobs() == set() and pull._inflight == {}
