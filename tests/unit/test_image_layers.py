"""Staged and placed layers against a concurrent gc (no daemon: the image service alone)."""

from __future__ import annotations

import io
import threading

import pytest

from dockyard.images.service import ImageService
from dockyard.store.content import ContentStore
from dockyard.store.metadata import Metadata
from dockyard.store.snapshots import Snapshotter

from ..helpers import tar_bytes

pytestmark = pytest.mark.root


@pytest.fixture
def svc(tmp_path):
    meta = Metadata(tmp_path / "metadata.db")
    s = ImageService(ContentStore(tmp_path / "content"), Snapshotter(tmp_path / "snapshots", meta), meta)
    yield s
    meta.close()


def config(diff_ids: list[str]) -> dict:
    return {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}


def test_gc_leaves_staged_layers_alone(svc):
    st = svc.stage_layer(io.BytesIO(tar_bytes({"f": b"x"})))
    svc.gc()
    img = svc.add_image_with_layer(st, None, config([st.diff_id]))
    assert (svc.snapshots.fs_path(img.top_layer) / "f").read_bytes() == b"x"


def test_gc_waits_while_an_image_is_being_recorded(svc):
    st = svc.stage_layer(io.BytesIO(tar_bytes({"f": b"x"})))
    done = threading.Event()
    with svc.lock:
        chain = svc.place_layer(st, None)
        t = threading.Thread(target=lambda: (svc.gc(), done.set()))
        t.start()
        assert not done.wait(0.3), "gc ran while a placed layer had no image yet"
        svc.add_image(config([st.diff_id]))
    t.join()
    assert done.is_set() and svc.meta.snapshot(chain) is not None


def test_unplaced_staged_layers_are_dropped(svc, tmp_path):
    st = svc.stage_layer(io.BytesIO(tar_bytes({"f": b"x"})))
    svc.drop_staged([st])
    assert not list((tmp_path / "snapshots").iterdir())
