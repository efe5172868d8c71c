"""dockyard compose's loader: files, project names, .env, interpolation, merging, extends,
profiles, validation errors that name the file and the path, dependency cycles."""

from __future__ import annotations

import pytest

from dockyard.cli.compose.loader import ComposeError, load, normalize_name
from dockyard.cli.compose.project import Compose


def _write(d, name, text):
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_interpolation_env_files_and_project_name(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    monkeypatch.setenv("FROM_SHELL", "shell")
    d = tmp_path / "My.App_1"
    _write(d, ".env", "# comment\nTAG=1.2\nexport QUOTED=\"a b\"\nFROM_SHELL=file\nEMPTY=\n")
    _write(d, "compose.yaml", "services:\n  web:\n    image: web:${TAG}\n    environment:\n"
                              "      A: ${QUOTED}\n      B: ${UNSET:-dflt}\n      C: ${EMPTY-kept}\n"
                              "      D: ${EMPTY:-replaced}\n      E: ${TAG:+set}\n      F: $$literal\n"
                              "      G: ${FROM_SHELL}\n")
    p = load([], workdir=str(d))
    assert p.name == "myapp_1"
    env = p.services["web"]["environment"]
    assert p.services["web"]["image"] == "web:1.2"
    assert env == {"A": "a b", "B": "dflt", "C": "", "D": "replaced", "E": "set", "F": "$literal", "G": "shell"}
    other = _write(tmp_path, "other.env", "TAG=9\n")
    assert load([], workdir=str(d), env_files=[str(other)]).services["web"]["image"] == "web:9"
    assert load([], project="given", workdir=str(d)).name == "given"
    with pytest.raises(ComposeError, match="invalid project name"):
        load([], project="Bad Name", workdir=str(d))
    assert normalize_name("-_Abc.D e") == "abcde"


def test_required_variable_and_validation_errors_name_the_place(tmp_path):
    f = _write(tmp_path, "compose.yaml", "services:\n  web:\n    image: ${NEED:?set NEED please}\n")
    with pytest.raises(ComposeError, match=r"compose.yaml.*required variable NEED is missing a value: set NEED please"):
        load([str(f)])
    f = _write(tmp_path, "compose.yaml", "services:\n  web:\n    image: x\n    imagee: typo\n")
    with pytest.raises(ComposeError) as e:
        load([str(f)])
    assert str(f) in str(e.value) and "services.web" in str(e.value) and "imagee" in str(e.value)


def test_merge_extends_and_profiles(tmp_path):
    a = _write(tmp_path, "compose.yaml", """
services:
  base:
    image: busybox
    environment: {A: "1", B: "1"}
    volumes: ["data:/data", "./x:/x"]
    command: ["one"]
  child:
    extends: base
    environment: {B: "2"}
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
""")
    b = _write(tmp_path, "compose.override.yaml", """
services:
  base:
    environment: {C: "3"}
    volumes: ["other:/data"]
    command: ["two"]
    ports: ["8080:80"]
""")
    p = load([str(a), str(b)])
    base = p.services["base"]
    assert base["environment"] == {"A": "1", "B": "1", "C": "3"}
    assert base["volumes"] == ["other:/data", "./x:/x"] and base["command"] == ["two"]
    assert p.services["child"]["environment"] == {"A": "1", "B": "2"} and p.services["child"]["image"] == "busybox"
    assert "debug" not in p.services
    assert "debug" in load([str(a)], profiles=["debug"]).services


def test_dependency_order_and_cycles(tmp_path):
    f = _write(tmp_path, "compose.yaml", """
services:
  a: {image: x, depends_on: [b]}
  b: {image: x, depends_on: {c: {condition: service_healthy}}}
  c: {image: x}
""")
    c = Compose(None, load([str(f)]))  # type: ignore[arg-type]
    assert c.order() == ["c", "b", "a"]
    assert c.order(["a"], deps=False) == ["a"]
    f.write_text("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n")
    with pytest.raises(ComposeError, match="dependency cycle detected: a -> b -> a"):
        Compose(None, load([str(f)])).order()  # type: ignore[arg-type]


def test_create_body_translation(tmp_path):
    f = _write(tmp_path, "compose.yaml", """
services:
  web:
    image: web:1
    command: sh -c "echo hi"
    ports: ["127.0.0.1:8080:80", "9000-9001:9000-9001/udp", "443", "7000-7005:70"]
    volumes: ["data:/data:ro", "./site:/site", {type: tmpfs, target: /t, tmpfs: {size: 1048576}}]
    restart: on-failure:3
    deploy: {resources: {limits: {memory: 64M, cpus: "0.5"}}}
    healthcheck: {test: "true", interval: 2s, retries: 2}
    networks: {front: {aliases: [www]}, back: {}}
volumes: {data: {}}
networks: {front: {}, back: {}}
""")
    c = Compose(None, load([str(f)], project="p"))  # type: ignore[arg-type]
    body, extra = c.create_body("web", 1)
    hc = body["HostConfig"]
    assert body["Cmd"] == ["sh", "-c", "echo hi"] and body["Image"] == "web:1"
    assert hc["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
    assert hc["PortBindings"]["9001/udp"] == [{"HostIp": "", "HostPort": "9001"}]
    assert hc["PortBindings"]["443/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert hc["PortBindings"]["70/tcp"] == [{"HostIp": "", "HostPort": "7000-7005"}]
    assert hc["Mounts"][0] == {"Type": "volume", "Target": "/data", "ReadOnly": True, "Source": "p_data"}
    assert hc["Mounts"][1]["Source"] == str(tmp_path / "site") and hc["Mounts"][2]["TmpfsOptions"] == {"SizeBytes": 1 << 20}
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["Memory"] == 64 << 20 and hc["NanoCpus"] == 500_000_000
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000, "Retries": 2}
    eps = body["NetworkingConfig"]["EndpointsConfig"]
    assert hc["NetworkMode"] in ("p_front", "p_back") and set(eps) | set(extra) == {"p_front", "p_back"}
    assert {**eps, **extra}["p_front"]["Aliases"] == ["web", "www"]
    assert body["Labels"]["com.docker.compose.service"] == "web" and c.container_name("web", 1) == "p-web-1"
    assert Compose(None, c.p, compatibility=True).container_name("web", 2) == "p_web_2"  # type: ignore[arg-type]


@pytest.mark.parametrize("snippet,path", [
    ("    deploy: {placement: {constraints: [node.role==manager]}}\n", "services.web.deploy.placement"),
    ("    deploy: {resources: {reservations: {cpus: '0.5'}}}\n", "services.web.deploy.resources.reservations.cpus"),
    ("    volumes: [{type: bind, source: ., target: /x, bind: {propagation: rshared}}]\n",
     "services.web.volumes[0].bind.propagation"),
    ("    networks: {default: {ipv6_address: 'fd00::5'}}\n", "services.web.networks.default.ipv6_address"),
    ("    build: {context: ., cache_from: [x]}\n", "services.web.build.cache_from"),
    ("    networks: {default: {link_local_ips: [169.254.8.8]}}\n", "services.web.networks.default.link_local_ips"),
    ("networks: {default: {enable_ipv6: true}}\n", "networks.default.enable_ipv6"),
    ("secrets: {s: {external: true}}\n", "secrets.s.external"),
])
def test_keys_not_applied_are_refused_at_any_depth(tmp_path, snippet, path):
    f = _write(tmp_path, "compose.yaml", "services:\n  db: {image: x}\n  web:\n    image: x\n" + snippet)
    with pytest.raises(ComposeError) as e:
        load([str(f)])
    assert f"{path}: not supported by dockyard compose" in str(e.value), str(e.value)


def test_applied_extras(tmp_path):
    """Extension fields pass; pull_policy, annotations, deploy.restart_policy, start_interval,
    secrets and configs are applied."""
    _write(tmp_path, "token.txt", "s3cret\n")
    _write(tmp_path, "app.conf", "x=1\n")
    f = _write(tmp_path, "compose.yaml", """
x-common: &common {image: web:1}
services:
  web:
    <<: *common
    x-note: anything
    annotations: {org.example.k: v}
    deploy: {restart_policy: {condition: on-failure, max_attempts: 4}}
    healthcheck: {test: "true", start_interval: 1s}
    secrets: [token, {source: token, target: other}]
    configs: [{source: conf, target: /etc/app.conf}]
secrets: {token: {file: ./token.txt}}
configs: {conf: {file: ./app.conf}}
""")
    c = Compose(None, load([str(f)], project="p"))  # type: ignore[arg-type]
    body, _ = c.create_body("web", 1)
    hc = body["HostConfig"]
    assert hc["Annotations"] == {"org.example.k": "v"}
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 4}
    assert body["Healthcheck"]["StartInterval"] == 1_000_000_000
    files = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in hc["Mounts"]}
    assert files == {"/run/secrets/token": (str(tmp_path / "token.txt"), True),
                     "/run/secrets/other": (str(tmp_path / "token.txt"), True),
                     "/etc/app.conf": (str(tmp_path / "app.conf"), True)}
    f = _write(tmp_path, "compose.yaml", "services:\n  web: {image: x, secrets: [nope]}\n")
    with pytest.raises(ComposeError, match="undefined secret nope"):
        Compose(None, load([str(f)], project="p")).create_body("web", 1)  # type: ignore[arg-type]


