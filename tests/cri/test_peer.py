"""The same CRI requests to dockyardd and to containerd (Debian's 1.6, its CRI plugin), answers compared
field by field. Where they differ on purpose, the test says why."""

from __future__ import annotations

import re
import time

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

from .peer import BUSYBOX

pytestmark = pytest.mark.root


@pytest.fixture
def pair(cri_factory, containerd_peer, peer_registry):
    dy = cri_factory(config={"registry-mirrors-for": {"registry.k8s.io": [f"http://{peer_registry}"]}})
    for c in (dy, containerd_peer):
        c.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=120)
    yield dy, containerd_peer
    containerd_peer.remove_all()


def _both(pair, fn):
    return [fn(c) for c in pair]


def _code(fn):
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def test_version_status_config(pair):
    v = _both(pair, lambda c: c.rt.Version(pb.VersionRequest(version="v1"), timeout=10))
    assert v[0].version == v[1].version == "0.1.0" and v[0].runtime_api_version == v[1].runtime_api_version == "v1"
    st = _both(pair, lambda c: {x.type: x.status for x in c.rt.Status(pb.StatusRequest(), timeout=10).status.conditions})
    assert st[0] == st[1] == {"RuntimeReady": True, "NetworkReady": True}
    img = _both(pair, lambda c: c.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=10).image)
    assert img[0].repo_tags == img[1].repo_tags == [BUSYBOX]
    assert [d.split("@")[0] for d in img[0].repo_digests] == [d.split("@")[0] for d in img[1].repo_digests]
    assert img[0].id.startswith("sha256:") and img[1].id.startswith("sha256:")
    assert (img[0].uid.value, img[0].username) == (img[1].uid.value, img[1].username)


def _pod(c, name, uid, **kw):
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=name, namespace="peer", uid=uid, attempt=1),
                              hostname="peer-host", labels={"app": "x"}, annotations={"a": "b"}, **kw)
    return c.run_pod(cfg), cfg


def _ctr(c, pod, cfg, name, args, **kw):
    return c.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, sandbox_config=cfg, config=pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=2), image=pb.ImageSpec(image=BUSYBOX), command=args,
        labels={"l": "1"}, annotations={"n": "2"}, **kw)), timeout=60).container_id


def test_sandbox_and_container_status_field_by_field(pair, tmp_path):
    got = []
    for i, c in enumerate(pair):
        logs = tmp_path / f"logs{i}"
        pod, cfg = _pod(c, "same", f"uid-same-{i}", log_directory=str(logs))
        ctr = _ctr(c, pod, cfg, "job", ["sh", "-c", "echo out; echo err >&2; exit 5"], log_path="job.log")
        c.start(ctr)
        st = c.wait_exit(ctr)
        ps = c.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status
        run = _ctr(c, pod, cfg, "run", ["sleep", "100"])
        c.start(run)
        ex = c.exec_sync(run, ["sh", "-c", "hostname; id -u; echo e >&2; exit 2"])
        time.sleep(0.3)
        text = (logs / "job.log").read_text()
        got.append((ps, st, ex, text, c.status(run)))
    (ps0, st0, ex0, log0, r0), (ps1, st1, ex1, log1, r1) = got
    # sandbox status
    for f in ("state",):
        assert getattr(ps0, f) == getattr(ps1, f), f
    assert (ps0.metadata.name, ps0.metadata.namespace, ps0.metadata.attempt) == (ps1.metadata.name, ps1.metadata.namespace,
                                                                                 ps1.metadata.attempt)
    assert dict(ps0.labels) == dict(ps1.labels) and dict(ps0.annotations) == dict(ps1.annotations)
    assert bool(ps0.network.ip) and bool(ps1.network.ip)
    assert ps0.linux.namespaces.options == ps1.linux.namespaces.options
    # an exited container
    for f in ("state", "exit_code", "reason", "message"):
        assert getattr(st0, f) == getattr(st1, f), f
    assert st0.metadata == st1.metadata and dict(st0.labels) == dict(st1.labels)
    assert dict(st0.annotations) == dict(st1.annotations)
    assert st0.image.image == st1.image.image == BUSYBOX
    assert st0.finished_at >= st0.started_at > st0.created_at > 0
    assert st1.finished_at > 0 and st1.started_at > 0   # containerd: finished_at may be a microsecond before started_at
    assert st0.log_path.endswith("logs0/job.log") and st1.log_path.endswith("logs1/job.log")
    # the logs, in the CRI format, line by line (timestamps aside)
    strip = lambda t: sorted(re.sub(r"^\S+ ", "", ln) for ln in t.splitlines())   # noqa: E731
    assert strip(log0) == strip(log1) == ["stderr F err", "stdout F out"]
    # ExecSync
    assert (ex0.stdout, ex0.stderr, ex0.exit_code) == (ex1.stdout, ex1.stderr, ex1.exit_code)
    assert ex0.stdout.startswith(b"peer-host\n0\n")
    # a running container
    for f in ("state", "exit_code", "reason", "finished_at"):
        assert getattr(r0, f) == getattr(r1, f), f


def test_list_filters_agree(pair):
    for i, c in enumerate(pair):
        pod, cfg = _pod(c, "lists", f"uid-lists-{i}")
        a = _ctr(c, pod, cfg, "a", ["sleep", "100"])
        c.start(a)
        _ctr(c, pod, cfg, "b", ["sleep", "100"])
    res = []
    for c in pair:
        by_state = {s: sorted(x.metadata.name for x in c.rt.ListContainers(pb.ListContainersRequest(
            filter=pb.ContainerFilter(state=pb.ContainerStateValue(state=s))), timeout=10).containers)
            for s in (pb.CONTAINER_RUNNING, pb.CONTAINER_CREATED)}
        by_label = sorted(x.metadata.name for x in c.rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
            label_selector={"l": "1"})), timeout=10).containers)
        pods = [(s.metadata.name, s.state, dict(s.labels)) for s in c.rt.ListPodSandbox(pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(label_selector={"app": "x"})), timeout=10).items]
        res.append((by_state, by_label, pods))
    assert res[0] == res[1]


def test_error_codes_agree(pair):
    unknown = "0123456789abcdef" * 4
    calls = {
        "ContainerStatus": lambda c: c.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=unknown), timeout=10),
        "PodSandboxStatus": lambda c: c.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=unknown), timeout=10),
        "RemovePodSandbox": lambda c: c.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=unknown), timeout=10),
        "RemoveContainer": lambda c: c.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=unknown), timeout=10),
        "ImageStatus(missing)": lambda c: c.img.ImageStatus(pb.ImageStatusRequest(
            image=pb.ImageSpec(image="registry.k8s.io/none:1")), timeout=10),
    }
    for name, fn in calls.items():
        assert _code(lambda f=fn: f(pair[0])) == _code(lambda f=fn: f(pair[1])), name
    # containerd 1.6 answers NotFound to stopping an unknown pod or container; the CRI says success (ours)
    for fn in (lambda c: c.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=unknown), timeout=10),
               lambda c: c.rt.StopContainer(pb.StopContainerRequest(container_id=unknown), timeout=10)):
        assert _code(lambda f=fn: f(pair[0])) == grpc.StatusCode.OK
        assert _code(lambda f=fn: f(pair[1])) == grpc.StatusCode.NOT_FOUND
