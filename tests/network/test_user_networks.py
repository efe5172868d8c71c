"""Issue 10, user-defined networks: create/ls/inspect/rm/prune with docker-py and the docker CLI,
containers that find each other by name and alias through the embedded DNS (127.0.0.11),
isolation between networks (with a positive control), connect and disconnect on a running
container, --ip/--mac-address/--network-alias, forwarding to an upstream resolver the test runs
on loopback, and nothing of ours left after rm, network rm, a kill -9 and restart."""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import time

import docker
import pytest

from ..helpers import BIN, DOCKER, free_port
from .netutil import get, links, netns, rules, wait_port

pytestmark = pytest.mark.root

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"]


_OCTETS = random.sample(range(1, 250), 249)   # never the same subnet twice in a session (two in one test overlapped)


def _subnet() -> str:
    return f"10.214.{_OCTETS.pop()}.0/24"


def _sh(c: docker.DockerClient, script: str, **kw) -> tuple[int, str]:
    """Run a busybox shell script in a new container; its exit code and output."""
    ctr = c.containers.run("busybox", ["sh", "-c", script], detach=True, **kw)
    code = ctr.wait(timeout=60)["StatusCode"]
    out = ctr.logs().decode()
    ctr.remove(force=True)
    return code, out


def _fetch(target: str) -> str:
    """A script that prints what httpd at `target` answers (nothing if it cannot connect in 2 s)."""
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} 80 | tail -1"


