"""Plugins to and from a registry: an image whose config blob is the plugin's `config.json`
(media type `application/vnd.docker.plugin.v1+json`) and whose layers are its root filesystem,
in a Docker schema2 manifest — what `docker plugin push` writes and `docker plugin install`
reads. Every blob is checked against its digest. Blocking: run in worker threads."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

from ..archive.tarapply import apply_tar
from ..archive.tarwrite import write_tar
from ..errors import InvalidArgument
from ..oci import reference
from ..registry.client import Registry
from ..registry.pull import registry_host
from .config import MEDIA_TYPE

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
Progress = Callable[[dict[str, Any]], None]


def _registry(ref: reference.Reference, creds: dict[str, str] | None, scope: str = "pull") -> Registry:
    return Registry(registry_host(ref.domain), ref.path, creds, scope=scope)


def fetch_config(ref_text: str, creds: dict[str, str] | None) -> tuple[dict[str, Any], dict[str, Any], Registry]:
    """(manifest, raw config.json, registry) of a plugin reference; 400 if it is no plugin."""
    ref = reference.parse(ref_text).with_default_tag()
    reg = _registry(ref, creds)
    with reg.get(f"manifests/{ref.digest or ref.tag}", {"Accept": SCHEMA2}) as r:
        manifest = json.loads(r.read())
    cfg_desc = manifest.get("config") or {}
    if cfg_desc.get("mediaType") != MEDIA_TYPE:
        raise InvalidArgument(f"{ref.familiar()} is not a plugin: its config is {cfg_desc.get('mediaType')!r}, "
                              f"not {MEDIA_TYPE}")
    raw = _blob(reg, cfg_desc["digest"], int(cfg_desc.get("size") or 0), max_bytes=1 << 20)
    return manifest, json.loads(raw), reg


def _blob(reg: Registry, digest: str, size: int, max_bytes: int) -> bytes:
    if size > max_bytes:
        raise InvalidArgument(f"blob {digest}: {size} bytes, more than a plugin config may have")
    with reg.get(f"blobs/{digest}") as r:
        data = r.read(max_bytes + 1)
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise InvalidArgument(f"blob {digest}: its content does not match its digest")
    return data


def fetch_rootfs(reg: Registry, manifest: dict[str, Any], rootfs: str, progress: Progress) -> None:
    """Each layer downloaded to a spool file while its digest is checked, then unpacked into
    `rootfs` in order."""
    for desc in manifest.get("layers") or []:
        digest = desc["digest"]
        short = digest.split(":")[-1][:12]
        progress({"status": "Downloading", "progressDetail": {}, "id": short})
        h = hashlib.sha256()
        with tempfile.TemporaryFile(dir=os.path.dirname(rootfs)) as spool:
            with reg.get(f"blobs/{digest}") as r:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
                    spool.write(chunk)
            if "sha256:" + h.hexdigest() != digest:
                raise InvalidArgument(f"layer {digest}: its content does not match its digest")
            spool.seek(0)
            apply_tar(spool, rootfs, whiteouts="apply")
        progress({"status": "Download complete", "progressDetail": {}, "id": short})


def push(ref_text: str, raw_config: dict[str, Any], rootfs: str, creds: dict[str, str] | None,
         progress: Progress) -> str:
    """The root filesystem as one gzip layer and the config with its DiffID, then the manifest;
    the manifest's digest."""
    ref = reference.parse(ref_text).with_default_tag()
    if ref.digest:
        raise InvalidArgument("a plugin is pushed to a tag, not a digest")
    reg = _registry(ref, creds, scope="pull,push")
    with tempfile.TemporaryFile(dir=os.path.dirname(rootfs)) as spool:
        diff = hashlib.sha256()

        class _Tee:
            def write(self, b: bytes) -> int:
                diff.update(b)
                return gz.write(b)
        with gzip.GzipFile(fileobj=spool, mode="wb", mtime=0) as gz:
            write_tar(rootfs, _Tee(), whiteouts=False)   # type: ignore[arg-type]
        size = spool.tell()
        spool.seek(0)
        layer = spool.read()
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = dict(raw_config)
    cfg["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + diff.hexdigest()]}
    blob = json.dumps(cfg, separators=(",", ":")).encode()
    cfg_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    short = layer_digest.split(":")[-1][:12]
    progress({"status": "Preparing", "progressDetail": {}, "id": short})
    for digest, data in ((layer_digest, layer), (cfg_digest, blob)):
        with reg.request("HEAD", f"/v2/{reg.repo}/blobs/{digest}", ok=(404,)) as r:
            if r.status == 200:
                continue
        with reg.request("POST", f"/v2/{reg.repo}/blobs/uploads/") as r:
            location = reg.url(r.headers.get("Location", ""))
        sep = "&" if "?" in location else "?"
        with reg.request("PUT", f"{location}{sep}digest={digest}", {"Content-Type": "application/octet-stream",
                                                                     "Content-Length": str(len(data))}, data) as r:
            r.read()
    progress({"status": "Pushed", "progressDetail": {}, "id": short})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2,
                           "config": {"mediaType": MEDIA_TYPE, "size": len(blob), "digest": cfg_digest},
                           "layers": [{"mediaType": LAYER, "size": size, "digest": layer_digest}]}).encode()
    with reg.request("PUT", f"/v2/{reg.repo}/manifests/{ref.tag}", {"Content-Type": SCHEMA2}, manifest) as r:
        r.read()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    progress({"status": f"{ref.tag}: digest: {digest} size: {len(manifest)}"})
    return digest
