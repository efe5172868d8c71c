"""The CRI's ImageService: pull through a per-registry mirror (as kubelet's images come from
registry.k8s.io, served here by a local docker-registry), status, list, remove, fs info."""

from __future__ import annotations

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

from ..registry.conftest import _registry, save_image, skopeo_copy

pytestmark = pytest.mark.root
K8S = "registry.k8s.io/e2e-test-images/busybox:1.29-2"


@pytest.fixture
def mirror(tmp_path, daemon):
    (tmp_path / "reg").mkdir()
    for addr in _registry(tmp_path / "reg", ""):
        archive = save_image(daemon, "busybox:latest", tmp_path / "busybox.tar")
        skopeo_copy(archive, f"{addr}/e2e-test-images/busybox:1.29-2")
        yield addr


def test_pull_through_mirror_status_list_remove(cri_factory, mirror, tmp_path):
    cri = cri_factory(config={"registry-mirrors-for": {"registry.k8s.io": [f"http://{mirror}"]}})
    img = cri.img
    assert img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=K8S)), timeout=10).HasField("image") is False
    ref = img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=K8S)), timeout=120).image_ref
    assert ref.startswith("sha256:")
    st = img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=K8S), verbose=True), timeout=10)
    assert st.image.id == ref and K8S in st.image.repo_tags and st.image.size > 0
    assert any(d.startswith("registry.k8s.io/e2e-test-images/busybox@sha256:") for d in st.image.repo_digests)
    digest = next(d for d in st.image.repo_digests if d.startswith("registry.k8s.io/"))
    by_digest = img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=digest)), timeout=10).image
    assert by_digest.id == ref   # the same image, found by its digest
    assert img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=digest)), timeout=120).image_ref == ref
    listed = img.ListImages(pb.ListImagesRequest(), timeout=10).images
    assert ref in [i.id for i in listed]
    assert any(i.repo_tags == ["docker.io/library/busybox:latest"] for i in listed)
    # a container from the pulled image, by its reference
    cfg = cri.sandbox_config("pulled")
    pod = cri.run_pod(cfg)
    c = cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, sandbox_config=cfg, config=pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image=K8S), command=["true"])), timeout=60)
    assert cri.status(c.container_id).image_ref == ref
    cri.remove_all()
    img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=K8S)), timeout=30)
    img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=K8S)), timeout=30)   # idempotent
    assert not img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=K8S)), timeout=10).HasField("image")
    fs = img.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=30).image_filesystems[0]
    assert fs.used_bytes.value > 0 and fs.inodes_used.value > 0 and fs.fs_id.mountpoint.endswith("snapshots")


def test_pull_errors(cri):
    with pytest.raises(grpc.RpcError) as e:
        cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="Not A Ref")), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox"),
                                              auth=pb.AuthConfig(registry_token="x")), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "registry_token" in e.value.details()