def test_create_inspect_list_remove_and_prune(bridged):
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    sub = _subnet()
    gw = sub.replace(".0/24", ".254")
    n = c.networks.create("front", driver="bridge", labels={"tier": "web"},
                          ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
                              subnet=sub, gateway=gw, iprange=sub.replace(".0/24", ".128/25"),
                              aux_addresses={"router": sub.replace(".0/24", ".200")})]),
                          options={"com.docker.network.driver.mtu": "1400"})
    a = c.api.inspect_network(n.id)
    assert a["Name"] == "front" and a["Driver"] == "bridge" and a["Scope"] == "local" and a["Labels"] == {"tier": "web"}
    assert a["IPAM"]["Config"][0]["Subnet"] == sub and a["IPAM"]["Config"][0]["Gateway"] == gw
    br = f"br-{n.id[:12]}"
    shown = subprocess.run(["ip", "-o", "addr", "show", br], capture_output=True, text=True).stdout
    assert f"{gw}/24" in shown and "mtu 1400" in subprocess.run(["ip", "link", "show", br], capture_output=True,
                                                                 text=True).stdout
    assert f"DY-FWD-{br}" in rules() and "DY-ISO1" in rules()
    # an address from the IP range, the MTU inside, never the auxiliary address
    code, out = _sh(c, "ip -4 -o addr show eth0; cat /sys/class/net/eth0/mtu", network="front")
    assert code == 0 and sub.replace(".0/24", ".128/24") in out and "1400" in out, out
    auto = c.networks.create("auto")
    asub = auto.attrs["IPAM"]["Config"][0]["Subnet"]
    assert asub.startswith(("172.", "192.168.")), asub
    for bad, status, msg in (({"Name": "front"}, 409, "already exists"),
                             ({"Name": "x", "IPAM": {"Config": [{"Subnet": sub}]}}, 403, "overlaps"),
                             ({"Name": "x", "EnableIPv6": True}, 400, "EnableIPv6"),
                             ({"Name": "x", "Options": {"com.docker.network.bridge.host_binding_ipv4": "1.2.3.4"}},
                              400, "host_binding_ipv4"),
                             ({"Name": "x", "Driver": "overlay"}, 400, "overlay")):
        r = c.api._post_json(c.api._url("/networks/create"), data=bad)
        assert r.status_code == status and msg in r.json()["message"], (bad, r.status_code, r.text)
    assert [x.name for x in c.networks.list(filters={"type": "custom"})] == ["auto", "front"]
    assert [x.name for x in c.networks.list(filters={"label": "tier=web"})] == ["front"]
    assert {x.name for x in c.networks.list(filters={"dangling": True})} == {"auto", "front"}
    keep = c.containers.create("busybox", ["true"], network="front")
    assert c.api.prune_networks()["NetworksDeleted"] == ["auto"]   # front has a container
    with pytest.raises(docker.errors.NotFound):
        c.networks.get("auto")
    keep.remove()
    if DOCKER:
        env = d.env()
        out = subprocess.run([DOCKER, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}} {{.Driver}}"],
                             env=env, capture_output=True, text=True)
        assert out.stdout == "front bridge\n", out.stdout + out.stderr
        out = subprocess.run([DOCKER, "network", "create", "--internal", "--subnet", _subnet(), "back"], env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        out = subprocess.run([DOCKER, "network", "inspect", "-f", "{{.Internal}}", "back"], env=env,
                             capture_output=True, text=True)
        assert out.stdout == "true\n", out.stdout + out.stderr
        assert subprocess.run([DOCKER, "network", "rm", "back"], env=env, capture_output=True).returncode == 0
    dy = subprocess.run([str(BIN / "dockyard"), "network", "rm", "front"], env=d.env(), capture_output=True, text=True)
    assert dy.returncode == 0 and dy.stdout == "front\n", dy.stdout + dy.stderr
    assert links(br) == [] and br not in rules()
    c.close()


def test_names_resolve_and_networks_are_isolated(bridged):
    """web (alias www) on A; a client on A reaches it by name, alias and short ID; a client on B
    neither resolves nor reaches it — until it is connected to A (the positive control), and
    again not after it is disconnected."""
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    since = int(time.time())
    a = c.networks.create("neta", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_subnet())]))
    b = c.networks.create("netb", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_subnet())]))
    web = c.api.create_container("busybox", HTTPD, name="web", hostname="web",
                                 networking_config=c.api.create_networking_config({"neta": c.api.create_endpoint_config(
                                     aliases=["www"])}), host_config=c.api.create_host_config(network_mode="neta"))
    c.api.start(web)
    ip = c.api.inspect_container(web)["NetworkSettings"]["Networks"]["neta"]["IPAddress"]
    assert ip
    code, out = _sh(c, f"cat /etc/resolv.conf; nslookup web; {_fetch('web')}; {_fetch('www')}; "
                       f"{_fetch(web['Id'][:12])}; nslookup nosuch.name || echo no-such-name", network="neta")
    assert "nameserver 127.0.0.11" in out and f"Address: {ip}" in out, out
    assert out.count("hello-web") == 3 and "no-such-name" in out, out
    code, out = _sh(c, f"nslookup web || echo unresolved; {_fetch(ip)}; echo done", network="netb")
    assert "unresolved" in out and "hello-web" not in out and "done" in out, out
    probe = c.containers.run("busybox", ["sleep", "300"], detach=True, network="netb")
    assert "hello-web" not in probe.exec_run(["sh", "-c", _fetch(ip)]).output.decode()
    b_ip = c.api.inspect_container(probe.id)["NetworkSettings"]["Networks"]["netb"]["IPAddress"]
    a.connect(probe, aliases=["prober"])   # live: eth1 on neta
    out = probe.exec_run(["sh", "-c", f"ip -4 -o addr; {_fetch(ip)}; {_fetch('web')}"]).output.decode()
    assert out.count("hello-web") == 2 and "eth1" in out, out
    nets = c.api.inspect_container(probe.id)["NetworkSettings"]["Networks"]
    assert set(nets) == {"neta", "netb"} and nets["neta"]["Aliases"] == ["prober", probe.id[:12]], nets
    code, out = _sh(c, "nslookup prober", network="neta")   # its alias on neta resolves there
    assert nets["neta"]["IPAddress"] in out, out
    assert probe.id in c.api.inspect_network(a.id)["Containers"]
    a.disconnect(probe)
    out = probe.exec_run(["sh", "-c", f"ip -4 -o addr; {_fetch(ip)}; echo done"]).output.decode()
    assert "hello-web" not in out and "eth1" not in out and b_ip in out and "done" in out, out
    probe.remove(force=True)
    evs = [(e["Action"], e["Actor"]["Attributes"].get("container", "")) for e in c.events(
        since=since, until=int(time.time()) + 1, filters={"type": "network", "network": "neta"}, decode=True)]
    assert evs == [("create", ""), ("connect", probe.id), ("disconnect", probe.id)], evs
    with pytest.raises(docker.errors.APIError) as e:
        a.remove()
    assert e.value.status_code == 403 and "active endpoints" in str(e.value.explanation)
    c.api.remove_container(web, force=True)
    a.remove()
    b.remove()
    assert not netns(d)
    c.close()


