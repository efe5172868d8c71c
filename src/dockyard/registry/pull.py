"""`docker pull`: manifest (list/index → this platform), config, layers, each verified against
its digest while it streams through decompression into a staged snapshot; the chain and the
image are recorded only once everything is verified. Blocking: run it in a worker thread.

Not yet (issue 9): layers in parallel worker processes, resumable downloads, login, push."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import platform as _platform
import time
import zlib
from collections.abc import Callable
from typing import Any

from ..errors import EngineError, InvalidArgument, NotFound, NotImplemented_, SystemError_
from ..images.service import ImageService, StagedLayer
from ..oci import digest as dg
from ..oci import reference
from . import hosts
from .client import Registry, Transient

log = logging.getLogger(__name__)
MAX_MANIFEST = 4 << 20
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}

Progress = Callable[[dict[str, Any]], None]


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this host, as OCI names them."""
    arch = _ARCH.get(_platform.machine(), _platform.machine())
    return "linux", arch, "v7" if arch == "arm" else ""


def parse_platform(text: str) -> tuple[str, str, str]:
    """`linux/arm64/v8` → ("linux", "arm64", "v8"); empty means this host."""
    if not text:
        return host_platform()
    parts = text.lower().split("/")
    if len(parts) < 2 or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"\"{text}\": unknown operating system or architecture: invalid argument")
    return parts[0], _ARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else ""


def registry_host(domain: str) -> str:
    """Where a reference's domain is served (Docker Hub's API host for docker.io)."""
    return "registry-1.docker.io" if domain == reference.DEFAULT_DOMAIN else domain


def pull(svc: ImageService, ref_text: str, plat: str, progress: Progress,
         creds: dict[str, str] | None = None) -> str:
    """Pull one reference; returns the image ID. Progress messages as dockerd's JSON stream."""
    ref = reference.parse(ref_text).with_default_tag()
    want = parse_platform(plat)
    tag_or_digest = ref.digest or ref.tag or "latest"
    reg, (manifest, mtype, mdigest) = _first_manifest(ref, creds, tag_or_digest)
    # the first message: errors before it are the request's status (a 404 for an unknown tag)
    progress({"status": f"Pulling from {ref.path}", "id": ref.tag or ref.digest})
    if ref.digest and mdigest != ref.digest:
        raise InvalidArgument(f"manifest digest {mdigest} does not match the reference's {ref.digest}")
    top_digest = mdigest
    if mtype in (DOCKER_LIST, OCI_INDEX):
        desc = _select(manifest, want, ref.familiar())
        manifest, mtype, mdigest = _manifest(reg, desc["digest"])
        if mdigest != desc["digest"]:
            raise InvalidArgument(f"manifest {desc['digest']}: content digest is {mdigest}")
    cfg_desc = manifest.get("config") or {}
    cfg = _blob_bytes(reg, cfg_desc.get("digest", ""), 16 << 20)
    config = json.loads(cfg)
    if config.get("architecture") and plat and (config.get("os"), _ARCH.get(config["architecture"],
                                                                             config["architecture"])) != want[:2]:
        raise NotFound(f"image with reference {ref.familiar()} was found but does not match the specified "
                       f"platform: wanted {'/'.join(x for x in want if x)}")
    diff_ids = config["rootfs"]["diff_ids"]
    layers = manifest.get("layers") or []
    if len(layers) != len(diff_ids):
        raise InvalidArgument("manifest and image config disagree on the number of layers")
    chains = dg.chain_ids(diff_ids)
    staged: list[StagedLayer] = []
    blobs = [(cfg_desc["digest"], cfg_desc)]   # for push: which blob each layer is in this repository
    try:
        parent = None
        for desc, diff_id, chain in zip(layers, diff_ids, chains, strict=True):
            short = desc["digest"].split(":", 1)[1][:12]
            blobs.append((diff_id, desc))
            row = svc.meta.snapshot(chain)
            if row is not None and row["kind"] == "committed":
                progress({"status": "Already exists", "progressDetail": {}, "id": short})
                parent = chain
                continue
            progress({"status": "Pulling fs layer", "progressDetail": {}, "id": short})
            st = _layer(svc, reg, desc, short, progress)
            staged.append(st)
            if st.diff_id != diff_id:
                raise InvalidArgument(f"layer {desc['digest']}: its content digest {st.diff_id} does not match "
                                      f"the image config's {diff_id}")
            progress({"status": "Extracting", "progressDetail": {}, "id": short})
            with svc.lock:
                parent = svc.place_layer(st, parent)
            progress({"status": "Pull complete", "progressDetail": {}, "id": short})
        with svc.lock:
            img = svc.add_config(cfg)
            if not ref.digest:
                svc.tag(img.id, ref.familiar())
    except BaseException:
        svc.gc()   # layers placed for an image that will not be: unreachable, swept
        raise
    finally:
        svc.drop_staged(staged)
    svc.meta.set_repo_digest(f"{ref.familiar_name}@{top_digest}", img.id)
    for key, desc in blobs:
        svc.meta.add_layer_blob(key, ref.domain, ref.path, desc["digest"], desc.get("mediaType") or "",
                                int(desc.get("size") or 0))
    svc.on_event("pull", img.id, {"name": ref.familiar()})
    progress({"status": f"Digest: {top_digest}"})
    return img.id


