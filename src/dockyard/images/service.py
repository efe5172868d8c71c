"""Image service: import, resolve, tag/untag, delete, prune, list. An image is a record
(ID = digest of its config blob) pointing into the content store, its layers unpacked once
into committed snapshots keyed by ChainID."""

from __future__ import annotations

import builtins
import datetime as _dt
import errno
import json
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..archive import tarsplit
from ..archive.tarapply import SizeLimitExceeded, apply_tar
from ..archive.tarsplit import Recorder
from ..errors import AlreadyExists, Conflict, InvalidArgument, NotFound, SystemError_
from ..oci import digest as dg
from ..oci import reference
from ..store.content import ContentStore
from ..store.metadata import Metadata
from ..store.snapshots import Snapshotter
from . import changes as changes_mod

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def now_iso() -> str:
    """Current UTC time, RFC 3339 with nanoseconds as Docker writes it."""
    t = _dt.datetime.now(_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


@dataclass(frozen=True)
class Image:
    """An image as the engine knows it."""

    id: str
    config: dict[str, Any]
    tags: list[str]
    digests: list[str]
    created: str
    size: int
    parent: str
    top_layer: str | None

    @property
    def container_config(self) -> dict[str, Any]:
        """The `config` object (Cmd, Env, Entrypoint...)."""
        return self.config.get("config") or {}


class ContainerRefs:
    """What the image service needs to know of containers (set by the composition root)."""

    def using(self, image_id: str) -> list[tuple[str, bool]]:  # pragma: no cover - protocol
        """(container id, running) of containers created from the image."""
        return []


class ImageService:
    """Images over content, snapshots and metadata."""

    def __init__(self, content: ContentStore, snapshots: Snapshotter, meta: Metadata) -> None:
        self.content = content
        self.snapshots = snapshots
        self.meta = meta
        self.containers: ContainerRefs = ContainerRefs()
        # held while layers are placed and the image that references them is recorded, and by
        # gc: a layer placed but not yet referenced must not be swept by a concurrent gc
        self.lock = threading.RLock()
        # (action, image id or reference, attributes): Docker's image events; wired by the daemon
        self.on_event: Callable[[str, str, dict[str, str]], None] = lambda *_: None
        self._configs: dict[str, dict[str, Any]] = {}   # config_of's memory (IDs are content digests)

    # --- reading ------------------------------------------------------------------
    def get(self, image_id: str) -> Image:
        """Image by exact ID."""
        row = self.meta.image(image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        cfg = json.loads(self.content.read(image_id))
        return Image(image_id, cfg, self.meta.tags_of(image_id), self.meta.digests_of(image_id),
                     row["created"], row["size"], row["parent"], row["top_layer"])

    def config_of(self, image_id: str) -> dict[str, Any]:
        """An image's config, parsed once and remembered (an ID is the digest of its config, so
        it never changes); treat it as read-only. NotFound if the image is gone."""
        if self.meta.image(image_id) is None:
            raise NotFound(f"No such image: {image_id}")
        cfg = self._configs.get(image_id)
        if cfg is None:
            cfg = json.loads(self.content.read(image_id))
            if len(self._configs) > 4096:
                self._configs.clear()
            self._configs[image_id] = cfg
        return cfg

    def resolve(self, name: str) -> Image:
        """Find an image by full/short ID, `sha256:` ID or reference, as Docker does."""
        if not name:
            raise NotFound("No such image: ")
        if name.startswith("sha256:"):
            hexpart = name[7:]
            if all(c in "0123456789abcdef" for c in hexpart) and hexpart:
                return self.get(self._by_prefix(hexpart, name))
            raise NotFound(f"No such image: {name}")
        try:
            ref = reference.parse(name).with_default_tag()
        except InvalidArgument:
            ref = None
        if ref is not None:
            iid = self.meta.tag(ref.familiar()) if not ref.digest else self._by_digest(ref)
            if iid:
                return self.get(iid)
        if 1 <= len(name) <= 64 and all(c in "0123456789abcdef" for c in name):
            return self.get(self._by_prefix(name, name))
        if ref is None:
            raise InvalidArgument(f"invalid reference format: {name}")
        raise NotFound(f"No such image: {ref.familiar()}")

    def _by_digest(self, ref: reference.Reference) -> str | None:
        row = self.meta.db.execute("SELECT image_id FROM repo_digests WHERE ref=?",
                                   (f"{ref.familiar_name}@{ref.digest}",)).fetchone()
        return row[0] if row else None

    def _by_prefix(self, prefix: str, name: str) -> str:
        ids = self.meta.image_ids_with_prefix(prefix)
        if not ids:
            raise NotFound(f"No such image: {name}")
        if len(ids) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {prefix}")
        return ids[0]

    def list(self) -> list[Image]:
        """Every image, newest first."""
        return [self.get(r["id"]) for r in self.meta.images()]

    def layer_dirs(self, img: Image) -> builtins.list[str]:
        """The image's layer directories, topmost first."""
        return [str(p) for p in self.snapshots.chain(img.top_layer)]

    # --- import -------------------------------------------------------------------
    def import_tar(self, stream: BinaryIO, repo: str = "", tag: str = "", changes: builtins.list[str] | None = None,
                   message: str = "", source: str = "-") -> Image:
        """`docker import`: one layer from a rootfs tar (plain or gzip), config from changes."""
        ref = None
        if repo:
            ref = reference.parse_tagged(f"{repo}:{tag}" if tag else repo)
        cfg_changes = changes_mod.apply({}, changes or [])
        st = self.stage_layer(stream)
        diff_id = st.diff_id
        created = now_iso()
        config = {
            "architecture": ARCH, "os": "linux", "created": created,
            "config": {k: v for k, v in cfg_changes.items()},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "comment": message or f"Imported from {source}"}],
        }
        if message:
            config["comment"] = message
        img = self.add_image_with_layer(st, None, config)
        self.on_event("import", img.id, {"name": img.id})
        if ref is not None:
            self.tag(img.id, ref.familiar())
        return self.get(img.id)

    def add_image_with_layer(self, st: "StagedLayer", parent_chain: str | None, config: dict[str, Any],
                             parent_image: str = "") -> Image:
        """Place a staged layer on `parent_chain` and record the image whose top layer it is
        (import, commit), with no gc in between."""
        try:
            with self.lock:
                self.place_layer(st, parent_chain)
                return self.add_image(config, parent_image)
        finally:
            self.drop_staged([st])

    def stage_layer(self, stream: BinaryIO) -> "StagedLayer":
        """Unpack a layer tar into a new snapshot under a temporary key, recording its tar
        (`tarsplit`) so it can be rebuilt byte for byte; its DiffID is known at the end. A crash
        leaves an 'extracting' snapshot, removed at the next start."""
        key = f"staging:{uuid.uuid4().hex}"
        fs = self.snapshots.prepare_layer(key, None)
        rec = Recorder(str(fs.parent))
        limit = self._space_for_layers()
        try:
            res = apply_tar(stream, str(fs), whiteouts="overlay", recorder=rec, max_bytes=limit)
            rec.finish(res.size, res.digest)
        except BaseException as e:
            rec.abort()
            self.snapshots.remove(key)
            if isinstance(e, SizeLimitExceeded):
                raise InvalidArgument(f"layer does not fit: its files add up to more than the {limit} bytes "
                                      "free on the data root (a compression bomb?)") from None
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise SystemError_("no space left on the data root while unpacking a layer") from None
            raise
        return StagedLayer(key, res.digest, res.bytes)

    def stage_in_worker(self, source: dict[str, Any], digest: str = "", size: int = 0, media_type: str = "",
                        on_progress: Callable[[int], None] = lambda _: None,
                        started: Callable[[Any], None] = lambda _: None) -> "StagedLayer":
        """As stage_layer, in a worker process (`unpacker`): `source` is a file or a URL (see
        there); the blob is checked against `digest` and `size` when given. `started(worker)`
        lets the caller cancel it."""
        from .unpacker import Worker
        key = f"staging:{uuid.uuid4().hex}"
        fs = self.snapshots.prepare_layer(key, None)
        job = {"source": source, "digest": digest, "size": size, "media_type": media_type, "fs": str(fs),
               "layer_dir": str(fs.parent), "max_bytes": self._space_for_layers()}
        w = Worker(job, on_progress)
        started(w)
        try:
            r = w.run()
        except BaseException:
            self.snapshots.remove(key)
            raise
        return StagedLayer(key, r["diff_id"], r["bytes"], int(r.get("blob_size") or 0))

    def _space_for_layers(self) -> int:
        """What a layer may take: the data root's free space less a reserve (5%, at most 1 GiB),
        so that a decompression bomb fails with a clear error instead of filling the disk."""
        st = os.statvfs(self.snapshots.root)
        total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        return max(0, free - min(1 << 30, total // 20))

    def place_layer(self, st: "StagedLayer", parent_chain: str | None) -> str:
        """Commit a staged layer on top of `parent_chain`; returns its ChainID. If that chain is
        already there the staged copy is dropped; if this staged copy was already placed on another
        parent, a copy is made from its recorded tar."""
        chain = st.diff_id if parent_chain is None else dg.of_bytes(f"{parent_chain} {st.diff_id}".encode())
        row = self.meta.snapshot(chain)
        if row is not None and row["kind"] == "committed":
            return chain
        if st.placed is not None:
            st2 = self._restage(st.placed)
            try:
                return self.place_layer(st2, parent_chain)
            finally:
                self.drop_staged([st2])
        try:
            self.snapshots.commit_staged(st.key, chain, parent_chain, st.size)
        except AlreadyExists:   # placed meanwhile by a concurrent load of the same layer
            return chain
        st.placed = chain
        return chain

    def drop_staged(self, staged: "builtins.list[StagedLayer]") -> None:
        """Remove staged layers that were not placed."""
        for st in staged:
            if st.placed is None:
                self.snapshots.remove(st.key)

    def _restage(self, chain: str) -> "StagedLayer":
        return self.stage_from_writer(self.layer_tar(chain)[1])

    def stage_from_writer(self, produce: Callable[[BinaryIO], Any]) -> "StagedLayer":
        """Stage the tar that `produce(out)` writes (run in a thread, through a pipe)."""
        r, w = os.pipe()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with open(w, "wb", buffering=1 << 20) as out:
                    produce(out)
            except BrokenPipeError:
                pass
            except BaseException as e:  # noqa: BLE001 - re-raised by the caller below
                errors.append(e)

        t = threading.Thread(target=run, name="layer-tar", daemon=True)
        t.start()
        try:
            with open(r, "rb", buffering=1 << 20) as src:
                st = self.stage_layer(src)
        finally:
            t.join()
        if errors:
            self.drop_staged([st])
            raise errors[0]
        return st

    def layer_tar(self, chain: str, diff_id: str | None = None) -> tuple[int, Callable[[BinaryIO], int]]:
        """(size, writer) of the exact tar of the top layer of `chain` (its DiffID unchanged):
        rebuilt from its tarsplit record, or the blob an older dockyard stored."""
        d = str(self.snapshots.layer_dir(chain))
        got = tarsplit.info(d)
        if got is not None:
            return got[0], lambda out: tarsplit.write_layer(d, out)
        if diff_id is not None and self.content.exists(diff_id):
            def copy(out: BinaryIO) -> int:
                with self.content.open(diff_id) as f:
                    return _copy(f, out)
            return self.content.path(diff_id).stat().st_size, copy
        raise NotFound(f"layer {diff_id or chain}: its tar cannot be rebuilt (no tarsplit record)")

    def add_image(self, config: dict[str, Any], parent: str = "") -> Image:
        """Store a config whose layers are already unpacked; return the image."""
        return self.add_config(json.dumps(config, separators=(",", ":")).encode(), parent)

    def add_config(self, blob: bytes, parent: str = "") -> Image:
        """Record an image from its exact config bytes (the ID is their digest)."""
        config = json.loads(blob)
        chains = dg.chain_ids(config["rootfs"]["diff_ids"])
        for c in chains:
            if self.meta.snapshot(c) is None:
                raise NotFound(f"layer {c} is not unpacked")
        size = sum((self.meta.snapshot(c) or {"size": 0})["size"] for c in chains)
        iid = self.content.put(blob)
        self.meta.put_image(iid, chains[-1] if chains else None, config.get("created") or now_iso(), parent, size,
                            time.time())
        return self.get(iid)

    # --- tags ---------------------------------------------------------------------
    def tag(self, image_id: str, ref: str) -> None:
        """Point `ref` (familiar, tagged) at the image."""
        self.meta.set_tag(ref, image_id)
        self.on_event("tag", image_id, {"name": ref})

    def tag_ref(self, source: str, repo: str, tag: str) -> None:
        """`POST /images/{name}/tag`."""
        img = self.resolve(source)
        ref = reference.parse_tagged(f"{repo}:{tag}" if tag else repo)
        self.tag(img.id, ref.familiar())

    # --- delete -------------------------------------------------------------------
    def delete(self, name: str, force: bool = False, prune: bool = True) -> builtins.list[dict[str, str]]:
        """`DELETE /images/{name}`: untag, or delete with Docker's conflict rules."""
        img = self.resolve(name)
        out = self._delete(img, name, force, prune)
        for item in out:
            if "Untagged" in item:
                self.on_event("untag", img.id, {"name": item["Untagged"]})
            else:
                self.on_event("delete", item["Deleted"], {"name": item["Deleted"]})
        return out

    def _delete(self, img: Image, name: str, force: bool, prune: bool) -> builtins.list[dict[str, str]]:
        out: list[dict[str, str]] = []
        by_ref = None
        try:
            r = reference.parse(name).with_default_tag()
            if self.meta.tag(r.familiar()) == img.id:
                by_ref = r.familiar()
        except InvalidArgument:
            pass
        users = self.containers.using(img.id)
        if by_ref is not None:
            if len(img.tags) > 1:
                self.meta.remove_tag(by_ref)
                return [{"Untagged": by_ref}]
            if users and not force:
                cid = users[0][0]
                raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force) - '
                               f"container {cid[:12]} is using its referenced image {img.id[7:19]}")
        else:
            if len(img.tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
                               "image is referenced in multiple repositories")
        running = [c for c, run in users if run]
        if running and by_ref is None:
            raise Conflict(f"conflict: unable to delete {img.id[7:19]} (cannot be forced) - "
                           f"image is being used by running container {running[0][:12]}")
        if users and not force:
            raise Conflict(f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
                           f"image is being used by stopped container {users[0][0][:12]}")
        children = self.meta.children_of_image(img.id)
        for t in img.tags:
            out.append({"Untagged": t})
        for d in img.digests:
            out.append({"Untagged": d})
        if children:
            if by_ref is None and not force:
                raise Conflict(f"conflict: unable to delete {img.id[7:19]} (cannot be forced) - image has dependent child images")
            with self.meta.tx():
                for t in img.tags:
                    self.meta.remove_tag(t)
            return out
        if running:
            # forced while a running container uses it: untag only, the ID stays for it (dockerd)
            with self.meta.tx():
                for t in img.tags:
                    self.meta.remove_tag(t)
            return out
        # forced past stopped containers: deleted, as dockerd does (their layers stay: gc keeps what a
        # container's snapshot reaches), and its untagged parents with it
        self.meta.delete_image(img.id)
        out.append({"Deleted": img.id})
        self.gc()
        if prune and img.parent:
            parent = self.meta.image(img.parent)
            if parent is not None and not self.meta.tags_of(img.parent) and not self.meta.children_of_image(img.parent) \
                    and not self.containers.using(img.parent):
                out.extend(self._delete(self.get(img.parent), img.parent, False, True))
        return out

    def gc(self) -> None:
        """Mark and sweep: drop committed layers no image or container reaches, and blobs no
        image refers to. Run after deletes, failed imports/loads, and at start-up."""
        with self.lock:
            self._gc()

    def _gc(self) -> None:
        reach: set[str] = set()
        keep_blobs: set[str] = set()
        for r in self.meta.images():
            keep_blobs.add(r["id"])
            try:
                keep_blobs.update(json.loads(self.content.read(r["id"]))["rootfs"]["diff_ids"])
            except Exception:  # noqa: BLE001 - a broken config must not stop gc of others
                pass
            key = r["top_layer"]
            while key and key not in reach:
                reach.add(key)
                row = self.meta.snapshot(key)
                key = row["parent"] if row else None
        for key in self.meta.snapshots_of_kind("active"):
            row = self.meta.snapshot(key)
            p = row["parent"] if row else None
            while p and p not in reach:
                reach.add(p)
                prow = self.meta.snapshot(p)
                p = prow["parent"] if prow else None
        for key in self.meta.snapshots_of_kind("committed"):
            if key not in reach:
                self.snapshots.remove(key)
        for d in list(self.content.walk()):
            if d not in keep_blobs:
                self.content.delete(d)

    def prune(self, dangling_only: bool = True, filters: dict[str, builtins.list[str]] | None = None
              ) -> tuple[builtins.list[dict[str, str]], int]:
        """`POST /images/prune`: dangling (or all unused) images."""
        from .filters import matches
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        for img in self.list():
            if self.meta.image(img.id) is None:
                continue
            if self.containers.using(img.id):
                continue
            if dangling_only and img.tags:
                continue
            if self.meta.children_of_image(img.id):
                continue
            if filters and not matches(img, {k: v for k, v in filters.items() if k != "dangling"}):
                continue
            for t in img.tags:
                self.meta.remove_tag(t)
                deleted.append({"Untagged": t})
                self.on_event("untag", img.id, {"name": t})
            try:
                deleted.extend(d for d in self.delete(img.id, force=True) if "Deleted" in d)
                reclaimed += img.size
            except NotFound:
                pass
        return deleted, reclaimed


@dataclass
class StagedLayer:
    """A layer unpacked under a temporary snapshot key, waiting for its parent to be known."""

    key: str
    diff_id: str
    size: int
    blob_size: int = 0           # bytes of the blob it came from (compressed), when unpacked by a worker
    placed: str | None = None   # the ChainID it was committed as


def _copy(src: BinaryIO, out: BinaryIO) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        out.write(chunk)
        n += len(chunk)
    return n
