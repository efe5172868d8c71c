"""Issue 9: kill -9 of the daemon in the middle of a pull leaves nothing partial (no image, no
staged layer, no half-written blob), and the pull, tried again, succeeds. (Resuming the layer
from the byte where it stopped is not built yet: the retry starts it anew.)"""

from __future__ import annotations

import io
import os
import tarfile
import threading

import docker
import pytest

from .conftest import skopeo_copy

pytestmark = pytest.mark.root


def _big_image_tar(base_tar, size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(base_tar) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        info = tarfile.TarInfo("big.bin")
        info.size = size
        dst.addfile(info, io.BytesIO(os.urandom(size)))
    return out.getvalue()


def test_kill9_in_the_middle_of_a_pull(registry, daemon, busybox_tar, fresh_daemon, tmp_path):
    c = docker.APIClient(base_url=daemon.host, version="1.41")
    c.import_image_from_data(_big_image_tar(busybox_tar, 48 << 20), repository="bigpull", tag="1")
    tar = tmp_path / "big.tar"
    with open(tar, "wb") as f:
        for chunk in c.get_image("bigpull:1"):
            f.write(chunk)
    c.remove_image("bigpull:1")
    c.close()
    skopeo_copy(tar, f"{registry}/library/bigpull:1")

    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    downloading = threading.Event()

    def pull() -> None:
        try:
            for m in c.pull(f"{registry}/library/bigpull", tag="1", stream=True, decode=True):
                if m.get("status") == "Downloading":
                    downloading.set()
        except Exception:  # noqa: BLE001 - the daemon dies under it
            pass
        downloading.set()
    t = threading.Thread(target=pull)
    t.start()
    assert downloading.wait(60)
    d.kill9()
    t.join(30)
    c.close()
    d.start()
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert c.images() == []
    snaps = d.data_root / "snapshots"
    assert not [p for p in snaps.iterdir() if p.is_dir()] if snaps.exists() else True, list(snaps.iterdir())
    assert not list((d.data_root / "trash").glob("*")) if (d.data_root / "trash").exists() else True
    # again, to the end
    out = list(c.pull(f"{registry}/library/bigpull", tag="1", stream=True, decode=True))
    assert out[-1]["status"].startswith("Status: Downloaded newer image"), out[-3:]
    assert c.inspect_image(f"{registry}/library/bigpull:1")["Size"] > 48 << 20
    c.close()
