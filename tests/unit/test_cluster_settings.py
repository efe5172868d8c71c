"""--cluster-store, --cluster-advertise and --cluster-store-opt: applied or refused by name."""

from __future__ import annotations

import pytest

from dockyard.daemon import config
from dockyard.errors import InvalidArgument


def test_cluster_flags() -> None:
    cfg = config.load(["--config-file", "/dev/null", "--cluster-store", "etcd://10.0.0.2:2379,10.0.0.3:2379",
                       "--cluster-advertise", "eth0", "--cluster-store-opt", "lease-ttl=5",
                       "--cluster-store-opt", "vxlan-port=4790"])
    s = config.cluster_settings(cfg)
    assert (s.url, s.advertise, s.lease_ttl, s.vxlan_port) == ("etcd://10.0.0.2:2379,10.0.0.3:2379", "eth0", 5, 4790)
    assert config.cluster_settings(config.load(["--config-file", "/dev/null"])) is None
    for argv, words in ((["--cluster-store", "consul://h:8500", "--cluster-advertise", "eth0"], "only etcd"),
                        (["--cluster-store", "etcd://h:2379"], "needs --cluster-advertise"),
                        (["--cluster-advertise", "eth0"], "need --cluster-store"),
                        (["--cluster-store", "etcd://h:2379", "--cluster-advertise", "eth0:2376"], "alone"),
                        (["--cluster-store", "etcd://h:2379", "--cluster-advertise", "eth0",
                          "--cluster-store-opt", "kv.cacertfile=/x"], "kv.cacertfile"),
                        (["--cluster-store", "etcd://h:2379", "--cluster-advertise", "eth0",
                          "--cluster-store-opt", "lease-ttl=1"], "lease-ttl")):
        with pytest.raises(InvalidArgument, match=words):
            config.load(["--config-file", "/dev/null", *argv])
