"""Restart policies (`--restart`), through docker-py and the docker CLI, as dockerd applies them."""

from __future__ import annotations

import time

import docker
import pytest

from ..helpers import until

pytestmark = pytest.mark.root


def _state(client, cid: str) -> dict:
    a = client.api.inspect_container(cid)
    return {**a["State"], "RestartCount": a["RestartCount"]}


def test_on_failure_restarts_up_to_its_limit(client):
    c = client.containers.create("busybox", ["sh", "-c", "echo run; exit 3"],
                                 restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    c.start()
    st = until(lambda: (s := _state(client, c.id))["RestartCount"] == 2 and s["Status"] == "exited" and s,
                "two restarts, then exited")
    assert st["ExitCode"] == 3 and not st["Restarting"] and not st["Running"]
    time.sleep(0.5)
    assert _state(client, c.id)["RestartCount"] == 2, "no third restart"
    assert c.logs() == b"run\nrun\nrun\n"
    c.remove()


def test_on_failure_leaves_a_clean_exit_alone(client):
    c = client.containers.run("busybox", ["true"], detach=True, restart_policy={"Name": "on-failure"})
    assert c.wait()["StatusCode"] == 0
    time.sleep(0.5)
    st = _state(client, c.id)
    assert st["Status"] == "exited" and st["RestartCount"] == 0
    c.remove()


def test_always_restarts_until_stopped_by_hand_and_start_resets_the_count(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo run; sleep 0.2"], detach=True,
                              restart_policy={"Name": "always"})
    until(lambda: _state(client, c.id)["RestartCount"] >= 2, "two restarts")
    c.stop(timeout=1)
    st = _state(client, c.id)
    assert st["Status"] == "exited" and not st["Running"]
    count = st["RestartCount"]
    time.sleep(1.0)
    assert _state(client, c.id)["Status"] == "exited" and _state(client, c.id)["RestartCount"] == count
    c.start()
    assert _state(client, c.id)["RestartCount"] == 0
    c.kill()
    time.sleep(0.5)
    assert _state(client, c.id)["Status"] == "exited", "a container killed through the API is not restarted"
    c.remove(force=True)


def test_bad_policies_are_400(client):
    for policy, msg in (({"Name": "sometimes"}, "invalid restart policy 'sometimes'"),
                        ({"Name": "always", "MaximumRetryCount": 3}, "cannot be used with restart policy 'always'"),
                        ({"Name": "on-failure", "MaximumRetryCount": -1}, "cannot be negative")):
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create("busybox", ["true"], restart_policy=policy)
        assert e.value.status_code == 400 and msg in str(e.value)


def test_ps_shows_restarting_and_rm_needs_force(client, docker_cli):
    c = client.containers.run("busybox", ["sh", "-c", "exit 1"], detach=True, restart_policy={"Name": "always"})
    # back-off doubles each time: it soon spends most of its time waiting to restart
    until(lambda: _state(client, c.id)["RestartCount"] >= 5, "five restarts")
    st = until(lambda: (s := _state(client, c.id))["Restarting"] and s, "the restarting state")
    assert st["Running"] and st["Status"] == "restarting" and st["ExitCode"] == 1
    ps = docker_cli("ps", "--filter", f"id={c.id}", "--format", "{{.Status}}").stdout
    assert ps.startswith(("Restarting (1)", "Up ")), ps   # listed without -a: Running while restarting
    with pytest.raises(docker.errors.APIError) as e:
        c.remove()
    # the delay is seconds by now, so it is almost surely still waiting; either way it is a conflict
    assert e.value.status_code == 409 and ("restarting container" in str(e.value) or "running" in str(e.value))
    c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c.id)


def test_policies_at_daemon_start(fresh_daemon):
    """always: back after a daemon restart even if stopped by hand; unless-stopped: only if it was
    not; a running one stopped by the daemon's shutdown comes back; 'no' stays down."""
    d = fresh_daemon()
    cl = docker.DockerClient(base_url=d.host, version="auto")
    run = ["sleep", "1000"]
    a = cl.containers.run("busybox", run, detach=True, name="always-stopped", restart_policy={"Name": "always"})
    u = cl.containers.run("busybox", run, detach=True, name="unless-stopped", restart_policy={"Name": "unless-stopped"})
    cl.containers.run("busybox", run, detach=True, name="unless-running", restart_policy={"Name": "unless-stopped"})
    cl.containers.run("busybox", run, detach=True, name="no-policy")
    a.stop(timeout=0)
    u.stop(timeout=0)
    cl.close()
    d.stop()
    d.start()
    cl = docker.DockerClient(base_url=d.host, version="auto")
    until(lambda: cl.api.inspect_container("always-stopped")["State"]["Running"]
           and cl.api.inspect_container("unless-running")["State"]["Running"], "policy starts at boot")
    assert cl.api.inspect_container("unless-stopped")["State"]["Status"] == "exited"
    assert cl.api.inspect_container("no-policy")["State"]["Status"] == "exited"
    for c in cl.containers.list(all=True):
        c.remove(force=True)
    cl.close()


def test_cli_restart_flag(dy_cli):
    p = dy_cli("run", "--restart", "on-failure:x", "busybox", "true", check=False)
    assert p.returncode == 125 and "maximum retry count must be an integer" in p.stderr
    p = dy_cli("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert p.returncode == 125 and "--restart and --rm" in p.stderr
    cid = dy_cli("run", "-d", "--restart", "on-failure:1", "busybox", "false").stdout.strip()
    until(lambda: dy_cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", cid).stdout.strip() == "1 exited",
           "one restart")
    dy_cli("rm", cid)

