"""save / load: our archives, Docker's archives, and the round trip through real Docker."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest

from ..helpers import small_data_root
from ..helpers import tar_bytes as _tar

pytestmark = pytest.mark.root


def test_save_load_round_trip_cli(dy_cli, tmp_path):
    dy_cli("tag", "busybox", "rt/one:1")
    dy_cli("tag", "busybox", "rt/two:2")
    iid = dy_cli("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    out = tmp_path / "both.tar"
    dy_cli("save", "-o", str(out), "rt/one:1", "rt/two:2")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        man = json.load(tf.extractfile("manifest.json"))
        index = json.load(tf.extractfile("index.json"))
        layer_blobs = [n for n in names if n.startswith("blobs/sha256/") and tf.getmember(n).size > 100000]
    assert len(layer_blobs) == 1, "a shared layer is written once"
    assert {t for e in man for t in e["RepoTags"]} == {"rt/one:1", "rt/two:2"}
    assert len(index["manifests"]) == 2 and "oci-layout" in names
    dy_cli("rmi", "rt/one:1", "rt/two:2")
    p = dy_cli("load", "-i", str(out))
    assert "Loaded image: rt/one:1" in p.stdout and "Loaded image: rt/two:2" in p.stdout
    assert dy_cli("image", "inspect", "-f", "{{.Id}}", "rt/one:1").stdout.strip() == iid
    assert dy_cli("run", "--rm", "rt/two:2", "echo", "ok").stdout == "ok\n"
    dy_cli("rmi", "rt/one:1", "rt/two:2")


def test_load_via_docker_py_and_stdin(client, daemon, tmp_path):
    data = b"".join(client.images.get("busybox").save(named=True))
    imgs = client.images.load(data)
    assert imgs[0].tags == ["busybox:latest"]
    from ..helpers import BIN
    p = subprocess.run([str(BIN / "dockyard"), "load", "-q"], input=data, capture_output=True, env=daemon.env())
    assert p.returncode == 0 and b"Loaded image: busybox:latest" in p.stdout
    # a gzip-compressed archive, from a file (sent with sendfile and a Content-Length)
    import gzip
    gz = tmp_path / "bb.tar.gz"
    gz.write_bytes(gzip.compress(data, 1))
    p = subprocess.run([str(BIN / "dockyard"), "load", "-i", str(gz)], capture_output=True, env=daemon.env())
    assert p.returncode == 0 and b"Loaded image: busybox:latest" in p.stdout, p.stderr


def test_bad_archives_are_stream_errors_and_store_intact(client, daemon):
    """As dockerd: a 200 JSON stream whose last message is the error (docker-py: ImageLoadError)."""
    import docker
    blobs = sorted(p.name for p in (daemon.data_root / "content" / "blobs" / "sha256").iterdir())
    snaps = sorted(p.name for p in (daemon.data_root / "snapshots").iterdir())
    for bad in (b"not a tar" * 100, _tar({"random.txt": b"x"}), _tar({"manifest.json": b"{not json"}),
                _tar({"manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode(),
                      "c.json": json.dumps({"rootfs": {"diff_ids": ["sha256:" + "0" * 64]}}).encode(),
                      "l.tar": _tar({"f": b"data"})})):
        with pytest.raises(docker.errors.ImageLoadError) as e:
            client.images.load(bad)
        assert str(e.value), "the error says what is wrong"
    assert sorted(p.name for p in (daemon.data_root / "content" / "blobs" / "sha256").iterdir()) == blobs
    # nothing half-unpacked is left (gc may also drop an unused init layer: a subset, not equal)
    assert set(p.name for p in (daemon.data_root / "snapshots").iterdir()) <= set(snaps)
    assert not list((daemon.data_root / "content" / "ingest").iterdir())



def test_round_trip_with_real_docker(real_docker, dy_cli, busybox_tar, tmp_path):
    """docker save (Debian dockerd) → dockyard load → dockyard save → docker load."""
    real_docker.docker("import", "-c", 'CMD ["echo", "from-docker"]', str(busybox_tar), "peer/img:1")
    real_docker.docker("run", "--rm", "--network", "none", "peer/img:1")
    did = real_docker.docker("image", "inspect", "-f", "{{.Id}}", "peer/img:1").stdout.decode().strip()
    layers = real_docker.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", "peer/img:1").stdout
    a = tmp_path / "from-docker.tar"
    real_docker.docker("save", "-o", str(a), "peer/img:1")
    assert "Loaded image: peer/img:1" in dy_cli("load", "-i", str(a)).stdout
    assert dy_cli("image", "inspect", "-f", "{{.Id}}", "peer/img:1").stdout.strip() == did
    assert dy_cli("run", "--rm", "peer/img:1").stdout == "from-docker\n"
    b = tmp_path / "from-dockyard.tar"
    dy_cli("save", "-o", str(b), "peer/img:1")
    real_docker.docker("rmi", "peer/img:1")
    out = real_docker.docker("load", "-i", str(b)).stdout.decode()
    assert "peer/img:1" in out
    assert real_docker.docker("image", "inspect", "-f", "{{.Id}}", "peer/img:1").stdout.decode().strip() == did
    assert real_docker.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", "peer/img:1").stdout == layers
    out = real_docker.docker("run", "--rm", "--network", "none", "peer/img:1").stdout
    assert out == b"from-docker\n"
    real_docker.docker("rmi", "peer/img:1")
    dy_cli("rmi", "peer/img:1")


def _archive_with_layer(files: dict[str, bytes], tag: str) -> tuple[bytes, str]:
    import hashlib
    layer = _tar(files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    return _tar({"abc/layer.tar": layer, "cfg.json": cfg,
                 "manifest.json": json.dumps([{"Config": "cfg.json", "RepoTags": [tag],
                                               "Layers": ["abc/layer.tar"]}]).encode()}), diff_id


def test_large_layers_are_unpacked_once(client, daemon):
    import os
    big = os.urandom(1 << 20) * 12   # past SPOOL_MIN: unpacked by a worker process
    data, diff_id = _archive_with_layer({"data/big.bin": big, "data/small.txt": b"s"}, "bigl:1")
    client.images.load(data)
    img = client.images.get("bigl:1")
    assert img.attrs["RootFS"]["Layers"] == [diff_id]
    snaps = daemon.data_root / "snapshots"
    found = [p for p in snaps.glob("*/fs/data/big.bin")]
    assert len(found) == 1 and found[0].stat().st_size == len(big)
    client.images.load(data)  # again: the known layer is not unpacked a second time
    assert len(list(snaps.glob("*/fs/data/big.bin"))) == 1
    client.images.remove("bigl:1")
    assert not list(snaps.glob("*/fs/data/big.bin"))


def test_hostile_large_layer_rejected_and_nothing_left(client, daemon):
    import os

    import docker
    before = sorted(p.name for p in (daemon.data_root / "snapshots").iterdir())
    data, _ = _archive_with_layer({"pad.bin": os.urandom(10 << 20), "../../escape": b"x"}, "evil:1")
    with pytest.raises(docker.errors.ImageLoadError, match="escapes"):
        client.images.load(data)
    assert sorted(p.name for p in (daemon.data_root / "snapshots").iterdir()) == before
    assert not list((daemon.data_root / "content" / "ingest").iterdir())


def test_one_layer_under_two_parents_and_saved_back_exactly(client, daemon):
    """An archive whose two images hold the same layer on different parents: the layer arrives
    once, is unpacked once while streaming, then copied from its record for the second chain.
    Saving gives back the exact layer bytes (the DiffIDs) for both."""
    import hashlib
    import io
    import os
    shared = _tar({"shared/big.bin": os.urandom(5 << 20)})   # > 4 MiB: unpacked while it streams
    base = _tar({"base.txt": b"base"})
    sid, bid = ("sha256:" + hashlib.sha256(x).hexdigest() for x in (shared, base))

    def cfg(diff_ids: list[str]) -> bytes:
        return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                           "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    data = _tar({"s/layer.tar": shared, "b/layer.tar": base, "one.json": cfg([sid]), "two.json": cfg([bid, sid]),
                 "manifest.json": json.dumps([
                     {"Config": "one.json", "RepoTags": ["two-parents:one"], "Layers": ["s/layer.tar"]},
                     {"Config": "two.json", "RepoTags": ["two-parents:two"], "Layers": ["b/layer.tar", "s/layer.tar"]},
                 ]).encode()})
    client.images.load(data)
    assert client.images.get("two-parents:one").attrs["RootFS"]["Layers"] == [sid]
    assert client.images.get("two-parents:two").attrs["RootFS"]["Layers"] == [bid, sid]
    assert len(list((daemon.data_root / "snapshots").glob("*/fs/shared/big.bin"))) == 2
    saved = b"".join(client.images.get("two-parents:two").save())
    with tarfile.open(fileobj=io.BytesIO(saved)) as tf:
        blobs = {m.name: tf.extractfile(m).read() for m in tf if m.name.startswith("blobs/sha256/") and m.isfile()}
    assert blobs[f"blobs/sha256/{sid[7:]}"] == shared and blobs[f"blobs/sha256/{bid[7:]}"] == base
    client.images.remove("two-parents:one")
    client.images.remove("two-parents:two")
    assert not list((daemon.data_root / "snapshots").glob("*/fs/shared/big.bin"))


def test_load_progress_stream_unless_quiet(client, daemon):
    import os
    big = os.urandom(1 << 20) * 12   # past SPOOL_MIN: unpacked by a worker process
    data, diff_id = _archive_with_layer({"big.bin": big}, "progress:1")
    msgs = list(client.api.load_image(data, quiet=False))
    prog = [m for m in msgs if m.get("status") == "Loading layer"]
    assert prog and all(m["id"] == "abc" for m in prog)
    assert prog[-1]["progressDetail"]["current"] == prog[-1]["progressDetail"]["total"] > len(big)
    assert [p["progressDetail"]["current"] for p in prog] == sorted(p["progressDetail"]["current"] for p in prog)
    assert msgs[-1] == {"stream": "Loaded image: progress:1\n"}
    quiet = list(client.api.load_image(data, quiet=True))
    assert quiet == [{"stream": "Loaded image: progress:1\n"}]
    client.images.remove("progress:1")


def test_decompression_bomb_fails_cleanly_on_a_small_data_root(fresh_daemon, tmp_path):
    """A gzip layer that expands past the data root's free space: a clear error before the disk
    is full, nothing left behind, for import and for load."""
    import gzip
    import hashlib
    import shutil

    import docker
    with small_data_root(tmp_path) as data_root:
        d = fresh_daemon(image=False)
        assert d.data_root == data_root
        c = docker.DockerClient(base_url=d.host, version="auto")
        layer = _tar({"zeros": bytes(100 << 20)})
        bomb = gzip.compress(layer, 9)
        assert len(bomb) < 200_000
        snaps = sorted(p.name for p in (data_root / "snapshots").iterdir())
        free = shutil.disk_usage(data_root).free
        with pytest.raises(docker.errors.APIError, match="does not fit") as e:
            c.api.import_image_from_data(bomb, repository="bomb")
        assert e.value.status_code == 400
        diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
        archive = _tar({"blobs/sha256/" + hashlib.sha256(bomb).hexdigest(): bomb, "c.json": cfg.encode(),
                        "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["bomb:1"],
                                                      "Layers": ["blobs/sha256/" + hashlib.sha256(bomb).hexdigest()]}]).encode()})
        with pytest.raises(docker.errors.ImageLoadError, match="does not fit"):
            c.images.load(archive)
        assert sorted(p.name for p in (data_root / "snapshots").iterdir()) == snaps
        assert shutil.disk_usage(data_root).free >= free - (1 << 20)
        c.api.import_image_from_data(gzip.compress(_tar({"small": b"fits"})), repository="fits")
        assert c.images.get("fits").attrs["RootFS"]["Layers"]
        c.close()
        d.cleanup()
