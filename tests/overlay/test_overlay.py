"""Overlay networks across the rig's three hosts: created once, seen everywhere; containers on
hosts 1 and 2 reach each other by name over TCP and UDP, a container on host 3 on another overlay
cannot; addresses are taken cluster-wide; a network is not removed while a host has an endpoint
on it; connect/disconnect, aliases, published ports, MTU."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from ..helpers import DOCKER
from .rig import Rig, api, clear

pytestmark = pytest.mark.root


@pytest.fixture
def clients(rig: Rig) -> Iterator[dict[int, docker.DockerClient]]:
    cs = {k: api(rig, k) for k in rig.daemons}
    yield cs
    clear(cs)


def sh_in(ctr: Any, cmd: str, timeout: int = 10) -> tuple[int, str]:
    r = ctr.exec_run(["timeout", str(timeout), "sh", "-c", cmd])
    return r.exit_code, r.output.decode(errors="replace")


def until(fn: Any, seconds: float = 10.0) -> Any:
    deadline = time.time() + seconds
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.05)


def netns_of(ctr: Any) -> str:
    """The container's network namespace, through its process (the daemon's bind mount of it
    lives in the daemon's own mount namespace, made by `ip netns exec`)."""
    ctr.reload()
    return f"/proc/{ctr.attrs['State']['Pid']}/ns/net"


UDP_SERVER = ("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353)); "
              "d, a = s.recvfrom(100); s.sendto(b'pong:' + d, a)")
UDP_CLIENT = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); "
              "s.sendto(b'ping', (sys.argv[1], 5353)); print(s.recvfrom(100)[0].decode())")


def test_the_store_and_its_nodes_in_info(rig: Rig, clients: dict[int, docker.DockerClient]) -> None:
    inf = clients[2].info()
    assert inf["ClusterStore"] == rig.store and inf["ClusterAdvertise"] == rig.host_ip(2)
    status = dict((a.strip(), b) for a, b in inf["SystemStatus"])
    assert status["Cluster store"] == "up" and status["Nodes"] == "3"
    assert status["host1"] == rig.host_ip(1) and status["host2"] == f"{rig.host_ip(2)} (this host)"
    from ..helpers import BIN
    out = subprocess.run([str(BIN / "dockyard"), "info"], env=rig.daemons[3].env(), capture_output=True, text=True).stdout
    assert f"Cluster Store: {rig.store}" in out and "  host3: " + rig.host_ip(3) + " (this host)" in out, out
    if DOCKER:   # the docker CLI shows the store as it did for Docker's own
        out = subprocess.run([DOCKER, "info"], env=rig.daemons[1].env(), capture_output=True, text=True).stdout
        assert f"Cluster Store: {rig.store}" in out and f"Cluster Advertise: {rig.host_ip(1)}" in out


def test_created_once_seen_everywhere(rig: Rig, clients: dict[int, docker.DockerClient]) -> None:
    n = clients[1].networks.create("ov-seen", driver="overlay", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.91.0.0/24", gateway="10.91.0.254", iprange="10.91.0.128/25")]),
        labels={"a": "b"})
    for k in (2, 3):
        other = until(lambda k=k: next((x for x in clients[k].networks.list() if x.name == "ov-seen"), None), 5)
        assert other is not None and other.id == n.id
        a = other.attrs
        assert a["Driver"] == "overlay" and a["Scope"] == "global" and a["Labels"] == {"a": "b"}
        assert a["IPAM"]["Config"] == [{"Subnet": "10.91.0.0/24", "Gateway": "10.91.0.254", "IPRange": "10.91.0.128/25"}]
        vni = int(a["Options"]["com.docker.network.driver.overlay.vxlanid_list"])
        # the host's devices: a VXLAN with that VNI, learning off, on the network's bridge
        out = rig.in_overlay(k, n.id, "ip", "-d", "link", "show", f"vx-{n.id[:12]}").stdout
        assert f"vxlan id {vni} " in out and "nolearning" in out and "proxy" in out and f"master ov-{n.id[:12]}" in out
        assert "dstport 4789" in out and f"local {rig.host_ip(k)}" in out
        # (in the network's own namespace: nothing of it in the host's, whose firewall never sees its frames)
        assert rig.in_host(k, "ip", "link", "show", f"vx-{n.id[:12]}", check=False).returncode != 0
    # the same name again, from another host: refused (taken in the store)
    with pytest.raises(docker.errors.APIError, match="already exists"):
        clients[3].networks.create("ov-seen", driver="overlay")
    # a second network gets another VNI; an asked-for VNI that is taken is refused
    m = clients[2].networks.create("ov-seen2", driver="overlay")
    assert m.attrs["Options"]["com.docker.network.driver.overlay.vxlanid_list"] != str(vni)
    with pytest.raises(docker.errors.APIError, match=f"VNI {vni} is in use"):
        clients[3].networks.create("ov-seen3", driver="overlay",
                                   options={"com.docker.network.driver.overlay.vxlanid_list": str(vni)})
    # what the driver does not apply is refused by name
    with pytest.raises(docker.errors.APIError, match="com.docker.network.bridge.name"):
        clients[1].networks.create("ov-bad", driver="overlay", options={"com.docker.network.bridge.name": "x"})
    with pytest.raises(docker.errors.APIError, match="EnableIPv6"):
        clients[1].networks.create("ov-bad", driver="overlay", enable_ipv6=True)
    m.remove()
    n.remove()
    for k in (1, 2, 3):   # gone everywhere, devices too
        assert until(lambda k=k: all(x.name != "ov-seen" for x in clients[k].networks.list()), 5)
        assert until(lambda k=k: rig.in_overlay(k, n.id, "true", check=False).returncode != 0, 5)


