"""``keep_freed_memory()``: let glibc's malloc reuse freed memory instead of unmapping it.

By default glibc hands every freed block of 128 KiB or more back to the kernel (``munmap``,
or trimming the top of the heap once more than 128 KiB is free there), so the next numpy
array of that size page-faults all of its pages in again, zeroed: on this project's 2-core VM
about 1.5 ms per MiB.  Reading and summarizing a run of a million requests makes thousands of
such temporaries (a few MiB each, block after block), and that churn alone cost about 1.5 s of
``qpsweep report``'s 10 s.  ``keep_freed_memory`` raises both thresholds with ``mallopt``
(``M_MMAP_THRESHOLD`` to ``MMAP_THRESHOLD_BYTES``, ``M_TRIM_THRESHOLD`` to
``TRIM_THRESHOLD_BYTES``): blocks come from the heap and stay there for the next ones, and the
process keeps its peak memory until it exits.  For short commands that exit when done (it is
process-wide); a no-op without glibc's ``mallopt``.  Returns whether it took effect.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 2**20
TRIM_THRESHOLD_BYTES = 1024 * 2**20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and done)
