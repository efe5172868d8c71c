"""Image endpoints via docker-py: import, list/filter, inspect, history, tag, delete, prune."""

from __future__ import annotations

import io
import json
import tarfile

import docker
import pytest

from ..helpers import tar_bytes as _tar

pytestmark = pytest.mark.root



def test_busybox_inspect_shape(client):
    img = client.images.get("busybox")
    a = img.attrs
    assert a["Id"].startswith("sha256:") and len(a["Id"]) == 71
    assert a["RepoTags"] == ["busybox:latest"]
    assert a["Os"] == "linux" and a["Architecture"]
    assert a["RootFS"]["Type"] == "layers" and len(a["RootFS"]["Layers"]) == 1
    assert a["GraphDriver"]["Name"] == "overlay2"
    assert a["Size"] > 500_000


def test_image_id_is_config_digest(client, daemon):
    import hashlib
    img = client.images.get("busybox")
    blob = daemon.data_root / "content" / "blobs" / "sha256" / img.id.split(":")[1]
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == img.id


def test_import_with_changes_and_tag_untag(client):
    api = client.api
    data = _tar({"hello.txt": b"hi\n"})
    out = api.import_image_from_data(data, repository="example/imp", tag="v1",
                                      changes=["CMD [\"/bin/sh\"]", "ENV A=1 B=2", "LABEL x=y", "WORKDIR /w",
                                               "EXPOSE 80", "USER 1000"])
    iid = json.loads(out.strip().splitlines()[-1])["status"]
    img = client.images.get("example/imp:v1")
    assert img.id == iid
    cfg = img.attrs["Config"]
    assert cfg["Cmd"] == ["/bin/sh"]
    assert "A=1" in cfg["Env"] and "B=2" in cfg["Env"]
    assert cfg["Labels"] == {"x": "y"} and cfg["WorkingDir"] == "/w" and cfg["User"] == "1000"
    assert "80/tcp" in cfg["ExposedPorts"]
    img.tag("example/imp", "v2")
    assert sorted(client.images.get(iid).tags) == ["example/imp:v1", "example/imp:v2"]
    assert client.images.list(filters={"label": "x=y"})[0].id == iid
    assert client.images.list(filters={"reference": "example/*"})[0].id == iid
    res = api.remove_image("example/imp:v1")
    assert res == [{"Untagged": "example/imp:v1"}]
    res = api.remove_image("example/imp:v2")
    assert {"Untagged": "example/imp:v2"} in res and {"Deleted": iid} in res
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(iid)


def test_delete_conflicts(client):
    data = _tar({"a": b"1"})
    iid = json.loads(client.api.import_image_from_data(data, repository="conf", tag="one").splitlines()[-1])["status"]
    client.images.get(iid).tag("conf", "two")
    with pytest.raises(docker.errors.APIError) as e:
        client.api.remove_image(iid[7:19])
    assert e.value.status_code == 409 and "referenced in multiple repositories" in str(e.value)
    c = client.containers.create("conf:one", command=["x"])
    client.api.remove_image("conf:two")
    with pytest.raises(docker.errors.APIError) as e:
        client.api.remove_image("conf:one")
    assert e.value.status_code == 409 and "is using its referenced image" in str(e.value)
    c.remove()
    client.api.remove_image("conf:one")


def test_dangling_and_prune(client):
    d1 = _tar({"f": b"first"})
    d2 = _tar({"f": b"second"})
    id1 = json.loads(client.api.import_image_from_data(d1, repository="dang", tag="x").splitlines()[-1])["status"]
    id2 = json.loads(client.api.import_image_from_data(d2, repository="dang", tag="x").splitlines()[-1])["status"]
    dangling = [i.id for i in client.images.list(filters={"dangling": True})]
    assert id1 in dangling and id2 not in dangling
    res = client.images.prune(filters={"dangling": True})
    assert {"Deleted": id1} in res["ImagesDeleted"]
    assert id1 not in [i.id for i in client.images.list(all=True)]
    client.images.remove("dang:x")


def test_history(client):
    h = client.images.get("busybox").history()
    assert h[0]["Id"].startswith("sha256:")
    assert h[0]["Size"] > 0
    assert "Imported from" in h[0]["Comment"]


def test_unknown_image_is_404(client):
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuchimage:latest")
    with pytest.raises(docker.errors.APIError) as e:
        client.images.get("Bad//Name")
    assert e.value.status_code in (400, 404)


def test_hostile_import_rejected_and_store_intact(client, daemon, tmp_path):
    before = sorted(i.id for i in client.images.list(all=True))
    blobs_before = sorted(p.name for p in (daemon.data_root / "content" / "blobs" / "sha256").iterdir())
    evil = _tar({"../../../../tmp/dockyard-escape": b"pwned"})
    with pytest.raises(docker.errors.APIError) as e:
        client.api.import_image_from_data(evil, repository="evil")
    assert e.value.status_code == 400
    assert "escapes" in str(e.value)
    assert not (tmp_path / "dockyard-escape").exists()
    import os
    assert not os.path.exists("/tmp/dockyard-escape")
    assert sorted(i.id for i in client.images.list(all=True)) == before
    blobs_after = sorted(p.name for p in (daemon.data_root / "content" / "blobs" / "sha256").iterdir())
    assert blobs_after == blobs_before
    assert not list((daemon.data_root / "content" / "ingest").iterdir())


def test_malformed_tar_rejected(client):
    with pytest.raises(docker.errors.APIError) as e:
        client.api.import_image_from_data(b"this is not a tar file at all" * 40, repository="junk")
    assert e.value.status_code == 400


