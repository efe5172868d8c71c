"""`docker save` / `docker load` archives.

Written: the layout Docker 25+ writes, which Docker 20.10 also loads: an OCI image layout
(`oci-layout`, `index.json`, `blobs/sha256/…`) plus Docker's `manifest.json` and
`repositories` pointing at the same blobs. Layers are uncompressed tars, each written once
however many images share it.

Read: that layout, the classic Docker one (`manifest.json`, `<id>/layer.tar`, `<id>.json`,
possibly with symlinked duplicate layers), and a pure OCI layout (`index.json` only, layers
possibly gzip-compressed). The outer archive is streamed: large members are unpacked as
layers while they arrive (their DiffIDs computed on the way), small ones stay in memory until
the manifests are read at the end. Layers are written back from their unpacked files and
their recorded tar headers (`archive.tarsplit`), byte for byte.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..archive.tarread import TarReader
from ..archive.tarwrite import TarStream
from ..errors import InvalidArgument
from ..oci import digest as dg
from ..oci import reference
from .service import Image, ImageService, StagedLayer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SMALL = 4 << 20   # members up to this size are kept in memory (JSON documents, small layers)


# ---------------------------------------------------------------- save
def save(svc: ImageService, names: list[str], out: BinaryIO) -> None:
    """Write the named images as one archive (see `selection`)."""
    wanted = selection(svc, names)
    write(svc, wanted, out)


def selection(svc: ImageService, names: list[str]) -> list[tuple[Image, list[str]]]:
    """The images named and the tags each is saved with: the tag named; for a repository name
    alone, its tags; for an image ID, none (dockerd's rule: `load` then reports the ID). 404 for
    a name that is none of these."""
    wanted: list[tuple[Image, list[str]]] = []

    def want(img: Image, tags: list[str]) -> None:
        for i, (have, t) in enumerate(wanted):
            if have.id == img.id:
                wanted[i] = (have, t + [x for x in tags if x not in t])
                return
        wanted.append((img, tags))

    for n in names:
        try:
            r: reference.Reference | None = reference.parse(n)
        except InvalidArgument:
            r = None
        if r is not None and not r.tag and not r.digest:   # a repository: every tag of it
            found = [(img, [t for t in img.tags if reference.parse(t).familiar_name == r.familiar_name])
                     for img in svc.list()]
            found = [(img, t) for img, t in found if t]
            if found:
                for img, t in found:
                    want(img, t)
                continue
        img = svc.resolve(n)
        tags: list[str] = []
        if r is not None and (r.tag or r.digest):
            tagged = r.with_default_tag().familiar()
            tags = [tagged] if r.tag and svc.meta.tag(tagged) == img.id else []
        want(img, tags)   # by ID: no tags
    return wanted


def write(svc: ImageService, wanted: list[tuple[Image, list[str]]], out: BinaryIO) -> None:
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repos: dict[str, dict[str, str]] = {}
    ts = TarStream(out)
    ts.add_dir("blobs")
    ts.add_dir("blobs/sha256")

    def blob(digest: str, data: bytes) -> tuple[str, int]:
        path = f"blobs/sha256/{dg.hex_of(digest)}"
        if digest not in written:
            ts.add_bytes(path, data)
            written.add(digest)
        return path, len(data)

    for img, tags in wanted:
        svc.on_event("save", img.id, {"name": tags[0] if tags else img.id})
        cfg_bytes = svc.content.read(img.id)
        cfg_path, cfg_size = blob(img.id, cfg_bytes)
        layers = []
        diff_ids = img.config["rootfs"]["diff_ids"]
        for diff_id, chain in zip(diff_ids, dg.chain_ids(diff_ids), strict=True):
            path = f"blobs/sha256/{dg.hex_of(diff_id)}"
            size, write = svc.layer_tar(chain, diff_id)
            if diff_id not in written:
                ts.add_stream(path, size, write)
                written.add(diff_id)
            layers.append((diff_id, path, size))
        man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": img.id, "size": cfg_size},
               "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, _, s in layers]}
        man_bytes = json.dumps(man, separators=(",", ":")).encode()
        man_digest = dg.of_bytes(man_bytes)
        blob(man_digest, man_bytes)
        for tag_ref in tags or [""]:
            desc: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": man_digest, "size": len(man_bytes)}
            if tag_ref:
                r = reference.parse(tag_ref)
                desc["annotations"] = {"io.containerd.image.name": f"{r.name}:{r.tag}",
                                       "org.opencontainers.image.ref.name": r.tag or "latest"}
                repos.setdefault(r.familiar_name, {})[r.tag or "latest"] = dg.hex_of(layers[-1][0]) if layers else ""
            index.append(desc)
        manifest_json.append({"Config": cfg_path, "RepoTags": tags or None,
                              "Layers": [p for _, p, _ in layers]})
    ts.add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                           "manifests": index}).encode())
    ts.add_bytes("manifest.json", json.dumps(manifest_json).encode())
    ts.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repos:
        ts.add_bytes("repositories", json.dumps(repos).encode())
    ts.close()


# ---------------------------------------------------------------- load
@dataclass
class _Members:
    small: dict[str, bytes] = field(default_factory=dict)     # path → bytes
    staged: dict[str, StagedLayer] = field(default_factory=dict)  # path → layer unpacked as it streamed by
    failed: dict[str, str] = field(default_factory=dict)      # path → why it is not a layer
    links: dict[str, str] = field(default_factory=dict)       # path → target path

    def resolve(self, path: str) -> str:
        seen = 0
        path = posixpath.normpath(path)
        while path in self.links and seen < 40:
            path, seen = self.links[path], seen + 1
        return path

    def read(self, path: str) -> bytes:
        p = self.resolve(path)
        if p in self.small:
            return self.small[p]
        raise InvalidArgument(f"archive: {path} is missing or too large to be a JSON document")


def load(svc: ImageService, stream: BinaryIO, progress: Callable[[str], None] = lambda _: None,
         layer_progress: Callable[[str, int, int], None] | None = None) -> list[tuple[Image, list[str]]]:
    """Read an archive; unpack and record every image in it. Returns (image, tags loaded).
    `progress` gets the "Loaded image" lines, `layer_progress(id, bytes read, size)` (if given)
    follows each large member while it streams in.

    Members too large to be JSON are unpacked as layers while they stream by (one pass, no copy
    of the tar kept: see `archive.tarsplit`); which image and parent they belong to is only known
    from the manifests at the end, so they are staged and placed then."""
    m = _Members()
    workers = _Workers(svc)
    try:
        try:
            reader = TarReader(stream)
            for mem in reader:
                name = posixpath.normpath(mem.name.lstrip("./") or ".")
                if name.startswith("../") or name == "..":
                    raise InvalidArgument(f"invalid archive entry {mem.name!r}")
                if mem.issym() or mem.islnk():
                    target = mem.linkname if mem.islnk() else posixpath.join(posixpath.dirname(name), mem.linkname)
                    m.links[name] = posixpath.normpath(target.lstrip("/"))
                elif mem.isreg():
                    if mem.size <= SMALL:
                        m.small[name] = reader.read_payload(SMALL)
                    else:
                        src: Any = reader.payload()
                        if layer_progress is not None:
                            src = _Progress(src, _short_id(name), mem.size, layer_progress)
                        if mem.size >= SPOOL_MIN and workers.limit > 1:
                            workers.submit(name, src)   # spooled, then unpacked in a worker process
                            continue
                        try:
                            m.staged[name] = svc.stage_layer(src)
                        except InvalidArgument as e:
                            m.failed[name] = str(e)
            workers.wait(m)
            with svc.lock:   # no gc between placing the layers and recording the images
                return _record(svc, m, progress)
        finally:
            workers.close(m)
            svc.drop_staged(list(m.staged.values()))
    except BaseException:
        svc.gc()
        raise


SPOOL_MIN = 8 << 20   # smaller layers are unpacked as they stream by: a worker's start costs more


class _Workers:
    """Large layers of an archive: each is copied to a spool file as it streams by (the archive
    is read once, in order), then unpacked by a worker process while the reading goes on; up to
    one worker per CPU."""

    def __init__(self, svc: ImageService) -> None:
        import concurrent.futures
        import os
        self.svc = svc
        self.limit = min(4, os.cpu_count() or 1)
        self.pool = concurrent.futures.ThreadPoolExecutor(self.limit, thread_name_prefix="load-layer")
        self.jobs: dict[str, tuple[Any, Any]] = {}   # member → (future, spool path)
        self.running: list[Any] = []

    def submit(self, name: str, src: Any) -> None:
        path = self.svc.content.spool_path()
        try:
            with open(path, "wb") as f:
                while chunk := src.read(1 << 20):
                    f.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        fut = self.pool.submit(self.svc.stage_in_worker, {"file": str(path)}, started=self.running.append)
        self.jobs[name] = (fut, path)

    def wait(self, m: _Members) -> None:
        for name, (fut, path) in list(self.jobs.items()):
            try:
                m.staged[name] = fut.result()
            except InvalidArgument as e:
                m.failed[name] = str(e)
            finally:
                path.unlink(missing_ok=True)
            del self.jobs[name]

    def close(self, m: _Members) -> None:
        """After a failure: end the workers, keep what they staged for drop_staged."""
        for w in self.running:
            w.cancel()
        for name, (fut, path) in self.jobs.items():
            try:
                m.staged[name] = fut.result()
            except BaseException:  # noqa: BLE001 - the load is failing already
                pass
            path.unlink(missing_ok=True)
        self.pool.shutdown(wait=True)


def _short_id(name: str) -> str:
    """What a progress line calls a member: its digest or directory, shortened as Docker does."""
    parts = name.split("/")
    if len(parts) == 3 and parts[:2] == ["blobs", "sha256"]:
        return parts[2][:12]
    if len(parts) == 2 and parts[1] == "layer.tar":
        return parts[0][:12]
    return name


class _Progress:
    """Reports bytes read from a stream: every 2% (at least 1 MiB), and at the end."""

    def __init__(self, f: Any, ident: str, total: int, cb: Callable[[str, int, int], None]) -> None:
        self.f, self.ident, self.total, self.cb = f, ident, total, cb
        self.n = self.last = 0
        self.step = max(total // 50, 1 << 20)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.n += len(data)
        if self.n - self.last >= self.step or (self.n == self.total and self.last != self.n):
            self.last = self.n
            self.cb(self.ident, self.n, self.total)
        return data


def _layer(svc: ImageService, m: _Members, path: str) -> StagedLayer:
    p = m.resolve(path)
    if p in m.staged:
        return m.staged[p]
    if p in m.failed:
        raise InvalidArgument(f"archive: layer {path}: {m.failed[p]}")
    if p in m.small:
        st = m.staged[p] = svc.stage_layer(io.BytesIO(m.small[p]))
        return st
    raise InvalidArgument(f"archive: layer {path} is missing")


def _record(svc: ImageService, m: _Members, progress: Callable[[str], None]) -> list[tuple[Image, list[str]]]:
    entries: list[tuple[bytes, list[str], list[str]]] = []   # (config bytes, layer paths, tags)
    if "manifest.json" in m.small:
        try:
            man = json.loads(m.small["manifest.json"])
            for e in man:
                entries.append((m.read(e["Config"]), list(e["Layers"]), list(e.get("RepoTags") or [])))
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidArgument(f"invalid manifest.json: {e}") from None
    elif "index.json" in m.small:
        entries = _from_oci_index(m)
    else:
        raise InvalidArgument("archive has neither manifest.json nor index.json: not a docker save or OCI archive")
    out = []
    for cfg_bytes, layer_paths, tags in entries:
        try:
            config = json.loads(cfg_bytes)
            diff_ids = config["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidArgument(f"invalid image config: {e}") from None
        if len(diff_ids) != len(layer_paths):
            raise InvalidArgument("image config and manifest disagree on the number of layers")
        parent = None
        for want, path in zip(diff_ids, layer_paths, strict=True):
            st = _layer(svc, m, path)
            if st.diff_id != want:
                raise InvalidArgument(f"layer {path}: content digest {st.diff_id} does not match the config's {want}")
            parent = svc.place_layer(st, parent)
        iid = svc.add_config(cfg_bytes).id
        img = svc.get(iid)
        loaded = []
        for t in tags:
            ref = reference.parse_tagged(t)
            old = svc.meta.tag(ref.familiar())
            svc.tag(iid, ref.familiar())
            loaded.append(ref.familiar())
            if old and old != iid:
                progress(f"The image {ref.familiar()} already exists, renaming the old one with ID {old} to empty string\n")
            progress(f"Loaded image: {ref.familiar()}\n")
        if not tags:
            progress(f"Loaded image ID: {iid}\n")
        svc.on_event("load", iid, {"name": tags[0] if tags else iid})
        out.append((svc.get(img.id), loaded))
    return out


def _from_oci_index(m: _Members) -> list[tuple[bytes, list[str], list[str]]]:
    out = []
    try:
        index = json.loads(m.small["index.json"])
        stack = list(index.get("manifests") or [])
        while stack:
            desc = stack.pop(0)
            data = m.read(f"blobs/{desc['digest'].replace(':', '/')}")
            if desc.get("mediaType") in (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"):
                sub = json.loads(data)
                stack.extend(x for x in sub.get("manifests", []) if x.get("platform", {}).get("os", "linux") == "linux")
                continue
            man = json.loads(data)
            cfg = m.read(f"blobs/{man['config']['digest'].replace(':', '/')}")
            layers = [f"blobs/{ly['digest'].replace(':', '/')}" for ly in man["layers"]]
            ann = desc.get("annotations") or {}
            name = ann.get("io.containerd.image.name") or ""
            tags = [name] if name else []
            out.append((cfg, layers, tags))
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument(f"invalid OCI index: {e}") from None
    return out
