"""`--squash`: the layers a build added, merged into one on top of the final stage's base."""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
from typing import TYPE_CHECKING

from ..archive.tarapply import apply_tar
from ..archive.tarwrite import write_tar
from ..images.service import Image, now_iso
from ..oci import digest as dg

if TYPE_CHECKING:
    from .engine import Stage, _Build


async def squash(b: _Build, st: Stage, img: Image) -> Image:
    images = b.images
    base = st.base_image
    base_ids = list(base.config["rootfs"]["diff_ids"]) if base is not None else []
    ids = list(img.config["rootfs"]["diff_ids"])
    added = ids[len(base_ids):]
    if ids[:len(base_ids)] != base_ids:
        raise AssertionError("the final image does not extend its base")
    chains = dg.chain_ids(ids)[len(base_ids):]
    tmp = tempfile.mkdtemp(prefix="squash-", dir=str(b.b.root))

    def merge() -> None:   # each added layer applied in turn: later whiteouts remove earlier files
        for chain, diff_id in zip(chains, added, strict=True):
            _, produce = images.layer_tar(chain, diff_id)
            r, w = __import__("os").pipe()
            import threading
            with open(r, "rb") as src:
                t = threading.Thread(target=_produce, args=(produce, w), daemon=True)
                t.start()
                apply_tar(src, tmp, whiteouts="overlay")
                t.join()

    try:
        await asyncio.to_thread(merge)
        layer = await asyncio.to_thread(images.stage_from_writer, lambda out: write_tar(tmp, out, True))
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)
    cfg = copy.deepcopy(img.config)
    created = now_iso()
    cfg["created"] = created
    cfg["rootfs"]["diff_ids"] = base_ids + [layer.diff_id]
    base_hist = len(base.config.get("history") or []) if base is not None else 0
    hist = [dict(h) for h in cfg.get("history") or []]
    for h in hist[base_hist:]:
        h["empty_layer"] = True
    hist.append({"created": created, "created_by": "",
                 "comment": f"merge {img.id} to {base.id if base is not None else 'scratch'}"})
    cfg["history"] = hist
    top = base.top_layer if base is not None else None
    try:
        return await asyncio.to_thread(images.add_image_with_layer, layer, top, cfg, img.id)
    except BaseException:
        images.drop_staged([layer])
        raise


def _produce(produce: object, w: int) -> None:
    with open(w, "wb", buffering=1 << 20) as out:
        try:
            produce(out)  # type: ignore[operator]
        except BrokenPipeError:
            pass
