"""The cgroup v2 device filter (an eBPF program per container cgroup, used on v2 hosts where
there is no devices.allow): attached to a cgroup of this host's unified hierarchy, it holds
for a process in that cgroup, and a replacement leaves one program."""

from __future__ import annotations

import os

import pytest

from dockyard.runtime import cgroups, devfilter

pytestmark = pytest.mark.root


def _unified() -> str:
    return cgroups.hierarchies().get("", "")


def test_device_rules_hold_through_the_bpf_filter():
    root = _unified()
    if not root:
        pytest.skip("no cgroup v2 hierarchy on this host")
    cg = os.path.join(root, f"dytest-bpf-{os.getpid()}")
    os.makedirs(cg)
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # /dev/null
             {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]     # /dev/zero, read only
    try:
        devfilter.attach(cg, rules)
        r, w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.read(r, 1)
            out = []
            for p, mode in (("/dev/null", os.O_WRONLY), ("/dev/zero", os.O_RDONLY), ("/dev/zero", os.O_WRONLY),
                            ("/dev/full", os.O_RDONLY)):
                try:
                    os.close(os.open(p, mode))
                    out.append("ok")
                except PermissionError:
                    out.append("denied")
            os.write(res_w, " ".join(out).encode())
            os._exit(0)
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        os.write(w, b"x")
        os.waitpid(pid, 0)
        assert os.read(res_r, 100).decode().split() == ["ok", "ok", "denied", "denied"]
        devfilter.attach(cg, [{"allow": True, "access": "rwm"}])
        fd = os.open(cg, os.O_RDONLY)
        try:
            attached = devfilter._attached(fd)
            assert len(attached) == 1
            for a in attached:
                os.close(a)
        finally:
            os.close(fd)
    finally:
        os.rmdir(cg)


def test_program_shape():
    """No rule after one that matches everything (the verifier refuses unreachable code)."""
    prog = devfilter.program([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3}])
    assert len(prog) % 8 == 0 and prog[-8] == devfilter.EXIT
    # the last rule matches everything: 6 loads, then its decision, and nothing after
    assert len(devfilter.program([{"allow": False, "type": "c", "major": 1}, {"allow": True, "access": "rwm"}])) == 8 * 8
