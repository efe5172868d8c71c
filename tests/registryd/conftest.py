"""dockyard-registry under test: each registry its own process, port and storage in a temporary
directory, started from a distribution-style config file; Debian's docker-registry as the peer."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..helpers import BIN, free_port
from ..registry.conftest import _registry


class Registry:
    """A running dockyard-registry."""

    def __init__(self, base: Path, extra: str = "", http_extra: str = "", storage: str | None = None,
                 delete: bool = True) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.data = base / "data"
        storage = storage if storage is not None else f"  filesystem:\n    rootdirectory: {self.data}\n"
        self.config = base / "config.yml"
        self.config.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n{storage}"
                               f"  delete:\n    enabled: {'true' if delete else 'false'}\n"
                               f"http:\n  addr: {self.addr}\n{http_extra}{extra}")
        self.log = base / "log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def start(self) -> Registry:
        self.proc = subprocess.Popen([str(BIN / "dockyard-registry"), "serve", str(self.config)],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockyard-registry exited: {self.log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dockyard-registry did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def gc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "dockyard-registry"), "gc", str(self.config), *args],
                              capture_output=True, text=True, timeout=300)


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    """A fresh dockyard-registry per call, stopped at the end of the test."""
    made: list[Registry] = []

    def make(extra: str = "", **kw) -> Registry:
        r = Registry(tmp_path / f"reg{len(made)}", extra, **kw)
        made.append(r)
        return r.start()
    yield make
    for r in made:
        r.stop()


@pytest.fixture(scope="session")
def dyreg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One plain dockyard-registry for the session."""
    r = Registry(tmp_path_factory.mktemp("dyreg")).start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def peer_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry (distribution 2.8), plain HTTP, delete enabled."""
    yield from _registry(tmp_path_factory.mktemp("peer-registry"), "")


from ..registry.conftest import pki  # noqa: E402,F401 - the CA and server certificate for 127.0.0.1
