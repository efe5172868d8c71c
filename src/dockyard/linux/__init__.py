"""Thin ctypes wrappers over the Linux syscalls Python 3.11 does not expose. Bottom layer."""
