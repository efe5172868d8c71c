"""The CRI's gRPC front door: RuntimeService and ImageService (`runtime.v1`) served by grpcio's
asyncio server inside dockyardd, on the daemon's event loop. Errors of the engine's taxonomy
become gRPC status codes here, in one place.

Every RPC of the contract is in `RPCS`: implemented, or answered UNIMPLEMENTED with the reason
given there (the README shows the table)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from .. import __version__
from ..errors import (
    AlreadyExists,
    Conflict,
    EngineError,
    InvalidArgument,
    NotFound,
    NotImplemented_,
    PermissionDenied,
    Unauthorized,
    Unavailable,
)
from .proto import runtime_v1_pb2 as pb
from .proto import runtime_v1_pb2_grpc as pbg

log = logging.getLogger(__name__)
CRI_VERSION = "v1"

# RPC → "" (implemented) or why it answers UNIMPLEMENTED
RPCS: dict[str, str] = {
    "Version": "", "RunPodSandbox": "", "StopPodSandbox": "", "RemovePodSandbox": "", "PodSandboxStatus": "",
    "ListPodSandbox": "", "CreateContainer": "", "StartContainer": "", "StopContainer": "", "RemoveContainer": "",
    "ListContainers": "", "ContainerStatus": "", "UpdateContainerResources": "", "ReopenContainerLog": "",
    "ExecSync": "", "Exec": "", "Attach": "", "PortForward": "", "UpdateRuntimeConfig": "", "Status": "",
    "RuntimeConfig": "",
    "ListImages": "", "ImageStatus": "", "PullImage": "", "RemoveImage": "", "ImageFsInfo": "",
    "ContainerStats": "", "ListContainerStats": "", "PodSandboxStats": "", "ListPodSandboxStats": "",
    "GetContainerEvents": "", "ListMetricDescriptors": "", "ListPodSandboxMetrics": "", "UpdatePodSandboxResources": "",
    "StreamPodSandboxes": "streaming lists are an optional alpha (kubelet falls back to ListPodSandbox)",
    "StreamContainers": "streaming lists are an optional alpha (kubelet falls back to ListContainers)",
    "StreamImages": "streaming lists are an optional alpha (kubelet falls back to ListImages)",
    "StreamContainerStats": "streaming statistics are an optional alpha (kubelet uses ListContainerStats)",
    "StreamPodSandboxStats": "streaming statistics are an optional alpha (kubelet uses ListPodSandboxStats)",
    "CheckpointContainer": "checkpoint/restore (CRIU) is not supported",
    "StreamPodSandboxMetrics": "streaming metrics are an optional alpha (kubelet uses ListPodSandboxMetrics)",
}


def code_of(e: BaseException) -> grpc.StatusCode:
    """The engine's error kinds → gRPC codes (the one mapping)."""
    if isinstance(e, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(e, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(e, AlreadyExists) or (isinstance(e, Conflict) and "already in use" in e.message):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(e, Conflict):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(e, NotImplemented_):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(e, PermissionDenied | Unauthorized):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(e, Unavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(e, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.UNKNOWN


def _guard(name: str, fn: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(request, context)
        except (EngineError, TimeoutError, OSError) as e:
            msg = e.message if isinstance(e, EngineError) else str(e)
            code = code_of(e)
            if code == grpc.StatusCode.UNKNOWN:
                log.warning("CRI %s: %s", name, msg)
            await context.abort(code, msg)
    return call


def _guard_stream(name: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in fn(request, context):
                yield item
        except (EngineError, OSError) as e:
            await context.abort(code_of(e), e.message if isinstance(e, EngineError) else str(e))
    return call


def _unimplemented(name: str, why: str, streaming: bool) -> Callable[..., Any]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name}: {why}")

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name}: {why}")
        yield None   # pragma: no cover - an async generator
    return stream if streaming else call


class _Runtime(pbg.RuntimeServiceServicer):
    def __init__(self, front: "CriFront") -> None:
        self.f = front

    async def Version(self, req: pb.VersionRequest, ctx: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name="dockyard", runtime_version=__version__,
                                  runtime_api_version=CRI_VERSION)

    async def Status(self, req: pb.StatusRequest, ctx: Any) -> pb.StatusResponse:
        return self.f.status(req.verbose)

    async def RuntimeConfig(self, req: pb.RuntimeConfigRequest, ctx: Any) -> pb.RuntimeConfigResponse:
        out = pb.RuntimeConfigResponse()
        out.linux.cgroup_driver = pb.CGROUPFS
        return out

    async def UpdateRuntimeConfig(self, req: pb.UpdateRuntimeConfigRequest, ctx: Any) -> pb.UpdateRuntimeConfigResponse:
        self.f.set_pod_cidr(req.runtime_config.network_config.pod_cidr)
        return pb.UpdateRuntimeConfigResponse()

    async def RunPodSandbox(self, req: pb.RunPodSandboxRequest, ctx: Any) -> pb.RunPodSandboxResponse:
        return pb.RunPodSandboxResponse(pod_sandbox_id=await self.f.pods.run_sandbox(req))

    async def StopPodSandbox(self, req: pb.StopPodSandboxRequest, ctx: Any) -> pb.StopPodSandboxResponse:
        await self.f.pods.stop_sandbox(req.pod_sandbox_id)
        return pb.StopPodSandboxResponse()

    async def RemovePodSandbox(self, req: pb.RemovePodSandboxRequest, ctx: Any) -> pb.RemovePodSandboxResponse:
        await self.f.pods.remove_sandbox(req.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    async def PodSandboxStatus(self, req: pb.PodSandboxStatusRequest, ctx: Any) -> pb.PodSandboxStatusResponse:
        return self.f.pods.sandbox_status(req.pod_sandbox_id, req.verbose)

    async def ListPodSandbox(self, req: pb.ListPodSandboxRequest, ctx: Any) -> pb.ListPodSandboxResponse:
        return pb.ListPodSandboxResponse(items=self.f.pods.list_sandboxes(req.filter if req.HasField("filter") else None))

    async def CreateContainer(self, req: pb.CreateContainerRequest, ctx: Any) -> pb.CreateContainerResponse:
        return pb.CreateContainerResponse(container_id=await self.f.pods.create_container(req))

    async def StartContainer(self, req: pb.StartContainerRequest, ctx: Any) -> pb.StartContainerResponse:
        await self.f.pods.start_container(req.container_id)
        return pb.StartContainerResponse()

    async def StopContainer(self, req: pb.StopContainerRequest, ctx: Any) -> pb.StopContainerResponse:
        await self.f.pods.stop_container(req.container_id, int(req.timeout))
        return pb.StopContainerResponse()

    async def RemoveContainer(self, req: pb.RemoveContainerRequest, ctx: Any) -> pb.RemoveContainerResponse:
        await self.f.pods.remove_container(req.container_id)
        return pb.RemoveContainerResponse()

    async def ListContainers(self, req: pb.ListContainersRequest, ctx: Any) -> pb.ListContainersResponse:
        return pb.ListContainersResponse(
            containers=self.f.pods.list_containers(req.filter if req.HasField("filter") else None))

    async def ContainerStatus(self, req: pb.ContainerStatusRequest, ctx: Any) -> pb.ContainerStatusResponse:
        return self.f.pods.container_status(req.container_id, req.verbose)

    async def UpdateContainerResources(self, req: pb.UpdateContainerResourcesRequest,
                                       ctx: Any) -> pb.UpdateContainerResourcesResponse:
        if req.HasField("windows"):
            raise InvalidArgument("windows: Dockyard runs Linux containers only")
        if req.annotations:
            raise InvalidArgument("annotations: not applied on update (they are set at create)")
        await self.f.pods.update_resources(req.container_id, req.linux)
        return pb.UpdateContainerResourcesResponse()

    async def ReopenContainerLog(self, req: pb.ReopenContainerLogRequest, ctx: Any) -> pb.ReopenContainerLogResponse:
        await self.f.pods.reopen_log(req.container_id)
        return pb.ReopenContainerLogResponse()

    async def ExecSync(self, req: pb.ExecSyncRequest, ctx: Any) -> pb.ExecSyncResponse:
        if not req.cmd:
            raise InvalidArgument("cmd: a command is required")
        return await self.f.pods.exec_sync(req.container_id, list(req.cmd), int(req.timeout))

    async def Exec(self, req: pb.ExecRequest, ctx: Any) -> pb.ExecResponse:
        return pb.ExecResponse(url=self.f.streaming_url("exec", req))

    async def Attach(self, req: pb.AttachRequest, ctx: Any) -> pb.AttachResponse:
        return pb.AttachResponse(url=self.f.streaming_url("attach", req))

    async def PortForward(self, req: pb.PortForwardRequest, ctx: Any) -> pb.PortForwardResponse:
        return pb.PortForwardResponse(url=self.f.streaming_url("portforward", req))

    async def ContainerStats(self, req: pb.ContainerStatsRequest, ctx: Any) -> pb.ContainerStatsResponse:
        return pb.ContainerStatsResponse(stats=await self.f.observe.one_container(req.container_id))

    async def ListContainerStats(self, req: pb.ListContainerStatsRequest, ctx: Any) -> pb.ListContainerStatsResponse:
        return pb.ListContainerStatsResponse(
            stats=await self.f.observe.list_containers(req.filter if req.HasField("filter") else None))

    async def PodSandboxStats(self, req: pb.PodSandboxStatsRequest, ctx: Any) -> pb.PodSandboxStatsResponse:
        return pb.PodSandboxStatsResponse(stats=await self.f.observe.one_sandbox(req.pod_sandbox_id))

    async def ListPodSandboxStats(self, req: pb.ListPodSandboxStatsRequest, ctx: Any) -> pb.ListPodSandboxStatsResponse:
        return pb.ListPodSandboxStatsResponse(
            stats=await self.f.observe.list_sandboxes(req.filter if req.HasField("filter") else None))

    async def ListMetricDescriptors(self, req: pb.ListMetricDescriptorsRequest,
                                    ctx: Any) -> pb.ListMetricDescriptorsResponse:
        return pb.ListMetricDescriptorsResponse(descriptors=self.f.observe.descriptors())

    async def ListPodSandboxMetrics(self, req: pb.ListPodSandboxMetricsRequest,
                                    ctx: Any) -> pb.ListPodSandboxMetricsResponse:
        return pb.ListPodSandboxMetricsResponse(pod_metrics=await self.f.observe.pod_metrics())

    async def UpdatePodSandboxResources(self, req: pb.UpdatePodSandboxResourcesRequest,
                                        ctx: Any) -> pb.UpdatePodSandboxResourcesResponse:
        await self.f.pods.update_sandbox_resources(req)
        return pb.UpdatePodSandboxResourcesResponse()

    async def GetContainerEvents(self, req: pb.GetEventsRequest, ctx: Any) -> Any:
        async for ev in self.f.observe.events():
            yield ev


class _Images(pbg.ImageServiceServicer):
    def __init__(self, front: "CriFront") -> None:
        self.f = front

    async def ListImages(self, req: pb.ListImagesRequest, ctx: Any) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=self.f.images.list(req.filter if req.HasField("filter") else None))

    async def ImageStatus(self, req: pb.ImageStatusRequest, ctx: Any) -> pb.ImageStatusResponse:
        return self.f.images.status(req.image, req.verbose)

    async def PullImage(self, req: pb.PullImageRequest, ctx: Any) -> pb.PullImageResponse:
        return pb.PullImageResponse(image_ref=await self.f.images.pull(req))

    async def RemoveImage(self, req: pb.RemoveImageRequest, ctx: Any) -> pb.RemoveImageResponse:
        await self.f.images.remove(req.image)
        return pb.RemoveImageResponse()

    async def ImageFsInfo(self, req: pb.ImageFsInfoRequest, ctx: Any) -> pb.ImageFsInfoResponse:
        return await self.f.images.fs_info()


def _servicer(cls: type, base: type, front: "CriFront") -> Any:
    """An instance whose implemented RPCs are guarded and whose others answer UNIMPLEMENTED."""
    obj = cls(front)
    for name in dir(base):
        if name.startswith("_") or name not in RPCS:
            continue
        streaming = name.startswith("Stream") or name == "GetContainerEvents"
        if RPCS[name]:
            setattr(obj, name, _unimplemented(name, RPCS[name], streaming))
        elif streaming:
            setattr(obj, name, _guard_stream(name, getattr(obj, name)))
        else:
            setattr(obj, name, _guard(name, getattr(obj, name)))
    return obj


class CriFront:
    """What the servicers call: pods, images, CNI state and the streaming server."""

    def __init__(self, pods: Any, images: Any, net: Any, streaming: Any, observe: Any) -> None:
        self.pods, self.images, self.net, self.streaming, self.observe = pods, images, net, streaming, observe

    def status(self, verbose: bool) -> pb.StatusResponse:
        self.net.reload()
        out = pb.StatusResponse()
        out.status.conditions.add(type="RuntimeReady", status=True)
        net_ok = self.net.config is not None
        out.status.conditions.add(type="NetworkReady", status=net_ok,
                                  reason="" if net_ok else "NetworkPluginNotReady",
                                  message="" if net_ok else f"Network plugin returns error: {self.net.why}")
        for name in sorted(self.pods.containers.runtimes):
            out.runtime_handlers.add(name=name)
        out.runtime_handlers.add(name="")   # the default handler
        if verbose:
            import json
            out.info["config"] = json.dumps({"cniConfDir": self.net.conf_dir, "cniBinDirs": list(self.net.bin_dirs),
                                             "cniConfig": self.net.config.source if self.net.config else "",
                                             "podCIDR": self.net.pod_cidr, "streaming": self.streaming.base_url})
        return out

    def set_pod_cidr(self, cidr: str) -> None:
        if cidr:
            import ipaddress
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise InvalidArgument(f"runtime_config.network_config.pod_cidr: not a CIDR: {cidr!r}") from None
        self.net.pod_cidr = cidr

    def streaming_url(self, kind: str, req: Any) -> str:
        if kind == "portforward":
            self.pods.sandbox_status(req.pod_sandbox_id, False)   # NotFound for an unknown sandbox
            return str(self.streaming.register(kind, {"sandbox": self.pods._sandbox(req.pod_sandbox_id)["id"],
                                                      "ports": list(req.port)}))
        rec = self.pods._container(req.container_id)
        c = self.pods._engine(rec["id"])
        if c is None or not c.state.running:
            raise Conflict(f"container {rec['id']} is not running")
        if kind == "exec" and not req.cmd:
            raise InvalidArgument("cmd: a command is required")
        if not (req.stdin or req.stdout or req.stderr):
            raise InvalidArgument("one of stdin, stdout and stderr must be set")
        if req.tty and req.stderr:
            raise InvalidArgument("tty and stderr cannot both be set")
        args = {"container": rec["id"], "tty": req.tty, "stdin": req.stdin, "stdout": req.stdout, "stderr": req.stderr}
        if kind == "exec":
            args["cmd"] = list(req.cmd)
        return str(self.streaming.register(kind, args))


async def serve(front: CriFront, path: str) -> grpc.aio.Server:
    """Listen on the unix socket `path` (mode 0660)."""
    import os
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 << 20),
                                      ("grpc.max_send_message_length", 16 << 20)])
    pbg.add_RuntimeServiceServicer_to_server(_servicer(_Runtime, pbg.RuntimeServiceServicer, front), server)
    pbg.add_ImageServiceServicer_to_server(_servicer(_Images, pbg.ImageServiceServicer, front), server)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    server.add_insecure_port(f"unix://{path}")
    await server.start()
    os.chmod(path, 0o660)
    return server
