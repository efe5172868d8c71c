"""Security options (issue 7): capabilities, privileged, seccomp, no-new-privileges, devices,
sysctls, namespace modes, users and groups, Docker's default profile. Each observed inside the
container or in the kernel, through docker-py, for Dockyard's runtime and for runc."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import docker
import pytest

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard", pytest.param("runc", marks=pytest.mark.skipif(not shutil.which("runc"), reason="no runc"))]


def sh(client, script: str, runtime: str = "dockyard", **kw) -> str:
    return client.containers.run("busybox", ["sh", "-c", script], remove=True, runtime=runtime, **kw).decode()


def _caps(out: str, key: str = "CapEff") -> int:
    return next(int(line.split()[1], 16) for line in out.splitlines() if line.startswith(key + ":"))


def _host_bounding() -> int:
    return _caps(open("/proc/self/status").read(), "CapBnd")


def api_error(fn, *a, **kw) -> docker.errors.APIError:
    with pytest.raises(docker.errors.APIError) as e:
        fn(*a, **kw)
    return e.value


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bounding_set_is_dropped_for_a_non_root_user(client, runtime):
    """The bounding set is dropped before the change of user (it needs CAP_SETPCAP in effect): a
    non-root process must not keep the host's bounding set."""
    out = sh(client, "cat /proc/self/status", runtime, user="1234:1234", cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"])
    assert _caps(out, "CapBnd") == 1 << 10 and _caps(out) == 0
    out = sh(client, "cat /proc/self/status", runtime, user="1234")
    assert _caps(out, "CapBnd") == _caps(sh(client, "cat /proc/self/status", runtime), "CapBnd")   # Docker's default set


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_cap_drop_all_and_cap_add(client, runtime):
    assert _caps(sh(client, "cat /proc/self/status", runtime, cap_drop=["ALL"])) == 0
    assert _caps(sh(client, "cat /proc/self/status", runtime, cap_drop=["ALL"]), "CapBnd") == 0
    out = sh(client, "cat /proc/self/status; ip link set lo down && echo downed", runtime, cap_add=["NET_ADMIN"])
    assert _caps(out) & (1 << 12) and "downed" in out       # CAP_NET_ADMIN is bit 12
    out = sh(client, "touch /f; chown 1 /f 2>&1 || echo refused", runtime, cap_drop=["CAP_CHOWN"])
    assert "refused" in out
    # ALL plus a drop: everything the host can grant but that one
    eff = _caps(sh(client, "cat /proc/self/status", runtime, cap_add=["ALL"], cap_drop=["sys_admin"]))
    assert eff == _host_bounding() & ~(1 << 21)


def test_unknown_and_ungrantable_capabilities_are_refused(client):
    e = api_error(client.containers.create, "busybox", ["true"], cap_add=["CAP_FOO"])
    assert e.status_code == 400 and 'unknown capability: "CAP_FOO"' in str(e)
    if not _host_bounding() & (1 << 24):
        e = api_error(client.containers.create, "busybox", ["true"], cap_add=["SYS_RESOURCE"])
        assert e.status_code == 400 and "CAP_SYS_RESOURCE" in str(e)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_privileged(client, runtime):
    out = sh(client, "cat /proc/self/status; ls /dev; mount | grep -E ' /sys (type|ro|rw)'; "
                     "mount | grep ' /sys/fs/cgroup/memory '", runtime, privileged=True)
    assert _caps(out) == _host_bounding()
    assert "Seccomp:\t0" in out
    host_blocks = [d for d in os.listdir("/dev") if d.startswith(("vd", "sd", "loop", "zram", "nvme"))]
    assert host_blocks and any(d in out.split() for d in host_blocks)
    assert "sysfs on /sys type sysfs (rw" in out
    assert "(rw," in out.split("/sys/fs/cgroup/memory")[1]
    c = client.containers.create("busybox", ["true"], privileged=True)
    hc = client.api.inspect_container(c.id)["HostConfig"]
    assert hc["Privileged"] is True and hc["MaskedPaths"] is None
    c.remove()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seccomp_default_unconfined_and_custom(client, runtime):
    assert "Seccomp:\t2" in sh(client, "cat /proc/self/status", runtime)
    assert "Seccomp:\t0" in sh(client, "cat /proc/self/status", runtime, security_opt=["seccomp=unconfined"])
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    out = sh(client, "mkdir /x 2>&1; touch /y && echo touched", runtime,
             security_opt=[f"seccomp={json.dumps(profile)}"])
    assert "Operation not permitted" in out and "touched" in out
    e = api_error(client.containers.create, "busybox", ["true"], security_opt=["seccomp={not json"])
    assert e.status_code == 400 and "Decoding seccomp profile failed" in str(e)


def test_default_seccomp_argument_filters_hold(client):
    """clone with CLONE_NEWUSER is refused by the default profile's argument filter (unshare -U)."""
    out = sh(client, "unshare -U true 2>&1; echo rc=$?")
    assert "rc=0" not in out
    out = sh(client, "unshare -U true 2>&1; echo rc=$?", security_opt=["seccomp=unconfined"], cap_add=["SYS_ADMIN"])
    assert "rc=0" in out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_new_privileges(client, runtime):
    assert "NoNewPrivs:\t1" in sh(client, "cat /proc/self/status", runtime, security_opt=["no-new-privileges"])
    assert "NoNewPrivs:\t1" in sh(client, "cat /proc/self/status", runtime, security_opt=["no-new-privileges:true"])
    assert "NoNewPrivs:\t0" in sh(client, "cat /proc/self/status", runtime)


def test_bad_security_opts_are_refused_with_dockers_words(client):
    e = api_error(client.containers.create, "busybox", ["true"], security_opt=["bogus=1"])
    assert e.status_code == 400 and 'invalid --security-opt 2: "bogus=1"' in str(e)
    e = api_error(client.containers.create, "busybox", ["true"], security_opt=["nonsense"])
    assert 'invalid --security-opt 1: "nonsense"' in str(e)
    e = api_error(client.containers.create, "busybox", ["true"], security_opt=["no-new-privileges=maybe"])
    assert "invalid --security-opt 2" in str(e)
    lsm = open("/sys/kernel/security/lsm").read() if os.path.exists("/sys/kernel/security/lsm") else ""
    if "apparmor" not in lsm:
        e = api_error(client.containers.create, "busybox", ["true"], security_opt=["apparmor=docker-default"])
        assert e.status_code == 400 and "AppArmor is not enabled" in str(e)
    if "selinux" not in lsm:
        e = api_error(client.containers.create, "busybox", ["true"], security_opt=["label=type:svirt_t"])
        assert e.status_code == 400 and "SELinux is not enabled" in str(e)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_devices_with_permissions_and_cgroup_rules(client, tmp_path, runtime):
    import subprocess
    img = tmp_path / "dev.img"
    img.write_bytes(b"\x07" * 65536)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True).stdout.strip()
    if not dev:
        pytest.skip("no loop device")
    try:
        out = sh(client, "ls -l /dev/mydisk; head -c 3 /dev/mydisk | od -An -tx1; "
                         "echo x > /dev/mydisk 2>&1 || echo nowrite", runtime, devices=[f"{dev}:/dev/mydisk:r"])
        assert out.startswith("brw") and "07 07 07" in out and "nowrite" in out
        out = sh(client, "echo abc | dd of=/dev/mydisk conv=notrunc 2>/dev/null && echo wrote", runtime,
                 devices=[f"{dev}:/dev/mydisk:rw"])
        assert "wrote" in out
        # mknod is allowed for every device (Docker's 'm' rules); opening one needs an allow rule
        st = os.stat(dev)
        ma, mi = os.major(st.st_rdev), os.minor(st.st_rdev)
        script = f"mknod /tmp/d b {ma} {mi}; head -c 1 /tmp/d >/dev/null 2>&1 && echo opened || echo denied"
        assert "denied" in sh(client, script, runtime)
        assert "opened" in sh(client, script, runtime, device_cgroup_rules=[f"b {ma}:* r"])
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)
    e = api_error(client.containers.create, "busybox", ["true"], device_cgroup_rules=["x 1:7 rwm"])
    assert "invalid device cgroup format 'x 1:7 rwm'" in str(e)
    e = api_error(client.containers.create, "busybox", ["true"], devices=["/dev/nosuchdev"])
    assert 'error gathering device information while adding custom device "/dev/nosuchdev"' in str(e)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_namespaced_sysctls(client, runtime):
    out = sh(client, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/fs/mqueue/msg_max", runtime,
             sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456", "fs.mqueue.msg_max": "20"})
    assert out.split() == ["1", "123456", "20"]
    assert open("/proc/sys/kernel/shmmax").read().strip() != "123456"   # the host's stays
    e = api_error(client.containers.create, "busybox", ["true"], sysctls={"kernel.core_pattern": "x"})
    assert e.status_code == 400 and "sysctl 'kernel.core_pattern' is not whitelisted" in str(e)
    e = api_error(client.containers.create, "busybox", ["true"], network_mode="host",
                  sysctls={"net.ipv4.ip_forward": "1"})
    assert "host's network namespace" in str(e)


def _ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ipc_pid_uts_host_modes(client, runtime):
    out = sh(client, "for n in ipc pid uts; do readlink /proc/self/ns/$n; done; hostname; "
                     "mount | grep -c ' /dev/shm ' ", runtime, ipc_mode="host", pid_mode="host", uts_mode="host")
    ipc, pid, uts, host, shm = out.split()
    me = os.getpid()
    assert (ipc, pid, uts) == (_ns(me, "ipc"), _ns(me, "pid"), _ns(me, "uts"))
    assert host == socket.gethostname() and shm == "1"
    out = sh(client, "readlink /proc/self/ns/ipc; mount | grep -c ' /dev/shm ' || true", runtime, ipc_mode="none")
    assert out.split()[0] != _ns(os.getpid(), "ipc") and out.split()[1] == "0"
    e = api_error(client.containers.create, "busybox", ["true"], uts_mode="host", hostname="x")
    assert "Conflicting options: hostname and the UTS mode" in str(e)
    e = api_error(client.containers.create, "busybox", ["true"], ipc_mode="weird")
    assert "invalid IPC mode: weird" in str(e)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_join_another_containers_ipc_and_pid(client, runtime):
    donor = client.containers.run("busybox", ["sh", "-c", "echo hi > /dev/shm/mark; sleep 60"], ipc_mode="shareable",
                                  detach=True, runtime=runtime, name="donor")
    try:
        time.sleep(0.3)
        donor.reload()
        dpid = donor.attrs["State"]["Pid"]
        out = sh(client, "for n in ipc pid; do readlink /proc/self/ns/$n; done; cat /dev/shm/mark; "
                         "ps -o comm | grep -c sleep",
                 runtime, ipc_mode="container:donor", pid_mode="container:donor")
        ipc, pid, mark, sleeps = out.split()
        assert ipc == _ns(dpid, "ipc") and pid == _ns(dpid, "pid") and mark == "hi" and int(sleeps) >= 1
        private = client.containers.run("busybox", ["sleep", "60"], detach=True, name="private-ipc")
        try:
            e = api_error(client.containers.create, "busybox", ["true"], ipc_mode="container:private-ipc")
            assert "non-shareable IPC" in str(e)
        finally:
            private.remove(force=True)
    finally:
        donor.remove(force=True)


def test_userns_and_cgroupns_modes(client):
    assert sh(client, "echo ok", userns_mode="host").strip() == "ok"
    r = client.api._post_json(client.api._url("/containers/create"),
                              data={"Image": "busybox", "Cmd": ["true"], "HostConfig": {"UsernsMode": "private"}})
    assert r.status_code == 400 and "invalid USER mode" in r.json()["message"]


def test_read_only_rootfs(client):
    out = sh(client, "touch /x 2>&1; touch /dev/shm/ok && echo shm-writable", read_only=True)
    assert "Read-only file system" in out and "shm-writable" in out


def test_group_add_by_name_and_number(client):
    out = sh(client, "id -G", user="nobody", group_add=["wheel", "4242"])
    assert {"10", "4242"} <= set(out.split())
    c = client.containers.create("busybox", ["true"], group_add=["nosuchgroup"])
    e = api_error(c.start)
    assert "Unable to find group nosuchgroup" in str(e)
    c.remove()


def test_default_profile_paths_devices_and_workdir(client):
    c = client.containers.create("busybox", ["true"])
    hc = client.api.inspect_container(c.id)["HostConfig"]
    assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"]
    c.remove()
    out = sh(client, "mount | grep -c ' /proc/timer_list '; (echo x > /proc/sys/kernel/domainname) 2>&1; true")
    assert out.split()[0] == "1" and "Read-only file system" in out
    out = sh(client, "ls -l /dev/null /dev/zero; echo data > /dev/null && echo null-writable", user="nobody")
    assert out.count("crw-rw-rw-") == 2 and "null-writable" in out
    assert sh(client, "pwd", working_dir="/not/yet/there").strip() == "/not/yet/there"
    out = sh(client, "mount | grep -c ' /proc/timer_list '; mount | grep -c ' /proc/sys '; true",
             security_opt=["systempaths=unconfined"])
    assert out.split() == ["0", "0"]


def test_network_disabled_and_annotations(client, daemon):
    r = client.api.create_container("busybox", ["sh", "-c", "ls /sys/class/net; sleep 30"], network_disabled=True)
    client.api.start(r["Id"])
    try:
        time.sleep(0.3)
        assert client.api.logs(r["Id"]).split() == [b"lo"]
        assert client.api.inspect_container(r["Id"])["HostConfig"]["NetworkMode"] == "none"
    finally:
        client.api.remove_container(r["Id"], force=True)
    body = {"Image": "busybox", "Cmd": ["sleep", "30"], "HostConfig": {"Annotations": {"org.example/k": "v"}}}
    res = client.api._post_json(client.api._url("/containers/create"), data=body)
    cid = client.api._result(res, True)["Id"]
    client.api.start(cid)
    try:
        spec = json.loads((daemon.exec_root / "containers" / cid / "config.json").read_text())
        assert spec["annotations"] == {"org.example/k": "v"}
    finally:
        client.api.remove_container(cid, force=True)


def test_platform_must_match_the_image(client):
    e = api_error(client.api.create_container, "busybox", ["true"], platform="linux/arm64")
    assert e.status_code == 400 and "does not match the specified platform: wanted linux/arm64, actual: linux/amd64" in str(e)
    r = client.api.create_container("busybox", ["true"], platform="linux/amd64")
    client.api.remove_container(r["Id"])
