"""Online garbage collection: what is unreferenced goes, what is referenced (tags, indexes,
referrers) stays; the grace period protects fresh uploads; retention rules; and a push loop
running through repeated collections loses nothing — every image it pushed pulls intact."""

from __future__ import annotations

import os
import threading
import time
import uuid

import requests

from .images import gz, sha
from .test_conformance import OCI_MANIFEST, Client


def _pull_intact(c: Client, ref: str) -> bool:
    r = c("GET", f"/v2/<name>/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    if r.status_code != 200:
        return False
    m = r.json()
    for d in [m["config"]] + m["layers"]:
        b = c("GET", f"/v2/<name>/blobs/{d['digest']}")
        if b.status_code != 200 or sha(b.content) != d["digest"]:
            return False
    return True


def _blob_files(reg) -> set[str]:
    root = reg.data / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{h}" for p in root.iterdir() for h in os.listdir(p)} if root.exists() else set()


def test_collects_unreferenced_and_keeps_referenced(make_registry):
    reg = make_registry()
    c = Client(reg.url)
    shared = gz(b"shared layer " + uuid.uuid4().bytes)
    only_b = gz(b"only in b " + uuid.uuid4().bytes)
    da, _ = c.push_image([shared], "a")
    db, mb = c.push_image([shared, only_b], "b")
    # a referrer of `a` (kept with it) and an index over `a` (tagged)
    subj = {"mediaType": OCI_MANIFEST, "digest": da, "size": len(c("GET", f"/v2/<name>/manifests/{da}").content)}
    ref, _ = c.push_image([gz(b"signature " + uuid.uuid4().bytes)], "tmp", subject=subj, artifact_type="application/x-sig")
    c("DELETE", "/v2/<name>/manifests/tmp")      # the tag only: the referrer stays reachable through its subject
    assert c("DELETE", f"/v2/<name>/manifests/{db}").status_code == 202
    stray = c.push_blob(b"uploaded, never referenced " + uuid.uuid4().bytes)
    # dry run: reports, deletes nothing
    before = _blob_files(reg)
    p = reg.gc("--dry-run", "--grace", "0s")
    assert p.returncode == 0, p.stderr
    assert "would free" in p.stdout and _blob_files(reg) == before
    # a fresh blob is kept by the grace period
    p = reg.gc()
    assert "0 deleted: freed 0" in p.stdout.replace("0 blobs deleted", "0 deleted"), p.stdout
    p = reg.gc("--grace", "0s")
    assert p.returncode == 0, p.stderr
    after = _blob_files(reg)
    assert {db, sha(only_b), stray} & after == set(), p.stdout
    assert {da, sha(shared), ref} <= after
    assert _pull_intact(c, "a")
    assert c("GET", f"/v2/<name>/referrers/{da}").json()["manifests"][0]["digest"] == ref


def test_delete_untagged_and_keep_tags(make_registry):
    reg = make_registry()
    c = Client(reg.url)
    old, _ = c.push_image([gz(b"v1 " + uuid.uuid4().bytes)], "latest")
    new, _ = c.push_image([gz(b"v2 " + uuid.uuid4().bytes)], "latest")    # `old` is now untagged
    p = reg.gc("--grace", "0s")
    assert c("GET", f"/v2/<name>/manifests/{old}").status_code == 200      # untagged manifests stay by default
    p = reg.gc("--grace", "0s", "--delete-untagged")
    assert p.returncode == 0 and f"deleted manifest {c.name}@{old}" in p.stdout, p.stdout
    assert c("GET", f"/v2/<name>/manifests/{old}").status_code == 404
    assert _pull_intact(c, "latest") and c("GET", "/v2/<name>/manifests/latest").headers["Docker-Content-Digest"] == new
    for t in ("t1", "t2", "t3"):
        c.push_image([gz(t.encode() + uuid.uuid4().bytes)], t)
        time.sleep(0.05)
    p = reg.gc("--grace", "0s", "--keep-tags", "2")
    assert c("GET", "/v2/<name>/tags/list").json()["tags"] == ["t2", "t3"], p.stdout


def test_push_loop_through_repeated_online_collections(make_registry):
    reg = make_registry("dockyard:\n  gc:\n    interval: 300ms\n    grace: 3s\n    deleteuntagged: true\n"
                        "    untaggedolderthan: 1s\n")
    c = Client(reg.url)
    pushed: dict[str, str] = {}
    errors: list[str] = []
    stop = time.time() + 12

    def loop(worker: int) -> None:
        wc = Client(reg.url)
        wc.name = c.name
        i = 0
        while time.time() < stop:
            tag = f"w{worker}-{i}"
            layers = [gz(os.urandom(20_000)), gz(b"common layer")]   # one shared by every image
            try:
                digest, _ = wc.push_image(layers, tag)
                pushed[tag] = digest
                if i % 3 == 2:    # make garbage: retag over it, so the old manifest is untagged
                    prev = f"w{worker}-{i - 1}"
                    wc.push_image([gz(os.urandom(1000))], prev)
                    pushed[prev] = wc("GET", f"/v2/<name>/manifests/{prev}").headers["Docker-Content-Digest"]
            except AssertionError as e:
                errors.append(f"{tag}: {e}")
            i += 1
    threads = [threading.Thread(target=loop, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    runs = [line for line in requests.get(f"{reg.url}/metrics").text.splitlines() if line.startswith("registry_gc_runs_total")]
    assert runs and float(runs[0].split()[1]) >= 5, runs
    freed = [line for line in requests.get(f"{reg.url}/metrics").text.splitlines()
             if line.startswith("registry_gc_freed_bytes_total")]
    assert float(freed[0].split()[1]) > 0, "the loop made garbage: something must have been freed"
    assert len(pushed) > 20
    bad = [t for t in pushed if not _pull_intact(c, t)]
    assert not bad, bad
    for t, d in pushed.items():
        assert c("GET", f"/v2/<name>/manifests/{t}").headers["Docker-Content-Digest"] == d


def test_gc_report_in_json_log(make_registry):
    reg = make_registry("dockyard:\n  gc:\n    interval: 200ms\n    grace: 0s\n")
    c = Client(reg.url)
    c.push_blob(b"garbage " + uuid.uuid4().bytes)
    deadline = time.time() + 10
    while time.time() < deadline and "freed" not in reg.log.read_text():
        time.sleep(0.1)
    assert "garbage collection:" in reg.log.read_text()
