"""Calibration: ECE against hand-computed values, and a real PNG on disk."""

from __future__ import annotations

import random

import pytest

from ehrforge.core.calibration import (
    calibration_summary,
    expected_calibration_error,
    reliability_bins,
    reliability_diagram,
)
from ehrforge.errors import DataError


def test_ece_hand_computed():
    # bin [0.6,0.7): 2 items, conf 0.65, acc 0.5 -> gap 0.15; bin [0.9,1.0]: 2 items, conf 0.95, acc 1.0 -> gap 0.05
    conf = [0.65, 0.65, 0.95, 0.95]
    ok = [True, False, True, True]
    assert expected_calibration_error(conf, ok) == pytest.approx(0.5 * 0.15 + 0.5 * 0.05)


def test_calibrated_scores_have_small_ece_and_overconfident_ones_large():
    rng = random.Random(0)
    conf = [rng.uniform(0.5, 1.0) for _ in range(4000)]
    calibrated = [rng.random() < c for c in conf]
    overconfident = [rng.random() < c - 0.3 for c in conf]
    assert expected_calibration_error(conf, calibrated) < 0.03
    assert expected_calibration_error(conf, overconfident) == pytest.approx(0.3, abs=0.03)


def test_bins_put_one_in_the_last_bin_and_keep_empty_bins():
    bins = reliability_bins([0.0, 1.0], [False, True], n_bins=5)
    assert [b.count for b in bins] == [1, 0, 0, 0, 1]
    assert bins[-1].accuracy == 1.0


def test_summary_reports_ranking_quality():
    s = calibration_summary([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert s["accuracy"] == 0.5
    assert s["accuracy_top_half"] == 1.0


def test_bad_input_is_one_clear_error():
    with pytest.raises(DataError, match="one outcome per confidence"):
        expected_calibration_error([0.5], [True, False])
    with pytest.raises(DataError, match="outside"):
        expected_calibration_error([1.5], [True])


def test_reliability_diagram_writes_a_png(tmp_path):
    out = tmp_path / "sub" / "reliability.png"
    summary = reliability_diagram([0.9, 0.7, 0.55, 0.95], [True, False, True, True], out, title="teacher")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert summary["n"] == 4
    assert not list(out.parent.glob(".*.tmp"))  # nothing half-written left behind
