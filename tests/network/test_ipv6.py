"""Issue 21: IPv6 — the default bridge with `--ipv6 --fixed-cidr-v6`, user networks with an IPv6
subnet (`--ipv6 --subnet`, docker-py's IPAM pools), `--ip6`, container-to-container traffic over
IPv6 and published ports reached over IPv6 (DNAT in ip6tables), with ULA addresses on the test's
own bridges and namespaces; nothing of ours left afterwards."""

from __future__ import annotations

import random
import subprocess

import docker
import pytest

from ..helpers import DOCKER
from .conftest import own_bridge
from .netutil import rules

pytestmark = pytest.mark.root

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"]


def _ula() -> str:
    return f"fd42:{random.randrange(1, 0xffff):x}:{random.randrange(1, 0xffff):x}"


@pytest.fixture
def v6daemon(fresh_daemon):
    """A daemon whose own default bridge has IPv6 (a random ULA /64); yields (daemon, bridge, prefix)."""
    prefix = _ula()
    for d, name, _ in own_bridge(fresh_daemon, "--ipv6", "--fixed-cidr-v6", f"{prefix}::/64"):
        yield d, name, prefix


def _run(c, script: str, **kw) -> tuple[int, str]:
    ctr = c.containers.run("busybox", ["sh", "-c", script], detach=True, **kw)
    code = ctr.wait(timeout=60)["StatusCode"]
    out = ctr.logs().decode()
    ctr.remove(force=True)
    return code, out


def _fetch6(addr: str, port: int = 80) -> str:
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port} | tail -1"


def test_ipv6_default_bridge_user_networks_and_published_ports(v6daemon):
    d, bridge, prefix = v6daemon
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        # the default bridge: an address of --fixed-cidr-v6, its first address as the gateway
        nb = c.api.inspect_network("bridge")
        assert nb["EnableIPv6"] is True and {"Subnet": f"{prefix}::/64", "Gateway": f"{prefix}::1"} in nb["IPAM"]["Config"]
        web = c.containers.run("busybox", HTTPD, detach=True, hostname="web0")
        ns = c.api.inspect_container(web.id)["NetworkSettings"]
        ip6 = ns["GlobalIPv6Address"]
        assert ip6.startswith(prefix + "::") and ns["GlobalIPv6PrefixLen"] == 64 and ns["IPv6Gateway"] == f"{prefix}::1"
        assert ns["Networks"]["bridge"]["GlobalIPv6Address"] == ip6
        code, out = _run(c, f"ip -6 -o addr show eth0; ip -6 route; ping -6 -c1 -W2 {prefix}::1 >/dev/null && echo gw-ok; "
                            + _fetch6(ip6))
        assert f"default via {prefix}::1" in out and "gw-ok" in out and "hello-web0" in out, out
        web.remove(force=True)
        # a user network with an IPv6 subnet (the docker CLI's --ipv6 --subnet), --ip6 as asked
        sub6 = f"{_ula()}::/64"
        if DOCKER:
            p = subprocess.run([DOCKER, "network", "create", "--ipv6", "--subnet", sub6, "v6net"], env=d.env(),
                               capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
        else:
            c.networks.create("v6net", enable_ipv6=True, ipam=docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=sub6)]))
        net = c.api.inspect_network("v6net")
        assert net["EnableIPv6"] is True and [x["Subnet"] for x in net["IPAM"]["Config"]][1] == sub6
        want = sub6.replace("::/64", "::100")
        web = c.api.create_container("busybox", HTTPD, hostname="web1", host_config=c.api.create_host_config(
            network_mode="v6net", port_bindings={80: None}), networking_config=c.api.create_networking_config(
            {"v6net": c.api.create_endpoint_config(ipv6_address=want)}))
        c.api.start(web)
        info = c.api.inspect_container(web)
        ep = info["NetworkSettings"]["Networks"]["v6net"]
        assert ep["GlobalIPv6Address"] == want and ep["IPAMConfig"]["IPv6Address"] == want
        host_port = int(info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        assert {"HostIp": "::", "HostPort": str(host_port)} in info["NetworkSettings"]["Ports"]["80/tcp"]
        gw6 = sub6.replace("::/64", "::1")
        assert f"[{want}]:80" in rules()   # the DNAT rule in ip6tables
        # by name over IPv6, and the published port through the gateway's IPv6 address (DNAT, hairpin)
        code, out = _run(c, f"{_fetch6(want)}; {_fetch6(gw6, host_port)}", network="v6net")
        assert out.count("hello-web1") == 2, out
        c.api.remove_container(web, force=True)
        assert f"[{want}]:80" not in rules()
        # docker-py's IPAM pool with an IP range and a gateway, and connect with an IPv6 address
        sub7 = _ula()
        n7 = c.networks.create("v6py", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
            subnet=f"{sub7}::/64", iprange=f"{sub7}::/96", gateway=f"{sub7}::ffff")]))
        assert c.api.inspect_network(n7.id)["EnableIPv6"] is True
        probe = c.containers.run("busybox", ["sleep", "300"], detach=True, network="v6py")
        c.api.disconnect_container_from_network(probe.id, "v6py")
        c.api.connect_container_to_network(probe.id, "v6py", ipv6_address=f"{sub7}::f00d")
        ep = c.api.inspect_container(probe.id)["NetworkSettings"]["Networks"]["v6py"]
        assert ep["IPAMConfig"]["IPv6Address"] == f"{sub7}::f00d" and ep["GlobalIPv6Address"] == f"{sub7}::f00d"
        assert f"{sub7}::f00d/64" in probe.exec_run(["ip", "-6", "-o", "addr", "show"]).output.decode()
        # the IPv6 default route moves to another network when its own is disconnected (as IPv4's)
        c.api.connect_container_to_network(probe.id, "v6net")
        c.api.disconnect_container_from_network(probe.id, "v6py")
        routes = probe.exec_run(["ip", "-6", "route"]).output.decode()
        assert f"default via {gw6}" in routes, routes
        probe.remove(force=True)
        for bad, msg in (({"Name": "x6", "EnableIPv6": True}, "IPv6 subnet"),
                         ({"Name": "x6", "IPAM": {"Config": [{"Subnet": sub6}]}}, "overlaps")):
            r = c.api._post_json(c.api._url("/networks/create"), data=bad)
            assert r.status_code in (400, 403) and msg in r.json()["message"], r.text
        n7.remove()
        c.networks.get("v6net").remove()
    finally:
        c.close()
