"""Freed memory kept in the process (glibc's malloc): large CPU tensors without a page fault per op.

glibc's ``malloc`` serves a block above its mmap threshold (32 MiB at most) with a fresh ``mmap`` and unmaps it on
``free``, so the next block of that size faults in and zeroes every 4 KiB page again. CPU training and condensation
allocate such blocks at every op (one ConvNet-3 activation of a 256-image Fashion-MNIST batch, 256 x 128 x 28 x 28
float32, is 103 MB), and the kernel's page faults then take much of the CPU time (docs/benchmarks.md, "CPU
memory": the speed measured with and without).

:func:`keep_freed_memory` calls ``mallopt(3)`` with ``M_MMAP_MAX = 0`` (every block from the heap) and
``M_TRIM_THRESHOLD`` = 2 GiB - 1 (freed heap memory stays in the process): what starting the process with
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647`` does. Only where the bytes live
changes, so results are bit-identical; the cost is that the process's resident memory stays near its peak.
``ATOM_KEEP_FREED_MEMORY=0`` in the environment turns :func:`keep_freed_memory` into a no-op (to measure the
default, or to let a long-lived process give memory back).
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, glibc's malloc.h
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # the largest int mallopt takes: 2 GiB - 1 bytes
#: The environment variable that, set to ``0``, makes :func:`keep_freed_memory` change nothing.
OPT_OUT = "ATOM_KEEP_FREED_MEMORY"
#: The ``GLIBC_TUNABLES`` setting of the same effect (for processes started from a shell).
TUNABLES = f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={_TRIM_THRESHOLD}"
_applied = False


def keep_freed_memory() -> bool:
    """Make this process's glibc ``malloc`` keep freed memory instead of unmapping it (see the module docstring).

    :func:`atom_plugin.runner.run_script` (every example and benchmark) and the ``atom`` command line call it at
    their start; call it once at the start of your own CPU scripts. Process-wide, idempotent, and not undone.

    Returns:
        True when glibc took both settings (Linux with glibc); False elsewhere (macOS, Windows, musl) or with
        ``ATOM_KEEP_FREED_MEMORY=0`` in the environment, where nothing changes.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT, "").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc.gnu_get_libc_version  # glibc only (musl also has a mallopt, which does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    return _applied


def freed_memory_kept() -> bool:
    """True when this process keeps freed memory: :func:`keep_freed_memory` took effect, or the process started
    with ``GLIBC_TUNABLES`` holding ``glibc.malloc.mmap_max=0``. Result records say so (their ``freed_memory``),
    because CPU seconds measured either way are not comparable."""
    return _applied or "glibc.malloc.mmap_max=0" in os.environ.get("GLIBC_TUNABLES", "").split(":")
