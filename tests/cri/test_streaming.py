"""The streaming server: Exec and Attach URLs speak remotecommand over websocket (v5 and v4
channel protocols, as kubelet's clients), PortForward over websocket; tokens are single-use."""

from __future__ import annotations

import asyncio
import json
import struct

import aiohttp
import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

pytestmark = pytest.mark.root


async def _session(url: str, protocol: str, send: list[bytes]) -> dict[int, bytes]:
    got: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http://", "ws://"), protocols=(protocol,)) as ws:
        assert ws.protocol == protocol
        for m in send:
            await ws.send_bytes(m)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
    return got


@pytest.fixture
def running(cri):
    cfg = cri.sandbox_config("stream")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "s", ["sh", "-c", "while read l; do echo got:$l; done; sleep 1000"],
                      stdin=True)
    cri.start(c)
    return cri, pod, c


def test_exec_over_websocket_v5_with_stdin_and_exit_code(running):
    cri, _, c = running
    url = cri.rt.Exec(pb.ExecRequest(container_id=c, cmd=["sh", "-c", "cat; echo err >&2; exit 4"], stdin=True,
                                     stdout=True, stderr=True), timeout=10).url
    assert url.startswith("http://127.0.0.1:")
    got = asyncio.run(_session(url, "v5.channel.k8s.io", [b"\x00hello\n", b"\xff\x00"]))
    assert got[1] == b"hello\n" and got[2] == b"err\n"
    status = json.loads(got[3])
    assert status["status"] == "Failure" and status["details"]["causes"][0] == {"reason": "ExitCode", "message": "4"}
    # single use
    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(_session(url, "v5.channel.k8s.io", []))


def test_exec_tty_v4_success_and_resize(running):
    cri, _, c = running
    url = cri.rt.Exec(pb.ExecRequest(container_id=c, cmd=["sh", "-c", "sleep 0.5; stty size"], tty=True,
                                     stdout=True), timeout=10).url
    got = asyncio.run(_session(url, "v4.channel.k8s.io", [b"\x04" + json.dumps({"Width": 91, "Height": 27}).encode()]))
    assert b"27 91" in got[1]
    assert json.loads(got[3])["status"] == "Success"


def test_attach_and_refusals(running):
    cri, _, c = running
    url = cri.rt.Attach(pb.AttachRequest(container_id=c, stdin=True, stdout=True), timeout=10).url

    async def attach() -> bytes:
        async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http://", "ws://"),
                                                             protocols=("v5.channel.k8s.io",)) as ws:
            await ws.send_bytes(b"\x00ping\n")
            while True:
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type == aiohttp.WSMsgType.BINARY and msg.data[0] == 1:
                    return msg.data[1:]
    assert asyncio.run(attach()) == b"got:ping\n"
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.Exec(pb.ExecRequest(container_id=c, cmd=["true"]), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.Exec(pb.ExecRequest(container_id="f" * 64, cmd=["true"], stdout=True), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_port_forward(running):
    cri, pod, c = running
    srv = cri.container(pod, cri.sandbox_config("stream"), "web",
                        ["sh", "-c", "while true; do echo pf-ok | nc -l -p 7070; done"])
    cri.start(srv)
    url = cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod, port=[7070]), timeout=10).url

    async def forward() -> dict[int, bytes]:
        got: dict[int, bytes] = {}
        async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http://", "ws://") + "?port=7070",
                                                             protocols=("v4.channel.k8s.io",)) as ws:
            for _ in range(2):   # each channel's first message: the port, little endian
                msg = await asyncio.wait_for(ws.receive(), 10)
                assert msg.data[1:] == struct.pack("<H", 7070)
            while b"pf-ok" not in got.get(0, b""):
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type != aiohttp.WSMsgType.BINARY or msg.data[0] == 1:   # closed, or the error channel
                    break
                got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
        return got
    for _ in range(20):   # the server may not listen yet
        got = asyncio.run(forward())
        if b"pf-ok" in got.get(0, b""):
            break
    assert got[0] == b"pf-ok\n"