def pull_all_tags(svc: ImageService, name: str, plat: str, progress: Progress,
                  creds: dict[str, str] | None = None) -> str:
    """`docker pull --all-tags`: every tag the registry lists for the repository, in its order.
    Returns the last image's ID."""
    ref = reference.parse(name)
    reg = Registry(registry_host(ref.domain), ref.path, creds)
    tags: list[str] = []
    path = f"/v2/{ref.path}/tags/list?n=1000"
    while path:
        with reg.get_root(path) as r:
            body = json.loads(r.read(MAX_MANIFEST) or b"{}")
            link = r.headers.get("Link", "")
        tags += [t for t in body.get("tags") or [] if isinstance(t, str)]
        nxt = link.split(";")[0].strip().strip("<>") if 'rel="next"' in link else ""
        path = nxt if nxt.startswith("/v2/") else ""
    if not tags:
        raise NotFound(f"manifest for {ref.familiar_name} not found: the repository has no tags")
    last = ""
    for t in tags:
        last = pull(svc, f"{ref.familiar_name}:{t}", plat, progress, creds)
    return last


def _first_manifest(ref: reference.Reference, creds: dict[str, str] | None, tag_or_digest: str
                    ) -> tuple[Registry, tuple[dict[str, Any], str, str]]:
    """The manifest from the first of the registry's mirrors that has it, else from the registry
    itself; the endpoint that answered serves the blobs too."""
    host = registry_host(ref.domain)
    for base in hosts.current.mirrors_of(ref.domain):
        reg = Registry(host, ref.path, creds, base=base)
        try:
            return reg, _manifest(reg, tag_or_digest)
        except EngineError as e:   # any failure of a mirror: on to the next, then the registry
            log.info("mirror %s: %s", base, e.message)
    reg = Registry(host, ref.path, creds)
    try:
        return reg, _manifest(reg, tag_or_digest)
    except NotFound as e:
        raise NotFound(f"manifest for {ref.familiar()} not found: {e.message}") from None


def _manifest(reg: Registry, ref: str) -> tuple[dict[str, Any], str, str]:
    with reg.get(f"manifests/{ref}", {"Accept": ACCEPT}) as r:
        body = r.read(MAX_MANIFEST + 1)
        ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip()
    if len(body) > MAX_MANIFEST:
        raise InvalidArgument(f"manifest {ref}: larger than {MAX_MANIFEST} bytes")
    try:
        m = json.loads(body)
    except ValueError:
        raise InvalidArgument(f"manifest {ref}: not JSON") from None
    mtype = m.get("mediaType") or ctype
    if mtype in SCHEMA1 or m.get("schemaVersion") == 1:
        raise NotImplemented_("Docker Image Format v1 and Docker Image manifest version 2, schema 1 support is "
                              "disabled by default and will be removed in an upcoming release (schema 1 manifests "
                              "are refused)")
    if mtype not in (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX):
        if "manifests" in m:
            mtype = OCI_INDEX
        elif "layers" in m:
            mtype = OCI_MANIFEST
        else:
            raise InvalidArgument(f"manifest {ref}: unsupported media type {mtype!r}")
    return m, mtype, "sha256:" + hashlib.sha256(body).hexdigest()


def _select(index: dict[str, Any], want: tuple[str, str, str], name: str) -> dict[str, Any]:
    os_, arch, variant = want
    cands = [d for d in index.get("manifests") or []
             if (d.get("platform") or {}).get("os") == os_ and (d.get("platform") or {}).get("architecture") == arch]
    if variant:
        cands = [d for d in cands if (d.get("platform") or {}).get("variant", variant) == variant] or cands
    if not cands:
        raise NotFound(f"no matching manifest for {os_}/{arch}{'/' + variant if variant else ''} in the manifest "
                       f"list entries of {name}")
    return dict(cands[0])


