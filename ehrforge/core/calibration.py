"""Is a confidence score worth filtering on? Reliability diagram (PNG) and expected calibration error (ECE).

A teacher whose 0.9-confidence labels are right 90% of the time is *calibrated*; then a threshold of 0.9 keeps labels
with ~10% noise. ECE is the bin-weighted mean gap |accuracy - mean confidence| over equal-width confidence bins
(Guo et al., 2017). A confidence can be useful for *ranking* even when badly calibrated, so the report also gives
the accuracy of the most confident half (``accuracy_top_half``) next to the overall accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ehrforge.core.io import atomic_open
from ehrforge.errors import DataError


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


def _check(confidences: Sequence[float], correct: Sequence[bool]) -> None:
    if len(confidences) != len(correct):
        raise DataError(
            f"calibration needs one outcome per confidence ({len(confidences)} != {len(correct)})",
            "pass equally long lists",
        )
    bad = [i for i, c in enumerate(confidences) if not (0.0 <= float(c) <= 1.0)]
    if bad:
        raise DataError(f"confidences outside [0, 1] at positions {bad[:5]}", "map scores to probabilities first")


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[CalibrationBin]:
    """Equal-width bins over [0, 1]; confidence 1.0 falls in the last bin. Empty bins are kept (count 0).

    >>> [b.count for b in reliability_bins([0.05, 0.95, 1.0], [False, True, True], n_bins=2)]
    [1, 2]
    """
    _check(confidences, correct)
    sums = [[0, 0.0, 0] for _ in range(n_bins)]  # count, sum of confidence, number correct
    for c, ok in zip(confidences, correct):
        i = min(int(float(c) * n_bins), n_bins - 1)
        sums[i][0] += 1
        sums[i][1] += float(c)
        sums[i][2] += int(bool(ok))
    return [
        CalibrationBin(
            lower=i / n_bins,
            upper=(i + 1) / n_bins,
            count=n,
            mean_confidence=s / n if n else 0.0,
            accuracy=k / n if n else 0.0,
        )
        for i, (n, s, k) in enumerate(sums)
    ]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE = sum over bins of (bin share) * |accuracy - mean confidence|.

    >>> expected_calibration_error([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [True] * 9 + [False])
    0.0
    >>> round(expected_calibration_error([0.9, 0.9], [False, False]), 2)
    0.9
    """
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b.count for b in bins)
    if total == 0:
        return 0.0
    ece = sum(b.count / total * abs(b.accuracy - b.mean_confidence) for b in bins)
    return round(ece, 12)  # drop float dust so exact calibration reads as 0.0


def calibration_summary(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> dict[str, object]:
    """ECE, overall accuracy, mean confidence, accuracy of the most confident half, and the bins."""
    bins = reliability_bins(confidences, correct, n_bins)
    n = len(confidences)
    ranked = sorted(zip(confidences, correct), key=lambda t: -float(t[0]))
    top = ranked[: max(1, n // 2)] if n else []
    return {
        "n": n,
        "ece": expected_calibration_error(confidences, correct, n_bins),
        "accuracy": sum(map(bool, correct)) / n if n else 0.0,
        "mean_confidence": sum(map(float, confidences)) / n if n else 0.0,
        "accuracy_top_half": sum(bool(ok) for _, ok in top) / len(top) if top else 0.0,
        "bins": [asdict(b) for b in bins],
    }


def reliability_diagram(
    confidences: Sequence[float],
    correct: Sequence[bool],
    out_png: str | os.PathLike,
    *,
    n_bins: int = 10,
    title: str = "Reliability diagram",
) -> dict[str, object]:
    """Draw accuracy per confidence bin against the diagonal, with a histogram of confidences underneath; write the
    PNG atomically and return :func:`calibration_summary`."""
    import matplotlib

    matplotlib.use("Agg")  # headless servers: never try to open a window
    import matplotlib.pyplot as plt

    summary = calibration_summary(confidences, correct, n_bins)
    bins = reliability_bins(confidences, correct, n_bins)
    centers = [(b.lower + b.upper) / 2 for b in bins]
    width = 1.0 / n_bins
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    try:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        ax.bar(
            [c for c, b in zip(centers, bins) if b.count],
            [b.accuracy for b in bins if b.count],
            width=width * 0.9,
            color="#4C72B0",
            edgecolor="black",
            label="accuracy in bin",
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}\nECE = {summary['ece']:.3f}  (n = {summary['n']})")
        ax.legend(loc="upper left")
        hist.bar(centers, [b.count for b in bins], width=width * 0.9, color="#DD8452", edgecolor="black")
        hist.set_xlim(0, 1)
        hist.set_xlabel("confidence")
        hist.set_ylabel("count")
        fig.tight_layout()
        out_png = Path(out_png)
        with atomic_open(out_png, "wb") as fh:
            fig.savefig(fh, format="png", dpi=100)
    finally:
        plt.close(fig)
    return summary