def test_joined_namespaces_are_dependencies(tmp_path):
    f = _write(tmp_path, "compose.yaml", """
services:
  sidecar: {image: x, network_mode: "service:app", pid: "service:db"}
  app: {image: x}
  db: {image: x}
""")
    c = Compose(None, load([str(f)], project="p"))  # type: ignore[arg-type]
    order = c.order()
    assert order.index("app") < order.index("sidecar") and order.index("db") < order.index("sidecar")


def test_run_volume_flags(tmp_path):
    from dockyard.cli.compose.oneoff import _bind
    f = _write(tmp_path, "compose.yaml", "services:\n  web: {image: x}\nvolumes:\n  data: {}\n")
    c = Compose(None, load([str(f)], project="p"))  # type: ignore[arg-type]
    assert _bind(c, "data:/d:ro") == "p_data:/d:ro"
    assert _bind(c, "./site:/s") == f"{tmp_path}/site:/s"
    assert _bind(c, "/abs:/a") == "/abs:/a" and _bind(c, "other:/o") == "other:/o" and _bind(c, "/anon") == "/anon"


def test_config_is_normalised_and_reads_back(tmp_path):
    import yaml

    from dockyard.cli.compose.normal import normalise
    f = _write(tmp_path, "compose.yaml", """
services:
  web:
    build: ./web
    command: httpd -f -p 80
    ports: ["127.0.0.1:8080:80", "9000-9001:9000-9001/udp", "443"]
    volumes: ["data:/data:ro", "./site:/site", "/anon"]
    environment: [A=1, B]
    depends_on: [db]
  db: {image: busybox, networks: [back]}
volumes: {data: {}}
networks: {back: {}}
""")
    c = Compose(None, load([str(f)], project="p"))  # type: ignore[arg-type]
    n = normalise(c.p, c.network_name, c.volume_name)
    web = n["services"]["web"]
    assert n["name"] == "p" and web["build"] == {"context": str(tmp_path / "web"), "dockerfile": "Dockerfile"}
    assert web["command"] == ["httpd", "-f", "-p", "80"] and web["environment"] == {"A": "1", "B": None}
    assert web["depends_on"] == {"db": {"condition": "service_started"}} and web["networks"] == {"default": None}
    assert web["ports"][0] == {"mode": "ingress", "target": 80, "protocol": "tcp", "published": 8080,
                               "host_ip": "127.0.0.1"}
    assert [(x["target"], x["published"], x["protocol"]) for x in web["ports"][1:3]] == [(9000, 9000, "udp"),
                                                                                         (9001, 9001, "udp")]
    assert web["volumes"][1] == {"type": "bind", "source": str(tmp_path / "site"), "target": "/site",
                                 "bind": {"create_host_path": True}}
    assert n["networks"] == {"back": {"name": "p_back"}, "default": {"name": "p_default"}}
    assert n["volumes"] == {"data": {"name": "p_data"}}
    # what config prints is a file that loads to the same project
    again = _write(tmp_path, "again.yaml", yaml.safe_dump(n, sort_keys=False))
    c2 = Compose(None, load([str(again)]))  # type: ignore[arg-type]
    assert normalise(c2.p, c2.network_name, c2.volume_name) == n
    assert c2.create_body("web", 1)[0]["HostConfig"]["PortBindings"] == c.create_body("web", 1)[0]["HostConfig"][
        "PortBindings"]
