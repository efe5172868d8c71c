"""The devices cgroup on cgroup v2: there is no devices.allow file, the rules become an eBPF
program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup (as runc's
devicefilter). Each rule is a block that jumps to the next one on a mismatch; the last rule
that matches decides, so the blocks are emitted last rule first; no match denies."""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

from ..linux.syscalls import libc

SYS_bpf = 321
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_PROG_QUERY = 5, 8, 9, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_TYPE = {"c": 2, "b": 1}              # BPF_DEVCG_DEV_CHAR / _BLOCK
_ACCESS = {"m": 1, "r": 2, "w": 4}    # BPF_DEVCG_ACC_MKNOD / _READ / _WRITE


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


LDX_W, AND_K, RSH_K, MOV_X, MOV_K, JNE_K, EXIT = 0x61, 0x57, 0x77, 0xBF, 0xB7, 0x55, 0x95


def program(rules: list[dict[str, Any]]) -> bytes:
    """The filter for OCI `linux.resources.devices` rules."""
    out = [
        _insn(LDX_W, 2, 1, 0), _insn(AND_K, 2, imm=0xFFFF),   # r2 = type
        _insn(LDX_W, 3, 1, 0), _insn(RSH_K, 3, imm=16),       # r3 = access
        _insn(LDX_W, 4, 1, 4),                                # r4 = major
        _insn(LDX_W, 5, 1, 8),                                # r5 = minor
    ]
    for rule in reversed(rules):
        block: list[bytes] = []
        t = rule.get("type", "a")
        if t in _TYPE:
            block.append(_insn(JNE_K, 2, imm=_TYPE[t]))
        acc = sum(_ACCESS[a] for a in set(rule.get("access") or "rwm") if a in _ACCESS)
        if acc != 7:   # every asked bit must be allowed: (access & ~acc) == 0
            block += [_insn(MOV_X, 1, 3), _insn(AND_K, 1, imm=~acc), _insn(JNE_K, 1, imm=0)]
        if rule.get("major") not in (None, -1):
            block.append(_insn(JNE_K, 4, imm=int(rule["major"])))
        if rule.get("minor") not in (None, -1):
            block.append(_insn(JNE_K, 5, imm=int(rule["minor"])))
        decide = [_insn(MOV_K, 0, imm=1 if rule.get("allow") else 0), _insn(EXIT)]
        # each conditional jump skips what remains of the block
        fixed = []
        for i, ins in enumerate(block):
            code = ins[0]
            if code == JNE_K:
                remaining = len(block) - i - 1 + len(decide)
                fixed.append(struct.pack("<BBhi", code, ins[1], remaining, struct.unpack("<i", ins[4:])[0]))
            else:
                fixed.append(ins)
        out += fixed + decide
        if not block:   # matches everything: what follows could never run (the verifier refuses it)
            return b"".join(out)
    out += [_insn(MOV_K, 0, imm=0), _insn(EXIT)]
    return b"".join(out)


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, len(attr))
    rc = libc.syscall(SYS_bpf, cmd, buf, len(attr))
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return int(rc)


def load(rules: list[dict[str, Any]]) -> int:
    """Load the program; its fd."""
    code = program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"Apache")
    attr = struct.pack("<IIQQIIQII", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, ctypes.addressof(insns),
                       ctypes.addressof(lic), 0, 0, 0, 0, 0)
    attr += bytes(128 - len(attr))
    return _bpf(BPF_PROG_LOAD, attr)


def attach(cgroup_dir: str, rules: list[dict[str, Any]]) -> None:
    """Replace the container cgroup's device filter with one for `rules`."""
    prog = load(rules)
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = _attached(cg)
        _bpf(BPF_PROG_ATTACH, struct.pack("<IIII", cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) + bytes(112))
        for fd in old:   # the new one holds before the old ones go
            try:
                _bpf(BPF_PROG_DETACH, struct.pack("<IIII", cg, fd, BPF_CGROUP_DEVICE, 0) + bytes(112))
            finally:
                os.close(fd)
    finally:
        os.close(cg)
        os.close(prog)


def _attached(cg: int) -> list[int]:
    """fds of the device programs already attached to a cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = bytearray(struct.pack("<IIIIQI", cg, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64) + bytes(96))
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    if libc.syscall(SYS_bpf, BPF_PROG_QUERY, buf, len(attr)) < 0:
        return []
    count = struct.unpack_from("<I", buf.raw, 24)[0]
    fds = []
    for pid in list(ids)[:count]:
        a = struct.pack("<I", pid) + bytes(124)   # BPF_PROG_GET_FD_BY_ID
        try:
            fds.append(_bpf(13, a))
        except OSError:
            pass
    return fds
