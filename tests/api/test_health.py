"""Issue 12, healthchecks: Config.Healthcheck and the image's HEALTHCHECK probed by an exec,
State.Health, `(healthy)` in ps, health_status events, filters=health, timeouts, the CLIs'
--health-* flags, and Dockyard's health-on-failure action (label dockyard.health-on-failure)."""

from __future__ import annotations

import subprocess
import time

import docker
import pytest

from ..helpers import BIN, DOCKER, until

pytestmark = pytest.mark.root
MS = 1_000_000


def _health(client, c) -> dict:
    return client.api.inspect_container(c.id)["State"].get("Health")


def test_healthcheck_states_events_ps_and_filters(client):
    since = time.time()
    hc = {"test": ["CMD-SHELL", "test -f /tmp/ok && echo fine"], "interval": 150 * MS, "retries": 2}
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none", healthcheck=hc)
    try:
        assert _health(client, c)["Status"] == "starting"
        assert "(health: starting)" in client.api.containers(filters={"id": c.id})[0]["Status"]
        assert [x["Id"] for x in client.api.containers(filters={"health": "starting"})] == [c.id]
        bad = until(lambda: (h := _health(client, c))["Status"] == "unhealthy" and h, "unhealthy")
        assert bad["FailingStreak"] >= 2 and bad["Log"][-1]["ExitCode"] == 1
        assert c.exec_run(["touch", "/tmp/ok"]).exit_code == 0
        good = until(lambda: (h := _health(client, c))["Status"] == "healthy" and h, "healthy")
        assert good["FailingStreak"] == 0 and good["Log"][-1]["Output"] == "fine\n"
        assert good["Log"][-1]["Start"] <= good["Log"][-1]["End"]
        assert client.api.containers(filters={"id": c.id})[0]["Status"].endswith("(healthy)")
        assert [x["Id"] for x in client.api.containers(filters={"health": "healthy"})] == [c.id]
        assert client.api.containers(filters={"health": "unhealthy"}) == []
        until(lambda: len(_health(client, c)["Log"]) == 5, "five probes")
        time.sleep(0.4)
        assert len(_health(client, c)["Log"]) == 5    # only the last five are kept
        plain = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
        assert "Health" not in client.api.inspect_container(plain.id)["State"]
        assert plain.id in [x["Id"] for x in client.api.containers(filters={"health": "none"})]
        plain.remove(force=True)
        with pytest.raises(docker.errors.APIError) as e:
            client.api.containers(filters={"health": "sick"})
        assert e.value.status_code == 400
        c.stop(timeout=1)
        evs = client.api.events(since=since, until=time.time() + 1, decode=True,
                                filters={"container": c.id, "type": "container"})
        actions = [ev["Action"] for ev in evs if ev["Action"].startswith("health_status")]
        assert actions[:2] == ["health_status: unhealthy", "health_status: healthy"], actions
        # a stopped container's probes stop with it; its last health stays in inspect, as dockerd
        n = len(_health(client, c)["Log"])
        time.sleep(0.4)
        assert len(_health(client, c)["Log"]) == n
    finally:
        c.remove(force=True)


