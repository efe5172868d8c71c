"""Volume plugins (the book's 6.2–6.4): found by name as dockerd finds them — a socket
`/run/docker/plugins/<name>.sock` (or `<name>/<name>.sock`), a `<name>.spec` file holding a URL,
or a `<name>.json` file (`{"Name", "Addr"}`) in `/etc/docker/plugins` or `/usr/lib/docker/plugins`
— and spoken to over HTTP with the VolumeDriver protocol's JSON shapes. Every call is bounded by
a timeout, so a plugin that hangs or goes away is an error, never a wedge.

Blocking: run in worker threads."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from ..errors import NotFound, SystemError_, Unavailable

SOCKET_DIRS = ["/run/docker/plugins"]
SPEC_DIRS = ["/etc/docker/plugins", "/usr/lib/docker/plugins"]
ACCEPT = "application/vnd.docker.plugins.v1.2+json"
TIMEOUT = float(os.environ.get("DOCKYARD_PLUGIN_TIMEOUT") or 30)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        if len(self.path.encode()) < 100:
            s.connect(self.path)
        else:   # longer than sun_path holds (a managed plugin's under a deep exec root): through its directory
            fd = os.open(os.path.dirname(self.path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                s.connect(f"/proc/self/fd/{fd}/{os.path.basename(self.path)}")
            finally:
                os.close(fd)
        self.sock = s


def find(name: str) -> str:
    """The plugin's address: `unix:///path` or `tcp://host:port`."""
    for d in SOCKET_DIRS:
        for p in (os.path.join(d, f"{name}.sock"), os.path.join(d, name, f"{name}.sock")):
            if os.path.exists(p):
                return f"unix://{p}"
    for d in SPEC_DIRS:
        spec = os.path.join(d, f"{name}.spec")
        if os.path.exists(spec):
            return open(spec).read().strip()
        js = os.path.join(d, f"{name}.json")
        if os.path.exists(js):
            return str(json.load(open(js))["Addr"])
    raise NotFound(f"error looking up volume plugin {name}: plugin \"{name}\" not found")


class Plugin:
    """One volume plugin, activated on first use."""

    def __init__(self, name: str, addr: str, root: str = "") -> None:
        """`root`: a managed plugin's root filesystem on the host, under which its Mountpoints are."""
        self.name, self.addr, self.root = name, addr, root
        self.activated = False
        self.lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        u = urlparse(self.addr)
        if u.scheme == "unix":
            return _UnixConnection(u.path, TIMEOUT)
        if u.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=TIMEOUT)
        raise SystemError_(f"volume plugin {self.name}: unsupported address {self.addr}")

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /<method>; the plugin's `Err` becomes an error naming the plugin and the call."""
        if method != "Plugin.Activate":
            self.activate()
        conn = self._connection()
        try:
            conn.request("POST", f"/{method}", json.dumps(body), {"Accept": ACCEPT, "Content-Type": ACCEPT})
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError:
            raise Unavailable(f"volume plugin {self.name}: {method} did not answer within {TIMEOUT:g}s") from None
        except OSError as e:
            raise Unavailable(f"volume plugin {self.name}: {method}: {e.strerror or e}") from None
        finally:
            conn.close()
        try:
            out = json.loads(data or b"{}")
        except ValueError:
            raise SystemError_(f"volume plugin {self.name}: {method} answered what is not JSON: {data[:200]!r}") \
                from None
        if not isinstance(out, dict):
            raise SystemError_(f"volume plugin {self.name}: {method} answered {out!r}")
        if out.get("Err") or resp.status >= 400:
            raise SystemError_(f"VolumeDriver.{method.split('.', 1)[-1]}: {out.get('Err') or resp.status}"
                               if method.startswith("VolumeDriver.") else f"{method}: {out.get('Err') or resp.status}")
        return out

    def activate(self) -> None:
        with self.lock:
            if self.activated:
                return
            out = self.call("Plugin.Activate", {})
            if "VolumeDriver" not in (out.get("Implements") or []):
                raise NotFound(f"plugin {self.name} does not implement VolumeDriver (it implements "
                               f"{out.get('Implements')})")
            self.activated = True

    # the VolumeDriver calls
    def create(self, name: str, opts: dict[str, str]) -> None:
        self.call("VolumeDriver.Create", {"Name": name, "Opts": opts or None})

    def remove(self, name: str) -> None:
        self.call("VolumeDriver.Remove", {"Name": name})

    def mount(self, name: str, ident: str) -> str:
        mp = self.call("VolumeDriver.Mount", {"Name": name, "ID": ident}).get("Mountpoint") or ""
        if not mp.startswith("/"):
            raise SystemError_(f"VolumeDriver.Mount: plugin {self.name} gave no absolute mountpoint ({mp!r})")
        if self.root:   # a path in the plugin's own filesystem, as dockerd reads a managed plugin's
            mp = os.path.join(self.root, os.path.normpath(mp).lstrip("/"))
        return str(mp)

    def unmount(self, name: str, ident: str) -> None:
        self.call("VolumeDriver.Unmount", {"Name": name, "ID": ident})

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.call("VolumeDriver.Get", {"Name": name}).get("Volume") or {})

    def list(self) -> list[dict[str, Any]]:
        return [dict(v) for v in self.call("VolumeDriver.List", {}).get("Volumes") or []]


# a managed plugin by name: (address, its root filesystem on the host), or None
Managed = Callable[[str], "tuple[str, str] | None"]


class Registry:
    """The plugins met so far, by name: managed plugins (`docker plugin install`) first, then
    the sockets and spec files of plugins run by other means."""

    def __init__(self, managed: Managed | None = None) -> None:
        self.by_name: dict[str, Plugin] = {}
        self.lock = threading.Lock()
        self.managed = managed

    def get(self, name: str) -> Plugin:
        with self.lock:
            p = self.by_name.get(name)
            found = self.managed(name) if self.managed is not None else None
            addr, root = found if found is not None else (find(name), "")
            if p is None or p.addr != addr:
                p = self.by_name[name] = Plugin(name, addr, root)
            return p
