"""Every benchmark script imports cleanly (a moved or renamed package name fails here, not in the next long run)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_module_imports(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module(f"benchmarks.{name}")
    if not name.startswith("_"):  # a script, not a helper: it runs only under `python benchmarks/<name>.py`
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
    assert module.__name__ in sys.modules