def test_timeout_start_period_and_image_healthcheck(client):
    hc = {"test": ["CMD", "sleep", "5"], "interval": 100 * MS, "timeout": 300 * MS, "retries": 1}
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none", healthcheck=hc)
    try:
        h = until(lambda: (h := _health(client, c))["Status"] == "unhealthy" and h, "unhealthy", 30)
        assert h["Log"][-1]["ExitCode"] == -1 and h["Log"][-1]["Output"] == "Health check exceeded timeout (300ms)"
        top = c.top()["Processes"]
        assert not any("sleep 5" in " ".join(p) for p in top), top   # the probe was killed
    finally:
        c.remove(force=True)
    # failures inside the start period do not count
    hc = {"test": ["CMD", "false"], "interval": 100 * MS, "retries": 1, "start_period": 60_000 * MS}
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none", healthcheck=hc)
    try:
        until(lambda: len(_health(client, c)["Log"]) >= 3, "three probes")
        h = _health(client, c)
        assert h["Status"] == "starting" and h["FailingStreak"] == 0
    finally:
        c.remove(force=True)
    # an image's HEALTHCHECK is inherited, merged with the container's, and NONE turns it off
    src = client.containers.create("busybox", ["true"])
    img = src.commit("withhealth", conf={"Healthcheck": {"Test": ["CMD-SHELL", "exit 0"], "Interval": 100 * MS}})
    src.remove()
    try:
        c = client.containers.run("withhealth", ["sleep", "300"], detach=True, network_mode="none")
        assert client.api.inspect_container(c.id)["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "exit 0"]
        until(lambda: _health(client, c)["Status"] == "healthy", "healthy from the image's check")
        c.remove(force=True)
        c = client.containers.run("withhealth", ["sleep", "300"], detach=True, network_mode="none",
                                  healthcheck={"test": [], "retries": 7})
        cfg = client.api.inspect_container(c.id)["Config"]["Healthcheck"]
        assert cfg == {"Test": ["CMD-SHELL", "exit 0"], "Interval": 100 * MS, "Retries": 7}, cfg
        c.remove(force=True)
        c = client.containers.run("withhealth", ["sleep", "300"], detach=True, network_mode="none",
                                  healthcheck={"test": ["NONE"]})
        time.sleep(0.3)
        assert "Health" not in client.api.inspect_container(c.id)["State"]
        c.remove(force=True)
    finally:
        client.images.remove(img.id, force=True)
    # dockerd takes any Test at create (and probes only CMD and CMD-SHELL): taken, with a warning
    for odd, msg in (({"Test": ["true"]}, "unknown type 'true'"), ({"Test": ["CMD"]}, "has no command")):
        r = client.api.create_container("busybox", ["sleep", "30"], healthcheck=odd,
                                        host_config=client.api.create_host_config(network_mode="none"))
        assert any(msg in w for w in r["Warnings"]), r
        assert client.api.inspect_container(r["Id"])["Config"]["Healthcheck"] == odd
        if odd["Test"] == ["true"]:
            client.api.start(r["Id"])
            time.sleep(0.3)
            assert "Health" not in client.api.inspect_container(r["Id"])["State"]
        client.api.remove_container(r["Id"], force=True)
    for bad, msg in (({"Test": ["CMD", "true"], "Interval": 5}, "Interval in Healthcheck cannot be less than 1ms"),
                     ({"Test": ["CMD", "true"], "Retries": -1}, "Retries in Healthcheck cannot be negative")):
        with pytest.raises(docker.errors.APIError) as e:
            client.api.create_container("busybox", ["true"], healthcheck=bad)
        assert e.value.status_code == 400 and msg in str(e.value)


def test_health_on_failure_actions(client):
    hc = {"test": ["CMD", "false"], "interval": 100 * MS, "retries": 1}
    since = time.time()
    r = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none", healthcheck=hc,
                              labels={"dockyard.health-on-failure": "restart"})
    s = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none", healthcheck=hc,
                              labels={"dockyard.health-on-failure": "stop"})
    k = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none", healthcheck=hc,
                              labels={"dockyard.health-on-failure": "kill"})
    try:
        first = client.api.inspect_container(r.id)["State"]["StartedAt"]
        until(lambda: client.api.inspect_container(r.id)["State"]["StartedAt"] != first, "a restart")
        until(lambda: client.api.inspect_container(s.id)["State"]["Status"] == "exited", "stopped")
        st = until(lambda: (x := client.api.inspect_container(k.id)["State"])["Status"] == "exited" and x, "killed")
        assert st["ExitCode"] == 137
        evs = client.api.events(since=since, until=time.time() + 1, decode=True, filters={"type": "container"})
        acts = [(ev["id"], ev["Actor"]["Attributes"].get("healthOnFailure")) for ev in evs
                if ev["Action"] == "health_on_failure"]
        assert (r.id, "restart") in acts and (s.id, "stop") in acts and (k.id, "kill") in acts, acts
    finally:
        for c in (r, s, k):
            c.remove(force=True)
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], labels={"dockyard.health-on-failure": "explode"})
    assert e.value.status_code == 400 and "dockyard.health-on-failure" in str(e.value)


@pytest.mark.parametrize("cli", ["dockyard", "docker"])
def test_cli_health_flags(daemon, client, cli):
    exe = str(BIN / "dockyard") if cli == "dockyard" else DOCKER
    if not exe:
        pytest.skip("Debian's docker CLI is not installed")
    env = daemon.env()
    args = [exe, "run", "-d", "--network", "none", "--health-cmd", "echo ok", "--health-interval", "200ms",
            "--health-timeout", "2s", "--health-retries", "4", "--health-start-period", "1m"]
    if cli == "dockyard":
        args += ["--health-on-failure", "stop"]
    p = subprocess.run([*args, "busybox", "sleep", "300"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    try:
        cfg = client.api.inspect_container(cid)["Config"]
        assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 200 * MS, "Timeout": 2000 * MS,
                                      "Retries": 4, "StartPeriod": 60_000 * MS}
        if cli == "dockyard":
            assert cfg["Labels"]["dockyard.health-on-failure"] == "stop"
        until(lambda: "(healthy)" in subprocess.run([exe, "ps", "--filter", f"id={cid}"], env=env,
                                                      capture_output=True, text=True).stdout, "ps (healthy)")
        out = subprocess.run([exe, "ps", "-q", "--filter", "health=healthy"], env=env, capture_output=True, text=True)
        assert out.stdout.split() == [cid[:12]]
    finally:
        client.api.remove_container(cid, force=True)
    p = subprocess.run([exe, "run", "--no-healthcheck", "--health-cmd", "x", "busybox", "true"], env=env,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "--no-healthcheck conflicts with --health-* options" in p.stderr
