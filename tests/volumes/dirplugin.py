"""A small volume plugin for the tests: a directory-backed VolumeDriver on a unix socket,
speaking the protocol's JSON. `mode` makes it misbehave: "error" (every call answers Err),
"hang" (Mount never answers). It records every call, so tests see the mount IDs and counts.

Run in a thread of the test process: DirPlugin(socket_path, base_dir).start() / .stop()."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class DirPlugin:
    def __init__(self, sock: str, base: str) -> None:
        self.sock, self.base = sock, base
        self.mode = "ok"
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.mounts: dict[str, set[str]] = {}   # volume → mount IDs
        self.volumes: dict[str, dict[str, str]] = {}
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def address_string(self) -> str:
                return "plugin"

            def do_POST(self) -> None:   # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}") or {}
                out = plugin.handle(self.path.lstrip("/"), body)
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.handler = Handler
        self.server: _Server | None = None

    def handle(self, call: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((call, body))
        if call == "Plugin.Activate":
            return {"Implements": ["VolumeDriver"]}
        if self.mode == "error":
            return {"Err": f"dirplugin refuses {call}"}
        if self.mode == "hang" and call == "VolumeDriver.Mount":
            time.sleep(3600)
        name = body.get("Name", "")
        path = os.path.join(self.base, name)
        if call == "VolumeDriver.Create":
            os.makedirs(path, exist_ok=True)
            self.volumes[name] = dict(body.get("Opts") or {})
            return {"Err": ""}
        if call == "VolumeDriver.Remove":
            if self.mounts.get(name):
                return {"Err": f"{name} is mounted"}
            self.volumes.pop(name, None)
            return {"Err": ""}
        if call == "VolumeDriver.Mount":
            self.mounts.setdefault(name, set()).add(body["ID"])
            return {"Mountpoint": path, "Err": ""}
        if call == "VolumeDriver.Unmount":
            self.mounts.get(name, set()).discard(body["ID"])
            return {"Err": ""}
        if call == "VolumeDriver.Path":
            return {"Mountpoint": path, "Err": ""}
        if call == "VolumeDriver.Get":
            if name not in self.volumes:
                return {"Err": "no such volume"}
            return {"Volume": {"Name": name, "Mountpoint": path}, "Err": ""}
        if call == "VolumeDriver.List":
            return {"Volumes": [{"Name": n, "Mountpoint": os.path.join(self.base, n)} for n in self.volumes], "Err": ""}
        if call == "VolumeDriver.Capabilities":
            return {"Capabilities": {"Scope": "local"}}
        return {"Err": f"unknown call {call}"}

    def start(self) -> "DirPlugin":
        os.makedirs(os.path.dirname(self.sock), exist_ok=True)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.server = _Server(self.sock, self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def answers(sock: str) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()
