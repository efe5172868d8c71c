from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci import digest, reference


@pytest.mark.parametrize("ref,familiar,name", [
    ("busybox", "busybox", "docker.io/library/busybox"),
    ("busybox:1.36", "busybox:1.36", "docker.io/library/busybox"),
    ("user/app:v1", "user/app:v1", "docker.io/user/app"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b"),
    ("quay.io/x/y", "quay.io/x/y", "quay.io/x/y"),
    ("docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox"),
    ("busybox@sha256:" + "a" * 64, "busybox@sha256:" + "a" * 64, "docker.io/library/busybox"),
])
def test_parse(ref, familiar, name):
    r = reference.parse(ref)
    assert r.familiar() == familiar and r.name == name


@pytest.mark.parametrize("bad", ["", "UPPER", "a b", "a//b", "-a", "a:", "a:-t", "a@sha256:zz", "a" * 300, "ab:c" * 0 + "x/:t"])
def test_parse_rejects(bad):
    with pytest.raises(InvalidArgument):
        reference.parse(bad)


def test_default_tag_and_digest_tag_refusal():
    assert reference.parse_tagged("busybox").familiar() == "busybox:latest"
    with pytest.raises(InvalidArgument):
        reference.parse_tagged("busybox@sha256:" + "a" * 64)
    with pytest.raises(InvalidArgument):
        reference.parse("a" * 64)


def test_chain_ids():
    d1, d2 = digest.of_bytes(b"1"), digest.of_bytes(b"2")
    assert digest.chain_ids([d1]) == [d1]
    assert digest.chain_ids([d1, d2])[1] == digest.of_bytes(f"{d1} {d2}".encode())
    with pytest.raises(InvalidArgument):
        digest.validate("sha256:xyz")
