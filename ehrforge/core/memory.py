"""This process's memory: its peak resident size, and handing freed heap pages back to the OS between stages.

Task-agnostic; used by the CLI, the recipes, core SFT and every benchmark.
"""

from __future__ import annotations

import ctypes
import gc
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    ``/proc/self/status`` VmHWM first: Linux carries ``ru_maxrss`` across ``execve``, so a benchmark arm started as
    a child process (``subprocess``) would otherwise report its parent's peak whenever that was higher.
    ``getrusage`` where there is no ``/proc`` (it reports KiB on Linux).

    >>> peak_rss_mb() > 0
    True
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_freed_memory() -> None:
    """Collect garbage, then hand the C heap's free pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Between the stages of one process (evaluate, train, evaluate again) glibc keeps freed tensor memory in its
    heap, so each stage's peak stacks on what the last one left: the SQL demo peaked at 4.6 GB while every stage
    alone stays under 2.5 GB (docs/sql.md).
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass
