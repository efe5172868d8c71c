"""The OCI distribution-spec v1.1 conformance categories — pull, push, content discovery,
content management, cross-mount — written from what each spec of the suite checks. Every check
runs against dockyard-registry and, where distribution 2.8 answers rightly, against Debian's
docker-registry too (`both`); the checks it fails on this machine are dockyard-only and say so."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import requests

from .images import gz, oci_image, sha

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
         "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
         "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}
DUMMY = "sha256:" + "0" * 64


class Client:
    """requests against one registry, with `<name>` a fresh repository per test."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.name = f"conf/{uuid.uuid4().hex[:10]}"
        self.s = requests.Session()

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        path = path.replace("<name>", self.name)
        url = path if path.startswith("http") else self.base + path
        return self.s.request(method, url, allow_redirects=False, timeout=60, **kw)

    def loc(self, r: requests.Response) -> str:
        loc = r.headers["Location"]
        return loc if loc.startswith("http") else self.base + loc

    def push_blob(self, data: bytes, name: str | None = None) -> str:
        d = sha(data)
        r = self("POST", f"/v2/{name or self.name}/blobs/uploads/")
        assert r.status_code == 202, r.text
        r = self("PUT", self.loc(r), params={"digest": d}, data=data,
                 headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        return d

    def push_image(self, layers: list[bytes], ref: str, **kw) -> tuple[str, bytes]:
        manifest, blobs = oci_image(layers, **kw)
        for b in blobs.values():
            self.push_blob(b)
        r = self("PUT", f"/v2/<name>/manifests/{ref}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        return sha(manifest), manifest


def _errors(r: requests.Response) -> list[str]:
    body = r.json()
    assert isinstance(body.get("errors"), list) and body["errors"], body
    return [e["code"] for e in body["errors"]]


@pytest.fixture(params=["dockyard", "docker-registry"])
def both(request, dyreg, peer_registry) -> Client:
    return Client(dyreg.url if request.param == "dockyard" else f"http://{peer_registry}")


@pytest.fixture
def dy(dyreg) -> Client:
    return Client(dyreg.url)


# ------------------------------------------------------------------------------------------- pull
def test_base_route_and_version_header(both):
    r = both("GET", "/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_pull_blobs_and_manifests(both):
    layer = gz(b"layer for pull " + uuid.uuid4().bytes)
    digest, manifest = both.push_image([layer], "pulltag")
    cfg = json.loads(manifest)["config"]["digest"]
    assert both("HEAD", f"/v2/<name>/blobs/{DUMMY}").status_code == 404
    r = both("HEAD", f"/v2/<name>/blobs/{cfg}")
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == cfg and r.content == b""
    assert both("GET", f"/v2/<name>/blobs/{DUMMY}").status_code == 404
    r = both("GET", f"/v2/<name>/blobs/{sha(layer)}")
    assert r.status_code == 200 and r.content == layer
    assert int(r.headers["Content-Length"]) == len(layer)
    assert both("HEAD", "/v2/<name>/manifests/nonexistent").status_code == 404
    assert both("GET", "/v2/<name>/manifests/nonexistent").status_code == 404
    for ref in (digest, "pulltag"):
        for method in ("HEAD", "GET"):
            r = both(method, f"/v2/<name>/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200, (method, ref)
            assert r.headers["Docker-Content-Digest"] == digest
            assert r.headers["Content-Type"] == OCI_MANIFEST
            assert r.content == (manifest if method == "GET" else b"")


def test_bad_manifest_reference_answers_400_with_a_spec_code(dy):
    # distribution 2.8 answers 500
    r = dy("PUT", "/v2/<name>/manifests/sha256:totallywrong", data=b"{\"invalid\": true}",
             headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert _errors(r)[0] in CODES


def test_blob_ranges(dy):
    data = bytes(range(256)) * 40
    d = dy.push_blob(data)
    r = dy("GET", f"/v2/<name>/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = dy("GET", f"/v2/<name>/blobs/{d}", headers={"Range": f"bytes={len(data) + 5}-{len(data) + 10}"})
    assert r.status_code == 416


def test_malformed_digest_is_400_never_500(dy):
    # distribution 2.8 answers 500 to the first of these
    for path in ("/v2/<name>/blobs/sha256:xyz", "/v2/<name>/manifests/sha256:abc", "/v2/<name>/blobs/md5:0000"):
        r = dy("GET", path)
        assert r.status_code == 400, (path, r.status_code)
        assert _errors(r) == ["DIGEST_INVALID"]


def test_blob_of_another_repository_is_not_served(dy):
    d = dy.push_blob(b"private to one repository " + uuid.uuid4().bytes)
    assert dy("GET", f"/v2/conf/elsewhere/blobs/{d}").status_code == 404


# ------------------------------------------------------------------------------------------- push
def test_push_streamed(both):
    blob = b"streamed blob " + uuid.uuid4().bytes
    r = both("POST", "/v2/<name>/blobs/uploads/")
    assert r.status_code == 202 and r.headers["Location"]
    r = both("PATCH", both.loc(r), data=blob, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    r = both("PUT", both.loc(r), params={"digest": sha(blob)}, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.headers["Location"]
    assert r.headers["Docker-Content-Digest"] == sha(blob)


def test_push_monolithic_post(dy):
    # distribution 2.8 ignores the digest and opens a session (202)
    blob = b"monolithic blob " + uuid.uuid4().bytes
    assert dy("GET", f"/v2/<name>/blobs/{sha(blob)}").status_code == 404
    r = dy("POST", "/v2/<name>/blobs/uploads/", params={"digest": sha(blob)}, data=blob,
           headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.headers["Location"]
    assert dy("GET", f"/v2/<name>/blobs/{sha(blob)}").content == blob


def test_push_monolithic(both):
    blob2 = b"monolithic put " + uuid.uuid4().bytes
    r = both("POST", "/v2/<name>/blobs/uploads/")
    assert r.status_code == 202
    r = both("PUT", both.loc(r), params={"digest": sha(blob2)}, data=blob2)
    assert r.status_code == 201 and r.headers["Location"]
    assert both("GET", f"/v2/<name>/blobs/{sha(blob2)}").status_code == 200


def test_push_chunked_in_order(both):
    blob = b"chunk one|" + uuid.uuid4().bytes + b"|chunk two"
    a, b = blob[:10], blob[10:]
    r = both("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    r = both("PATCH", both.loc(r), data=a, headers={"Content-Range": f"0-{len(a) - 1}",
                                                    "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    assert r.headers["Range"] == f"0-{len(a) - 1}"
    st = both("GET", both.loc(r))
    assert st.status_code == 204 and st.headers["Range"] == f"0-{len(a) - 1}"
    r = both("PUT", both.loc(r), params={"digest": sha(blob)}, data=b,
             headers={"Content-Range": f"{len(a)}-{len(blob) - 1}", "Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.headers["Location"]
    assert both("GET", f"/v2/<name>/blobs/{sha(blob)}").content == blob


def test_push_chunk_out_of_order_is_416(dy):
    # distribution 2.8 accepts it
    r = dy("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    r = dy("PATCH", dy.loc(r), data=b"second", headers={"Content-Range": "10-15",
                                                       "Content-Type": "application/octet-stream"})
    assert r.status_code == 416
    assert r.headers["Range"] == "0-0" and r.headers["Location"]


def test_upload_cancel_and_unknown_session(both):
    r = both("POST", "/v2/<name>/blobs/uploads/")
    loc = both.loc(r)
    assert both("DELETE", loc).status_code == 204
    r = both("GET", loc)
    assert r.status_code == 404 and _errors(r) == ["BLOB_UPLOAD_UNKNOWN"]


def test_digest_mismatch_and_missing_digest(both):
    r = both("POST", "/v2/<name>/blobs/uploads/")
    r = both("PUT", both.loc(r), params={"digest": sha(b"other")}, data=b"content")
    assert r.status_code == 400 and _errors(r) == ["DIGEST_INVALID"]
    r = both("POST", "/v2/<name>/blobs/uploads/")
    r = both("PUT", both.loc(r), data=b"content")
    assert r.status_code == 400 and _errors(r) == ["DIGEST_INVALID"]


def test_cross_repository_mount(both):
    src = f"{both.name}-src"
    blob = b"mount me " + uuid.uuid4().bytes
    both.push_blob(blob, src)
    r = both("POST", "/v2/<name>/blobs/uploads/", params={"mount": sha(blob), "from": src})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(blob)
    assert both("GET", f"/v2/<name>/blobs/{sha(blob)}").content == blob
    # a blob the source does not have: an upload session instead
    r = both("POST", "/v2/<name>/blobs/uploads/", params={"mount": DUMMY, "from": src})
    assert r.status_code == 202 and r.headers["Location"]


def test_automatic_mount_without_from(dy):
    blob = b"auto mount " + uuid.uuid4().bytes
    dy.push_blob(blob, f"{dy.name}-elsewhere")
    r = dy("POST", "/v2/<name>/blobs/uploads/", params={"mount": sha(blob)})
    assert r.status_code == 201
    assert dy("GET", f"/v2/<name>/blobs/{sha(blob)}").content == blob


def test_manifest_upload(both):
    assert both("GET", "/v2/<name>/manifests/nonexistent").status_code == 404
    manifest, blobs = oci_image([gz(b"m " + uuid.uuid4().bytes)])
    for b in blobs.values():
        both.push_blob(b)
    for i in range(4):
        r = both("PUT", f"/v2/<name>/manifests/test{i}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201 and r.headers["Location"]
        assert r.headers["Docker-Content-Digest"] == sha(manifest)
    r = both("GET", f"/v2/<name>/manifests/{sha(manifest)}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.content == manifest


def test_manifest_with_no_layers_and_by_digest(both):
    manifest, blobs = oci_image([])
    for b in blobs.values():
        both.push_blob(b)
    r = both("PUT", f"/v2/<name>/manifests/{sha(manifest)}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201


def test_manifest_with_missing_blob_is_refused(both):
    manifest, _ = oci_image([gz(b"never pushed " + uuid.uuid4().bytes)])
    r = both("PUT", "/v2/<name>/manifests/x", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and set(_errors(r)) == {"MANIFEST_BLOB_UNKNOWN"}


def test_invalid_manifests(dy):
    for body in (b"not json", b"[]", json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": 5}).encode()):
        r = dy("PUT", "/v2/<name>/manifests/bad", data=body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 400 and _errors(r) == ["MANIFEST_INVALID"], body
    r = dy("PUT", "/v2/<name>/manifests/bad:tag!", data=b"{}", headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400


def test_sha512_blob_and_manifest(dy):
    blob = b"sha512 content " + uuid.uuid4().bytes
    d512 = "sha512:" + hashlib.sha512(blob).hexdigest()
    r = dy("POST", "/v2/<name>/blobs/uploads/")
    r = dy("PATCH", dy.loc(r), data=blob)
    r = dy("PUT", dy.loc(r), params={"digest": d512})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d512
    r = dy("GET", f"/v2/<name>/blobs/{d512}")
    assert r.status_code == 200 and r.content == blob
    manifest, blobs = oci_image([gz(b"x" + uuid.uuid4().bytes)])
    for b in blobs.values():
        dy.push_blob(b)
    m512 = "sha512:" + hashlib.sha512(manifest).hexdigest()
    r = dy("PUT", f"/v2/<name>/manifests/{m512}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == m512
    r = dy("GET", f"/v2/<name>/manifests/{m512}")
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == m512 and r.content == manifest


# ------------------------------------------------------------------------------ content discovery
def test_tags_list_and_pagination(dy):
    # distribution 2.8 ignores n and last
    manifest, blobs = oci_image([])
    for b in blobs.values():
        dy.push_blob(b)
    tags = ["a1", "b2", "c3", "d4", "e5"]
    for t in tags:
        assert dy("PUT", f"/v2/<name>/manifests/{t}", data=manifest, headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    r = dy("GET", "/v2/<name>/tags/list")
    assert r.status_code == 200 and r.json() == {"name": dy.name, "tags": tags}
    r = dy("GET", "/v2/<name>/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a1", "b2"]
    assert 'rel="next"' in r.headers["Link"] and "last=b2" in r.headers["Link"]
    r = dy("GET", "/v2/<name>/tags/list", params={"n": 2, "last": "b2"})
    assert r.json()["tags"] == ["c3", "d4"]
    r = dy("GET", "/v2/<name>/tags/list", params={"n": 0})
    assert r.json()["tags"] == []
    assert dy("GET", "/v2/conf/never-pushed/tags/list").status_code == 404


def test_catalog_pagination(both):
    r = both("GET", "/v2/_catalog")
    assert r.status_code == 200 and isinstance(r.json()["repositories"], list)
    manifest, blobs = oci_image([])
    for suffix in ("x", "y"):
        for b in blobs.values():
            both.push_blob(b, f"{both.name}{suffix}")
        both("PUT", f"/v2/{both.name}{suffix}/manifests/t", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    names = []
    path = "/v2/_catalog?n=1"
    while path:
        r = both("GET", path)
        names += r.json()["repositories"]
        link = r.headers.get("Link", "")
        path = link.split(";")[0].strip("<> ") if link else ""
    assert f"{both.name}x" in names and f"{both.name}y" in names
    assert names == sorted(names)


def test_referrers(dy):
    # distribution 2.8 has no referrers API
    subject_digest, subject = dy.push_image([gz(b"s" + uuid.uuid4().bytes)], "subject")
    desc = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject)}
    r = dy("GET", f"/v2/<name>/referrers/{DUMMY}")
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX and r.json()["manifests"] == []
    made = {}
    for i, (atype, cfg) in enumerate([("application/vnd.example.a", "application/vnd.oci.empty.v1+json"),
                                      ("application/vnd.example.b", "application/vnd.oci.empty.v1+json"),
                                      (None, "application/vnd.example.a")]):
        m, blobs = oci_image([gz(f"ref {i}".encode() + uuid.uuid4().bytes)], subject=desc, artifact_type=atype,
                             annotations={"org.example.n": str(i)}, config_media=cfg)
        for b in blobs.values():
            dy.push_blob(b)
        r = dy("PUT", f"/v2/<name>/manifests/{sha(m)}", data=m, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201 and r.headers["OCI-Subject"] == subject_digest
        made[sha(m)] = str(i)
    r = dy("GET", f"/v2/<name>/referrers/{subject_digest}")
    got = r.json()["manifests"]
    assert {d["digest"]: d["annotations"]["org.example.n"] for d in got} == made
    assert all(d["mediaType"] == OCI_MANIFEST and d["size"] > 0 for d in got)
    r = dy("GET", f"/v2/<name>/referrers/{subject_digest}", params={"artifactType": "application/vnd.example.a"})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert sorted(d["annotations"]["org.example.n"] for d in r.json()["manifests"]) == ["0", "2"]
    # a referrer pushed before its subject exists is listed too
    missing = {"mediaType": OCI_MANIFEST, "digest": sha(b"no such manifest"), "size": 16}
    m, blobs = oci_image([], subject=missing, artifact_type="application/vnd.example.c")
    for b in blobs.values():
        dy.push_blob(b)
    r = dy("PUT", f"/v2/<name>/manifests/{sha(m)}", data=m, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["OCI-Subject"] == missing["digest"]
    assert [d["digest"] for d in dy("GET", f"/v2/<name>/referrers/{missing['digest']}").json()["manifests"]] == [sha(m)]
    # deleting a referrer removes it from the list
    first = next(iter(made))
    assert dy("DELETE", f"/v2/<name>/manifests/{first}").status_code == 202
    assert first not in [d["digest"] for d in dy("GET", f"/v2/<name>/referrers/{subject_digest}").json()["manifests"]]


def test_index_with_children(both):
    children = [both.push_image([gz(f"arch {a}".encode() + uuid.uuid4().bytes)], f"c-{a}") for a in ("amd64", "arm64")]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": len(m), "platform": {"os": "linux", "architecture": a}}
        for (d, m), a in zip(children, ("amd64", "arm64"), strict=True)]}).encode()
    r = both("PUT", "/v2/<name>/manifests/multi", data=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    r = both("GET", "/v2/<name>/manifests/multi", headers={"Accept": OCI_INDEX})
    assert r.headers["Content-Type"] == OCI_INDEX and r.content == index


# ----------------------------------------------------------------------------- content management
def test_manifest_delete_by_digest(both):
    digest, _ = both.push_image([gz(b"del " + uuid.uuid4().bytes)], "deltag")
    before = len(both("GET", "/v2/<name>/tags/list").json()["tags"])
    assert both("DELETE", f"/v2/<name>/manifests/{digest}").status_code == 202
    assert both("GET", f"/v2/<name>/manifests/{digest}").status_code == 404
    tags = both("GET", "/v2/<name>/tags/list").json().get("tags") or []
    assert len(tags) < before


def test_tag_delete(dy):
    # distribution 2.8 refuses tag deletion
    digest, _ = dy.push_image([gz(b"tagdel " + uuid.uuid4().bytes)], "tagtest0")
    dy("PUT", "/v2/<name>/manifests/keep", data=dy("GET", f"/v2/<name>/manifests/{digest}").content,
       headers={"Content-Type": OCI_MANIFEST})
    assert dy("DELETE", "/v2/<name>/manifests/tagtest0").status_code == 202
    assert dy("GET", "/v2/<name>/tags/list").json()["tags"] == ["keep"]
    assert dy("GET", f"/v2/<name>/manifests/{digest}").status_code == 200
    assert dy("DELETE", "/v2/<name>/manifests/tagtest0").status_code == 404


def test_blob_delete(both):
    d = both.push_blob(b"delete me " + uuid.uuid4().bytes)
    assert both("DELETE", f"/v2/<name>/blobs/{d}").status_code == 202
    assert both("GET", f"/v2/<name>/blobs/{d}").status_code == 404


def test_delete_disabled_is_unsupported(make_registry):
    reg = make_registry(delete=False)
    c = Client(reg.url)
    d = c.push_blob(b"kept")
    r = c("DELETE", f"/v2/<name>/blobs/{d}")
    assert r.status_code == 405 and _errors(r) == ["UNSUPPORTED"]


def test_bad_names_and_methods(dy):
    r = dy("GET", "/v2/UPPER/case/tags/list")
    assert r.status_code in (400, 404)
    r = dy("PATCH", "/v2/<name>/manifests/latest")
    assert r.status_code == 405


def test_large_manifest_sent_in_pieces_and_too_large(dy):
    manifest, blobs = oci_image([], annotations={f"org.example.k{i}": "v" * 200 for i in range(4000)})
    for b in blobs.values():
        dy.push_blob(b)
    assert len(manifest) > 800_000

    def pieces():
        for i in range(0, len(manifest), 10_000):
            yield manifest[i:i + 10_000]
    r = dy("PUT", "/v2/<name>/manifests/big", data=pieces(), headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(manifest)
    huge, _ = oci_image([], annotations={f"k{i}": "v" * 1000 for i in range(4500)})
    r = dy("PUT", "/v2/<name>/manifests/huge", data=huge, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413 and _errors(r) == ["SIZE_INVALID"]
