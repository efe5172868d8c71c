"""`docker push`: for each layer, the registry is asked whether it has the blob this layer was
last known as (distribution metadata: DiffID → compressed digest per registry repository), a
blob known in another repository of the same registry is mounted from there, and the rest is
rebuilt from the layer's tar record, gzip-compressed as it streams, and uploaded (a streamed
PATCH, then PUT with the digest) — `max-concurrent-uploads` layers at once. Then the config and the manifest.
Blocking: run it in a worker thread."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from ..errors import InvalidArgument, NotFound, SystemError_
from ..images.service import ImageService
from ..oci import digest as dg
from ..oci import reference
from . import hosts
from .client import Registry, Transient
from .pull import DOCKER_MANIFEST, OCI_MANIFEST, registry_host

Progress = Callable[[dict[str, Any]], None]
RETRIES = 3
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LEVEL = 1   # isal's fastest: the registry is usually near, the CPU the bottleneck
CHUNK = 16 << 20   # upload chunk: a blob up to this goes in one PUT; each chunk is held until acknowledged


def push(svc: ImageService, name: str, tag: str, progress: Progress, creds: dict[str, str] | None = None
         ) -> list[dict[str, Any]]:
    """Push `name:tag`, or every tag of the repository `name` when `tag` is empty. Returns the
    aux records ({Tag, Digest, Size}) of the manifests pushed."""
    ref = reference.parse(name)
    if ref.digest:
        raise InvalidArgument(f"cannot push a digest reference: {name}")
    if tag:
        ref = reference.parse_tagged(f"{ref.familiar_name}:{tag}")
    progress({"status": f"The push refers to repository [{ref.name}]"})
    tags = [ref.familiar()] if ref.tag else svc.meta.tags_of_repo(ref.familiar_name)
    images = [(t.rsplit(":", 1)[1], iid) for t in tags if (iid := svc.meta.tag(t))]
    if not images:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    reg = Registry(registry_host(ref.domain), ref.path, creds, scope="pull,push")
    out = []
    for t, iid in images:
        out.append(_push_image(svc, reg, ref, t, iid, progress))
    return out


def _push_image(svc: ImageService, reg: Registry, ref: reference.Reference, tag: str, image_id: str,
                progress: Progress) -> dict[str, Any]:
    img = svc.get(image_id)
    cfg = svc.content.read(image_id)
    diff_ids: list[str] = img.config["rootfs"]["diff_ids"]
    chains = dg.chain_ids(diff_ids)
    layers = list(dict.fromkeys(zip(diff_ids, chains, strict=True)))   # a layer twice is pushed once
    oci = any(str(b["media_type"]).startswith("application/vnd.oci.")
              for d in diff_ids for b in svc.meta.layer_blobs(d, None))
    limit = max(1, hosts.current.uploads)
    for d, _ in reversed(layers):
        progress({"status": "Preparing", "progressDetail": {}, "id": d[7:19]})
    for i, (d, _) in enumerate(reversed(layers)):
        if i >= limit:
            progress({"status": "Waiting", "progressDetail": {}, "id": d[7:19]})
    pusher = _Pusher(svc, reg, ref, progress, OCI_LAYER if oci else DOCKER_LAYER)
    pusher.login()
    with ThreadPoolExecutor(limit, thread_name_prefix="push-layer") as pool:
        futures = {d: pool.submit(pusher.layer, d, c) for d, c in reversed(layers)}
        try:
            descs = {d: f.result() for d, f in futures.items()}
        except BaseException:
            pusher.cancelled.set()
            raise
    cfg_type = OCI_CONFIG if oci else DOCKER_CONFIG
    cfg_desc = pusher.config(image_id, cfg, cfg_type)
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST, "config": cfg_desc,
                "layers": [descs[d] for d in diff_ids]}
    body = json.dumps(manifest, indent=3).encode()
    digest = dg.of_bytes(body)
    with reg.request("PUT", f"/v2/{reg.repo}/manifests/{tag}", {"Content-Type": manifest["mediaType"]}, body) as r:
        r.read()
    svc.meta.set_repo_digest(f"{ref.familiar_name}@{digest}", image_id)
    svc.on_event("push", f"{ref.familiar_name}:{tag}", {"name": f"{ref.familiar_name}:{tag}"})
    progress({"status": f"{tag}: digest: {digest} size: {len(body)}"})
    aux = {"Tag": tag, "Digest": digest, "Size": len(body)}
    progress({"progressDetail": {}, "aux": aux})
    return aux


class _Pusher:
    """The blobs of one push."""

    def __init__(self, svc: ImageService, reg: Registry, ref: reference.Reference, progress: Progress,
                 layer_type: str) -> None:
        self.svc, self.reg, self.ref, self.progress, self.layer_type = svc, reg, ref, progress, layer_type
        self.host = ref.domain
        self.cancelled = threading.Event()
        self.lock = threading.Lock()   # the registry client's token is shared by the layer threads

    def login(self) -> None:
        """Authenticate (for pull and push) before any streamed body: a stream cannot be sent twice."""
        self.reg.request("GET", "/v2/").close()

    def layer(self, diff_id: str, chain: str) -> dict[str, Any]:
        short = diff_id[7:19]
        for attempt in range(RETRIES):
            if self.cancelled.is_set():
                raise SystemError_("push cancelled")
            try:
                return self._layer(diff_id, chain, short)
            except Transient:
                if attempt == RETRIES - 1:
                    raise
                self.progress({"status": f"Retrying in {1 << attempt} seconds", "progressDetail": {}, "id": short})
                self.cancelled.wait(1 << attempt)
        raise AssertionError("unreachable")

    def _layer(self, diff_id: str, chain: str, short: str) -> dict[str, Any]:
        known = self._existing(diff_id, short)
        if isinstance(known, dict):
            return known
        size, writer = self.svc.layer_tar(chain, diff_id)
        stream = _Compressed(writer, size, lambda n: self.progress(
            {"status": "Pushing", "progressDetail": {"current": n, "total": size}, "id": short}))
        digest, length = self._upload(known, stream, lambda: (stream.digest(), stream.length))
        self.svc.meta.add_layer_blob(diff_id, self.host, self.reg.repo, digest, self.layer_type, length)
        self.progress({"status": "Pushed", "progressDetail": {}, "id": short})
        return {"mediaType": self.layer_type, "size": length, "digest": digest}

    def config(self, image_id: str, blob: bytes, media_type: str) -> dict[str, Any]:
        """The config blob: already there, mounted, or uploaded in one PUT."""
        desc = {"mediaType": media_type, "size": len(blob), "digest": image_id}
        known = self._existing(image_id, "")
        if isinstance(known, dict):
            return desc
        self._upload(known, blob, lambda: (image_id, len(blob)))
        self.svc.meta.add_layer_blob(image_id, self.host, self.reg.repo, image_id, media_type, len(blob))
        return desc

    def _existing(self, key: str, short: str) -> dict[str, Any] | str:
        """The descriptor of a blob the registry has (HEAD) or mounts from another repository,
        else the upload URL to use (a refused mount opens an upload session) or ""."""
        repo = self.reg.repo
        known = self.svc.meta.layer_blobs(key, self.host)
        for row in sorted(known, key=lambda b: b["repo"] != repo):
            desc = {"mediaType": row["media_type"], "size": row["size"], "digest": row["digest"]}
            if row["repo"] == repo:
                with self.reg.request("HEAD", f"/v2/{repo}/blobs/{row['digest']}", ok=(404,)) as r:
                    if r.status == 200:
                        if short:
                            self.progress({"status": "Layer already exists", "progressDetail": {}, "id": short})
                        return desc
                self.svc.meta.forget_layer_blob(key, self.host, repo, row["digest"])
                continue
            with self.lock:
                self.reg.extra_scopes = [f"repository:{row['repo']}:pull"]
                try:
                    r = self.reg.request("POST", f"/v2/{repo}/blobs/uploads/?mount={row['digest']}&from={row['repo']}",
                                         ok=(202,))
                finally:
                    self.reg.extra_scopes = []
            with r:
                if r.status == 201:
                    self.svc.meta.add_layer_blob(key, self.host, repo, row["digest"], row["media_type"], row["size"])
                    if short:
                        self.progress({"status": f"Mounted from {row['repo']}", "progressDetail": {}, "id": short})
                    return desc
                return self.reg.url(r.headers.get("Location", ""))
        return ""

    def _upload(self, location: str, body: "bytes | _Compressed", result: Callable[[], tuple[str, int]]
                ) -> tuple[str, int]:
        """POST (unless a session is open), then: a blob that fits in one chunk goes up whole in
        the committing `PUT ?digest=` (monolithic); a larger one in PATCHes of CHUNK bytes with
        Content-Range (chunked), each kept until the registry has it, so a dropped connection
        resends from the byte the registry reports, not the whole layer; then the PUT."""
        reg = self.reg
        if not location:
            with reg.request("POST", f"/v2/{reg.repo}/blobs/uploads/") as r:
                location = reg.url(r.headers.get("Location", ""))
        stream = iter([body]) if isinstance(body, bytes) else iter(body)
        buf = bytearray()
        offset = 0
        for data in stream:
            buf += data
            while len(buf) >= CHUNK:
                location = self._patch(location, bytes(buf[:CHUNK]), offset)
                offset += CHUNK
                del buf[:CHUNK]
        digest, length = result()
        if offset and buf:
            location = self._patch(location, bytes(buf), offset)
            buf.clear()
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(buf))}
        with reg.request("PUT", _with_query(location, "digest", digest), headers, bytes(buf)) as r:
            r.read()
        return digest, length

    def _patch(self, location: str, data: bytes, offset: int) -> str:
        """One chunk at `offset`; after a transient failure the upload's status (GET → Range)
        says how much of it landed, and the rest is sent (a registry that cannot say: the layer
        starts over, see `layer`). Returns the next Location."""
        reg = self.reg
        for attempt in range(RETRIES + 2):
            try:
                with reg.request("PATCH", location, {
                        "Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                        "Content-Range": f"{offset}-{offset + len(data) - 1}"}, data) as r:
                    r.read()
                    return reg.url(r.headers.get("Location", location))
            except Transient:
                if attempt == RETRIES + 1 or self.cancelled.is_set():
                    raise
                self.cancelled.wait(min(8, 1 << attempt))
                try:
                    with reg.request("GET", location, ok=(204,)) as r:   # where the upload stands
                        have = r.headers.get("Range", "")
                        location = reg.url(r.headers.get("Location", location))
                except (NotFound, InvalidArgument) as e:
                    # Distribution 2.8 signs the offset into the upload URL (_state): after a lost
                    # answer it refuses the status query, and the layer starts over
                    raise Transient(f"upload session lost: {e.message}") from None
                # "0-N": bytes 0..N are there (Distribution says "0-0" for none as for one: a
                # first chunk is then sent again whole)
                landed = int(have.rsplit("-", 1)[1]) + 1 if "-" in have else 0
                if landed == 1 and offset == 0:
                    landed = 0
                if landed < offset or landed > offset + len(data):
                    raise SystemError_(f"upload at an unexpected offset {landed} (sent from {offset})") from None
                data, offset = data[landed - offset:], landed
                if not data:
                    return location
        raise AssertionError("unreachable")


def _with_query(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{key}={value}"


class _Compressed:
    """A layer's tar (written by `writer` in a thread, through a pipe) as gzip chunks, hashed
    and counted as they go out."""

    def __init__(self, writer: Callable[[BinaryIO], Any], size: int, progress: Callable[[int], None]) -> None:
        self.writer, self.size, self.progress = writer, size, progress
        self.h = hashlib.sha256()
        self.length = 0
        self.done = False

    def digest(self) -> str:
        if not self.done:
            raise SystemError_("layer upload ended before its stream did")
        return "sha256:" + self.h.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        r, w = os.pipe()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with open(w, "wb", buffering=1 << 20) as out:
                    self.writer(out)
            except BrokenPipeError:
                pass
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)

        t = threading.Thread(target=run, name="push-tar", daemon=True)
        t.start()
        z = _gzip()
        read = reported = 0
        try:
            with open(r, "rb", buffering=0) as src:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    read += len(chunk)
                    out = z.compress(chunk)
                    if out:
                        yield self._count(out)
                    if read - reported >= max(self.size // 50, 1 << 20):
                        reported = read
                        self.progress(read)
            t.join()
            if errors:
                raise errors[0]
            yield self._count(z.flush())
            self.done = True
        finally:
            t.join()

    def _count(self, data: bytes) -> bytes:
        self.h.update(data)
        self.length += len(data)
        return data


def _gzip() -> Any:
    try:
        from isal import isal_zlib
        return isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
    except ImportError:
        import zlib
        return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
