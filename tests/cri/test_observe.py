"""Statistics from the cgroups, metrics, and the container event stream."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

pytestmark = pytest.mark.root


def test_container_and_pod_stats(cri):
    cfg = cri.sandbox_config("stats", labels={"s": "1"})
    pod = cri.run_pod(cfg)
    busy = cri.container(pod, cfg, "busy", ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=8; while :; do :; done"],
                         labels={"role": "busy"})
    cri.start(busy)
    time.sleep(1.0)
    first = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=busy), timeout=30).stats
    time.sleep(1.0)
    s = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=busy), timeout=30).stats
    assert s.attributes.id == busy and s.attributes.metadata.name == "busy" and dict(s.attributes.labels) == {"role": "busy"}
    assert s.cpu.usage_core_nano_seconds.value > first.cpu.usage_core_nano_seconds.value > 0
    assert s.cpu.usage_nano_cores.value > 300_000_000   # a spinning shell: a good part of one core
    assert s.memory.working_set_bytes.value > 0 and s.memory.usage_bytes.value >= s.memory.working_set_bytes.value
    assert s.writable_layer.used_bytes.value >= 8 << 20   # /big
    listed = cri.rt.ListContainerStats(pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(
        label_selector={"role": "busy"})), timeout=30).stats
    assert [x.attributes.id for x in listed] == [busy]
    p = cri.rt.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=pod), timeout=30).stats
    assert p.attributes.id == pod and dict(p.attributes.labels) == {"s": "1"}
    assert p.linux.cpu.usage_core_nano_seconds.value > 0 and p.linux.memory.working_set_bytes.value > 0
    assert p.linux.process.process_count.value >= 2   # the holder and the shell
    assert p.linux.network.default_interface.name == "eth0" and [c.attributes.id for c in p.linux.containers] == [busy]
    pods = cri.rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(filter=pb.PodSandboxStatsFilter(
        label_selector={"s": "1"})), timeout=30).stats
    assert [x.attributes.id for x in pods] == [pod]
    descs = {d.name: d for d in cri.rt.ListMetricDescriptors(pb.ListMetricDescriptorsRequest(), timeout=10).descriptors}
    assert all(d.help and d.label_keys for d in descs.values())
    for name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_fs_usage_bytes",
                 "container_network_receive_bytes_total", "container_processes", "container_threads",
                 "container_file_descriptors", "container_spec_cpu_shares", "container_start_time_seconds"):
        assert name in descs, name
    metrics = cri.rt.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest(), timeout=30).pod_metrics
    mine = next(pm for pm in metrics if pm.pod_sandbox_id == pod)
    got: dict = {}
    for cm in mine.container_metrics:
        for x in cm.metrics:
            got.setdefault(x.name, x)
            assert len(x.label_values) == len(descs[x.name].label_keys), x.name   # series match their descriptor
    assert got["container_cpu_usage_seconds_total"].value.value > 0
    assert got["container_memory_working_set_bytes"].value.value > 0
    assert got["container_fs_usage_bytes"].value.value >= 8 << 20 and got["container_threads"].value.value >= 1
    assert got["container_network_receive_bytes_total"].label_values[-1] == "eth0"
    assert got["container_spec_cpu_shares"].value.value > 0
    assert abs(got["container_last_seen"].value.value - time.time()) < 60
    served = set(descs) - set(got)
    assert served <= {"container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_writes_bytes_total",
                      "container_fs_reads_total", "container_fs_writes_total"}, served   # only block I/O may be empty


def test_container_events_stream(cri):
    got: list = []
    call = cri.rt.GetContainerEvents(pb.GetEventsRequest())

    def read() -> None:
        try:
            for ev in call:
                got.append(ev)
        except grpc.RpcError:
            pass
    t = threading.Thread(target=read, daemon=True)
    t.start()
    time.sleep(0.3)
    cfg = cri.sandbox_config("events")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "e", ["true"])
    cri.start(c)
    cri.wait_exit(c)
    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=c), timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and not any(e.container_id == c and e.container_event_type ==
                                             pb.CONTAINER_DELETED_EVENT for e in got):
        time.sleep(0.1)
    call.cancel()
    mine = [e.container_event_type for e in got if e.container_id == c]
    assert mine == [pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT, pb.CONTAINER_STOPPED_EVENT,
                    pb.CONTAINER_DELETED_EVENT]
    started = next(e for e in got if e.container_id == c and e.container_event_type == pb.CONTAINER_STARTED_EVENT)
    assert started.pod_sandbox_status.id == pod and started.created_at > 0
    assert any(e.container_id == pod and e.container_event_type == pb.CONTAINER_STARTED_EVENT for e in got)
