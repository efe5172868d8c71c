"""Shared fixtures: one daemon per session with a busybox image, fresh daemons on request,
and a check that nothing leaks onto the host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .helpers import DOCKER, Daemon, DockerDaemon, dockyard_cgroups, engine_cgroup_parents, make_busybox_tar, mounts_under

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for it in items:
        if "root" in it.keywords:
            it.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_tar(tmp_path_factory.mktemp("images") / "busybox.tar")


def _import_busybox(d: Daemon, tar: Path) -> str:
    import docker
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        with open(tar, "rb") as f:
            out = c.api.import_image_from_data(f.read(), repository="busybox", tag="latest")
        return out
    finally:
        c.close()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path):
    d = Daemon(tmp_path_factory.mktemp("dockyardd"))
    try:
        d.start()
        _import_busybox(d, busybox_tar)
        yield d
    finally:  # also when setup fails: never leave a daemon and its monitor running
        d.cleanup()
    assert not mounts_under(d.base), "mounts left behind"


@pytest.fixture
def fresh_daemon(tmp_path: Path, busybox_tar: Path):
    """A daemon of the test's own; started with busybox imported. Extra args via `daemon_args` marker."""
    made: list[Daemon] = []

    def make(*args: str, config: dict | None = None, image: bool = True, env: dict | None = None) -> Daemon:
        d = Daemon(tmp_path / f"d{len(made)}", *args, config=config, env=env)
        made.append(d)
        d.start()
        if image:
            _import_busybox(d, busybox_tar)
        return d

    yield make
    for d in made:
        d.cleanup()
        assert not mounts_under(d.base), "mounts left behind"


@pytest.fixture
def client(daemon: Daemon):
    import docker
    c = docker.DockerClient(base_url=daemon.host, version="auto")
    yield c
    for ctr in c.containers.list(all=True):
        try:
            ctr.remove(force=True)
        except docker.errors.NotFound:
            pass
    c.close()


@pytest.fixture
def docker_cli(daemon: Daemon):
    if not DOCKER:
        pytest.skip("Debian's docker CLI (docker.io) is not installed")

    def run(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([DOCKER, *args], env=daemon.env(), capture_output=True, text=input is None,
                           input=input, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} → {p.returncode}: {p.stderr}")
        return p
    return run


@pytest.fixture
def dy_cli(daemon: Daemon):
    from .helpers import BIN

    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([str(BIN / "dockyard"), *args], env=daemon.env(), capture_output=True, text=True,
                           input=input, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} → {p.returncode}: {p.stderr}")
        return p
    return run


@pytest.fixture(scope="session", autouse=True)
def no_host_leaks():
    before = set(dockyard_cgroups())
    parents = set(engine_cgroup_parents())
    yield
    after = set(dockyard_cgroups()) - before
    try:
        assert not after, f"cgroups left behind: {sorted(after)}"
    finally:   # the engines' parent cgroups (dockyard/, docker/) this session made, once empty, even
        # after a failure (else the next session counts them as the host's own and keeps them)
        for p in set(engine_cgroup_parents()) - parents:
            try:
                p.rmdir()
            except OSError:
                if not after:
                    raise


@pytest.fixture(scope="session")
def real_docker(tmp_path_factory: pytest.TempPathFactory):
    """Debian's dockerd as a peer; the test is skipped where it cannot start."""
    d = DockerDaemon(tmp_path_factory.mktemp("dockerd"))
    if d.start() is None:
        d.stop()
        pytest.skip("Debian's dockerd could not start here")
    yield d
    d.stop()
