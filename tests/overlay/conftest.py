"""The three-host rig (tests/overlay/rig.py): one per module, torn down after it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .rig import Rig

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Rig]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    r = Rig(tmp_path_factory.mktemp("rig"))
    r.busybox = busybox_tar   # type: ignore[attr-defined]
    try:
        r.up()
        for k in (1, 2, 3):
            r.daemon(k, busybox=busybox_tar)
        yield r
    finally:
        r.down()
