"""Images for registry tests, made without a daemon: a `docker save` archive (which skopeo
copies into a registry) from layer tars, and raw blobs/manifests for API-level tests."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..helpers import tar_bytes


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(dest: Path, layers: list[bytes], tag: str = "img:latest", cmd: list[str] | None = None,
                   arch: str = "amd64") -> Path:
    """A `docker save` archive of an image made of uncompressed layer tars."""
    diff_ids = [sha(layer) for layer in layers]
    config = json.dumps({"architecture": arch, "os": "linux", "created": "2026-12-01T00:00:00Z",
                         "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/bin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created": "2026-12-01T00:00:00Z", "created_by": f"layer {i}"}
                                     for i in range(len(layers))]}).encode()
    files: dict[str, bytes] = {f"{sha(config)[7:]}.json": config}
    names = []
    for layer in layers:
        name = f"{sha(layer)[7:]}/layer.tar"
        files[name] = layer
        names.append(name)
    files["manifest.json"] = json.dumps([{"Config": f"{sha(config)[7:]}.json", "RepoTags": [tag],
                                          "Layers": names}]).encode()
    dest.write_bytes(tar_bytes(files))
    return dest


def random_layer(size: int, name: str = "data.bin") -> bytes:
    """A layer tar with one file of random bytes (a layer no registry has yet)."""
    return tar_bytes({name: os.urandom(size)})


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def oci_image(layers: list[bytes], annotations: dict[str, str] | None = None, subject: dict[str, Any] | None = None,
              artifact_type: str | None = None, config_media: str = "application/vnd.oci.image.config.v1+json"
              ) -> tuple[bytes, dict[str, bytes]]:
    """(manifest bytes, {digest: blob}) of an OCI image whose layers are the given (gzip) blobs."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}}).encode()
    if config_media == "application/vnd.oci.empty.v1+json":
        config = b"{}"
    blobs = {sha(config): config, **{sha(x): x for x in layers}}
    m: dict[str, Any] = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "config": {"mediaType": config_media, "digest": sha(config), "size": len(config)},
                         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(x),
                                     "size": len(x)} for x in layers]}
    if artifact_type:
        m["artifactType"] = artifact_type
    if subject:
        m["subject"] = subject
    if annotations:
        m["annotations"] = annotations
    return json.dumps(m).encode(), blobs
