"""`docker pull`: manifest (list/index → this platform), config, layers, each verified against
its digest while it streams through decompression into a staged snapshot; the chain and the
image are recorded only once everything is verified. Blocking: run it in a worker thread.

Not yet (issue 9): layers in parallel worker processes, resumable downloads, login, push."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import platform as _platform
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from ..errors import EngineError, InvalidArgument, NotFound, NotImplemented_, SystemError_
from ..images.service import ImageService, StagedLayer
from ..images.unpacker import Transient as UnpackTransient
from ..images.unpacker import Unauthorized as UnpackUnauthorized
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
    blobs += [(d, desc) for d, desc in zip(diff_ids, layers, strict=True)]
    items = [(desc, diff_id, chain, desc.get("digest", "")[7:19]) for desc, diff_id, chain in
             zip(layers, diff_ids, chains, strict=True)]
    try:
        with _claim({desc.get("digest", "") for desc, *_ in items}):
            missing: dict[str, tuple[dict[str, Any], str, str]] = {}   # blob digest → (desc, diff_id, short)
            for desc, diff_id, chain, short in items:
                if _committed(svc, chain):
                    progress({"status": "Already exists", "progressDetail": {}, "id": short})
                elif desc.get("digest", "") not in missing:
                    progress({"status": "Pulling fs layer", "progressDetail": {}, "id": short})
                    missing[desc.get("digest", "")] = (desc, diff_id, short)
            fetched = _fetch_all(svc, reg, list(missing.values()), progress, staged)
            parent = None
            for desc, _, chain, short in items:
                if _committed(svc, chain):
                    parent = chain
                    continue
                st = fetched[desc["digest"]]
                with svc.lock:   # unpacked while it downloaded: no Extracting phase to show
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
    for attempt in range(RETRIES):   # a config blob: small, fetched again whole on a transient failure
        try:
            with reg.get(f"blobs/{digest}") as r:
                data = r.read(limit + 1)
            break
        except (Transient, OSError, http.client.HTTPException) as e:
            if attempt == RETRIES - 1:
                raise SystemError_(f"blob {digest}: {e}") from None
            time.sleep(1 << attempt)
    if len(data) > limit:
        raise InvalidArgument(f"blob {digest}: too large")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise InvalidArgument(f"blob {digest}: content does not match its digest")
    return data


RETRIES = 5   # attempts per layer after a dropped or stalled connection (1, 2, 4, 8 s apart)


def _committed(svc: ImageService, chain: str) -> bool:
    row = svc.meta.snapshot(chain)
    return row is not None and row["kind"] == "committed"


_inflight_guard = threading.Lock()
_inflight: dict[str, tuple[threading.Lock, list[int]]] = {}   # digest → (lock, [pulls holding or waiting])


@contextlib.contextmanager
def _claim(digests: set[str]) -> Iterator[None]:
    """Hold the blobs this pull may fetch, in sorted order (no two pulls wait on each other in a
    cycle): a second pull of the same layer waits here, then finds it committed. A digest's entry
    goes when the last pull holding or waiting for it lets go."""
    order = sorted(digests)
    with _inflight_guard:
        entries = [_inflight.setdefault(d, (threading.Lock(), [0])) for d in order]
        for _, users in entries:
            users[0] += 1
    held: list[threading.Lock] = []
    try:
        for lk, _ in entries:
            lk.acquire()
            held.append(lk)
        yield
    finally:
        for lk in reversed(held):
            lk.release()
        with _inflight_guard:
            for d, (_, users) in zip(order, entries, strict=True):
                users[0] -= 1
                if not users[0]:
                    del _inflight[d]


def busy_blobs() -> set[str]:
    """Digests being downloaded now (their partial files are not swept)."""
    with _inflight_guard:
        return {d for d, (lk, _) in _inflight.items() if lk.locked()}


def _fetch_all(svc: ImageService, reg: Registry, todo: list[tuple[dict[str, Any], str, str]],
               progress: Progress, staged: list[StagedLayer]) -> dict[str, StagedLayer]:
    """Fetch and unpack the layers in worker processes, `downloads` at once; {blob digest: staged}.
    The first failure cancels the others."""
    out: dict[str, StagedLayer] = {}
    if not todo:
        return out
    limit = max(1, hosts.current.downloads)
    for i, (_, _, short) in enumerate(todo):
        if i >= limit:
            progress({"status": "Waiting", "progressDetail": {}, "id": short})
    cancel = _Cancel()
    with ThreadPoolExecutor(limit, thread_name_prefix="pull-layer") as pool:
        futures = {pool.submit(_layer, svc, reg, desc, short, progress, cancel): (desc, diff_id)
                   for desc, diff_id, short in todo}
        error: BaseException | None = None
        for f in as_completed(futures):
            desc, diff_id = futures[f]
            try:
                st = f.result()
            except BaseException as e:  # noqa: BLE001 - the first is raised below, after the others end
                if error is None:
                    error = e
                    cancel.set()
                continue
            staged.append(st)
            if st.diff_id != diff_id and error is None:
                error = InvalidArgument(f"layer {desc['digest']}: its content digest {st.diff_id} does not match "
                                        f"the image config's {diff_id}")
                cancel.set()
            out[desc["digest"]] = st
    if error is not None:
        raise error
    return out


class _Cancel:
    """Set once: every running worker is killed, no new attempt starts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.workers: set[Any] = set()

    def set(self) -> None:
        with self.lock:
            self.event.set()
            for w in self.workers:
                w.cancel()

    def track(self, w: Any) -> None:
        with self.lock:
            self.workers.add(w)
            if self.event.is_set():
                w.cancel()


