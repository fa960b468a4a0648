"""Run the whole probe suite (tests/probes, slow probes included) and record which probes pass.

    python benchmarks/probes.py            # -> benchmarks/results/probes.json

A probe counts as passed when its test passes. An expected failure (``xfail``: an issue-14 item whose fix has not
landed) is *failing* and listed with its reason; a strict xfail that unexpectedly passes fails its test and is
listed too, so the table never hides a probe. The JSON keeps the keys issue 14 names: ``probes`` (count),
``passed`` and ``failing`` (list), plus the command, wall time and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._machine import cpu_model  # noqa: E402

#: tests in the probe folder that check the tables themselves rather than run a probe
NOT_PROBES = ("test_probe_ids_are_unique",)


def run(out: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "probes.xml"
        command = [sys.executable, "-m", "pytest", "tests/probes", "-m", "slow or not slow", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", "--timeout=600"]
        load = os.getloadavg()
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - started
        if not junit.exists():
            raise SystemExit(f"pytest wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        cases = ET.parse(junit).getroot().iter("testcase")
        probes, passed, failing = 0, 0, []
        for case in cases:
            name = case.get("name", "")
            if name.startswith(NOT_PROBES):
                continue
            probes += 1
            probe_id = name[name.find("[") + 1 : -1] if "[" in name else name
            kind = "http" if "http" in case.get("classname", "") else "cli"
            skipped, failure = case.find("skipped"), case.find("failure") if case.find("failure") is not None else case.find("error")
            if failure is not None:
                failing.append({"probe": probe_id, "kind": kind, "why": (failure.get("message") or "failed")[:300]})
            elif skipped is not None:
                # pytest's junit report writes xfailed tests as skipped with type pytest.xfail
                failing.append({"probe": probe_id, "kind": kind, "why": (skipped.get("message") or "skipped")[:300]})
            else:
                passed += 1
    result = {
        "benchmark": "probes",
        "probes": probes,
        "passed": passed,
        "failing": failing,
        "command": "python benchmarks/probes.py  (runs: " + " ".join(["pytest", *command[3:-2]]) + ")",
        "pytest_exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_at_start": load,
                    "python": platform.python_version()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "probes.json")
    args = ap.parse_args()
    result = run(args.out)
    print(json.dumps({k: result[k] for k in ("probes", "passed", "failing", "wall_s")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
