"""Returning freed heap to the operating system after a poll that parsed a document.

A changed exchangeInfo poll parses the whole 3-4 MB body: ~120 MB of Python objects at
its peak, all freed when the poll ends. glibc keeps that memory in its arenas, so one
changed poll would pin the poller's RSS at its peak for good. ``malloc_trim`` hands
it back (a few milliseconds); elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_freed_memory() -> bool:
    """Trim the heap; True if the allocator gave memory back."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
