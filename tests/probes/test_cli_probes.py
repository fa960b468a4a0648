"""Every command-line probe (cli_probes.PROBES) as one test: expected exit code, one clear error line, no traceback,
no submitted value, no half-written output."""

from __future__ import annotations

import pytest
from cli_probes import PROBES
from probe_kit import assert_cli_outcome, params, run_cli_probe


def test_probe_ids_are_unique():
    ids = [p.id for p in PROBES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("probe", params(PROBES))
def test_cli_probe(probe, tmp_path):
    outcome = run_cli_probe(probe, tmp_path / "work")
    assert_cli_outcome(probe, outcome, tmp_path / "work")
