import subprocess
import sys
from pathlib import Path

import pytest

from ehrforge.core.memory import peak_rss_mb


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_of_a_child_process_is_its_own_not_its_parents():
    # Linux carries ru_maxrss across execve: a benchmark arm run as a child of a parent that once held 400 MB more
    # would report the parent's peak. The child here holds almost nothing.
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    parent = peak_rss_mb()
    out = subprocess.run([sys.executable, "-c", "from ehrforge.core.memory import peak_rss_mb; print(peak_rss_mb())"],
                         capture_output=True, text=True, check=True)
    del ballast
    assert float(out.stdout) < parent - 200


RSS_AFTER_FREEING = """
from ehrforge.core.memory import release_freed_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

blocks = [bytes(2048) for _ in range(200_000)]  # ~400 MB of heap chunks, below glibc's mmap threshold
kept = blocks[::10]  # one live chunk in ten: the heap cannot shrink from its top
del blocks
before = rss_mb()
release_freed_memory()
print(before - rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or sys.platform != "linux", reason="needs Linux glibc")
def test_release_freed_memory_hands_fragmented_heap_pages_back():
    out = subprocess.run([sys.executable, "-c", RSS_AFTER_FREEING], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 150  # MB returned that free() alone kept