def test_before_since_filters(client):
    a = json.loads(client.api.import_image_from_data(_tar({"a": b"a"}), repository="order", tag="a").splitlines()[-1])["status"]
    b = json.loads(client.api.import_image_from_data(_tar({"b": b"b"}), repository="order", tag="b").splitlines()[-1])["status"]
    assert a in [i.id for i in client.images.list(filters={"before": "order:b"})]
    assert b not in [i.id for i in client.images.list(filters={"before": "order:b"})]
    assert [i.id for i in client.images.list(filters={"since": "order:a"})] == [b]
    client.images.remove("order:a")
    client.images.remove("order:b")


def test_import_symlinks_pointing_out_stay_inside(client, tmp_path):
    import os
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ln = tarfile.TarInfo("escape")
        ln.type, ln.linkname = tarfile.SYMTYPE, "/"
        tf.addfile(ln)
        data = b"contained"
        ti = tarfile.TarInfo("escape/tmp/dockyard-symlink-escape")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
        ab = tarfile.TarInfo("/tmp/dockyard-abs-escape")
        ab.size = len(data)
        tf.addfile(ab, io.BytesIO(data))
    client.api.import_image_from_data(buf.getvalue(), repository="symout")
    assert not os.path.exists("/tmp/dockyard-symlink-escape") and not os.path.exists("/tmp/dockyard-abs-escape")
    client.api.remove_image("symout")


def test_list_sizes(client):
    c = client.containers.run("busybox", ["sh", "-c", "head -c 5000 /dev/zero > /big"], detach=True)
    c.wait()
    item = client.api.containers(all=True, size=True, filters={"id": c.id})[0]
    assert item["SizeRw"] >= 5000 and item["SizeRootFs"] > item["SizeRw"]
    c.remove()


def test_prune_all_with_until_and_label(client):
    a = json.loads(client.api.import_image_from_data(_tar({"p": b"1"}), repository="pr", tag="a",
                                                      changes=["LABEL keep=no"]).splitlines()[-1])["status"]
    b = json.loads(client.api.import_image_from_data(_tar({"p": b"2"}), repository="pr", tag="b",
                                                      changes=["LABEL keep=yes"]).splitlines()[-1])["status"]
    res = client.images.prune(filters={"dangling": False, "until": "1"})
    assert not res["ImagesDeleted"]
    res = client.images.prune(filters={"dangling": False, "label": "keep=no"})
    assert {"Deleted": a} in res["ImagesDeleted"] and {"Deleted": b} not in res["ImagesDeleted"]
    client.images.remove("pr:b")
    assert b not in [i.id for i in client.images.list(all=True)]


def test_pull_of_a_bad_reference_is_400(client):
    r = client.api._post(client.api._url("/images/create"), params={"fromImage": "\nBAD ref"})
    assert r.status_code == 400 and "invalid reference format" in r.json()["message"]
    r = client.api._post(client.api._url("/images/create"), params={"fromImage": "busybox", "tag": "bad tag"})
    assert r.status_code == 400
    r = client.api._post(client.api._url("/images/create"), params={"fromImage": "busybox", "platform": "linux"})
    assert r.status_code == 400 and "unknown operating system or architecture" in r.json()["message"]


def test_forced_rmi_past_a_stopped_container_deletes_untagged_parents(client):
    """dockerd's rule: `rmi -f` of an image only stopped containers use deletes it and its untagged
    parents; the container keeps its layers and still starts. A running user keeps it (untagged)."""
    df = b"FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n"
    img, _ = client.images.build(fileobj=io.BytesIO(df), tag="withparents:1", rm=True)
    parent = client.api.inspect_image(img.id)["Parent"]
    assert parent
    ctr = client.containers.create("withparents:1", ["cat", "/a", "/b"], network_mode="none")
    out = client.api.remove_image("withparents:1", force=True)
    assert {"Untagged": "withparents:1"} in out and {"Deleted": img.id} in out and {"Deleted": parent} in out, out
    for gone in (img.id, parent):
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(gone)
    ctr.start()
    assert ctr.wait()["StatusCode"] == 0 and ctr.logs() == b"a\nb\n"
    assert ctr.attrs["Image"] == img.id
    ctr.remove()
    img, _ = client.images.build(fileobj=io.BytesIO(df), tag="withparents:2", rm=True)
    live = client.containers.run("withparents:2", ["sleep", "60"], detach=True, network_mode="none")
    try:
        assert client.api.remove_image("withparents:2", force=True) == [{"Untagged": "withparents:2"}]
        assert client.images.get(img.id).tags == []
    finally:
        live.remove(force=True)
    client.images.remove(img.id)


def test_save_by_id_carries_no_tags_as_dockerd(client):
    """docker-py's test_save_and_load: an image saved by its ID loads back as that ID alone
    (dockerd writes no RepoTags for an ID); by a name, with that name."""
    data = _tar({"a": b"1"})
    iid = json.loads(client.api.import_image_from_data(data, repository="savetags", tag="one").splitlines()[-1])["status"]
    client.images.get(iid).tag("savetags", "two")
    img = client.images.get(iid)
    loaded = client.images.load(b"".join(img.save(named=False)))
    assert [i.id for i in loaded] == [iid]
    man = json.loads(tarfile.open(fileobj=io.BytesIO(b"".join(client.api.get_image(iid)))).extractfile("manifest.json").read())
    assert man[0]["RepoTags"] is None
    man = json.loads(tarfile.open(fileobj=io.BytesIO(b"".join(client.api.get_image("savetags:two")))).extractfile(
        "manifest.json").read())
    assert man[0]["RepoTags"] == ["savetags:two"]
    man = json.loads(tarfile.open(fileobj=io.BytesIO(b"".join(client.api.get_image("savetags")))).extractfile(
        "manifest.json").read())
    assert sorted(man[0]["RepoTags"]) == ["savetags:one", "savetags:two"]
    client.images.remove(iid, force=True)
