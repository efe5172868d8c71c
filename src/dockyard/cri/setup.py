"""Starting the CRI inside dockyardd: the pods over the engine's services, CNI, the streaming
server and the gRPC server on `--cri-socket`."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

from ..errors import NotFound

log = logging.getLogger(__name__)


class CriHandle:
    def __init__(self, server: Any, streaming: Any, pods: Any) -> None:
        self.server, self.streaming, self.pods = server, streaming, pods

    async def stop(self) -> None:
        await self.server.stop(2)
        await self.streaming.stop()

    async def release_networks(self) -> None:
        """After the engine stopped every container (a shutdown without live-restore): the pods'
        networks are torn down (CNI DEL, host ports), as their sandboxes are gone."""
        await self.pods.recover()


async def start_cri(cfg: Any, svc: Any) -> CriHandle:
    from . import cni, holder
    from .images import Images
    from .pods import Pods
    from .server import CriFront, serve
    from .streaming import Streaming
    data, run = Path(cfg.data_root), Path(cfg.exec_root)
    lock = asyncio.Lock()

    async def holder_image() -> tuple[str, bool]:
        """The sandbox image: --pod-infra-image (pulled when missing), else Dockyard's holder (imported
        once from the built program: no pull on a sandbox's start)."""
        async with lock:
            if cfg.pod_infra_image:
                try:
                    svc.images.resolve(cfg.pod_infra_image)
                except NotFound:
                    from ..registry import pull
                    await asyncio.to_thread(pull.pull, svc.images, cfg.pod_infra_image, "", lambda _m: None)
                return str(cfg.pod_infra_image), False
            try:
                return str(svc.images.resolve(holder.HOLDER_IMAGE).id), True
            except NotFound:
                pass
            binary = await asyncio.to_thread(holder.binary, data / "cri")
            tar = await asyncio.to_thread(holder.image_tar, binary)
            repo, _, tag = holder.HOLDER_IMAGE.rpartition(":")
            img = await asyncio.to_thread(svc.images.import_tar, io.BytesIO(tar), repo, tag,
                                          ['ENTRYPOINT ["/pause"]'], "Dockyard's pod holder")
            return str(img.id), True

    net = cni.Cni(cfg.cni_conf_dir, tuple(cfg.cni_bin_dir))
    net.reload()
    if net.config is None:
        log.warning("CRI: no usable CNI configuration yet (%s): pods on their own network wait for one", net.why)
    pods = Pods(svc.containers, svc.images, svc.execs, data / "cri", run / "cri", net, holder_image)
    await pods.recover()
    streaming = Streaming(pods, cfg.streaming_address, cfg.streaming_idle_timeout)
    await streaming.start()
    from .observe import Observer
    front = CriFront(pods, Images(svc.images, str(data), {holder.HOLDER_IMAGE}), net, streaming,
                     Observer(pods, svc.events))
    path = cfg.cri_socket[len("unix://"):]
    server = await serve(front, path)
    log.info("CRI listening on %s (streaming server %s)", path, streaming.base_url)
    return CriHandle(server, streaming, pods)
