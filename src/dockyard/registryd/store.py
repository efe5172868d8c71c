"""The registry's content, on a storage driver, in distribution's layout (so a docker-registry
data directory serves unchanged):

    docker/registry/v2/blobs/<alg>/<hh>/<hex>/data                  the bytes, shared by repositories
    docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link  a blob belongs to the repository
    .../_manifests/revisions/<alg>/<hex>/link                        a manifest belongs to it
    .../_manifests/tags/<tag>/current/link                           a tag names a manifest
    .../_uploads/<uuid>/{data,startedat}                             an upload in progress
    .../_referrers/<alg>/<subject hex>/<alg>/<hex>/link              a manifest whose subject is that digest

Every method blocks: the server calls them in worker threads."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import digests, manifests
from .errors import RegistryError
from .storage.base import Driver, Stat

V2 = "docker/registry/v2"
DESCRIPTOR_TTL = 5.0


def _dpath(digest: str) -> str:
    alg, hx = digests.parse(digest)
    return f"{alg}/{hx}"


@dataclass
class Upload:
    """An upload session's state as stored."""
    repo: str
    id: str
    size: int
    started: float


class Store:
    """Blobs, manifests, tags, referrers and uploads of every repository."""

    def __init__(self, driver: Driver, descriptor_cache: bool = False) -> None:
        self.d = driver
        # storage.cache.blobdescriptor: inmemory — a blob's size and presence, remembered for a few seconds
        # (pulls HEAD and GET the same blobs over and over; a remote driver pays a round trip for each)
        self.descriptors: dict[str, tuple[float, Stat]] | None = {} if descriptor_cache else None

    # ---- paths
    @staticmethod
    def blob_path(digest: str) -> str:
        alg, hx = digests.parse(digest)
        return f"{V2}/blobs/{alg}/{hx[:2]}/{hx}/data"

    @staticmethod
    def repo_path(repo: str) -> str:
        return f"{V2}/repositories/{repo}"

    def _layer(self, repo: str, digest: str) -> str:
        return f"{self.repo_path(repo)}/_layers/{_dpath(digest)}/link"

    def _revision(self, repo: str, digest: str) -> str:
        return f"{self.repo_path(repo)}/_manifests/revisions/{_dpath(digest)}/link"

    def _tag(self, repo: str, tag: str) -> str:
        return f"{self.repo_path(repo)}/_manifests/tags/{tag}/current/link"

    def _upload(self, repo: str, uid: str) -> str:
        return f"{self.repo_path(repo)}/_uploads/{uid}"

    def _referrer(self, repo: str, subject: str, digest: str) -> str:
        return f"{self.repo_path(repo)}/_referrers/{_dpath(subject)}/{_dpath(digest)}/link"

    # ---- blobs
    def blob_stat(self, repo: str, digest: str) -> Stat:
        """A blob of the repository, else BLOB_UNKNOWN."""
        try:
            self.d.stat(self._layer(repo, digest))
            return self._data_stat(digest)
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest}) from None

    def _data_stat(self, digest: str) -> Stat:
        cache = self.descriptors
        if cache is None:
            return self.d.stat(self.blob_path(digest))
        hit = cache.get(digest)
        now = time.monotonic()
        if hit and now - hit[0] < DESCRIPTOR_TTL:
            return hit[1]
        st = self.d.stat(self.blob_path(digest))
        if len(cache) > 100_000:
            cache.clear()
        cache[digest] = (now, st)
        return st

    def forget_descriptor(self, digest: str) -> None:
        if self.descriptors is not None:
            self.descriptors.pop(digest, None)

    def blob_exists(self, digest: str) -> Stat | None:
        """The blob's stat when the registry holds it (in any repository)."""
        try:
            return self.d.stat(self.blob_path(digest))
        except FileNotFoundError:
            return None

    def has_blob(self, repo: str, digest: str) -> bool:
        """Whether the repository links the blob and its data is there."""
        try:
            self.blob_stat(repo, digest)
            return True
        except RegistryError:
            return False

    def open_blob(self, digest: str, offset: int = 0) -> BinaryIO:
        return self.d.reader(self.blob_path(digest), offset)

    def link_blob(self, repo: str, digest: str) -> None:
        """The repository now holds the blob; its data's mtime is refreshed (GC's grace period)."""
        self.d.put(self._layer(repo, digest), digest.encode())
        self.touch(digest)

    def touch(self, digest: str) -> None:
        """Refresh a blob's mtime: the collector keeps blobs touched within its grace period."""
        try:
            self.d.touch(self.blob_path(digest))
        except FileNotFoundError:
            pass

    def unlink_blob(self, repo: str, digest: str) -> None:
        self.blob_stat(repo, digest)
        self.d.delete(f"{self.repo_path(repo)}/_layers/{_dpath(digest)}")

    # ---- uploads
    def start_upload(self, repo: str) -> str:
        uid = str(uuid.uuid4())
        self.d.put(f"{self._upload(repo, uid)}/startedat", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode())
        return uid

    def upload(self, repo: str, uid: str) -> Upload:
        """An upload session of the repository, else BLOB_UPLOAD_UNKNOWN."""
        try:
            uuid.UUID(uid)
            st = self.d.stat(f"{self._upload(repo, uid)}/startedat")
        except (ValueError, FileNotFoundError):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": uid}) from None
        return Upload(repo, uid, self.d.upload_size(f"{self._upload(repo, uid)}/data"), st.mtime)

    def append(self, up: Upload, parts: list[bytes]) -> None:
        up.size = self.d.append(f"{self._upload(up.repo, up.id)}/data", parts, up.size)

    def upload_reader(self, up: Upload) -> BinaryIO:
        return self.d.upload_reader(f"{self._upload(up.repo, up.id)}/data")

    def commit_upload(self, up: Upload, digest: str) -> None:
        """Move the upload's (verified) bytes under the digest and link it to the repository."""
        self.d.commit(f"{self._upload(up.repo, up.id)}/data", self.blob_path(digest))
        self.link_blob(up.repo, digest)
        self.cancel_upload(up)

    def cancel_upload(self, up: Upload) -> None:
        self.d.delete(self._upload(up.repo, up.id))

    def uploads(self) -> Iterator[Upload]:
        """Every upload session (for purging stale ones)."""
        for repo in self.repositories():
            for uid in self.d.list(f"{self.repo_path(repo)}/_uploads"):
                try:
                    yield self.upload(repo, uid)
                except RegistryError:
                    continue

    # ---- manifests and tags
    def resolve(self, repo: str, ref: str) -> str:
        """The digest a tag or digest reference names in the repository, else MANIFEST_UNKNOWN."""
        try:
            if digests.is_digest(ref):
                digests.parse(ref)
                self.d.stat(self._revision(repo, ref))
                return ref
            digests.check_tag(ref)
            return self.d.get(self._tag(repo, ref)).decode().strip()
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", "manifest unknown", {"name": repo, "reference": ref}) from None

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(body, media type, digest)."""
        digest = self.resolve(repo, ref)
        try:
            body = self.d.get(self.blob_path(digest))
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", "manifest unknown", {"name": repo, "reference": ref}) from None
        return body, self.media_type(repo, digest, body), digest

    def media_type(self, repo: str, digest: str, body: bytes) -> str:
        try:
            return self.d.get(self._revision(repo, digest).rsplit("/", 1)[0] + "/mediatype").decode()
        except FileNotFoundError:
            pass
        try:
            doc = json.loads(body)
            return doc.get("mediaType") or (manifests.OCI_INDEX if "manifests" in doc else manifests.OCI_MANIFEST)
        except (ValueError, AttributeError):
            return manifests.OCI_MANIFEST

    def put_manifest(self, repo: str, ref: str, body: bytes, content_type: str) -> tuple[str, manifests.Manifest]:
        """Check and store a manifest, then point the tag (if `ref` is one) at it; returns its digest."""
        if digests.is_digest(ref):
            alg, _ = digests.parse(ref)
            digest = digests.of_bytes(body, alg)
            if digest != ref:
                raise RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content",
                                    {"expected": ref, "actual": digest})
        else:
            digests.check_tag(ref)
            digest = digests.of_bytes(body)
        m = manifests.parse(body, content_type)
        missing = [d for d in m.blobs if not self.has_blob(repo, d)]
        missing += [d for d in m.children if not self._has_manifest(repo, d)]
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", {"digest": missing[0]})
        for d in m.blobs:
            self.touch(d)
        self.d.put(self.blob_path(digest), body) if not self.blob_exists(digest) else self.touch(digest)
        rev = self._revision(repo, digest)
        if not m.raw.get("mediaType"):
            self.d.put(rev.rsplit("/", 1)[0] + "/mediatype", m.media_type.encode())
        self.d.put(rev, digest.encode())
        self.link_blob(repo, digest)
        if m.subject:
            desc: dict[str, Any] = {"mediaType": m.media_type, "digest": digest, "size": len(body)}
            if m.artifact_type:
                desc["artifactType"] = m.artifact_type
            if m.annotations:
                desc["annotations"] = m.annotations
            self.d.put(self._referrer(repo, m.subject, digest), json.dumps(desc).encode())
        if not digests.is_digest(ref):
            self.d.put(self._tag(repo, ref), digest.encode())
        # a collection that swept between the checks above and now would show here: refuse, the client retries
        gone = [d for d in m.blobs if not self.blob_exists(d)]
        if gone:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", {"digest": gone[0]})
        return digest, m

    def cache_manifest(self, repo: str, tag: str | None, body: bytes, digest: str, media_type: str) -> None:
        """Keep a manifest fetched from an upstream (its blobs come when they are asked for)."""
        if not self.blob_exists(digest):
            self.d.put(self.blob_path(digest), body)
        rev = self._revision(repo, digest)
        if media_type:
            self.d.put(rev.rsplit("/", 1)[0] + "/mediatype", media_type.encode())
        self.d.put(rev, digest.encode())
        self.link_blob(repo, digest)
        if tag:
            self.d.put(self._tag(repo, tag), digest.encode())

    def _has_manifest(self, repo: str, digest: str) -> bool:
        try:
            self.d.stat(self._revision(repo, digest))
            return self.blob_exists(digest) is not None
        except (FileNotFoundError, RegistryError):
            return False

    def delete_manifest(self, repo: str, ref: str) -> str:
        """Delete a tag, or a manifest by digest with every tag that names it; returns the digest."""
        digest = self.resolve(repo, ref)
        if not digests.is_digest(ref):
            self.d.delete(f"{self.repo_path(repo)}/_manifests/tags/{ref}")
            return digest
        for tag in self.tags(repo):
            try:
                if self.d.get(self._tag(repo, tag)).decode().strip() == digest:
                    self.d.delete(f"{self.repo_path(repo)}/_manifests/tags/{tag}")
            except FileNotFoundError:
                continue
        self.d.delete(self._revision(repo, digest).rsplit("/", 1)[0])
        try:
            m = manifests.parse(self.d.get(self.blob_path(digest)))
            if m.subject:
                self.d.delete(self._referrer(repo, m.subject, digest).rsplit("/", 1)[0])
        except (FileNotFoundError, RegistryError):
            pass
        return digest

    def tags(self, repo: str) -> list[str]:
        return self.d.list(f"{self.repo_path(repo)}/_manifests/tags")

    def tag_target(self, repo: str, tag: str) -> tuple[str, float] | None:
        """(digest, when the tag was last set) or None."""
        try:
            p = self._tag(repo, tag)
            return self.d.get(p).decode().strip(), self.d.stat(p).mtime
        except FileNotFoundError:
            return None

    def revisions(self, repo: str) -> list[tuple[str, float]]:
        """Every manifest of the repository: (digest, when it was pushed)."""
        out = []
        for alg in self.d.list(f"{self.repo_path(repo)}/_manifests/revisions"):
            for hx in self.d.list(f"{self.repo_path(repo)}/_manifests/revisions/{alg}"):
                try:
                    out.append((f"{alg}:{hx}", self.d.stat(f"{self.repo_path(repo)}/_manifests/revisions/{alg}/{hx}/link").mtime))
                except FileNotFoundError:
                    continue
        return out

    def layers(self, repo: str) -> list[str]:
        """Every blob the repository links."""
        base = f"{self.repo_path(repo)}/_layers"
        return [f"{alg}:{hx}" for alg in self.d.list(base) for hx in self.d.list(f"{base}/{alg}")]

    def exists(self, repo: str) -> bool:
        base = self.repo_path(repo)
        return bool(self.d.list(f"{base}/_manifests") or self.d.list(f"{base}/_layers") or self.d.list(f"{base}/_uploads"))

    def repositories(self) -> list[str]:
        """Every repository name, sorted."""
        out: list[str] = []

        def visit(prefix: str) -> None:
            for n in self.d.list(f"{V2}/repositories/{prefix}"):
                if n.startswith("_"):
                    continue
                name = f"{prefix}{n}"
                kids = self.d.list(f"{V2}/repositories/{name}")
                if any(k in ("_manifests", "_layers", "_uploads") for k in kids):
                    out.append(name)
                if any(not k.startswith("_") for k in kids):
                    visit(name + "/")
        visit("")
        return sorted(out)

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is `subject`."""
        base = f"{self.repo_path(repo)}/_referrers/{_dpath(subject)}"
        out = []
        for alg in self.d.list(base):
            for hx in self.d.list(f"{base}/{alg}"):
                try:
                    out.append(json.loads(self.d.get(f"{base}/{alg}/{hx}/link")))
                except (FileNotFoundError, ValueError):
                    continue
        return out