def test_ip_mac_and_aliases_as_asked(bridged):
    """--ip, --mac-address and --network-alias through docker-py and the docker CLI, seen inside
    the container; an IP outside the subnet or on the default bridge is dockerd's error."""
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    sub = _subnet()
    want = sub.replace(".0/24", ".77")
    c.networks.create("fixed", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=sub)]))
    ctr = c.api.create_container("busybox", ["sh", "-c", "ip -o link show eth0; ip -4 -o addr show eth0"],
                                 mac_address="02:aa:bb:cc:dd:ee",
                                 networking_config=c.api.create_networking_config({"fixed": c.api.create_endpoint_config(
                                     ipv4_address=want, aliases=["a1"])}),
                                 host_config=c.api.create_host_config(network_mode="fixed"))
    c.api.start(ctr)
    c.api.wait(ctr)
    out = c.api.logs(ctr).decode()
    assert "02:aa:bb:cc:dd:ee" in out and f"{want}/24" in out, out
    nets = c.api.inspect_container(ctr)["NetworkSettings"]["Networks"]
    assert nets["fixed"]["IPAMConfig"] == {"IPv4Address": want} and nets["fixed"]["Aliases"] == ["a1", ctr["Id"][:12]]
    c.api.remove_container(ctr)
    for mode, eps, msg in (("fixed", {"fixed": {"IPAMConfig": {"IPv4Address": "192.0.2.1"}}}, "no configured subnet"),
                           ("default", {"bridge": {"IPAMConfig": {"IPv4Address": "10.213.0.9"}}},
                            "user defined networks only"),
                           ("default", {"bridge": {"Aliases": ["x"]}}, "network-scoped alias")):
        with pytest.raises(docker.errors.APIError) as e:
            c.api.create_container("busybox", ["true"], networking_config={"EndpointsConfig": eps},
                                   host_config=c.api.create_host_config(network_mode=mode))
        assert e.value.status_code == 400 and msg in str(e.value.explanation), str(e.value)
    if DOCKER:
        env = d.env()
        out = subprocess.run([DOCKER, "run", "--rm", "--network", "fixed", "--ip", sub.replace(".0/24", ".88"),
                              "--mac-address", "02:11:22:33:44:55", "--network-alias", "cli", "busybox", "sh", "-c",
                              "ip -o link show eth0; ip -4 -o addr show eth0; nslookup cli"],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0 and "02:11:22:33:44:55" in out.stdout, out.stdout + out.stderr
        assert out.stdout.count(sub.replace(".0/24", ".88")) == 2, out.stdout
    dy = [str(BIN / "dockyard")]
    env = d.env()
    sub2 = _subnet()
    out = subprocess.run([*dy, "network", "create", "--subnet", sub2, "--gateway", sub2.replace(".0/24", ".1"),
                          "--label", "k=v", "-o", "com.docker.network.bridge.enable_icc=true", "dyn"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0 and len(out.stdout.strip()) == 64, out.stdout + out.stderr
    out = subprocess.run([*dy, "run", "--rm", "--network", "dyn", "--ip", sub2.replace(".0/24", ".99"),
                          "--mac-address", "02:de:ad:be:ef:01", "--network-alias", "dyalias", "busybox", "sh", "-c",
                          "ip -o link show eth0; nslookup dyalias"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "02:de:ad:be:ef:01" in out.stdout, out.stdout + out.stderr
    assert f"Address: {sub2.replace('.0/24', '.99')}" in out.stdout, out.stdout
    out = subprocess.run([*dy, "run", "-d", "--name", "late", "busybox", "sleep", "300"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*dy, "network", "connect", "--alias", "later", "--ip", sub2.replace(".0/24", ".50"), "dyn",
                          "late"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    code, got = _sh(c, "nslookup later", network="dyn")
    assert f"Address: {sub2.replace('.0/24', '.50')}" in got, got
    out = subprocess.run([*dy, "network", "disconnect", "dyn", "late"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*dy, "network", "disconnect", "dyn", "late"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "is not connected to network dyn" in out.stderr, out.stderr
    c.containers.get("late").remove(force=True)
    for name in ("fixed", "dyn"):
        c.networks.get(name).remove()
    c.close()


class _Upstream:
    """A DNS server on 127.0.0.153:53 that answers every A query with 10.99.0.7 (the upstream the
    embedded DNS forwards to; loopback only, as this machine's rules ask)."""

    def __init__(self) -> None:
        from dnslib import RR, A, DNSRecord
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.153", 53))
        self.seen: list[str] = []

        def serve() -> None:
            while True:
                try:
                    data, addr = self.sock.recvfrom(4096)
                except OSError:
                    return
                q = DNSRecord.parse(data)
                self.seen.append(str(q.q.qname))
                r = q.reply()
                if q.q.qtype == 1:
                    r.add_answer(RR(q.q.qname, 1, rdata=A("10.99.0.7"), ttl=60))
                self.sock.sendto(r.pack(), addr)
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.sock.close()


def test_other_names_are_forwarded_upstream(bridged):
    d, _, _ = bridged
    up = _Upstream()
    try:
        c = docker.DockerClient(base_url=d.host, version="1.41")
        c.networks.create("fwd", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_subnet())]))
        code, out = _sh(c, "nslookup example.test", network="fwd", dns=["127.0.0.153"])
        assert "10.99.0.7" in out, out
        assert "example.test." in up.seen
        c.networks.get("fwd").remove()
        c.close()
    finally:
        up.close()


def test_kill9_and_restart_keep_names_then_nothing_is_left(bridged):
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    n = c.networks.create("keep", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_subnet())]))
    br = f"br-{n.id[:12]}"
    port = free_port()
    web = c.containers.run("busybox", HTTPD, detach=True, name="kept", hostname="kept", network="keep",
                           ports={"80/tcp": ("127.0.0.1", port)})
    wait_port(port)   # published from a user-defined network too
    c.close()
    d.kill9()
    d.start()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    code, out = _sh(c, _fetch("kept"), network="keep")   # the embedded DNS serves it again
    assert "hello-kept" in out, out
    assert get(port) == "hello-kept\n"
    web.reload()
    web.remove(force=True)
    n.remove()
    assert links(br) == [] and br not in rules() and not netns(d)
    c.close()


def test_network_stats(bridged):
    """Per-interface counters of the container's own namespace in `stats`, in `docker stats`
    NET I/O and with `stream=0`; none for a container without an interface."""
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    n = c.networks.create("statsnet", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_subnet())]))
    srv = c.containers.run("busybox", ["sh", "-c", "mkdir /w; head -c 3000000 /dev/zero > /w/big; httpd -f -p 80 -h /w"],
                           detach=True, network="statsnet", name="sink")
    lone = c.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
    try:
        code, out = _sh(c, "for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | "
                           "nc -w 3 sink 80 | wc -c | grep -q 3000 && echo fetched && break; sleep 0.3; done",
                        network="statsnet")
        assert code == 0 and "fetched" in out, out
        s = c.api.stats(srv.id, stream=False)
        eth0 = s["networks"]["eth0"]
        assert set(eth0) == {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets",
                             "tx_errors", "tx_dropped"}
        assert eth0["tx_bytes"] >= 3_000_000 and eth0["tx_packets"] > 50 and eth0["rx_packets"] > 0, eth0
        assert "lo" not in s["networks"]
        one = c.api.stats(srv.id, stream=False, one_shot=True)
        assert one["networks"]["eth0"]["tx_bytes"] >= 3_000_000
        assert "networks" not in c.api.stats(lone.id, stream=False, one_shot=True)
        if DOCKER:
            line = subprocess.run([DOCKER, "-H", d.host, "stats", "--no-stream", "--format", "{{.NetIO}}", "sink"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            tx = line.split(" / ")[1]
            assert tx.endswith("MB") and float(tx[:-2]) >= 3.0, line
    finally:
        srv.remove(force=True)
        lone.remove(force=True)
        n.remove()
        c.close()


def test_what_compose_projects_need(bridged):
    """dockerd's network-name rule, IPAM options recorded (null when none), the short ID among a
    container's aliases on a user network once it starts, its MAC address back after a disconnect
    and reconnect, a missing network failing the start (not the create), no Networks entry for a
    container: mode and no Mounts entry for HostConfig.Tmpfs."""
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    made = []
    try:
        for name in ("test 01", "_underscoretest_bar"):
            made.append(c.networks.create(name, ipam=docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=_subnet())])))
            assert c.api.inspect_network(name)["Name"] == name
            assert c.api.inspect_network(name)["IPAM"]["Options"] is None
        # CheckDuplicate false (API 1.41) lets a second network take a name; then only IDs find them
        dup = c.api.create_network("test 01", check_duplicate=False)
        with pytest.raises(docker.errors.APIError) as e:
            c.api.inspect_network("test 01")
        assert "ambiguous" in str(e.value.explanation)
        c.api.remove_network(dup["Id"])
        with pytest.raises(docker.errors.APIError):
            c.api.create_network("test 01", check_duplicate=True)
        # a created container's MacAddress on a network it was connected to, before it runs
        idle = c.api.create_container("busybox", ["true"])
        c.api.connect_container_to_network(idle, "test 01", mac_address="02:42:ac:11:00:02")
        assert c.api.inspect_container(idle)["NetworkSettings"]["Networks"]["test 01"]["MacAddress"] == \
            "02:42:ac:11:00:02"
        c.api.remove_container(idle)
        opts = c.networks.create("withopts", ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=_subnet())], options={"foo": "bar"}))
        made.append(opts)
        assert c.api.inspect_network(opts.id)["IPAM"]["Options"] == {"foo": "bar"}
        mac = "02:42:ac:11:00:99"
        ctr = c.api.create_container("busybox", ["sleep", "300"], mac_address=mac,
                                     host_config=c.api.create_host_config(network_mode="_underscoretest_bar"),
                                     networking_config=c.api.create_networking_config(
                                         {"_underscoretest_bar": c.api.create_endpoint_config(aliases=["web"])}))
        c.api.start(ctr)
        nets = c.api.inspect_container(ctr)["NetworkSettings"]["Networks"]
        assert nets["_underscoretest_bar"]["Aliases"] == ["web", ctr["Id"][:12]]
        assert nets["_underscoretest_bar"]["MacAddress"] == mac
        c.api.disconnect_container_from_network(ctr, "_underscoretest_bar")
        c.api.connect_container_to_network(ctr, "_underscoretest_bar", aliases=["web"])
        nets = c.api.inspect_container(ctr)["NetworkSettings"]["Networks"]
        assert nets["_underscoretest_bar"]["MacAddress"] == mac
        assert nets["_underscoretest_bar"]["Aliases"] == ["web", ctr["Id"][:12]]
        joined = c.api.create_container("busybox", ["true"], host_config=c.api.create_host_config(
            network_mode=f"container:{ctr['Id']}", tmpfs={"/scratch": ""}))
        info = c.api.inspect_container(joined)
        assert info["NetworkSettings"]["Networks"] == {} and info["Mounts"] == []
        c.api.remove_container(joined)
        c.api.remove_container(ctr, force=True)
        late = c.api.create_container("busybox", ["true"], host_config=c.api.create_host_config(network_mode="later"),
                                      networking_config=c.api.create_networking_config({"later": c.api.create_endpoint_config(
                                          aliases=["l8"], links=[("upstream", "up")], driver_opt={"k": "v"})}))
        ep = c.api.inspect_container(late)["NetworkSettings"]["Networks"]["later"]   # kept while the network is missing
        assert ep["Aliases"] == ["l8"] and ep["Links"] == ["upstream:up"] and ep["DriverOpts"] == {"k": "v"}
        with pytest.raises(docker.errors.NotFound) as e:
            c.api.start(late)
        assert "network later not found" in str(e.value.explanation)
        made.append(c.networks.create("later", ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=_subnet())])))
        c.api.start(late)
        assert c.api.wait(late)["StatusCode"] == 0
        ep = c.api.inspect_container(late)["NetworkSettings"]["Networks"]["later"]
        assert ep["NetworkID"] == made[-1].id and ep["Links"] == ["upstream:up"] and ep["DriverOpts"] == {"k": "v"}
        c.api.remove_container(late)
    finally:
        for n in made:
            n.remove()
        c.close()


