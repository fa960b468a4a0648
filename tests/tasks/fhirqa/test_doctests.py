"""Run the doctests of the fhirqa modules (reward functions and parsers document themselves by example)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["condense", "fhir_load", "meteor", "score", "synth", "selfeval", "task"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"ehrforge.tasks.fhirqa.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
