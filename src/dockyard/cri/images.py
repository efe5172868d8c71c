"""The CRI's ImageService over the engine's image store and registry client (the same images
`docker images` lists; pulls go through the daemon's mirrors and certificates)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..oci import reference
from .proto import runtime_v1_pb2 as pb


def full_name(tag: str) -> str:
    """`busybox:1` → `docker.io/library/busybox:1` (kubelet compares fully qualified names)."""
    try:
        r = reference.parse(tag)
    except (InvalidArgument, ValueError):
        return tag
    out = f"{r.domain}/{r.path}"
    if r.tag:
        out += f":{r.tag}"
    if r.digest:
        out += f"@{r.digest}"
    return out


def to_cri(img: Any) -> pb.Image:
    out = pb.Image(id=img.id, repo_tags=[full_name(t) for t in img.tags],
                   repo_digests=[full_name(d) for d in img.digests], size=max(0, int(img.size)))
    out.spec.image = img.id
    user = str(img.container_config.get("User") or "").split(":", 1)[0]
    if user.isdigit():
        out.uid.value = int(user)
    elif user:
        out.username = user
    return out


class Images:
    def __init__(self, images: Any, data_root: str, pinned: set[str] | None = None) -> None:
        self.images = images
        self.data_root = data_root
        self.pinned = pinned or set()   # image refs the runtime itself needs (the pod holder)
        self._usage: tuple[float, int, int] = (0.0, 0, 0)

    def _find(self, spec: pb.ImageSpec) -> Any | None:
        if not spec.image:
            raise InvalidArgument("image.image: an image reference or ID is required")
        try:
            return self.images.resolve(spec.image)
        except NotFound:
            return None

    def list(self, f: pb.ImageFilter | None) -> list[pb.Image]:
        if f is not None and f.image.image:
            img = self._find(f.image)
            return [self._cri(img)] if img is not None else []
        return [self._cri(i) for i in self.images.list()]

    def _cri(self, img: Any) -> pb.Image:
        out = to_cri(img)
        out.pinned = bool(set(img.tags) & self.pinned)
        return out

    def status(self, spec: pb.ImageSpec, verbose: bool) -> pb.ImageStatusResponse:
        img = self._find(spec)
        if img is None:
            return pb.ImageStatusResponse()
        out = pb.ImageStatusResponse(image=self._cri(img))
        if verbose:
            import json
            out.info["info"] = json.dumps({"imageSpec": img.config, "chainTop": img.top_layer})
        return out

    async def pull(self, req: pb.PullImageRequest) -> str:
        from ..registry import pull
        ref = req.image.image
        if not ref:
            raise InvalidArgument("image.image: an image reference is required")
        if req.image.annotations:
            raise InvalidArgument("image.annotations: image annotations are not supported")
        creds = None
        a = req.auth
        if a.registry_token:
            raise InvalidArgument("auth.registry_token: registry tokens are not supported (use identity_token)")
        if a.username or a.password or a.auth or a.identity_token:
            from ..registry.auth import credentials
            creds = credentials({"username": a.username, "password": a.password, "auth": a.auth,
                                 "identitytoken": a.identity_token})
        return str(await asyncio.to_thread(pull.pull, self.images, ref, "", lambda _msg: None, creds))

    async def remove(self, spec: pb.ImageSpec) -> None:
        """Every name of the image goes, and the image (idempotent: a missing image is success)."""
        img = self._find(spec)
        if img is None:
            return
        try:
            await asyncio.to_thread(self.images.delete, img.id, True)
        except Conflict as e:
            raise Conflict(f"image {spec.image} is in use: {e.message}") from None
        except NotFound:
            return

    async def fs_info(self) -> pb.ImageFsInfoResponse:
        """The snapshots directory's bytes and inodes (walked in a thread, at most every 10 s)."""
        root = os.path.join(self.data_root, "snapshots")
        at, used, inodes = self._usage
        if time.monotonic() - at > 10:
            used, inodes = await asyncio.to_thread(_walk, root)
            self._usage = (time.monotonic(), used, inodes)
        u = pb.FilesystemUsage(timestamp=time.time_ns())
        u.fs_id.mountpoint = root
        u.used_bytes.value, u.inodes_used.value = used, inodes
        return pb.ImageFsInfoResponse(image_filesystems=[u], container_filesystems=[u])


def _walk(root: str) -> tuple[int, int]:
    used = inodes = 0
    seen: set[tuple[int, int]] = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            try:
                st = os.lstat(os.path.join(d, n))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            inodes += 1
            used += st.st_blocks * 512
    return used, inodes
