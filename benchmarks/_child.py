"""Run one benchmark arm in a child process of its own script, so the arm's peak RSS is its own."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_child(script: str, args: list[str], timeout: float) -> dict:
    """Run ``python script *args --child-out FILE``; the child writes its result as JSON to FILE.

    Returns that result with ``child_wall_s`` added, or ``{"error": <last stderr line>}`` when the child fails.
    """
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, script, *args, "--child-out", str(out)], timeout=timeout,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit {proc.returncode}"}
        result = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    result["child_wall_s"] = round(time.perf_counter() - t0, 1)
    return result
