"""Run every docstring example in the package: reward functions, parsers and helpers document themselves with
doctests (TRL style), and a doctest that is never run is a claim nobody checks."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ehrforge"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if ">>>" in p.read_text(encoding="utf-8")
)


def run_doctests(name: str) -> doctest.TestResults:
    return doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = run_doctests(name)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"


BENCHMARKS = sorted(p.stem for p in (PACKAGE.parent / "benchmarks").glob("*.py") if ">>>" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_docstring_examples(name, monkeypatch):
    # The benchmarks' pure helpers (arm names, agreement figures) are what their JSON is built from. `benchmarks` is
    # a folder beside the package, importable from the repository root (it passed only after a test that put it there).
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    result = run_doctests(f"benchmarks.{name}")
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"
