"""The cgroup writers' conversions from OCI resources to files (v2 cannot be run on this
hybrid host: the files are written into a plain directory and read back)."""

from __future__ import annotations

import pytest

from dockyard.runtime import cgroups


def _files(d):
    return {p.name: p.read_text() for p in d.iterdir()}


def test_v2_conversions(tmp_path):
    cgroups._set_v2(str(tmp_path), {
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 100},
        "blockIO": {"throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 1048576}]}})
    f = _files(tmp_path)
    assert f["memory.max"] == str(64 << 20) and f["memory.swap.max"] == str(64 << 20)
    assert f["memory.low"] == str(32 << 20)
    assert f["cpu.weight"] == "39" and f["cpu.max"] == "50000 100000"
    assert f["cpuset.cpus"] == "0-1" and f["pids.max"] == "100" and f["io.max"] == "7:0 rbps=1048576"


def test_v2_unlimited_and_refusals(tmp_path):
    cgroups._set_v2(str(tmp_path), {"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "period": 100000},
                                    "pids": {"limit": -1}})
    f = _files(tmp_path)
    assert f["memory.max"] == "max" and f["memory.swap.max"] == "max" and f["cpu.max"] == "max 100000"
    assert f["pids.max"] == "max"
    for bad in ({"memory": {"swappiness": 10}}, {"memory": {"disableOOMKiller": True}},
                {"cpu": {"realtimeRuntime": 1000}}):
        with pytest.raises(OSError):
            cgroups._set_v2(str(tmp_path), bad)


def test_v1_memory_order_when_growing(tmp_path):
    (tmp_path / "memory.memsw.limit_in_bytes").write_text(str(64 << 20))
    (tmp_path / "memory.limit_in_bytes").write_text(str(32 << 20))
    cgroups._v1_memory(str(tmp_path), {"memory": {"limit": 128 << 20, "swap": 256 << 20}})
    f = _files(tmp_path)
    assert f["memory.limit_in_bytes"] == str(128 << 20) and f["memory.memsw.limit_in_bytes"] == str(256 << 20)
