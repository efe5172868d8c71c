"""Joining a container's cgroups without the global lock: `Manager.fork` places the child in the
unified hierarchy at birth (clone3 CLONE_INTO_CGROUP) and `join_self` moves it into each v1
hierarchy through `tasks`; the fallback (a kernel without clone3: plain fork, then cgroup.procs)
must land in the same cgroups. Both observed in /proc/PID/cgroup of a real child."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from dockyard.runtime import cgroups

pytestmark = pytest.mark.root


@pytest.fixture
def manager():
    m = cgroups.Manager(f"/dockyard-test/{uuid.uuid4().hex[:12]}")
    m.create({})
    yield m
    m.destroy()
    cgroups.remove_if_empty("/dockyard-test")


# run in a fresh (single-threaded) interpreter: the clone3 path is only for such callers
_PROBE = """
import errno, json, os, sys
from dockyard.linux import syscalls as sc
from dockyard.runtime import cgroups
if sys.argv[2] == "fallback":
    def refuse(fd, flags=0):
        raise OSError(errno.ENOSYS, "clone3: not here")
    sc.fork_into_cgroup = refuse
m = cgroups.Manager(sys.argv[1])
r, w = os.pipe()
pid, placed = m.fork()
if pid == 0:
    try:
        os.close(r)
        m.join_self(placed)
        os.write(w, open("/proc/self/cgroup", "rb").read())
    finally:
        os._exit(0)
os.close(w)
data = b""
while chunk := os.read(r, 65536):
    data += chunk
_, status = os.waitpid(pid, 0)
seen = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in data.decode().splitlines()}
print(json.dumps({"placed": placed, "status": status, "seen": seen}))
"""


def _child_cgroups(m: cgroups.Manager, mode: str) -> tuple[bool, dict[str, str]]:
    """A child forked through the manager joins, and reports its /proc/self/cgroup."""
    p = subprocess.run([sys.executable, "-c", _PROBE, m.path, mode], capture_output=True, text=True, check=True)
    out = json.loads(p.stdout)
    assert out["status"] == 0
    return out["placed"], out["seen"]


def test_placed_at_birth_and_joined_through_tasks(manager):
    placed, seen = _child_cgroups(manager, "fast")
    assert placed, "clone3(CLONE_INTO_CGROUP) works on this kernel: the fast path must be taken"
    assert seen and all(p == manager.path for p in seen.values()), seen
    assert len(seen) == len(manager.paths)


def test_fallback_without_clone3_joins_the_same_cgroups(manager):
    placed, seen = _child_cgroups(manager, "fallback")
    assert not placed
    assert seen and all(p == manager.path for p in seen.values()), seen
    assert len(seen) == len(manager.paths)
