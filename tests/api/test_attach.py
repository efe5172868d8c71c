"""Attach, stdin, terminals and exec over the API with docker-py (attach_socket,
exec_start(socket=True)), a websocket client, and bad input."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import docker
import pytest

pytestmark = pytest.mark.root


def _create(client, **cfg) -> str:
    body = {"Image": "busybox", "HostConfig": {"NetworkMode": "none"}, **cfg}
    return client.api._result(client.api._post_json(client.api._url("/containers/create"), data=body), True)["Id"]


def _read_all(sock: socket.socket, timeout: float = 20) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        b = sock.recv(65536)
        if not b:
            return out
        out += b


def _read_until(sock: socket.socket, text: bytes, timeout: float = 20) -> bytes:
    sock.settimeout(timeout)
    out = b""
    deadline = time.time() + timeout
    while text not in out:
        if time.time() > deadline:
            raise AssertionError(f"{text!r} not in {out!r}")
        b = sock.recv(65536)
        if not b:
            raise AssertionError(f"stream ended before {text!r}: {out!r}")
        out += b
    return out


def _demux(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, n = struct.unpack(">BxxxI", data[:8])
        out.append((stream, data[8:8 + n]))
        data = data[8 + n:]
    return out


def test_stdin_once_without_tty(client):
    cid = _create(client, Cmd=["sh", "-c", "cat; echo err >&2"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
    s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    client.api.start(cid)
    s._sock.sendall(b"line one\nline two\n")
    s._sock.shutdown(socket.SHUT_WR)      # the end of the client's input closes the container's stdin
    frames = _demux(_read_all(s._sock))
    assert b"".join(d for st, d in frames if st == 1) == b"line one\nline two\n"
    assert b"".join(d for st, d in frames if st == 2) == b"err\n"
    assert client.api.wait(cid, timeout=20)["StatusCode"] == 0
    info = client.api.inspect_container(cid)["Config"]
    assert info["OpenStdin"] and info["StdinOnce"] and info["AttachStdin"] and not info["Tty"]
    # attach to the exited container: logs=1 replays its output, and the stream ends at once (as
    # dockerd's; docker-compose's `run` without the docker CLI attaches after a quick command exited)
    s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 1})
    s._sock.settimeout(10)
    frames = _demux(_read_all(s._sock))
    assert b"".join(d for st, d in frames if st == 1) == b"line one\nline two\n"
    client.api.remove_container(cid)


def test_stdin_stays_open_without_stdin_once(client):
    cid = _create(client, Cmd=["sh", "-c", "while read l; do echo got-$l; done"], OpenStdin=True)
    client.api.start(cid)
    for word in (b"a", b"b"):
        s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        s._sock.sendall(word + b"\n")
        assert b"got-" + word in _read_until(s._sock, b"got-" + word)
        s._sock.shutdown(socket.SHUT_WR)   # not StdinOnce: the container's stdin stays open
        s._sock.close()
    assert client.api.inspect_container(cid)["State"]["Running"]
    client.api.remove_container(cid, force=True)


def test_tty_console_size_resize_raw_logs(client):
    cid = _create(client, Cmd=["sh", "-c", "stty size; read x; stty size; tty; exit 3"], Tty=True, OpenStdin=True,
                  HostConfig={"NetworkMode": "none", "ConsoleSize": [33, 101]})
    s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
    client.api.start(cid)
    assert b"33 101\r\n" in _read_until(s._sock, b"33 101")
    client.api.resize(cid, 20, 70)
    s._sock.sendall(b"go\n")
    out = _read_all(s._sock)
    assert b"20 70\r\n/dev/pts/0\r\n" in out, out     # raw stream: no frames, a terminal's CRLF
    assert client.api.wait(cid, timeout=20)["StatusCode"] == 3
    logs = client.api.logs(cid)
    assert logs.startswith(b"33 101\r\n") and b"/dev/pts/0" in logs   # a TTY's log is one raw stream
    client.api.remove_container(cid)


def test_exec_socket_tty_stdin_and_resize(client):
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
    try:
        ex = client.api.exec_create(c.id, ["sh"], stdin=True, tty=True)
        s = client.api.exec_start(ex["Id"], socket=True, tty=True)
        info = client.api.exec_inspect(ex["Id"])
        assert info["ProcessConfig"]["tty"] and info["OpenStdin"] and info["Running"]
        client.api.exec_resize(ex["Id"], height=21, width=77)
        s._sock.sendall(b"stty size; echo x-$((40+2)); exit 5\n")
        out = _read_all(s._sock)
        assert b"21 77" in out and b"x-42" in out, out
        assert client.api.exec_inspect(ex["Id"])["ExitCode"] == 5
        # without a tty: stdin through a pipe, output framed, the end of input closes it
        ex = client.api.exec_create(c.id, ["sh", "-c", "cat; echo done >&2"], stdin=True)
        s = client.api.exec_start(ex["Id"], socket=True)
        s._sock.sendall(b"piped\n")
        s._sock.shutdown(socket.SHUT_WR)
        frames = _demux(_read_all(s._sock))
        assert (1, b"piped\n") in frames and (2, b"done\n") in frames
        assert client.api.exec_inspect(ex["Id"])["ExitCode"] == 0
        # privileged exec: every capability (the container itself has the default set)
        r = c.exec_run(["sh", "-c", "grep CapEff /proc/self/status"], privileged=True)
        base = c.exec_run(["sh", "-c", "grep CapEff /proc/self/status"])
        assert int(r.output.split()[1], 16) > int(base.output.split()[1], 16)
        assert int(r.output.split()[1], 16) & (1 << 21)   # CAP_SYS_ADMIN
    finally:
        c.remove(force=True)


def test_detach_keys_over_the_api(client):
    cid = _create(client, Cmd=["sh"], Tty=True, OpenStdin=True)
    client.api.start(cid)
    since = int(time.time()) - 1
    s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,y"})
    s._sock.sendall(b"echo before\n")
    _read_until(s._sock, b"before\r\n")
    s._sock.sendall(b"\x18y")             # ctrl-x y: the daemon ends the attachment
    _read_all(s._sock)
    assert client.api.inspect_container(cid)["State"]["Running"]
    ev = client.events(since=since, until=int(time.time()) + 1, decode=True,
                       filters={"container": cid, "event": "detach"})
    assert [e["Action"] for e in ev] == ["detach"]
    # the default keys, and piped (non-tty) data that holds them is never cut
    s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
    s._sock.sendall(b"\x10\x11")
    _read_all(s._sock)
    assert client.api.inspect_container(cid)["State"]["Running"]
    client.api.remove_container(cid, force=True)
    cid = _create(client, Cmd=["sh", "-c", "head -c 4 | od -An -tx1"], OpenStdin=True, StdinOnce=True)
    s = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
    client.api.start(cid)
    s._sock.sendall(b"\x10\x11\x10\x11")
    s._sock.shutdown(socket.SHUT_WR)
    assert b"10 11 10 11" in b"".join(d for _, d in _demux(_read_all(s._sock)))
    client.api.remove_container(cid, force=True)


def test_bad_input(client):
    tty = _create(client, Cmd=["sh"], Tty=True, OpenStdin=True)
    plain = _create(client, Cmd=["sleep", "300"])
    client.api.start(tty)
    client.api.start(plain)
    api = client.api

    def status(method, path, **params) -> tuple[int, str]:
        r = api._post(api._url(path), params=params) if method == "POST" else api._get(api._url(path), params=params)
        return r.status_code, r.text
    assert status("POST", f"/containers/{tty}/attach", stream=1, stdin=1, detachKeys="ctrl-,x")[0] == 400
    code, msg = status("POST", f"/containers/{tty}/attach", stream=1, detachKeys="ctrl-1")
    assert code == 400 and "Invalid detach keys (ctrl-1) provided" in msg
    for h, w in ((-1, 80), (24, 70000), (24, "x")):
        assert status("POST", f"/containers/{tty}/resize", h=h, w=w)[0] == 400
    assert status("POST", f"/containers/{tty}/resize", h=24)[0] == 400
    assert status("POST", f"/containers/{tty}/resize", h=0, w=0)[0] == 200     # "unknown", as the kernel allows
    code, msg = status("POST", f"/containers/{plain}/resize", h=24, w=80)
    assert code == 409 and "no terminal" in msg
    assert status("POST", "/containers/nosuch/resize", h=24, w=80)[0] == 404
    assert status("POST", "/containers/nosuch/attach", stream=1)[0] == 404
    with pytest.raises(docker.errors.APIError) as e:
        api.exec_create(plain, ["sh"], detach_keys="ctrl-")
    assert e.value.status_code == 400
    ex = api.exec_create(plain, ["true"])
    assert status("POST", f"/exec/{ex['Id']}/resize", h=24, w=80)[0] == 409
    api.kill(tty)
    api.wait(tty, timeout=10)
    assert status("POST", f"/containers/{tty}/resize", h=24, w=80)[0] == 409
    api.remove_container(tty, force=True)
    api.remove_container(plain, force=True)


def _vanish(s) -> None:
    """Hang up at once (docker-py's response still holds the socket: close alone keeps it open)."""
    s._sock.shutdown(socket.SHUT_RDWR)
    s._sock.close()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _settle(count, want: int, timeout: float = 15) -> int:
    deadline = time.time() + timeout
    n = count()
    while n > want and time.time() < deadline:
        time.sleep(0.1)
        n = count()
    return n


def _link(path: str) -> str:
    """What a descriptor names ('' if it closed since it was listed)."""
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return ""


def test_vanishing_clients_leave_nothing_behind(client, daemon):
    c = client.containers.create("busybox", ["sh"], tty=True, stdin_open=True, network_mode="none")
    c.start()
    plain = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
    dpid, mpid = daemon.proc.pid, daemon.monitor_pid()
    # one round first: whatever is opened once (and kept) is not a leak
    s = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
    _vanish(s)
    time.sleep(0.5)
    base_d, base_m = _fds(dpid), _fds(mpid)
    base_t = client.info()["NGoroutines"]   # the daemon's asyncio tasks (dockerd: its goroutines)
    for i in range(15):
        s = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        s._sock.sendall(b"echo round-%d\n" % i)
        _vanish(s)                      # gone without a word, mid-stream
        ex = client.api.exec_create(plain.id, ["sh", "-c", "head -c 3000000 /dev/zero; sleep 0.2"], stdin=True)
        s = client.api.exec_start(ex["Id"], socket=True)
        s._sock.recv(100)
        _vanish(s)                      # gone mid-exec: the process runs on to its end
        ex2 = client.api.exec_create(plain.id, ["sh"], stdin=True, tty=True)
        s = client.api.exec_start(ex2["Id"], socket=True, tty=True)
        s._sock.sendall(b"exit 0\n")
        _vanish(s)
    assert c.attrs and client.containers.get(c.id).status == "running"
    assert _settle(lambda: _fds(dpid), base_d) <= base_d
    assert _settle(lambda: _fds(mpid), base_m) <= base_m
    assert _settle(lambda: client.info()["NGoroutines"], base_t) <= base_t
    # the shell got every line: the terminal is the same one
    s = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
    s._sock.sendall(b"echo alive\n")
    _read_until(s._sock, b"alive\r\n")
    _vanish(s)
    ptys = [p for p in os.listdir(f"/proc/{mpid}/fd") if _link(f"/proc/{mpid}/fd/{p}").endswith("ptmx")]
    assert len(ptys) == 1   # only the container's own terminal: every exec's was closed
    c.remove(force=True)
    plain.remove(force=True)
    assert _settle(lambda: _fds(mpid), base_m - 1) <= base_m - 1


def test_websocket_attach(client, daemon):
    import aiohttp
    cid = _create(client, Cmd=["sh"], Tty=True, OpenStdin=True)
    client.api.start(cid)

    async def talk() -> bytes:
        conn = aiohttp.UnixConnector(path=str(daemon.sock))
        async with aiohttp.ClientSession(connector=conn) as sess:
            async with sess.ws_connect(f"http://d/v1.41/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1") as ws:
                await ws.send_bytes(b"echo ws-$((3*3))\n")
                out = b""
                while b"ws-9\r\n" not in out:
                    msg = await asyncio.wait_for(ws.receive(), 20)
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    out += msg.data
                return out
    assert b"ws-9" in asyncio.run(talk())
    assert client.api.inspect_container(cid)["State"]["Running"]
    client.api.remove_container(cid, force=True)


def test_daemon_stops_at_once_with_clients_attached(fresh_daemon):
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        cid = c.api.create_container("busybox", ["sh"], tty=True, stdin_open=True)["Id"]
        c.api.start(cid)
        s1 = c.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        ex = c.api.exec_create(cid, ["sh"], stdin=True, tty=True)
        s2 = c.api.exec_start(ex["Id"], socket=True, tty=True)
        s2._sock.sendall(b"echo in-exec\n")
        _read_until(s2._sock, b"in-exec\r\n")
    finally:
        c.close()
    d.stop(timeout=30)    # (it used to wait for aiohttp's 60 s shutdown timeout, per attached client)
    assert _read_all(s1._sock, 5) is not None and _read_all(s2._sock, 5) is not None


def _monitor_attach(daemon, cid: str, running: bool, timeout: float) -> bytes:
    """Attach through the monitor's own socket, as dockyardd does; what it says until it hangs up."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(str(daemon.exec_root / "monitor.sock"))
    try:
        s.sendall((f'{{"op": "attach", "id": "{cid}", "stdin": false, "running": {str(running).lower()}}}\n').encode())
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out
    finally:
        s.close()


def test_attach_racing_the_exit_ends(client, daemon):
    """A container that exits between dockyardd's status check and its attach reaching the
    monitor: the attach must end at once, not wait for a start that never comes (docker-compose's
    `run` hung on this). Made deterministic by attaching after the exit, saying 'it was running'."""
    cid = _create(client, Cmd=["true"])
    client.api.start(cid)
    assert client.api.wait(cid, timeout=20)["StatusCode"] == 0
    assert _monitor_attach(daemon, cid, running=True, timeout=10) == b"{}\n"
    # and over the API: a quick command's attach always ends (many tries, so the race is hit)
    for _ in range(20):
        c = _create(client, Cmd=["true"])
        sock = client.api.attach_socket(c, params={"stdout": 1, "stderr": 1, "stream": 1})
        client.api.start(c)
        s2 = client.api.attach_socket(c, params={"stdout": 1, "stderr": 1, "stream": 1})
        assert _read_all(sock._sock, timeout=10) is not None
        assert _read_all(s2._sock, timeout=10) is not None
        client.api.remove_container(c, force=True)
