"""What fails in a cluster, each on the rig: a daemon killed and restarted, a host that never
comes back, the store stopped and started again, an etcd member lost, a network removed while a
host was away, a smaller underlay MTU."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .rig import Rig, api, clear
from .test_overlay import sh_in, until

pytestmark = pytest.mark.root
TTL = 6
GET = 'printf "GET /passwd HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {} 80'


@pytest.fixture(scope="module")
def frig(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("frig"))
    try:
        r.up()
        for k in (1, 2, 3):
            r.daemon(k, busybox=busybox_tar, ttl=TTL)
        yield r
    finally:
        r.down()


@pytest.fixture
def cs(frig: Rig) -> Iterator[dict[int, docker.DockerClient]]:
    out = {k: api(frig, k) for k in frig.daemons}
    yield out
    for k in list(frig.daemons):   # a test may leave a daemon down: start it again for the next
        if not frig.daemons[k].ping():
            frig.daemons[k].start()
            out[k] = api(frig, k)
    clear(out)


def reaches(ctr: Any, name: str) -> bool:
    return "root:x:0:0" in sh_in(ctr, GET.format(name), timeout=5)[1]


class Prober(threading.Thread):
    """Asks a container for a page of another, again and again, counting failures."""

    def __init__(self, ctr: Any, target: str) -> None:
        super().__init__(daemon=True)
        self.ctr, self.target = ctr, target
        self.ok = self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            if "root:x:0:0" in sh_in(self.ctr, GET.format(self.target), timeout=5)[1]:
                self.ok += 1
            else:
                self.failed += 1
            time.sleep(0.1)


def test_daemon_killed_keeps_its_containers_reachable_and_readopts(frig: Rig, cs: dict[int, docker.DockerClient]) -> None:
    cs[1].networks.create("ov-k", driver="overlay")
    cs[1].containers.run("busybox", "httpd -f -p 80 -h /etc", name="kweb", network="ov-k", detach=True)
    cli = cs[2].containers.run("busybox", "sleep 300", name="kcli", network="ov-k", detach=True)
    assert until(lambda: reaches(cli, "kweb"), 5)
    probe = Prober(cli, "kweb")
    probe.start()
    frig.daemons[1].kill9()   # its containers run on (the monitor keeps them); host 2 still reaches it
    time.sleep(2)
    frig.daemons[1].start()
    c1 = api(frig, 1)
    assert c1.containers.get("kweb").attrs["State"]["Running"]
    time.sleep(TTL + 2)   # past the lease it had: its endpoint was taken up again, not lost
    probe.halt.set()
    probe.join()
    assert probe.failed == 0 and probe.ok > 10, (probe.ok, probe.failed)
    assert reaches(cli, "kweb")
    # and it serves its own containers' names again (the DNS is the daemon's)
    web = c1.containers.get("kweb")
    code, out = sh_in(web, "nslookup kcli 127.0.0.11; ip neigh; ping -c 1 -W 3 kcli")
    assert code == 0, out


def test_host_that_never_returns_loses_its_endpoints_after_the_lease(frig: Rig, cs: dict[int, docker.DockerClient]) -> None:
    cs[1].networks.create("ov-g", driver="overlay", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.95.0.0/24")]))
    ep = cs[1].api.create_endpoint_config(ipv4_address="10.95.0.77")
    cs[3].containers.run("busybox", "sleep 300", name="gone", network="ov-g", detach=True,
                         networking_config={"ov-g": ep})
    watcher = cs[1].containers.run("busybox", "sleep 300", name="watcher", network="ov-g", detach=True)
    assert sh_in(watcher, "nslookup gone 127.0.0.11")[0] == 0
    d3 = frig.daemons[3]
    died = time.time()
    d3.kill9()   # the host dies: its daemon, its monitor, its containers
    mon = d3.monitor_pid()
    if mon:
        os.kill(mon, signal.SIGKILL)
    d3._kill_container_processes()
    # within the lease, the address is still the dead host's
    with pytest.raises(docker.errors.APIError, match="Address already in use"):
        cs[1].containers.run("busybox", "true", network="ov-g", networking_config={
            "ov-g": cs[1].api.create_endpoint_config(ipv4_address="10.95.0.77")}, remove=True)
    assert until(lambda: sh_in(watcher, "nslookup gone 127.0.0.11")[0] != 0, TTL + 5)
    # not before the lease ran out (renewed every TTL/3: at the death, between TTL - TTL/3 and TTL were left)
    assert time.time() - died >= TTL - TTL / 3 - 0.5
    # then its address returns to the pool
    again = cs[1].containers.run("busybox", "sleep 300", network="ov-g", detach=True, networking_config={
        "ov-g": cs[1].api.create_endpoint_config(ipv4_address="10.95.0.77")})
    again.reload()
    assert again.attrs["NetworkSettings"]["Networks"]["ov-g"]["IPAddress"] == "10.95.0.77"
    assert cs[2].info()["SystemStatus"][1] == ["Nodes", "2"]


def test_store_down_traffic_flows_changes_refused_then_work(frig: Rig, cs: dict[int, docker.DockerClient]) -> None:
    cs[1].networks.create("ov-s", driver="overlay")
    cs[1].containers.run("busybox", "httpd -f -p 80 -h /etc", name="sweb", network="ov-s", detach=True)
    cli = cs[2].containers.run("busybox", "sleep 300", name="scli", network="ov-s", detach=True)
    assert until(lambda: reaches(cli, "sweb"), 5)
    probe = Prober(cli, "sweb")
    probe.start()
    try:
        frig.stop_etcd(1)
        time.sleep(1)
        with pytest.raises(docker.errors.APIError, match="cluster store .* unreachable"):
            cs[3].networks.create("ov-s2", driver="overlay")
        with pytest.raises(docker.errors.APIError, match="cluster store .* unreachable"):
            cs[3].containers.run("busybox", "true", network="ov-s", remove=True)
        time.sleep(TTL + 1)   # longer than a lease: nothing of the data plane waits on the store
        assert reaches(cli, "sweb")
        frig.start_etcd(1)
        made = until(lambda: _try_create(cs[3], "ov-s2"), 20)
        assert made
        assert until(lambda: any(x.name == "ov-s2" for x in cs[1].networks.list()), 5)
        late = cs[3].containers.run("busybox", "sleep 300", name="late", network="ov-s", detach=True)
        assert until(lambda: reaches(late, "sweb"), 5)
    finally:
        probe.halt.set()
        probe.join()
        if 1 not in frig.etcd:
            frig.start_etcd(1)
    assert probe.failed == 0 and probe.ok > 10, (probe.ok, probe.failed)


def _try_create(c: docker.DockerClient, name: str) -> bool:
    try:
        c.networks.create(name, driver="overlay")
        return True
    except docker.errors.APIError:
        return False


def test_network_removed_while_a_host_was_away(frig: Rig, cs: dict[int, docker.DockerClient]) -> None:
    n = cs[1].networks.create("ov-away", driver="overlay")
    assert until(lambda: any(x.name == "ov-away" for x in cs[2].networks.list()), 5)
    frig.daemons[2].kill9()   # away: its devices stay behind
    assert frig.in_overlay(2, n.id, "ip", "link", "show", f"vx-{n.id[:12]}", check=False).returncode == 0
    n.remove()
    frig.daemons[2].start()
    c2 = api(frig, 2)
    assert all(x.name != "ov-away" for x in c2.networks.list())
    assert frig.in_overlay(2, n.id, "true", check=False).returncode != 0   # its namespace is gone


def test_smaller_underlay_mtu(frig: Rig, cs: dict[int, docker.DockerClient]) -> None:
    frig.set_mtu(1400)
    try:
        cs[1].networks.create("ov-m", driver="overlay")
        assert until(lambda: any(x.name == "ov-m" for x in cs[2].networks.list()), 5)   # (the watch: ms)
        big = cs[2].containers.run("busybox", "sh -c 'head -c 2000000 /dev/zero > /tmp/big && httpd -f -p 80 -h /tmp'",
                                   detach=True, network="ov-m", name="mbig")
        a = cs[1].containers.run("busybox", "sleep 300", detach=True, network="ov-m")
        assert sh_in(a, "cat /sys/class/net/eth0/mtu")[1].strip() == "1350"
        assert sh_in(big, "cat /sys/class/net/eth0/mtu")[1].strip() == "1350"
        time.sleep(0.3)
        out = sh_in(a, 'printf "GET /big HTTP/1.0\\r\\n\\r\\n" | nc -w 5 mbig 80 | wc -c', timeout=20)[1]
        assert int(out.strip()) > 2000000, out
    finally:
        frig.set_mtu(1500)


def test_etcd_member_lost(tmp_path: Path, busybox_tar: Path) -> None:
    """A three-member store loses the member every daemon asks first: the others answer."""
    r = Rig(tmp_path / "m", hosts=2, members=3)
    try:
        r.up()
        for k in (1, 2, 3):
            r.wait_etcd(k)
        d1, d2 = r.daemon(1, busybox=busybox_tar), r.daemon(2, busybox=busybox_tar)
        c1 = docker.DockerClient(base_url=d1.host, version="auto")
        c2 = docker.DockerClient(base_url=d2.host, version="auto")
        c1.networks.create("ov-before", driver="overlay")
        r.stop_etcd(1, kill=True)
        time.sleep(1.5)   # a new leader if it was the leader
        assert until(lambda: _try_create(c2, "ov-after"), 15)
        assert until(lambda: any(x.name == "ov-after" for x in c1.networks.list()), 5)
        c1.containers.run("busybox", "httpd -f -p 80 -h /etc", name="mweb", network="ov-after", detach=True)
        cli = c2.containers.run("busybox", "sleep 300", name="mcli", network="ov-after", detach=True)
        assert until(lambda: reaches(cli, "mweb"), 5)
        assert any(x.name == "ov-before" for x in c2.networks.list())
        for c in (c1, c2):
            for ctr in c.containers.list(all=True):
                ctr.remove(force=True)
        c1.networks.get("ov-after").remove()
        c1.networks.get("ov-before").remove()
    finally:
        r.down()
