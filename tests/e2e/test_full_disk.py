"""Issue 8: a full disk. The daemon's data root is a small loop-mounted ext4 that a file outside
the engine fills to the last block. Then container create, commit, import, load and log writing
fail with a clear error naming the cause, lose no existing data (images run, logs read, records
as they were) and leave no partial record (no image, container or layer appears); once the
space is freed, all of them work again and the logs are whole JSON. (Build-context upload: no
builder yet.)"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import docker
import pytest

from ..helpers import Daemon, mounts_under, rootfs_with_file

pytestmark = pytest.mark.root


def _fill(path: Path) -> None:
    """Write until ENOSPC, then a few more tries with small writes (the last blocks)."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1 << 9):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == 28, e
    os.sync()


def _store(data: Path) -> tuple[list[str], list[str]]:
    """The snapshots (layers and containers' upper layers) and the content store's files."""
    return (sorted(os.listdir(data / "snapshots")),
            sorted(str(p.relative_to(data)) for p in (data / "content").rglob("*") if p.is_file()))


def _names(c: docker.APIClient) -> set[str]:
    return {t for i in c.images() for t in (i.get("RepoTags") or [])}


def test_full_disk(tmp_path, busybox_tar):
    img, base = tmp_path / "small.ext4", tmp_path / "d"
    data = base / "data"
    data.mkdir(parents=True)
    subprocess.run(["truncate", "-s", "160M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(img)], check=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(data)], check=True)
    d = Daemon(base)
    try:
        d.start()
        c = docker.APIClient(base_url=d.host, version="1.41", timeout=120)
        c.import_image_from_data(busybox_tar.read_bytes(), repository="busybox", tag="latest")
        big = rootfs_with_file(busybox_tar, "extra.bin", os.urandom(4 << 20))
        c.import_image_from_data(big, repository="big", tag="1")
        saved = b"".join(c.get_image("big:1"))
        c.remove_image("big:1")
        keeper = c.create_container("busybox", ["sh", "-c", "echo before; sleep 100000"], name="keeper")
        c.start(keeper["Id"])
        talker = c.create_container("busybox", ["sh", "-c", "i=0; while :; do i=$((i+1)); echo line $i; "
                                    "usleep 20000; done"], name="talker")
        c.start(talker["Id"])
        changed = c.create_container("busybox", ["sh", "-c", "head -c 3000000 /dev/urandom > /new.bin"],
                                     name="changed")
        c.start(changed["Id"])
        assert c.wait(changed["Id"])["StatusCode"] == 0
        time.sleep(0.5)
        before_images, before_ctrs = _names(c), {x["Id"] for x in c.containers(all=True)}
        store_before = _store(data)

        _fill(data / "filler")
        errors = {}
        try:   # a container's record and directories may still fit in blocks the fs holds
            c.remove_container(c.create_container("busybox", ["true"], name="new")["Id"])
        except docker.errors.APIError as e:
            errors["create"] = str(e)
        for what, op in (
                ("commit", lambda: c.commit(changed["Id"], repository="committed", tag="1")),
                ("import", lambda: c.import_image_from_data(big, repository="big", tag="2")),
                ("load", lambda: c.load_image(saved))):
            with pytest.raises(docker.errors.APIError, match=".") as ei:
                print(what)
                r = op()
                if what == "load":   # load reports errors in its stream
                    text = "".join(json.dumps(x) for x in r)
                    raise docker.errors.APIError(text)
            errors[what] = str(ei.value)
        time.sleep(1)   # the talker writes into its log meanwhile
        for what, msg in errors.items():
            assert "no space left on device" in msg and "Errno" not in msg, f"{what}: {msg}"
        # nothing partial: the same images, containers and layers as before; nothing lost
        assert _names(c) == before_images
        assert {x["Id"] for x in c.containers(all=True)} == before_ctrs
        assert _store(data) == store_before, "layers or blobs left behind by a failed operation"
        assert c.logs("keeper") == b"before\n"
        assert c.inspect_container("talker")["State"]["Running"]

        os.unlink(data / "filler")
        os.sync()
        # everything works again
        x = c.create_container("busybox", ["echo", "again"], name="new")
        c.start(x["Id"])
        assert c.wait(x["Id"])["StatusCode"] == 0 and c.logs(x["Id"]) == b"again\n"
        c.commit(changed["Id"], repository="committed", tag="1")
        c.import_image_from_data(big, repository="big", tag="2")
        list(c.load_image(saved))
        assert {"committed:1", "big:2", "big:1"} <= _names(c)
        out = c.create_container("committed:1", ["sh", "-c", "wc -c < /new.bin"])
        c.start(out["Id"])
        c.wait(out["Id"])
        assert c.logs(out["Id"]).strip() == b"3000000"
        # the talker's log is whole JSON, and goes on after the space came back
        time.sleep(0.5)
        logf = Path(c.inspect_container("talker")["LogPath"])
        recs = [json.loads(line) for line in logf.read_text().splitlines()]
        nums = [int(r["log"].split()[1]) for r in recs]
        assert nums == sorted(nums) and nums[-1] > nums[0]
        n1 = nums[-1]
        time.sleep(0.5)
        assert int(c.logs("talker").split()[-1]) > n1
        for ctr in c.containers(all=True):
            c.remove_container(ctr["Id"], force=True)
        c.close()
    finally:
        d.cleanup()
        for m in sorted(mounts_under(data), reverse=True):
            if m != str(data.resolve()):
                subprocess.run(["umount", "-l", m])
        subprocess.run(["umount", str(data)])
    assert not mounts_under(base)