def _layer(svc: ImageService, reg: Registry, desc: dict[str, Any], short: str, progress: Progress,
           cancel: _Cancel) -> StagedLayer:
    """One layer: a worker process fetches, verifies and unpacks it. A connection that drops or
    stalls (no byte for the client's timeout) is tried again with back-off, resuming from the
    bytes already on disk; a digest that does not match is not (and its bytes are dropped)."""
    digest = desc.get("digest", "")
    if not digest.startswith("sha256:"):
        raise InvalidArgument(f"unsupported layer digest {digest!r}")
    size = int(desc.get("size") or 0)
    partial = svc.content.partial_path(digest)
    mt = str(desc.get("mediaType") or "")
    if "zstd" in mt:
        try:
            import zstandard  # noqa: F401 - the worker needs it
        except ImportError:
            raise NotImplemented_(f"layer {digest}: zstd layers need the zstandard module") from None

    def report(n: int) -> None:
        progress({"status": "Downloading", "progressDetail": {"current": n, "total": size}, "id": short})
    for attempt in range(RETRIES):
        if cancel.event.is_set():
            raise SystemError_("pull cancelled")
        try:
            source = {**reg.blob_source(digest), "ingest": str(partial)}
            st = svc.stage_in_worker(source, digest, size, mt, report, cancel.track)
            partial.unlink(missing_ok=True)
            progress({"status": "Verifying Checksum", "progressDetail": {}, "id": short})
            progress({"status": "Download complete", "progressDetail": {}, "id": short})
            return st
        except (Transient, UnpackTransient) as e:
            if attempt == RETRIES - 1 or cancel.event.is_set():
                raise SystemError_(f"layer {digest}: {e.message}") from None
            if isinstance(e, UnpackUnauthorized):
                reg.reauthenticate()
                continue
            wait = 1 << attempt
            progress({"status": f"Retrying in {wait} second{'s' if wait > 1 else ''}", "progressDetail": {},
                      "id": short})
            cancel.event.wait(wait)
        except InvalidArgument:
            partial.unlink(missing_ok=True)   # bytes that do not hash to the digest: not kept
            raise
    raise AssertionError("unreachable")
