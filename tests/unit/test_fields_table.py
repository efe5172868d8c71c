"""The honoured-or-refused table (containers/fields.py) against the Engine API schema: every
field of Config and HostConfig (v1.41, and v1.47's newer ones) is in the table; every applied or
recorded field names the test that observes it; every refused field has a sample value that
tests/api/test_refused_fields.py sends and sees refused."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from dockyard.containers import fields

TESTS = Path(__file__).resolve().parent.parent
SCHEMAS = [TESTS / "data" / "docker-engine-api" / f"v{v}.yaml" for v in ("1.41", "1.47")]

# field → the test that observes its effect (in the kernel, inside the container, or in inspect
# for what Docker itself only records)
PROOF = {
    "Config.Hostname": "api/test_containers.py::test_create_options_reach_the_process",
    "Config.Domainname": "api/test_refused_fields.py::test_recorded_fields_and_domainname",
    "Config.User": "api/test_containers.py::test_user_by_name_and_groups",
    "Config.AttachStdout": "e2e/test_dockyard_cli.py::test_start_attach_wait_restart_kill",
    "Config.AttachStderr": "e2e/test_dockyard_cli.py::test_start_attach_wait_restart_kill",
    "Config.ExposedPorts": "network/test_bridge.py::test_published_ports_from_loopback_and_from_containers",
    "Config.Env": "api/test_containers.py::test_create_options_reach_the_process",
    "Config.Cmd": "api/test_containers.py::test_entrypoint_and_cmd_merge",
    "Config.ArgsEscaped": "api/test_refused_fields.py::test_recorded_fields_and_domainname",
    "Config.Image": "api/test_containers.py::test_run_output_and_exit_code",
    "Config.WorkingDir": "api/test_security_options.py::test_default_profile_paths_devices_and_workdir",
    "Config.Entrypoint": "api/test_containers.py::test_entrypoint_and_cmd_merge",
    "Config.NetworkDisabled": "api/test_security_options.py::test_network_disabled_and_annotations",
    "Config.MacAddress": "network/test_user_networks.py::test_ip_mac_and_aliases_as_asked",
    "Config.Volumes": "volumes/test_volumes.py::test_anonymous_volumes_volumes_from_and_rm_v",
    "HostConfig.Binds": "volumes/test_volumes.py::test_binds_tmpfs_and_read_only",
    "HostConfig.Mounts": "volumes/test_volumes.py::test_copy_up_nocopy_and_symlinked_targets",
    "HostConfig.Tmpfs": "volumes/test_volumes.py::test_binds_tmpfs_and_read_only",
    "HostConfig.VolumesFrom": "volumes/test_volumes.py::test_anonymous_volumes_volumes_from_and_rm_v",
    "HostConfig.VolumeDriver": "volumes/test_volumes.py::test_a_volume_plugin_through_its_whole_cycle",
    "HostConfig.Links": "network/test_bridge.py::test_legacy_links_on_the_default_bridge_and_on_user_networks",
    "Config.OnBuild": "api/test_refused_fields.py::test_recorded_fields_and_domainname",
    "Config.Labels": "api/test_containers.py::test_create_options_reach_the_process",
    "Config.StopSignal": "api/test_containers.py::test_stop_uses_stop_signal_and_timeout",
    "Config.StopTimeout": "api/test_containers.py::test_stop_uses_stop_signal_and_timeout",
    "Config.Shell": "api/test_refused_fields.py::test_recorded_fields_and_domainname",
    "HostConfig.CpuShares": "api/test_limits.py::test_cpu_shares_split_one_cpu_and_cpuset_pins",
    "HostConfig.CpuCount": "api/test_refused_fields.py::test_windows_only_fields_are_taken_with_a_warning",
    "HostConfig.CpuPercent": "api/test_refused_fields.py::test_windows_only_fields_are_taken_with_a_warning",
    "HostConfig.Memory": "api/test_limits.py::test_memory_hog_is_oom_killed_at_the_limit",
    "HostConfig.CgroupParent": "api/test_limits.py::test_cgroup_parent_and_cgroupns",
    "HostConfig.BlkioWeight": "api/test_limits.py::test_blkio_weight_is_refused_where_the_kernel_lacks_it",
    "HostConfig.BlkioWeightDevice": "api/test_refused_fields.py::test_blkio_weight_device",
    "HostConfig.BlkioDeviceReadBps": "api/test_limits.py::test_blkio_read_bps_and_write_iops",
    "HostConfig.BlkioDeviceWriteBps": "api/test_limits.py::test_blkio_throttling_with_direct_io_on_a_loop_device",
    "HostConfig.BlkioDeviceReadIOps": "api/test_limits.py::test_blkio_throttling_with_direct_io_on_a_loop_device",
    "HostConfig.BlkioDeviceWriteIOps": "api/test_limits.py::test_blkio_read_bps_and_write_iops",
    "HostConfig.CpuPeriod": "api/test_limits.py::test_cpu_quota_holds_a_busy_loop",
    "HostConfig.CpuQuota": "api/test_limits.py::test_cpu_quota_holds_a_busy_loop",
    "HostConfig.CpuRealtimePeriod": "api/test_limits.py::test_realtime_cpu_budget",
    "HostConfig.CpuRealtimeRuntime": "api/test_limits.py::test_realtime_cpu_budget",
    "HostConfig.CpusetCpus": "api/test_limits.py::test_cpu_shares_split_one_cpu_and_cpuset_pins",
    "HostConfig.CpusetMems": "api/test_limits.py::test_cpu_shares_split_one_cpu_and_cpuset_pins",
    "HostConfig.Devices": "api/test_security_options.py::test_devices_with_permissions_and_cgroup_rules",
    "HostConfig.DeviceCgroupRules": "api/test_security_options.py::test_devices_with_permissions_and_cgroup_rules",
    "HostConfig.MemoryReservation": "api/test_limits.py::test_memory_swap_defaults_to_twice_memory_and_other_memory_knobs",
    "HostConfig.MemorySwap": "api/test_limits.py::test_memory_hog_is_oom_killed_at_the_limit",
    "HostConfig.MemorySwappiness": "api/test_limits.py::test_memory_swap_defaults_to_twice_memory_and_other_memory_knobs",
    "HostConfig.NanoCpus": "api/test_limits.py::test_cpu_quota_holds_a_busy_loop",
    "HostConfig.OomKillDisable": "api/test_limits.py::test_memory_swap_defaults_to_twice_memory_and_other_memory_knobs",
    "HostConfig.PidsLimit": "api/test_limits.py::test_fork_bomb_stops_at_the_pids_limit",
    "HostConfig.Ulimits": "api/test_limits.py::test_ulimits_and_shm_size_seen_inside",
    "HostConfig.ContainerIDFile": "api/test_refused_fields.py::test_recorded_fields_and_domainname",
    "HostConfig.LogConfig": "api/test_log_drivers.py::test_local_driver_compresses_and_follows",
    "HostConfig.NetworkMode": "api/test_containers.py::test_network_modes",
    "HostConfig.Dns": "network/test_bridge.py::test_dns_options_and_extra_hosts",
    "HostConfig.DnsOptions": "network/test_bridge.py::test_dns_options_and_extra_hosts",
    "HostConfig.DnsSearch": "network/test_bridge.py::test_dns_options_and_extra_hosts",
    "HostConfig.ExtraHosts": "network/test_bridge.py::test_dns_options_and_extra_hosts",
    "HostConfig.PortBindings": "network/test_bridge.py::test_published_ports_from_loopback_and_from_containers",
    "HostConfig.PublishAllPorts": "network/test_bridge.py::test_published_ports_from_loopback_and_from_containers",
    "HostConfig.RestartPolicy": "api/test_restart_policy.py::test_on_failure_restarts_up_to_its_limit",
    "HostConfig.AutoRemove": "api/test_containers.py::test_autoremove",
    "HostConfig.ConsoleSize": "api/test_attach.py::test_tty_console_size_resize_raw_logs",
    "HostConfig.Init": "api/test_init.py::test_init_reaps_zombies_and_forwards_sigterm",
    "Config.Healthcheck": "api/test_health.py::test_healthcheck_states_events_ps_and_filters",
    "Config.Tty": "api/test_attach.py::test_tty_console_size_resize_raw_logs",
    "Config.OpenStdin": "api/test_attach.py::test_stdin_stays_open_without_stdin_once",
    "Config.StdinOnce": "api/test_attach.py::test_stdin_once_without_tty",
    "Config.AttachStdin": "api/test_attach.py::test_stdin_once_without_tty",
    "HostConfig.Annotations": "api/test_security_options.py::test_network_disabled_and_annotations",
    "HostConfig.CapAdd": "api/test_security_options.py::test_cap_drop_all_and_cap_add",
    "HostConfig.CapDrop": "api/test_security_options.py::test_cap_drop_all_and_cap_add",
    "HostConfig.CgroupnsMode": "api/test_limits.py::test_cgroup_parent_and_cgroupns",
    "HostConfig.GroupAdd": "api/test_security_options.py::test_group_add_by_name_and_number",
    "HostConfig.IpcMode": "api/test_security_options.py::test_join_another_containers_ipc_and_pid",
    "HostConfig.OomScoreAdj": "api/test_limits.py::test_oom_score_adj",
    "HostConfig.PidMode": "api/test_security_options.py::test_ipc_pid_uts_host_modes",
    "HostConfig.Privileged": "api/test_security_options.py::test_privileged",
    "HostConfig.ReadonlyRootfs": "api/test_security_options.py::test_read_only_rootfs",
    "HostConfig.SecurityOpt": "api/test_security_options.py::test_seccomp_default_unconfined_and_custom",
    "HostConfig.UTSMode": "api/test_security_options.py::test_ipc_pid_uts_host_modes",
    "HostConfig.UsernsMode": "api/test_security_options.py::test_userns_and_cgroupns_modes",
    "HostConfig.ShmSize": "api/test_limits.py::test_ulimits_and_shm_size_seen_inside",
    "HostConfig.Sysctls": "api/test_security_options.py::test_namespaced_sysctls",
    "HostConfig.Runtime": "e2e/test_other_runtimes.py::test_run_with_runtime",
    "HostConfig.Isolation": "api/test_refused_fields.py::test_isolation",
    "HostConfig.MaskedPaths": "api/test_security_options.py::test_default_profile_paths_devices_and_workdir",
    "HostConfig.ReadonlyPaths": "api/test_security_options.py::test_default_profile_paths_devices_and_workdir",
}


def _schema_fields(path: Path) -> dict[str, set[str]]:
    d = yaml.safe_load(path.read_text())
    defs = d["definitions"]

    def props(name: str) -> set[str]:
        out: set[str] = set()
        s = defs[name]
        for part in s.get("allOf", [s]):
            if "$ref" in part:
                out |= props(part["$ref"].split("/")[-1])
            else:
                out |= set(part.get("properties", {}))
        return out
    return {"Config": props("ContainerConfig"), "HostConfig": props("HostConfig")}


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.stem)
def test_every_schema_field_is_in_the_table(schema):
    got = _schema_fields(schema)
    assert got["Config"] and got["HostConfig"]
    missing = sorted(f"Config.{k}" for k in got["Config"] - set(fields.CONFIG))
    missing += sorted(f"HostConfig.{k}" for k in got["HostConfig"] - set(fields.HOST_CONFIG))
    assert not missing, f"fields with no entry in containers/fields.py: {missing}"


def _test_exists(ref: str) -> bool:
    path, _, name = ref.partition("::")
    tree = ast.parse((TESTS / path).read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def test_every_applied_field_names_a_test_that_exists():
    want = {f"{w}.{k}" for w, t in (("Config", fields.CONFIG), ("HostConfig", fields.HOST_CONFIG))
            for k, f in t.items() if f.status in (fields.APPLIED, fields.RECORDED)}
    assert want - set(PROOF) == set(), "applied fields without a test"
    assert set(PROOF) - want == set(), "tests listed for fields that are not applied"
    bad = [ref for ref in PROOF.values() if not _test_exists(ref)]
    assert not bad, bad


def test_empty_values_ask_for_nothing():
    assert fields.empty(None) and fields.empty(0) and fields.empty("") and fields.empty([]) and fields.empty({})
    assert fields.empty({"Name": "", "MaximumRetryCount": 0}) and fields.empty([0, 0])
    assert not fields.empty(True) and not fields.empty(1) and not fields.empty(["x"]) and not fields.empty({"a": 1})


def test_readme_shows_the_table():
    readme = (TESTS.parent / "README.md").read_text()
    start, end = "<!-- fields-table:start -->\n", "\n<!-- fields-table:end -->"
    shown = readme[readme.index(start) + len(start):readme.index(end)]
    assert shown == fields.table_markdown(), "README's table is stale: paste fields.table_markdown()"