def test_endpoint_links_driver_opts_link_local_and_link_removal(bridged):
    """Links of an endpoint on a user network (found lazily: the target may come later), at create
    and at connect; DriverOpts recorded; link-local addresses on the interface; a legacy link
    removed with DELETE /containers/PARENT/ALIAS?link=1 (and `docker rm --link`)."""
    d, _, _ = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    n = c.networks.create("linknet", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=_subnet())]))
    made = []
    try:
        a = c.api.create_container("busybox", ["sleep", "300"], host_config=c.api.create_host_config(network_mode="linknet"),
                                   networking_config=c.api.create_networking_config({"linknet": c.api.create_endpoint_config(
                                       links=[("upstream", "bar")], driver_opt={"com.example.k": "v"})}))
        made.append(a["Id"])
        c.api.start(a)
        ep = c.api.inspect_container(a)["NetworkSettings"]["Networks"]["linknet"]
        assert ep["Links"] == ["upstream:bar"] and ep["DriverOpts"] == {"com.example.k": "v"}
        up = c.containers.run("busybox", ["sleep", "300"], detach=True, name="upstream", network="linknet")
        made.append(up.id)
        up_ip = c.api.inspect_container(up.id)["NetworkSettings"]["Networks"]["linknet"]["IPAddress"]
        ex = c.api.exec_create(a, ["nslookup", "bar"])
        out = c.api.exec_start(ex).decode()
        assert f"Address: {up_ip}" in out, out
        b = c.containers.run("busybox", ["sleep", "300"], detach=True, network="linknet")
        made.append(b.id)
        c.api.disconnect_container_from_network(b.id, "linknet")
        c.api.connect_container_to_network(b.id, "linknet", links=[("upstream", "baz")])
        assert c.api.inspect_container(b.id)["NetworkSettings"]["Networks"]["linknet"]["Links"] == ["upstream:baz"]
        out = b.exec_run(["nslookup", "baz"]).output.decode()
        assert f"Address: {up_ip}" in out, out
        assert "can't find bar" in b.exec_run(["nslookup", "bar"]).output.decode()   # a's link, not b's
        ll = c.api.create_container("busybox", ["ip", "-4", "-o", "addr", "show", "eth0"],
                                    networking_config=c.api.create_networking_config(
                                        {"bridge": c.api.create_endpoint_config(link_local_ips=["169.254.8.8"])}),
                                    host_config=c.api.create_host_config(network_mode="bridge"))
        made.append(ll["Id"])
        c.api.start(ll)
        assert c.api.wait(ll)["StatusCode"] == 0
        assert "169.254.8.8/16" in c.api.logs(ll).decode()
        assert c.api.inspect_container(ll)["NetworkSettings"]["Networks"]["bridge"]["IPAMConfig"]["LinkLocalIPs"] == \
            ["169.254.8.8"]
        # legacy links: gone with link=1, both containers stay
        first = c.containers.run("busybox", ["sleep", "300"], detach=True, name="linked1")
        second = c.containers.run("busybox", ["sleep", "300"], detach=True, name="linked2", links={"linked1": "mylink"})
        made += [first.id, second.id]
        c.api.remove_container("linked2/mylink", link=True)
        assert not c.api.inspect_container(second.id)["HostConfig"]["Links"]
        assert {x["Id"] for x in c.api.containers(all=True)} >= {first.id, second.id}
        with pytest.raises(docker.errors.NotFound):
            c.api.remove_container("linked2/mylink", link=True)
        if DOCKER:
            third = c.containers.run("busybox", ["sleep", "300"], detach=True, name="linked3", links={"linked1": "other"})
            made.append(third.id)
            p = subprocess.run([DOCKER, "rm", "--link", "linked3/other"], env=d.env(), capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
            assert not c.api.inspect_container(third.id)["HostConfig"]["Links"]
    finally:
        for x in made:
            c.api.remove_container(x, force=True)
        n.remove()
        c.close()