def test_reach_by_name_across_hosts_and_not_across_networks(rig: Rig, clients: dict[int, docker.DockerClient]) -> None:
    clients[1].networks.create("ov-a", driver="overlay")
    clients[3].networks.create("ov-b", driver="overlay")
    web = clients[1].containers.run("busybox", "httpd -f -p 80 -h /etc", name="web", detach=True,
                                    network="ov-a", networking_config={"ov-a": clients[1].api.create_endpoint_config(
                                        aliases=["www"])})
    cli = clients[2].containers.run("busybox", "sleep 300", name="cli", network="ov-a", detach=True)
    other = clients[3].containers.run("busybox", "sleep 300", name="other", network="ov-b", detach=True)
    web_ip = clients[1].containers.get("web").attrs["NetworkSettings"]["Networks"]["ov-a"]["IPAddress"]
    # by name and by alias, TCP, from the other host
    for name in ("web", "www", "web.ov-a", web.id[:12]):
        code, out = sh_in(cli, f"nslookup {name} 127.0.0.11")
        assert code == 0 and web_ip in out, (name, out)
    code, out = sh_in(cli, 'printf "GET /passwd HTTP/1.0\\r\\n\\r\\n" | nc -w 5 web 80')
    assert "200 OK" in out and "root:x:0:0" in out, out
    # the reverse name of the remote address
    code, out = sh_in(cli, f"nslookup {web_ip} 127.0.0.11")
    assert "web.ov-a" in out, out
    # and back: host 1 resolves host 2's container
    code, out = sh_in(web, "ping -c 1 -W 3 cli")
    assert code == 0, out
    # UDP between the two containers' namespaces
    srv = subprocess.Popen(["nsenter", f"--net={netns_of(web)}", "python3", "-c", UDP_SERVER],
                           stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        r = subprocess.run(["nsenter", f"--net={netns_of(cli)}", "python3", "-c", UDP_CLIENT, web_ip],
                           capture_output=True, text=True, timeout=20)
        assert r.stdout.strip() == "pong:ping", r.stderr
    finally:
        srv.kill()
        srv.wait()
    # MTU: the underlay's less the VXLAN header; TCP with full-size segments works (the /passwd above was small)
    code, out = sh_in(cli, "cat /sys/class/net/eth0/mtu")
    assert out.strip() == str(rig.mtu - 50)
    code, out = sh_in(cli, 'printf "GET /services HTTP/1.0\\r\\n\\r\\n" | nc -w 5 web 80 | wc -c')
    # (busybox has no /etc/services: a 404 page then; the size check is in the MTU test)
    # host 3's container, on another overlay, resolves nothing and reaches nothing of ov-a
    code, out = sh_in(other, "nslookup web 127.0.0.11")
    assert web_ip not in out
    code, out = sh_in(other, f"ping -c 1 -W 1 {web_ip}")
    assert code != 0
    # the way out of an overlay container: the local gateway bridge, not the overlay
    code, out = sh_in(cli, "ip route")
    assert "default via" in out and "dev eth1" in out.split("default via")[1].splitlines()[0]


def test_addresses_taken_cluster_wide_and_rm_refused_with_endpoints(rig: Rig,
                                                                    clients: dict[int, docker.DockerClient]) -> None:
    clients[1].networks.create("ov-ip", driver="overlay", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.92.0.0/24")]))
    a = clients[1].containers.run("busybox", "sleep 300", detach=True, network="ov-ip",
                                  networking_config={"ov-ip": clients[1].api.create_endpoint_config(ipv4_address="10.92.0.50")})
    a.reload()
    assert a.attrs["State"]["Running"] and a.attrs["NetworkSettings"]["Networks"]["ov-ip"]["IPAddress"] == "10.92.0.50"
    # another host asks for the same static address: refused, with dockerd's words
    with pytest.raises(docker.errors.APIError, match="Address already in use: 10.92.0.50"):
        clients[2].containers.run("busybox", "sleep 300", detach=True, network="ov-ip", networking_config={
            "ov-ip": clients[2].api.create_endpoint_config(ipv4_address="10.92.0.50")})
    # dynamic addresses on three hosts at once never collide
    ctrs = [clients[k].containers.run("busybox", "sleep 300", detach=True, network="ov-ip") for k in (1, 2, 3, 2, 3)]
    ips = [clients[k].containers.get(c.id).attrs["NetworkSettings"]["Networks"]["ov-ip"]["IPAddress"]
           for k, c in zip((1, 2, 3, 2, 3), ctrs, strict=True)]
    assert len(set(ips)) == 5 and "10.92.0.50" not in ips
    # removal is refused while any host has an endpoint on it, naming the host
    a.remove(force=True)
    ctrs[0].remove(force=True)   # host 1 has none left: the others' are what stops it
    with pytest.raises(docker.errors.APIError, match=r"active endpoints \(on host2, host3\)"):
        clients[1].networks.get("ov-ip").remove()
    for c in ctrs[1:]:
        c.remove(force=True)
    clients[3].networks.get("ov-ip").remove()


def test_connect_disconnect_several_networks_and_published_ports(rig: Rig, clients: dict[int, docker.DockerClient]) -> None:
    clients[1].networks.create("ov-c1", driver="overlay")
    clients[2].networks.create("ov-c2", driver="overlay", internal=True)
    peer = clients[2].containers.run("busybox", "sleep 300", name="peer", network="ov-c2", detach=True)
    web = clients[1].containers.run("busybox", "httpd -f -p 80 -h /etc", name="pweb", network="ov-c1", detach=True,
                                    ports={"80/tcp": 8080})
    # published on the host where it runs: host 2 reaches host 1's address and port (over the wire, no overlay)
    r = rig.in_host(2, "sh", "-c", f'printf "GET /passwd HTTP/1.0\\r\\n\\r\\n" | busybox nc -w 5 {rig.host_ip(1)} 8080',
                    check=False)
    assert "root:x:0:0" in r.stdout, r.stderr
    # live connect to an internal overlay: the peer on host 2 resolves and reaches it by name
    clients[1].networks.get("ov-c2").connect(web, aliases=["site"])
    code, out = sh_in(peer, 'printf "GET /passwd HTTP/1.0\\r\\n\\r\\n" | nc -w 5 site 80')
    assert "root:x:0:0" in out, out
    nets = clients[1].containers.get("pweb").attrs["NetworkSettings"]["Networks"]
    assert set(nets) == {"ov-c1", "ov-c2"}
    # disconnect: the name goes from host 2's view at once, and the address is free again
    clients[1].networks.get("ov-c2").disconnect(web)
    assert until(lambda: sh_in(peer, "nslookup site 127.0.0.11")[0] != 0, 5)
    code, out = sh_in(web, "ip route")
    assert "default via" in out   # its way out is still there


def test_mtu_option(rig: Rig, clients: dict[int, docker.DockerClient]) -> None:
    clients[1].networks.create("ov-mtu", driver="overlay", options={"com.docker.network.driver.mtu": "1300"})
    # at once on another host (its watch may not have told it yet: it reads the store through)
    b = clients[2].containers.run("busybox", "sh -c 'head -c 3000000 /dev/zero > /tmp/big && httpd -f -p 80 -h /tmp'",
                                  detach=True, network="ov-mtu", name="sink")
    a = clients[1].containers.run("busybox", "sleep 300", detach=True, network="ov-mtu")
    assert sh_in(a, "cat /sys/class/net/eth0/mtu")[1].strip() == "1300"
    time.sleep(0.3)
    code, out = sh_in(a, 'printf "GET /big HTTP/1.0\\r\\n\\r\\n" | nc -w 5 sink 80 | wc -c', timeout=20)
    assert int(out.strip()) > 3000000, out
    b.remove(force=True)


def test_cli_create_inspect_rm(rig: Rig, clients: dict[int, docker.DockerClient]) -> None:
    if not DOCKER:
        pytest.skip("Debian's docker CLI is not installed")

    def cli(k: int, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, *args], env=rig.daemons[k].env(), capture_output=True, text=True, timeout=60)
    p = cli(2, "network", "create", "-d", "overlay", "--subnet", "10.93.0.0/24", "ov-cli")
    assert p.returncode == 0, p.stderr
    # listed on the others as soon as their watch says so (milliseconds; the list does not read through)
    assert until(lambda: "ov-cli overlay global" in cli(3, "network", "ls", "--format",
                                                         "{{.Name}} {{.Driver}} {{.Scope}}").stdout, 5)
    inspect = json.loads(cli(1, "network", "inspect", "ov-cli").stdout)[0]
    assert inspect["Id"] == p.stdout.strip()
    assert cli(1, "network", "rm", "ov-cli").returncode == 0
    assert until(lambda: "ov-cli" not in cli(3, "network", "ls").stdout, 5)
