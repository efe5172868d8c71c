"""A real client of the streaming server: kubectl (whatever version this machine has) against a stand-in
API server that answers the pod lookups and hands the exec/attach/port-forward connection, bytes as they
are, to the URL the CRI returned — which is what the API server and kubelet do between them. kubectl speaks
websocket (v5.channel.k8s.io) by default and SPDY/3.1 when told so, and port-forwards over SPDY."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import urllib.parse

import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

from ..helpers import free_port
from .conftest import banner

pytestmark = [pytest.mark.root, pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")]


class FakeApiServer:
    """GET pods/NAME → a running pod with one container; exec/attach/portforward → the CRI's URL, spliced."""

    def __init__(self, cri, pod_id: str, container_id: str) -> None:
        self.cri, self.pod_id, self.container_id = cri, pod_id, container_id
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", self.port))
        self.server = server
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            w.close()
            return
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        self.requests.append(f"{method} {target}")
        url = urllib.parse.urlsplit(target)
        q = urllib.parse.parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        discovery = {
            "api": {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
            "apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
            "api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
                 "shortNames": ["po"]},
                *({"name": f"pods/{sub}", "singularName": "", "namespaced": True, "kind": kind,
                   "verbs": ["create", "get"]} for sub, kind in (("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                                                                  ("portforward", "PodPortForwardOptions")))]},
            "version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
        }
        if method == "GET" and url.path.strip("/") in discovery:
            body = json.dumps(discovery[url.path.strip("/")])
            w.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    f"{body}".encode())
            await w.drain()
            w.close()
            return
        if len(parts) == 6 and parts[4] == "pods" and method == "GET":
            body = json.dumps({"kind": "Pod", "apiVersion": "v1",
                               "metadata": {"name": parts[5], "namespace": parts[3]},
                               "spec": {"containers": [{"name": "c"}]},
                               "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True}]}})
            w.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    f"{body}".encode())
            await w.drain()
            w.close()
            return
        if len(parts) == 7 and parts[6] in ("exec", "attach", "portforward"):
            flag = lambda k: q.get(k, ["false"])[0] == "true"   # noqa: E731
            if parts[6] == "exec":
                stream_url = self.cri.rt.Exec(pb.ExecRequest(container_id=self.container_id, cmd=q.get("command", []),
                                                             stdin=flag("stdin"), stdout=flag("stdout"),
                                                             stderr=flag("stderr"), tty=flag("tty")), timeout=10).url
            elif parts[6] == "attach":
                stream_url = self.cri.rt.Attach(pb.AttachRequest(container_id=self.container_id, stdin=flag("stdin"),
                                                                 stdout=flag("stdout"), stderr=flag("stderr"),
                                                                 tty=flag("tty")), timeout=10).url
            else:
                stream_url = self.cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=self.pod_id), timeout=10).url
            u = urllib.parse.urlsplit(stream_url)
            up_r, up_w = await asyncio.open_connection(u.hostname, u.port)
            path = u.path + (f"?{url.query}" if url.query else "")
            hdrs = [ln for ln in lines[1:] if ln and not ln.lower().startswith("host:")]
            up_w.write((f"{method} {path} HTTP/1.1\r\nHost: {u.netloc}\r\n" + "\r\n".join(hdrs) + "\r\n\r\n").encode())

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                except (ConnectionError, OSError):
                    pass
                finally:
                    dst.close()
            await asyncio.gather(pipe(r, up_w), pipe(up_r, w))
            return
        w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        w.close()


@pytest.fixture
def kube(cri, tmp_path):
    cfg = cri.sandbox_config("kube")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "c", ["sh", "-c", "while true; do echo pf-hello | nc -l -p 7171; done"])
    cri.start(c)
    api = FakeApiServer(cri, pod, c)
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)}

    def run(*args: str, ws: bool = True, **kw) -> subprocess.CompletedProcess:
        e = {**env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true" if ws else "false",
             "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
        return subprocess.run(["kubectl", "-s", f"http://127.0.0.1:{api.port}", *args], env=e, capture_output=True,
                              timeout=60, **kw)
    yield run, api
    api.close()


@pytest.mark.parametrize("ws", [True, False], ids=["websocket", "spdy"])
def test_kubectl_exec(kube, ws):
    run, api = kube
    p = run("exec", "-i", "kube", "-c", "c", "--", "sh", "-c", "cat; echo to-err >&2; exit 3", ws=ws, input=b"via-stdin\n")
    assert p.stdout == b"via-stdin\n" and b"to-err" in p.stderr, (p.stderr, api.requests)
    assert p.returncode == 3, (p.returncode, p.stderr)
    p = run("exec", "kube", "-c", "c", "--", "hostname", ws=ws)
    assert p.returncode == 0 and p.stdout.strip(), p.stderr
    assert any("/exec?" in r for r in api.requests)


@pytest.mark.parametrize("ws", [True, False], ids=["websocket", "spdy"])
def test_kubectl_exec_tty(kube, ws):
    """In a terminal (util-linux's `script` gives kubectl one): the command's stdin and stdout are a pty."""
    run, api = kube
    import shlex
    cmd = " ".join(shlex.quote(a) for a in ["kubectl", "-s",
                                            f"http://127.0.0.1:{api.port}", "exec", "-it", "kube", "-c", "c", "--",
                                            "sh", "-c", "test -t 1 && echo is-a-tty; test -t 0 && echo in-tty"])
    p = run_script(cmd, ws)
    assert b"is-a-tty" in p.stdout and b"in-tty" in p.stdout, p.stdout
    assert any("tty=true" in r for r in api.requests)


def run_script(cmd: str, ws: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true" if ws else "false", "KUBECONFIG": "/dev/null",
           "TERM": "xterm"}
    return subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_kubectl_port_forward_spdy(kube):
    run, api = kube
    local = free_port()
    proc = subprocess.Popen(["kubectl", "-s", f"http://127.0.0.1:{api.port}", "port-forward", "pod/kube",
                             f"{local}:7171"], env={**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false",
                                                    "KUBECONFIG": "/dev/null"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = banner(local, b"pf-hello", 20)
        assert got == b"pf-hello\n", (got, proc.stderr.read1(2000) if proc.poll() is not None else b"")
    finally:
        proc.terminate()
        proc.wait(10)
