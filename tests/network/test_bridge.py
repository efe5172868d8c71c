"""Issue 10, first part: the default bridge. Each daemon here has a bridge of its own (a random
name and /24), so daemons side by side never share one. Containers get eth0 with an address
from the pool, reach each other and the gateway; published ports are DNAT rules (the kernel
forwards, no userland proxy) reachable from the host's loopback and, hairpin, from containers;
a host port already taken is dockerd's error with nothing half made; after rm, a kill -9 and
restart of the daemon, and its stop, no link, namespace or rule of ours is left."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from pathlib import Path

import docker
import pytest

from ..helpers import BIN, DOCKER, free_port
from .netutil import get, links, netns, on_bridge, remove_bridge, rules, wait_port

pytestmark = pytest.mark.root

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"]


def test_containers_on_the_default_bridge_reach_each_other(bridged):
    d, bridge, gw = bridged
    c = docker.APIClient(base_url=d.host, version="1.41")
    web = c.create_container("busybox", HTTPD, hostname="web")
    c.start(web)
    ns = c.inspect_container(web)["NetworkSettings"]
    ip = ns["IPAddress"]
    assert ip.startswith(gw.rsplit(".", 1)[0] + ".") and ip != gw and ns["Gateway"] == gw
    assert ns["IPPrefixLen"] == 24 and ns["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    assert ns["Networks"]["bridge"]["IPAddress"] == ip
    assert len(on_bridge(bridge, 0)) == 1
    probe = c.create_container("busybox", ["sh", "-c", f"sleep 0.3; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {ip} 80 "
                                                        f"| tail -1; ip -4 -o addr show eth0; ip route; tail -1 /etc/hosts; "
                                                        f"ping -c1 -W2 {gw} >/dev/null && echo gateway-ok"])
    c.start(probe)
    assert c.wait(probe)["StatusCode"] == 0
    out = c.logs(probe).decode()
    assert "hello-web" in out and f"default via {gw}" in out and "gateway-ok" in out, out
    assert out.splitlines()[-2].split("\t")[1] == c.inspect_container(probe)["Config"]["Hostname"], out
    c.remove_container(probe)
    c.remove_container(web, force=True)
    assert on_bridge(bridge) == [] and not netns(d)
    c.close()


def test_published_ports_from_loopback_and_from_containers(bridged):
    if not DOCKER:
        pytest.skip("Debian's docker CLI is not installed")
    d, bridge, gw = bridged
    env = d.env()
    p1, p2 = free_port(), free_port()

    def docker_(*args: str) -> str:
        p = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout
    docker_("run", "-d", "--name", "web", "--hostname", "web", "-p", f"127.0.0.1:{p1}:80", "-p", f"{p2}:80/tcp",
            "busybox", *HTTPD)
    wait_port(p1)
    assert get(p1) == "hello-web\n" and get(p2) == "hello-web\n"
    assert sorted(docker_("port", "web").splitlines()) == sorted([f"80/tcp -> 127.0.0.1:{p1}", f"80/tcp -> 0.0.0.0:{p2}"])
    ps = docker_("ps", "--format", "{{.Ports}}")
    assert f"127.0.0.1:{p1}->80/tcp" in ps and f"0.0.0.0:{p2}->80/tcp" in ps, ps
    # hairpin: another container through the host's address and the published port
    out = docker_("run", "--rm", "busybox", "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {gw} {p2} | tail -1")
    assert out == "hello-web\n", out
    # -P with --expose: a random host port for each exposed one
    docker_("run", "-d", "--name", "all", "--hostname", "all", "-P", "--expose", "80", "busybox", *HTTPD)
    ports = json.loads(docker_("inspect", "-f", "{{json .NetworkSettings.Ports}}", "all"))
    hp = int(ports["80/tcp"][0]["HostPort"])
    wait_port(hp)
    assert get(hp) == "hello-all\n"
    dy = subprocess.run([str(BIN / "dockyard"), "port", "all", "80"], env=env, capture_output=True, text=True)
    assert dy.stdout == f"0.0.0.0:{hp}\n", dy.stdout + dy.stderr
    docker_("rm", "-f", "web", "all")
    assert "dockyard:" not in subprocess.run(["iptables", "-w", "-t", "nat", "-S", f"DY-NAT-{bridge}"],
                                              capture_output=True, text=True).stdout


def test_a_taken_host_port_is_docker_s_error_and_leaves_nothing(bridged):
    d, bridge, _ = bridged
    c = docker.APIClient(base_url=d.host, version="1.41")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        ctr = c.create_container("busybox", HTTPD, host_config=c.create_host_config(
            port_bindings={80: ("127.0.0.1", port)}))
        with pytest.raises(docker.errors.APIError) as e:
            c.start(ctr)
        assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in str(e.value.explanation)
        assert c.inspect_container(ctr)["State"]["Status"] == "created"
        assert on_bridge(bridge) == [] and not netns(d)
        assert f"--dport {port}" not in rules()
    finally:
        taken.close()
    c.start(ctr)   # the port is free now: the same container starts
    wait_port(port)
    c.remove_container(ctr, force=True)
    c.close()


def test_kill9_and_restart_keep_a_running_container_s_ports_and_drop_the_rest(bridged):
    d, bridge, _ = bridged
    c = docker.APIClient(base_url=d.host, version="1.41")
    port = free_port()
    web = c.create_container("busybox", HTTPD, hostname="kept", host_config=c.create_host_config(
        port_bindings={80: port}))
    c.start(web)
    gone = c.create_container("busybox", ["sleep", "1000"])
    c.start(gone)
    wait_port(port)
    c.close()
    d.kill9()
    d.start()
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert get(port) == "hello-kept\n"   # the rules were made again for it
    c.remove_container(gone, force=True)
    time.sleep(0.5)
    assert len(on_bridge(bridge, 0)) == 1
    c.remove_container(web, force=True)
    assert on_bridge(bridge) == [] and not netns(d)
    assert f"--dport {port}" not in rules()
    c.close()


def test_without_a_bridge_published_ports_are_refused(fresh_daemon):
    d = fresh_daemon()   # the test helper's default: --bridge=none
    c = docker.APIClient(base_url=d.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as e:
        c.create_container("busybox", ["true"], host_config=c.create_host_config(port_bindings={80: 8080}))
    assert e.value.status_code == 400 and "--bridge=none" in str(e.value.explanation)
    c.close()


def test_flushed_rules_are_made_again_within_two_seconds(bridged):
    """Someone flushes our NAT chain and deletes our FORWARD jump (as `iptables -F` would, without
    touching anybody else's rules on this host): the published port stops answering, and within
    2 s the daemon has noticed and made everything again (dockerd does not, moby #12294)."""
    d, bridge, _ = bridged
    c = docker.APIClient(base_url=d.host, version="1.41")
    port = free_port()
    web = c.create_container("busybox", HTTPD, hostname="again", host_config=c.create_host_config(
        port_bindings={80: ("127.0.0.1", port)}))
    c.start(web)
    wait_port(port)
    subprocess.run(["iptables", "-w", "-t", "nat", "-F", f"DY-NAT-{bridge}"], check=True)
    subprocess.run(["iptables", "-w", "-D", "FORWARD", "-m", "comment", "--comment", "dockyard", "-j",
                    f"DY-FWD-{bridge}"], check=True)
    with pytest.raises(OSError):   # the positive control: the flush did break it
        get(port)
    t = time.monotonic()
    while time.monotonic() - t < 2.0:
        try:
            if get(port) == "hello-again\n":
                break
        except OSError:
            time.sleep(0.05)
    else:
        raise AssertionError("the rules were not made again within 2 s")
    assert f"-A FORWARD -m comment --comment dockyard -j DY-FWD-{bridge}" in rules()
    c.remove_container(web, force=True)
    c.close()


def test_dns_options_and_extra_hosts(bridged):
    """--dns, --dns-search, --dns-option replace the host's lines; --add-host adds /etc/hosts lines,
    host-gateway being the bridge's address; bad values are dockerd's errors."""
    if not DOCKER:
        pytest.skip("Debian's docker CLI is not installed")
    d, _, gw = bridged
    p = subprocess.run([DOCKER, "run", "--rm", "--dns", "10.0.0.53", "--dns", "10.0.0.54", "--dns-search",
                        "example.test", "--dns-option", "ndots:2", "--add-host", "db:10.1.2.3", "--add-host",
                        "gw:host-gateway", "busybox", "cat", "/etc/resolv.conf", "/etc/hosts"],
                       env=d.env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:4] == ["nameserver 10.0.0.53", "nameserver 10.0.0.54", "search example.test", "options ndots:2"]
    assert "10.1.2.3\tdb" in lines and f"{gw}\tgw" in lines, lines
    with docker.APIClient(base_url=d.host, version="1.41") as c:   # the docker CLI checks it itself
        with pytest.raises(docker.errors.APIError) as e:
            c.create_container("busybox", ["true"], host_config=c.create_host_config(dns=["not-an-ip"]))
        assert e.value.status_code == 400 and "IP address is not correctly formatted: not-an-ip" in str(e.value)
        with pytest.raises(docker.errors.APIError) as e:
            c.create_container("busybox", ["true"], host_config=c.create_host_config(extra_hosts=["nocolon"]))
        assert e.value.status_code == 400 and "bad format for add-host" in str(e.value)


def test_host_gateway_needs_the_bridge(fresh_daemon):
    d = fresh_daemon()   # --bridge=none
    c = docker.APIClient(base_url=d.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as e:
        c.create_container("busybox", ["true"], host_config=c.create_host_config(extra_hosts={"gw": "host-gateway"}))
    assert e.value.status_code == 400 and "host-gateway" in str(e.value.explanation)
    ctr = c.create_container("busybox", ["cat", "/etc/hosts"], host_config=c.create_host_config(
        extra_hosts={"db": "10.1.2.3"}))
    c.start(ctr)
    c.wait(ctr)
    assert "10.1.2.3\tdb" in c.logs(ctr).decode()
    c.remove_container(ctr)
    c.close()


def test_container_network_mode_joins_the_donor(bridged):
    """`--network container:web`: the same namespace (the donor's address, its httpd on
    localhost), the donor's /etc/hosts; refused while the donor is not running, and with -p."""
    d, _, _ = bridged
    c = docker.APIClient(base_url=d.host, version="1.41")
    web = c.create_container("busybox", HTTPD, hostname="web", name="web")
    joiner = c.create_container("busybox", ["sh", "-c", "ip -4 -o addr show eth0; printf 'GET / HTTP/1.0\\r\\n\\r\\n' "
                                            "| nc 127.0.0.1 80 | tail -1; tail -1 /etc/hosts"],
                                host_config=c.create_host_config(network_mode="container:web"))
    with pytest.raises(docker.errors.APIError) as e:
        c.start(joiner)
    assert "cannot join network of a non running container: web" in str(e.value.explanation)
    c.start(web)
    ip = c.inspect_container(web)["NetworkSettings"]["IPAddress"]
    time.sleep(0.3)
    c.start(joiner)
    assert c.wait(joiner)["StatusCode"] == 0
    out = c.logs(joiner).decode()
    assert f"inet {ip}/24" in out and "hello-web" in out and out.splitlines()[-1] == f"{ip}\tweb", out
    with pytest.raises(docker.errors.APIError) as e:
        c.create_container("busybox", ["true"], host_config=c.create_host_config(
            network_mode="container:web", port_bindings={80: 8080}))
    assert e.value.status_code == 400 and "conflicting options" in str(e.value.explanation)
    c.remove_container(joiner)
    c.remove_container(web, force=True)
    c.close()


def test_predefined_networks_with_the_docker_cli_and_docker_py(bridged):
    """`docker network ls|inspect|rm` and docker-py's networks API see bridge, host and none; the
    bridge lists its running containers; predefined networks cannot be removed (403); `docker
    system prune` (which prunes networks too) works."""
    d, bridge, gw = bridged
    c = docker.DockerClient(base_url=d.host, version="1.41")
    assert sorted(n.name for n in c.networks.list()) == ["bridge", "host", "none"]
    ctr = c.containers.run("busybox", ["sleep", "100"], detach=True)
    net = c.networks.get("bridge")
    assert net.attrs["IPAM"]["Config"] == [{"Subnet": gw.rsplit(".", 1)[0] + ".0/24", "Gateway": gw}]
    assert net.attrs["Options"]["com.docker.network.bridge.name"] == bridge
    assert list(net.attrs["Containers"]) == [ctr.id]
    if DOCKER:
        env = d.env()
        ls = subprocess.run([DOCKER, "network", "ls", "--format", "{{.Name}} {{.Driver}}"], env=env,
                            capture_output=True, text=True)
        assert ls.stdout.split("\n")[:3] == ["bridge bridge", "host host", "none null"], ls.stdout + ls.stderr
        rm = subprocess.run([DOCKER, "network", "rm", "bridge"], env=env, capture_output=True, text=True)
        assert rm.returncode != 0 and "pre-defined network and cannot be removed" in rm.stderr, rm.stderr
        ctr.remove(force=True)
        prune = subprocess.run([DOCKER, "system", "prune", "-f"], env=env, capture_output=True, text=True)
        assert prune.returncode == 0 and "Total reclaimed space" in prune.stdout, prune.stderr
    else:
        ctr.remove(force=True)
    c.close()
    env = d.env()
    dy = subprocess.run([str(BIN / "dockyard"), "network", "ls"], env=env, capture_output=True, text=True)
    assert dy.stdout.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"], dy.stdout
    assert [ln.split()[1] for ln in dy.stdout.splitlines()[1:]] == ["bridge", "host", "none"], dy.stdout
    dy = subprocess.run([str(BIN / "dockyard"), "network", "inspect", "-f", "{{.Driver}}", "bridge", "none"], env=env,
                        capture_output=True, text=True)
    assert dy.stdout == "bridge\nnull\n", dy.stdout + dy.stderr


def test_fixed_cidr_narrows_the_default_bridge_s_addresses(fresh_daemon, tmp_path):
    """dockerd's --fixed-cidr: addresses come from that range only (the first is handed out, as
    dockerd does); a range outside --bip's subnet is refused at start."""
    name = f"dyf{random.randrange(16 ** 6):06x}"
    net = random.randrange(1, 250)
    try:
        d = fresh_daemon("--bridge", name, "--bip", f"10.213.{net}.1/24", "--fixed-cidr", f"10.213.{net}.64/26")
        c = docker.APIClient(base_url=d.host, version="1.41")
        ctr = c.create_container("busybox", ["sleep", "30"])
        c.start(ctr)
        assert c.inspect_container(ctr)["NetworkSettings"]["IPAddress"] == f"10.213.{net}.64"
        assert c.inspect_network("bridge")["IPAM"]["Config"][0]["IPRange"] == f"10.213.{net}.64/26"
        c.remove_container(ctr, force=True)
        c.close()
        d.cleanup()
        bad = subprocess.run([str(BIN / "dockyardd"), "--bridge", name, "--bip", f"10.213.{net}.1/24",
                              "--fixed-cidr", "10.99.0.0/24", "--data-root", str(tmp_path / "x"), "--exec-root",
                              str(tmp_path / "y"), "-H", f"unix://{tmp_path / 's.sock'}"], capture_output=True, text=True,
                             timeout=30)
        assert bad.returncode == 1 and "not within the bridge's subnet" in bad.stderr, bad.stderr
    finally:
        left = links(name)
        remove_bridge(name)
    assert not left


def test_legacy_links_on_the_default_bridge_and_on_user_networks(bridged):
    """`--link web:w`: the target's address under its alias in /etc/hosts and dockerd's variables
    (W_PORT…, W_NAME, W_ENV_…); a stopped target is dockerd's error at start; on a user-defined
    network the alias resolves (embedded DNS) for the linking container only."""
    d, _, _ = bridged
    c = docker.APIClient(base_url=d.host, version="1.41")
    web = c.create_container("busybox", HTTPD, name="web", hostname="webhost", ports=[80], environment=["FOO=bar"])
    c.start(web)
    ip = c.inspect_container(web)["NetworkSettings"]["IPAddress"]
    cl = c.create_container("busybox", ["sh", "-c", "env; cat /etc/hosts; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc w 80"],
                            name="client", host_config=c.create_host_config(links={"web": "w"}))
    assert c.inspect_container(cl)["HostConfig"]["Links"] == ["/web:/client/w"]
    c.start(cl)
    assert c.wait(cl)["StatusCode"] == 0
    out = c.logs(cl).decode()
    for want in (f"W_PORT=tcp://{ip}:80", f"W_PORT_80_TCP=tcp://{ip}:80", f"W_PORT_80_TCP_ADDR={ip}",
                 "W_PORT_80_TCP_PORT=80", "W_PORT_80_TCP_PROTO=tcp", "W_NAME=/client/w", "W_ENV_FOO=bar",
                 f"{ip}\tw webhost web", "hello-webhost"):
        assert want in out, (want, out)
    c.remove_container(cl)
    idle = c.create_container("busybox", ["true"], name="idle")
    cl = c.create_container("busybox", ["true"], host_config=c.create_host_config(links={"idle": "i"}))
    with pytest.raises(docker.errors.APIError) as e:
        c.start(cl)
    assert e.value.status_code == 409 and "Cannot link to a non running container: /idle AS" in str(e.value)
    c.remove_container(cl)
    c.remove_container(idle)
    with pytest.raises(docker.errors.NotFound):
        c.create_container("busybox", ["true"], host_config=c.create_host_config(links={"nosuch": "x"}))
    c.create_network("u")
    db = c.create_container("busybox", ["sleep", "300"], name="db1", host_config=c.create_host_config(network_mode="u"))
    c.start(db)
    dbip = c.inspect_container(db)["NetworkSettings"]["Networks"]["u"]["IPAddress"]
    for linked, want in (({"db1": "db"}, f"Address: {dbip}"), (None, "unresolved")):
        cl = c.create_container("busybox", ["sh", "-c", "nslookup db || echo unresolved"],
                                host_config=c.create_host_config(network_mode="u", links=linked))
        c.start(cl)
        c.wait(cl)
        out = c.logs(cl).decode()
        assert want in out, out
        c.remove_container(cl)
    if DOCKER:
        out = subprocess.run([DOCKER, "run", "--rm", "--link", "web:w2", "busybox", "env"], env=d.env(),
                             capture_output=True, text=True)
        assert out.returncode == 0 and "W2_NAME=/" in out.stdout and f"W2_PORT_80_TCP_ADDR={ip}" in out.stdout, \
            out.stdout + out.stderr
    for x in (db, web):
        c.remove_container(x, force=True)
    c.remove_network("u")
    c.close()


def test_beside_a_dockerd_that_sets_forward_to_drop(bridged):
    """Debian's dockerd with its iptables rules on (its chains, and the FORWARD policy DROP it
    leaves on a host where it turned ip_forward on) runs beside: containers on our default bridge
    and on a user-defined network still reach each other, the gateway, and published ports. The
    host's rules are put back afterwards."""
    from ..helpers import DockerDaemon
    d, _, _ = bridged
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    policy = next(ln for ln in rules().splitlines() if ln.startswith("-P FORWARD"))
    peer_br = f"dyk{random.randrange(16 ** 6):06x}"
    sub = random.randrange(1, 250)
    subprocess.run(["ip", "link", "add", peer_br, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"10.215.{sub}.1/24", "dev", peer_br], check=True)
    import shutil
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="dyk", dir="/tmp"))   # containerd's socket path must be short
    peer = DockerDaemon(base, ["-b", peer_br, "--iptables=true", "--ip-forward=true"])
    try:
        if peer.start() is None:
            pytest.skip("Debian's dockerd is not installed or did not start")
        assert "-N DOCKER-ISOLATION-STAGE-1" in rules()
        # dockerd sets DROP when it turns ip_forward on itself; ours already did here: as it leaves a host
        subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], check=True)
        c = docker.APIClient(base_url=d.host, version="1.41")
        port = free_port()
        web = c.create_container("busybox", HTTPD, hostname="beside", ports=[80],
                                 host_config=c.create_host_config(port_bindings={80: port}))
        c.start(web)
        ip = c.inspect_container(web)["NetworkSettings"]["IPAddress"]
        wait_port(port)
        assert get(port) == "hello-beside\n"
        probe = c.create_container("busybox", ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80"])
        c.start(probe)
        c.wait(probe)
        assert "hello-beside" in c.logs(probe).decode()
        c.remove_container(probe)
        c.create_network("side")
        u = c.create_container("busybox", HTTPD, name="uweb", hostname="uweb",
                               host_config=c.create_host_config(network_mode="side"))
        c.start(u)
        probe = c.create_container("busybox", ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 uweb 80"],
                                   host_config=c.create_host_config(network_mode="side"))
        c.start(probe)
        c.wait(probe)
        assert "hello-uweb" in c.logs(probe).decode()
        for x in (probe, u, web):
            c.remove_container(x, force=True)
        c.remove_network("side")
        c.close()
    finally:
        peer.stop()
        subprocess.run(["iptables-restore"], input=saved, text=True, check=True)
        subprocess.run(["ip", "link", "del", peer_br], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    assert policy in rules()


def _answers_within(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                s.settimeout(1.0)
                if b"hello-" in s.recv(4096):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def test_published_ports_answer_every_time_under_load(bridged):
    """Issue 21: `run -d -p` then a fetch, 100 cycles with each CLI while both cores are busy:
    every port answers within 10 s, and all but one of the 200 within 2 s (a container's address and
    MAC come back with a new port on the bridge while the last holder's veth may not be gone yet;
    the one allowed: a CI run on this 2-core machine once saw a single 2+ s start under the load)."""
    d, _, _ = bridged
    env = d.env()
    clis = [c for c in (DOCKER, str(BIN / "dockyard")) if c]
    hogs = [subprocess.Popen(["python3", "-c", "import time\nt=time.time()+600\nwhile time.time()<t: pass"])
            for _ in range(2)]
    slow: list[str] = []
    try:
        fixed = free_port()
        for cli in clis:
            for i in range(int(os.environ.get("DOCKYARD_PORT_CYCLES") or 100)):
                form = ("127.0.0.1::80", f"{fixed}:80", "80")[i % 3]   # the three forms of -p
                p = subprocess.run([cli, "run", "-d", "-p", form, "busybox", *HTTPD], env=env,
                                   capture_output=True, text=True, timeout=60)
                assert p.returncode == 0, f"{cli} run -d -p {form}, cycle {i}: {p.stderr}"
                cid = p.stdout.strip()
                out = subprocess.run([cli, "port", cid, "80/tcp"], env=env, capture_output=True, text=True).stdout
                port = int(out.split("\n")[0].rsplit(":", 1)[1])
                t0 = time.monotonic()
                if not _answers_within(port, 2.0):
                    answered = _answers_within(port, 8.0)
                    slow.append(f"{os.path.basename(cli)} cycle {i} -p {form} port {port}: "
                                + (f"answered after {time.monotonic() - t0:.1f}s" if answered else "no answer in 10s"))
                if i % 2:   # the exit path (the endpoint goes when the process ends), then rm
                    subprocess.run([cli, "kill", cid], env=env, capture_output=True, timeout=60)
                subprocess.run([cli, "rm", "-f", cid], env=env, capture_output=True, timeout=60)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert len(slow) <= 1 and not any("no answer" in x for x in slow), slow
