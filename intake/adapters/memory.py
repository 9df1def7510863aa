"""The server process's allocator: fixed thresholds so that freed memory goes back to the OS.

Rules (``bound_process_memory``, called once at the start of ``serve`` and of every process
that serves sessions):

- Allocations of ``MMAP_THRESHOLD`` (1 MiB) or more get their own mapping, unmapped when
  freed. Why: every password check is an scrypt hash whose 16 MiB work buffer comes from
  ``malloc``. glibc's default threshold is dynamic: once a mapped 16 MiB block is freed
  (the first hash, at import), it rises above 16 MiB, so every later hash is carved out
  of the calling thread's malloc arena, and that arena keeps the 16 MiB resident after
  the hash is done (its trim threshold rose alike). Connections are threads, and threads
  spread over up to 8 arenas per core: measured, 65 MiB at start, then 149 MiB after 100
  short sessions, five arenas of 17 MiB each. With a fixed threshold (which also fixes
  the trim threshold at its 128 KiB default, so arenas give back their free tops) the
  same run stays at 69 MiB. 1 MiB is above anything the data path allocates per packet
  (an SSH packet is at most 256 KiB, FTPS reads 64 KiB), so transfers never pay for a
  mapping per packet.
- At most ``ARENAS_PER_CORE`` (2) malloc arenas per core instead of glibc's 8: what
  one arena keeps between sessions is multiplied by the arenas in use, and the GIL
  already serialises most allocation, so a few arenas suffice.
- Thread stacks are left at their default: only the pages a thread touched are resident
  (tens of KiB for a session thread), and exited threads' stacks are cached by glibc
  within a fixed bound.
- Without glibc (musl, macOS) nothing is changed and the answer (``MemoryBounds``) says
  so: the server runs, only without these bounds. ``serve`` logs nothing about it: its
  first lines belong to the lock and the ports (a second ``serve`` prints one line).
  Environment variables (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) are not
  needed; the calls here override them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

MMAP_THRESHOLD = 1 << 20  # bytes: allocations this large are mapped, and unmapped when freed
ARENAS_PER_CORE = 2

# mallopt parameters, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


@dataclass(frozen=True)
class MemoryBounds:
    """What ``bound_process_memory`` set: ``applied`` is False where glibc is absent (or
    refused a setting), and ``detail`` then says why, in one line."""

    applied: bool
    mmap_threshold: int | None = None
    arena_max: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        if not self.applied:
            return self.detail
        return (
            f"malloc: blocks of {self.mmap_threshold} bytes or more mapped apart,"
            f" at most {self.arena_max} arenas"
        )


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def arena_max(cores: int | None = None) -> int:
    """The malloc arenas allowed for ``cores`` cores (this machine's by default): 2 each,
    at least 2."""
    count = cores if cores is not None else (os.cpu_count() or 1)
    return max(2, ARENAS_PER_CORE * count)


def bound_process_memory() -> MemoryBounds:
    """Fix this process's malloc thresholds and arena count (see the module's rules).
    Never raises: where glibc is absent, or refuses a value, nothing (more) is changed."""
    libc = _glibc()
    if libc is None:
        return MemoryBounds(False, detail="not glibc: malloc left at its defaults")
    arenas = arena_max()
    if libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return MemoryBounds(False, detail="glibc refused M_MMAP_THRESHOLD")
    if libc.mallopt(_M_ARENA_MAX, arenas) != 1:
        return MemoryBounds(
            False, MMAP_THRESHOLD, detail="glibc refused M_ARENA_MAX (threshold set)"
        )
    return MemoryBounds(True, MMAP_THRESHOLD, arenas)