def _blob_bytes(reg: Registry, digest: str, limit: int) -> bytes:
    if not digest.startswith("sha256:"):
        raise InvalidArgument(f"unsupported digest {digest!r}")
    with reg.get(f"blobs/{digest}") as r:
        data = r.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"blob {digest}: too large")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise InvalidArgument(f"blob {digest}: content does not match its digest")
    return data


class _Verified:
    """A blob's HTTP body, decompressed as it is read, its compressed bytes hashed and counted;
    at the end of the stream the digest must match or the read fails (nothing is committed)."""

    def __init__(self, body: Any, desc: dict[str, Any], short: str, progress: Progress) -> None:
        self.body, self.want, self.size = body, desc["digest"], int(desc.get("size") or 0)
        self.short, self.progress = short, progress
        self.h = hashlib.sha256()
        self.n = self.reported = 0
        self.buf = b""
        self.eof = False
        self.transient: Exception | None = None   # a network failure seen while reading
        mt = desc.get("mediaType", "")
        self.dec: Any = None
        if "zstd" in mt:
            try:
                import zstandard
            except ImportError:
                raise NotImplemented_(f"layer {self.want}: zstd layers need the zstandard module") from None
            self.dec = zstandard.ZstdDecompressor().decompressobj()
        elif mt.endswith(("gzip", "tar.gzip", ".gzip")) or "gzip" in mt or mt.endswith("rootfs.diff.tar.gzip"):
            self.dec = _gzip()

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buf) < n):
            try:
                chunk = self.body.read(1 << 20)
            except (OSError, http.client.HTTPException) as e:
                self.transient = e   # the tar reader above would call it a bad archive
                raise
            if not chunk:
                self.eof = True
                if self.dec is not None and hasattr(self.dec, "flush"):
                    self.buf += self.dec.flush()
                if self.size and self.n < self.size:   # the connection ended early: worth another try
                    self.transient = ConnectionError(f"unexpected EOF after {self.n} of {self.size} bytes")
                    raise self.transient
                if "sha256:" + self.h.hexdigest() != self.want:
                    raise InvalidArgument(f"filesystem layer verification failed for digest {self.want}")
                if self.size and self.n != self.size:
                    raise InvalidArgument(f"layer {self.want}: {self.n} bytes, the manifest says {self.size}")
                self.progress({"status": "Verifying Checksum", "progressDetail": {}, "id": self.short})
                self.progress({"status": "Download complete", "progressDetail": {}, "id": self.short})
                break
            self.h.update(chunk)
            self.n += len(chunk)
            self.buf += self.dec.decompress(chunk) if self.dec is not None else chunk
            if self.n - self.reported >= max(self.size // 50, 1 << 20):
                self.reported = self.n
                self.progress({"status": "Downloading", "progressDetail": {"current": self.n, "total": self.size},
                               "id": self.short})
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _gzip() -> Any:
    try:   # isal: the fast implementation made for it
        from isal import isal_zlib
        return isal_zlib.decompressobj(31)
    except ImportError:
        return zlib.decompressobj(31)


RETRIES = 5   # attempts per layer after a dropped or stalled connection (1, 2, 4, 8 s apart)


def _layer(svc: ImageService, reg: Registry, desc: dict[str, Any], short: str, progress: Progress) -> StagedLayer:
    """One layer, from its first byte: a connection that drops or stalls (no byte for the
    client's timeout) is tried again with back-off; a digest that does not match is not."""
    digest = desc.get("digest", "")
    if not digest.startswith("sha256:"):
        raise InvalidArgument(f"unsupported layer digest {digest!r}")
    for attempt in range(RETRIES):
        try:
            return _layer_once(svc, reg, desc, short, progress)
        except (OSError, http.client.HTTPException, Transient) as e:
            if attempt == RETRIES - 1:
                raise SystemError_(f"layer {digest}: {e}") from None
            wait = 1 << attempt
            progress({"status": f"Retrying in {wait} second{'s' if wait > 1 else ''}", "progressDetail": {},
                      "id": short})
            time.sleep(wait)
    raise AssertionError("unreachable")


def _layer_once(svc: ImageService, reg: Registry, desc: dict[str, Any], short: str,
                progress: Progress) -> StagedLayer:
    with reg.get(f"blobs/{desc['digest']}") as r:
        src = _Verified(r, desc, short, progress)
        try:
            st = svc.stage_layer(src)  # type: ignore[arg-type]
        except InvalidArgument:
            if src.transient is not None:
                raise src.transient from None
            raise
        if not src.eof:   # the tar ended before the blob did: read the rest, so the digest is checked
            try:
                while src.read(1 << 20):
                    pass
            except BaseException:
                svc.drop_staged([st])
                raise
    return st
