"""Seccomp: compile an OCI `linux.seccomp` profile with libseccomp (via ctypes) and load it."""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any

try:   # the builtin digest, not hashlib's OpenSSL: libcrypto is ~1.9 MiB of a monitor's memory (measured)
    from _sha256 import sha256
except ImportError:   # Python ≥ 3.12 names it _sha2
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ACT_TRACE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_NNP = 3
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_ARCH = {"SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0x4000003E,
         "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompError(Exception):
    """The profile could not be compiled or loaded."""


def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise SeccompError(f"libseccomp is not installed: {e}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _action(name: str, errno_ret: int | None, default_errno: int) -> int:
    if name == "SCMP_ACT_ERRNO":
        return SCMP_ACT_ERRNO | ((errno_ret if errno_ret is not None else default_errno) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return SCMP_ACT_TRACE | ((errno_ret or default_errno) & 0xFFFF)
    table = {"SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
             "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS, "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
             "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW, "SCMP_ACT_LOG": SCMP_ACT_LOG}
    if name not in table:
        raise SeccompError(f"unknown seccomp action {name}")
    return table[name]


class Filter:
    """A compiled filter (classic BPF), prepared before pivot_root and loaded just before exec.

    Compiling Docker's profile with libseccomp takes ~10 ms (measured), so the program is
    cached by the profile's digest in `cache_dir` and loaded with prctl(PR_SET_SECCOMP)."""

    def __init__(self, profile: dict[str, Any], cache_dir: str | None = None) -> None:
        key = sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()
        path = os.path.join(cache_dir, key + ".bpf") if cache_dir else None
        self.path = path   # where the compiled program is kept (None: not kept)
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                self.bpf = f.read()
            return
        self._compile(profile)
        r, w = os.pipe()
        try:
            rc = self.lib.seccomp_export_bpf(self.ctx, w)
            os.close(w)
            w = -1
            if rc < 0:
                raise SeccompError(f"seccomp_export_bpf: error {rc}")
            chunks = []
            while True:
                b = os.read(r, 65536)
                if not b:
                    break
                chunks.append(b)
            self.bpf = b"".join(chunks)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
            self.lib.seccomp_release(self.ctx)
        if path:
            os.makedirs(cache_dir, exist_ok=True)  # type: ignore[arg-type]
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(self.bpf)
            os.replace(tmp, path)

    def _compile(self, profile: dict[str, Any]) -> None:
        self.lib = _lib()
        default_errno = int(profile.get("defaultErrnoRet") or 1)
        self.ctx = self.lib.seccomp_init(_action(profile.get("defaultAction", "SCMP_ACT_ALLOW"),
                                                 profile.get("defaultErrnoRet"), 1))
        if not self.ctx:
            raise SeccompError("seccomp_init failed")
        self.lib.seccomp_attr_set(self.ctx, SCMP_FLTATR_CTL_NNP, 0)
        native = _NATIVE.get(os.uname().machine)
        for a in profile.get("architectures") or []:
            if a in _ARCH and a != native:
                self.lib.seccomp_arch_add(self.ctx, _ARCH[a])  # EEXIST for native is fine
        for rule in profile.get("syscalls") or []:
            act = _action(rule["action"], rule.get("errnoRet"), default_errno)
            args = rule.get("args") or []
            for name in rule.get("names") or ([rule["name"]] if "name" in rule else []):
                nr = self.lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # not on this architecture / libseccomp
                self._add(act, nr, args)

    def _add(self, act: int, nr: int, args: list[dict[str, Any]]) -> None:
        idx = [a["index"] for a in args]
        groups = [args] if len(set(idx)) == len(idx) else [[a] for a in args]
        for g in groups:
            arr = (_ArgCmp * max(1, len(g)))()
            for i, a in enumerate(g):
                arr[i] = _ArgCmp(int(a["index"]), _OPS[a["op"]], int(a.get("value", 0)), int(a.get("valueTwo", 0)))
            rc = self.lib.seccomp_rule_add_array(self.ctx, act, nr, len(g), arr)
            if rc < 0 and rc != -17:  # -EEXIST: duplicate rule
                raise SeccompError(f"seccomp rule for syscall {nr}: error {rc}")

    def load(self) -> None:
        """Install the filter on the calling thread: prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)."""
        n = len(self.bpf) // 8
        buf = ctypes.create_string_buffer(self.bpf, len(self.bpf))
        prog = _SockFprog(n, ctypes.cast(buf, ctypes.c_void_p))
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            raise SeccompError(f"prctl(PR_SET_SECCOMP): errno {ctypes.get_errno()}")
