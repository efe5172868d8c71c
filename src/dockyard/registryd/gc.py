"""Online garbage collection — what distribution never shipped (its collector needs the registry
stopped or read-only). Mark every blob reachable from a kept manifest (tags, indexes' children,
referrers of kept manifests, configs and layers); sweep blobs that are not marked AND were last
touched before the collection began minus the grace period (so nothing written during a run,
however long it takes, is a candidate). Every push touches what it uploads, mounts, HEADs or refers to,
and a manifest PUT re-checks its blobs after writing, so a push racing a sweep never loses a blob:
at worst the PUT is refused and the client pushes again.

Retention: keep the N most recently pushed tags of each repository; with `delete_untagged`,
manifests no tag reaches are deleted once they are older than `untagged_older_than`."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..units import bytes_size
from . import digests
from .config import Config, duration
from .errors import RegistryError
from .store import V2, Store

if TYPE_CHECKING:
    from .server import RegistryApp

log = logging.getLogger("dockyard.registry.gc")


@dataclass
class Policy:
    grace: float = 3600.0
    delete_untagged: bool = False
    keep_tags: int = 0                 # 0: keep every tag
    untagged_older_than: float | None = None
    dry_run: bool = False


@dataclass
class Report:
    repositories: int = 0
    manifests_kept: int = 0
    manifests_deleted: list[str] = field(default_factory=list)
    tags_deleted: list[str] = field(default_factory=list)
    blobs_marked: int = 0
    blobs_seen: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    kept_in_grace: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (f"{self.repositories} repositories, {self.manifests_kept} manifests kept, "
                f"{len(self.manifests_deleted)} deleted, {len(self.tags_deleted)} tags removed; "
                f"{self.blobs_seen} blobs, {self.blobs_marked} in use, {self.kept_in_grace} kept in the grace period, "
                f"{self.blobs_deleted} deleted: {verb} {bytes_size(self.bytes_freed)} ({self.bytes_freed} bytes) "
                f"in {self.seconds:.2f} s")


def _read_manifest(store: Store, digest: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(store.d.get(store.blob_path(digest)))
        return doc if isinstance(doc, dict) else None
    except (FileNotFoundError, ValueError, RegistryError):
        return None


def collect(store: Store, policy: Policy, progress: Callable[[str], None] = lambda s: None) -> Report:
    """One collection (blocking). Safe while the registry serves pushes and pulls."""
    t0 = time.time()
    cutoff = t0 - policy.grace     # only blobs last touched before this are candidates, however long the run
    rep = Report(dry_run=policy.dry_run)
    marked: set[str] = set()
    repos = store.repositories()
    rep.repositories = len(repos)
    progress(f"marking: {len(repos)} repositories")
    for repo in repos:
        tags = {t: store.tag_target(repo, t) for t in store.tags(repo)}
        live = {t: v for t, v in tags.items() if v}
        if policy.keep_tags > 0 and len(live) > policy.keep_tags:
            for t, _ in sorted(live.items(), key=lambda kv: -kv[1][1])[policy.keep_tags:]:
                rep.tags_deleted.append(f"{repo}:{t}")
                if not policy.dry_run:
                    store.d.delete(f"{store.repo_path(repo)}/_manifests/tags/{t}")
                live.pop(t)
        revisions = dict(store.revisions(repo))
        docs = {d: _read_manifest(store, d) for d in revisions}
        keep: set[str] = set()
        if policy.delete_untagged:
            young = policy.untagged_older_than if policy.untagged_older_than is not None else policy.grace
            todo = [v[0] for v in live.values() if v] + [d for d, ts in revisions.items() if time.time() - ts < young]
        else:
            todo = list(revisions)
        while True:
            while todo:
                d = todo.pop()
                if d in keep:
                    continue
                keep.add(d)
                doc = docs.get(d) or _read_manifest(store, d) or {}
                todo += [c["digest"] for c in doc.get("manifests") or [] if isinstance(c, dict) and "digest" in c]
            # referrers of a kept manifest are kept with it
            more = [d for d, doc in docs.items() if d not in keep and doc and isinstance(doc.get("subject"), dict)
                    and doc["subject"].get("digest") in keep]
            if not more:
                break
            todo = more
        for d in revisions:
            if d in keep:
                continue
            rep.manifests_deleted.append(f"{repo}@{d}")
            if not policy.dry_run:
                try:
                    store.delete_manifest(repo, d)
                except RegistryError:
                    pass
        for d in keep:
            kept = docs.get(d) or _read_manifest(store, d)
            marked.add(d)
            if not kept:
                continue
            doc = kept
            cfg = doc.get("config")
            if isinstance(cfg, dict) and "digest" in cfg:
                marked.add(cfg["digest"])
            marked.update(x["digest"] for x in doc.get("layers") or [] if isinstance(x, dict) and "digest" in x)
        rep.manifests_kept += len(keep)
    rep.blobs_marked = len(marked)
    progress(f"sweeping: {len(marked)} blobs in use")
    deleted: set[str] = set()
    for alg in store.d.list(f"{V2}/blobs"):
        for prefix in store.d.list(f"{V2}/blobs/{alg}"):
            for hx in store.d.list(f"{V2}/blobs/{alg}/{prefix}"):
                digest = f"{alg}:{hx}"
                rep.blobs_seen += 1
                if digest in marked:
                    continue
                try:
                    digests.parse(digest)
                    st = store.d.stat(store.blob_path(digest))
                except (FileNotFoundError, RegistryError):
                    continue
                if st.mtime >= cutoff:
                    rep.kept_in_grace += 1
                    continue
                rep.blobs_deleted += 1
                rep.bytes_freed += st.size
                deleted.add(digest)
                if not policy.dry_run:
                    # stat again right before: a push that touched it since keeps it
                    try:
                        if store.d.stat(store.blob_path(digest)).mtime >= cutoff:
                            rep.blobs_deleted -= 1
                            rep.bytes_freed -= st.size
                            deleted.discard(digest)
                            continue
                    except FileNotFoundError:
                        continue
                    store.d.delete(store.blob_path(digest).rsplit("/", 1)[0])
                    store.forget_descriptor(digest)
                if rep.blobs_deleted and rep.blobs_deleted % 1000 == 0:
                    progress(f"sweeping: {rep.blobs_deleted} blobs deleted so far")
    if deleted and not policy.dry_run:
        for repo in repos:
            for d in store.layers(repo):
                if d in deleted and store.blob_exists(d) is None:
                    store.d.delete(f"{store.repo_path(repo)}/_layers/{d.replace(':', '/')}")
    rep.seconds = time.time() - t0
    return rep


def policy_from(config: Config, **overrides: Any) -> Policy:
    p = Policy(grace=config.seconds("dockyard.gc.grace", 3600), delete_untagged=bool(config.get("dockyard.gc.deleteuntagged")),
               keep_tags=int(config.get("dockyard.gc.keeptags", 0) or 0),
               untagged_older_than=(config.seconds("dockyard.gc.untaggedolderthan", 0)
                                    if config.get("dockyard.gc.untaggedolderthan") is not None else None),
               dry_run=bool(config.get("dockyard.gc.dryrun")))
    for k, v in overrides.items():
        if v is not None:
            setattr(p, k, v)
    return p


def schedule(app: RegistryApp) -> None:
    """Collect every `dockyard.gc.interval` while serving."""
    async def gc() -> None:
        if app.readonly:
            return
        rep = await app.run(collect, app.store, policy_from(app.config), log.info)
        app.metrics.gc_runs.inc()
        app.metrics.gc_freed.inc(rep.bytes_freed)
        app.metrics.gc_blobs.inc(rep.blobs_deleted)
        app.last_gc = rep
        log.info("garbage collection: %s", rep.summary())
    app.every(app.config.seconds("dockyard.gc.interval", 3600), gc)


def run_cli(config: Config, driver: Any, a: argparse.Namespace) -> int:
    """`dockyard-registry gc CONFIG [--dry-run] [--delete-untagged] [--grace D] [--keep-tags N] ...`."""
    policy = policy_from(config, dry_run=a.dry_run or None, delete_untagged=a.delete_untagged or None,
                         grace=duration(a.grace, "--grace") if a.grace else None, keep_tags=a.keep_tags,
                         untagged_older_than=duration(a.untagged_older_than, "--untagged-older-than")
                         if a.untagged_older_than else None)
    rep = collect(Store(driver), policy, lambda s: print(s, flush=True))
    for m in rep.manifests_deleted:
        print(f"{'would delete' if rep.dry_run else 'deleted'} manifest {m}")
    for t in rep.tags_deleted:
        print(f"{'would remove' if rep.dry_run else 'removed'} tag {t}")
    print(rep.summary())
    return 0
