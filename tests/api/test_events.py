"""`GET /events` through docker-py and the docker CLI."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.root


def test_container_and_image_events_since_until_and_filters(client, docker_cli, dy_cli):
    start = time.time()
    c = client.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True, name="ev1", labels={"tier": "x"})
    c.wait()
    client.images.get("busybox").tag("evtag", "1")
    client.images.remove("evtag:1")
    c.remove()
    until = time.time() + 0.5
    evs = list(client.events(since=start, until=until, decode=True))
    mine = [(e["Type"], e["Action"]) for e in evs
            if e["Actor"]["Attributes"].get("name") in ("ev1", "evtag:1")]
    assert mine == [("container", "create"), ("container", "start"), ("container", "die"), ("image", "tag"),
                    ("image", "untag"), ("container", "destroy")], mine
    die = next(e for e in evs if e["Action"] == "die" and e["Actor"]["Attributes"].get("name") == "ev1")
    assert die["Actor"]["Attributes"]["exitCode"] == "3" and die["Actor"]["Attributes"]["tier"] == "x"
    assert die["id"] == c.id and die["status"] == "die" and die["from"] == "busybox"
    assert die["time"] == die["timeNano"] // 10**9
    # filters: one container's starts only
    evs = list(client.events(since=start, until=until, decode=True,
                             filters={"container": "ev1", "event": "start"}))
    assert [e["Action"] for e in evs] == ["start"]
    evs = list(client.events(since=start, until=until, decode=True, filters={"label": "tier=x", "type": "container"}))
    assert {e["Action"] for e in evs} == {"create", "start", "die", "destroy"}
    # the docker CLI, with its own line format and --format
    out = out_die = docker_cli("events", "--since", str(start), "--until", str(until), "--filter", "container=ev1",
                               "--filter", "event=die").stdout
    assert out.count("\n") == 1 and " container die " + c.id in out and "exitCode=3" in out and "name=ev1" in out
    out = docker_cli("events", "--since", str(start), "--until", str(until), "--filter", "type=image",
                     "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").stdout
    assert "image tag evtag:1\nimage untag evtag:1\n" in out
    mine = dy_cli("events", "--since", str(start), "--until", str(until), "--filter", "container=ev1",
                  "--filter", "event=die").stdout
    assert mine == out_die   # the same line as the docker CLI prints, timestamp included


def test_live_events_stream_until_the_deadline(client):
    import threading
    got = []
    t0 = time.time()

    def listen():
        for e in client.events(until=t0 + 3, decode=True, filters={"type": "container"}):
            got.append(e["Action"])
    th = threading.Thread(target=listen)
    th.start()
    time.sleep(0.5)
    c = client.containers.run("busybox", ["true"], detach=True)
    c.wait()
    c.remove()
    th.join(10)
    assert not th.is_alive(), "the stream ends at `until`"
    assert got[:4] == ["create", "start", "die", "destroy"]


def test_bad_filter_is_400(client, docker_cli):
    # docker-py does not check the status of the event stream; the raw API and the CLI do
    r = client.api._get(client.api._url("/events"), params={"until": str(time.time()),
                                                             "filters": '{"colour":{"red":true}}'})
    assert r.status_code == 400 and "invalid filter 'colour'" in r.json()["message"]
    p = docker_cli("events", "--until", str(time.time()), "--filter", "colour=red", check=False)
    assert p.returncode != 0 and "invalid filter 'colour'" in p.stderr


def test_clients_that_go_away_leave_one_quiet_line(client, daemon):
    """A client leaving an event, log, stats or wait stream is normal: the daemon logs one line
    that says so, never a traceback."""
    import socket
    start = daemon.log.stat().st_size
    c = client.containers.run("busybox", ["sh", "-c", "while :; do echo x; sleep 0.05; done"], detach=True,
                              network_mode="none")
    socks = []
    for req in (b"GET /v1.41/events HTTP/1.1", f"GET /v1.41/containers/{c.id}/logs?follow=1&stdout=1 HTTP/1.1".encode(),
                f"GET /v1.41/containers/{c.id}/stats HTTP/1.1".encode(),
                f"POST /v1.41/containers/{c.id}/wait HTTP/1.1".encode()):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.sock))
        s.sendall(req + b"\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
        socks.append(s)
    time.sleep(1.0)
    for s in socks:
        s.close()
    client.containers.run("busybox", ["true"], remove=True, network_mode="none")   # an event for the stream to write
    c.remove(force=True)   # the wait answers, to nobody
    deadline = time.time() + 10
    text = ""
    while time.time() < deadline:
        with open(daemon.log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if all(f"client went away during {m}" in text for m in ("GET /v1.41/events", "GET /v1.41/containers/" + c.id + "/logs",
                                                                 "GET /v1.41/containers/" + c.id + "/stats")):
            break
        time.sleep(0.2)
    assert "Traceback" not in text and "level=ERROR" not in text, text[-3000:]
    assert "client went away during GET /v1.41/events" in text, text[-3000:]
    assert f"client went away during GET /v1.41/containers/{c.id}/logs" in text
