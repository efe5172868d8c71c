"""What the registry reads in a manifest: its media type, the blobs and manifests it refers to,
its subject and artifact type. Schema2 and OCI manifests, manifest lists and OCI indexes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import digests
from .errors import RegistryError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEXES = (DOCKER_LIST, OCI_INDEX)
KNOWN = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
MAX_SIZE = 4 << 20


@dataclass
class Manifest:
    """A parsed manifest."""
    media_type: str
    blobs: list[str] = field(default_factory=list)       # config and layers (not foreign layers)
    children: list[str] = field(default_factory=list)    # manifests an index lists
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platforms: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES


def _invalid(msg: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", f"manifest invalid: {msg}")


def _descriptor(d: Any, what: str) -> dict[str, Any]:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not isinstance(d.get("mediaType", ""), str):
        raise _invalid(f"{what} is not a descriptor")
    digests.parse(d["digest"], "MANIFEST_INVALID")
    size = d.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{what} has an invalid size")
    return d


def parse(body: bytes, content_type: str = "") -> Manifest:
    """Parse and check a manifest body; `content_type` is the request's Content-Type."""
    if len(body) > MAX_SIZE:
        raise RegistryError("SIZE_INVALID", f"manifest is larger than {MAX_SIZE} bytes", status=413)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    ctype = content_type.split(";")[0].strip()
    mt = doc.get("mediaType")
    if mt is not None and not isinstance(mt, str):
        raise _invalid("mediaType is not a string")
    if mt and ctype and ctype not in ("application/json", "application/octet-stream") and mt != ctype:
        raise _invalid(f"mediaType {mt!r} does not match the Content-Type {ctype!r}")
    media = mt or (ctype if ctype in KNOWN else (OCI_INDEX if "manifests" in doc else OCI_MANIFEST))
    if media in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise _invalid("schema 1 manifests are not accepted (deprecated; push schema 2 or OCI)")
    if media not in KNOWN:
        raise _invalid(f"unsupported manifest media type {media!r}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    m = Manifest(media, raw=doc)
    at = doc.get("artifactType")
    if at is not None and not isinstance(at, str):
        raise _invalid("artifactType is not a string")
    ann = doc.get("annotations")
    if ann is not None and (not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())):
        raise _invalid("annotations must map strings to strings")
    m.annotations = ann
    if "subject" in doc and doc["subject"] is not None:
        m.subject = _descriptor(doc["subject"], "subject")["digest"]
    if m.is_index:
        lst = doc.get("manifests")
        if not isinstance(lst, list):
            raise _invalid("manifests is not a list")
        for i, d in enumerate(lst):
            _descriptor(d, f"manifests[{i}]")
            m.children.append(d["digest"])
            if isinstance(d.get("platform"), dict):
                m.platforms.append(d["platform"])
        m.artifact_type = at
        return m
    cfg = _descriptor(doc.get("config"), "config")
    layers = doc.get("layers", [])
    if not isinstance(layers, list):
        raise _invalid("layers is not a list")
    m.blobs.append(cfg["digest"])
    for i, d in enumerate(layers):
        _descriptor(d, f"layers[{i}]")
        if not d.get("urls"):   # foreign layers live elsewhere
            m.blobs.append(d["digest"])
    m.artifact_type = at or (cfg.get("mediaType") if cfg.get("mediaType") != EMPTY_CONFIG else None)
    return m
