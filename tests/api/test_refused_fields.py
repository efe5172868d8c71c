"""Fields the table refuses: each, set to a value that asks for something, is a 400 that names
it, and no container is left behind. Fields Docker itself only records come back in inspect."""

from __future__ import annotations

import docker
import pytest

from dockyard.containers import fields

pytestmark = pytest.mark.root

SAMPLES = {
    "HostConfig.DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}],
    "HostConfig.KernelMemory": 64 << 20, "HostConfig.KernelMemoryTCP": 64 << 20,
    "HostConfig.IOMaximumIOps": 10,
    "HostConfig.IOMaximumBandwidth": 1000,
    "HostConfig.Cgroup": "container:x",
    "HostConfig.StorageOpt": {"size": "1G"},
}
REFUSED = sorted(f"{w}.{k}" for w, t in (("Config", fields.CONFIG), ("HostConfig", fields.HOST_CONFIG))
                 for k, f in t.items() if f.status == fields.REFUSED)


def _create(client, body: dict):
    return client.api._post_json(client.api._url("/containers/create"), data=body)


def test_every_refused_field_has_a_sample():
    assert sorted(SAMPLES) == REFUSED


@pytest.mark.parametrize("field", REFUSED)
def test_refused_field_is_a_400_naming_it(client, field):
    where, _, key = field.partition(".")
    body: dict = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {}}
    (body if where == "Config" else body["HostConfig"])[key] = SAMPLES[field]
    before = len(client.api.containers(all=True))
    r = _create(client, body)
    assert r.status_code == 400, r.text
    assert field in r.json()["message"]
    assert len(client.api.containers(all=True)) == before


def test_zero_values_of_refused_fields_are_fine(client):
    body = {"Image": "busybox", "Cmd": ["true"], "Tty": False, "Volumes": None, "Healthcheck": None,
            "HostConfig": {"Binds": [], "PortBindings": {}, "KernelMemory": 0, "Init": None, "Dns": [],
                           "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}}
    r = _create(client, body)
    assert r.status_code == 201, r.text
    client.api.remove_container(r.json()["Id"])


def test_unknown_fields_with_values_are_refused(client):
    r = _create(client, {"Image": "busybox", "Cmd": ["true"], "Bogus": 1})
    assert r.status_code == 400 and "Config.Bogus" in r.json()["message"]
    r = _create(client, {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"MemoryTypo": 5}})
    assert r.status_code == 400 and "HostConfig.MemoryTypo" in r.json()["message"]
    r = _create(client, {"Image": "busybox", "Cmd": ["true"],
                         "NetworkingConfig": {"EndpointsConfig": {"mynet": {"LinkLocalIPs": ["x"]}}}})
    assert r.status_code == 400 and "EndpointsConfig.mynet.LinkLocalIPs" in r.json()["message"]
    r = _create(client, {"Image": "busybox", "Cmd": ["true"],
                         "NetworkingConfig": {"EndpointsConfig": {"mynet": {"Aliases": ["x"]}}}})
    assert r.status_code == 404 and "network mynet not found" in r.json()["message"]


def test_keys_match_without_case_as_dockerd(client):
    r = _create(client, {"image": "busybox", "cmd": ["true"], "hostconfig": {"memory": 64 << 20}})
    assert r.status_code == 201, r.text
    a = client.api.inspect_container(r.json()["Id"])
    assert a["HostConfig"]["Memory"] == 64 << 20
    client.api.remove_container(a["Id"])


def test_recorded_fields_and_domainname(client):
    body = {"Image": "busybox", "Cmd": ["sh", "-c", "hostname; domainname 2>/dev/null || cat /proc/sys/kernel/domainname"],
            "Hostname": "h1", "Domainname": "example.org", "ExposedPorts": {"80/tcp": {}}, "ArgsEscaped": False,
            "OnBuild": ["RUN true"], "Shell": ["/bin/sh", "-c"],
            "HostConfig": {"ContainerIDFile": "/tmp/cid", "ConsoleSize": [24, 80]}}
    r = _create(client, body)
    assert r.status_code == 201, r.text
    cid = r.json()["Id"]
    client.api.start(cid)
    client.api.wait(cid)
    assert client.api.logs(cid).split() == [b"h1", b"example.org"]
    a = client.api.inspect_container(cid)
    assert a["Config"]["ExposedPorts"] == {"80/tcp": {}} and a["Config"]["Shell"] == ["/bin/sh", "-c"]
    assert a["HostConfig"]["ContainerIDFile"] == "/tmp/cid" and a["HostConfig"]["ConsoleSize"] == [24, 80]
    client.api.remove_container(cid)


def test_isolation(client):
    r = _create(client, {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Isolation": "default"}})
    assert r.status_code == 201
    client.api.remove_container(r.json()["Id"])
    r = _create(client, {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Isolation": "hyperv"}})
    assert r.status_code == 400 and "linux only supports 'default'" in r.json()["message"]


def test_blkio_weight_device(client):
    from dockyard.containers.resources import host
    body = {"Image": "busybox", "Cmd": ["cat", "/sys/fs/cgroup/blkio/blkio.weight_device"],
            "HostConfig": {"BlkioWeightDevice": [{"Path": "/dev/vda", "Weight": 200}]}}
    r = _create(client, body)
    if not host().blkio_weight:
        assert r.status_code == 400 and "Block I/O weight" in r.json()["message"]
        return
    cid = r.json()["Id"]
    client.api.start(cid)
    client.api.wait(cid)
    assert b"200" in client.api.logs(cid)
    client.api.remove_container(cid)


@pytest.mark.parametrize("hc,message", [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"MemoryReservation": 1 << 20}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 16 << 20, "MemoryReservation": 32 << 20}, "Minimum memory limit can not be less than memory reservation"),
    ({"MemorySwappiness": 101}, "valid memory swappiness range is 0-100"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 10**9, "CpuPeriod": 50000}, "Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**12}, "Range of CPUs is from 0.01 to"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms"),
    ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms"),
    ({"CpusetCpus": "abc"}, "Invalid value abc for cpuset cpus"),
    ({"CpusetCpus": "0-999"}, "Requested CPUs are not available"),
    ({"OomScoreAdj": 5000}, "range for oom score adj is [-1000, 1000]"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"CgroupnsMode": "weird"}, "invalid cgroup namespace mode: weird"),
    ({"PidMode": "weird"}, "invalid PID mode: weird"),
    ({"UTSMode": "weird"}, "invalid UTS mode: weird"),
    ({"IpcMode": "container:nosuch"}, "No such container: nosuch"),
])
def test_values_docker_rejects(client, hc, message):
    r = _create(client, {"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
    assert r.status_code == 400 and message in r.json()["message"], r.text


def test_docker_py_create_still_refuses_cleanly(client):
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], storage_opt={"size": "1G"})
    assert e.value.status_code == 400 and "HostConfig.StorageOpt" in str(e.value)


def test_windows_only_fields_are_taken_with_a_warning(client, docker_cli):
    """dockerd takes CpuCount and CpuPercent on Linux and discards them; here never silently."""
    r = client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(
        cpu_count=2, cpu_percent=50, network_mode="none"))
    assert r["Warnings"] == ["linux does not support CPU count. Count discarded.",
                             "linux does not support CPU percent. Percent discarded."]
    hc = client.api.inspect_container(r["Id"])["HostConfig"]
    assert hc["CpuCount"] == 0 and hc["CpuPercent"] == 0
    client.api.remove_container(r["Id"])
