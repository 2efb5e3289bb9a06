"""Fewer C heaps for the operator's threads.

glibc's malloc gives each thread that allocates an arena of its own, up to eight per core, and keeps what is
freed in each. The operator runs some 60 threads (passes in two lanes, status writes, Events, the kubernetes
client's pool), each reading JSON answers larger than Python's small-object allocator takes: every arena
ends up holding its own high-water mark of freed buffers. `limit_arenas()` caps their number the way
`MALLOC_ARENA_MAX` does, from inside the process (an environment variable would have to be set by whoever
starts it). Call it before the threads start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc malloc's arenas at `arenas`; False where the C library is not glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, arenas) != 1:
        log.debug("malloc arenas not limited: mallopt(M_ARENA_MAX) refused")
        return False
    return True
