"""MedCalc-Bench answer checking, re-implemented without ``eval``.

Rules (``evaluation/evaluate.py`` of ncbi-nlp/MedCalc-Bench): dates must match exactly (MM/DD/YYYY); gestational
age must match as a (weeks, days) tuple; integer calculators are correct when the rounded answer equals the ground
truth; decimal calculators when the answer lies within [lower, upper] = ±5 % of the ground truth. The official code
``eval``s model output, which we never do; ``tests/tasks/calc/test_score.py`` checks agreement with it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from ehrforge.core.types import Abstain, Answer

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
NUMBER = re.compile(r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?|[-−]?\.\d+")
DATE_US = re.compile(r"\b(\d{1,2})[/-](\d{1,2})[/-](\d{4})\b")
DATE_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
# MedCalc-Bench's own pattern for "(34 weeks, 3 days)", "('34 weeks', '3 days')", "(34, 3)".
WEEKS_DAYS = re.compile(r"\(?[\"']?(\d+)\s*(weeks?)?[\"']?,?\s*[\"']?(\d+)\s*(days?)?[\"']?\s*\)?")


def extract_tag(text: str) -> str | None:
    """Content of the last ``<answer>…</answer>`` (models sometimes restate a draft first)."""
    found = ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


def parse_value(text: str, answer_format: str) -> Any:
    """The answer as a comparable value (float, date or (weeks, days)), or None when it does not parse.

    >>> parse_value("about 12.5 mL/min", "decimal"), parse_value("03/04/2021", "date"), parse_value("(34 weeks, 3 days)", "weeks_days")
    (12.5, datetime.date(2021, 3, 4), (34, 3))
    """
    text = text.strip()
    try:
        if answer_format == "date":
            m = DATE_US.search(text)
            if m:
                return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
            m = DATE_ISO.search(text)
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
        if answer_format == "weeks_days":
            m = WEEKS_DAYS.search(text)
            return (int(m.group(1)), int(m.group(3))) if m else None
    except ValueError:  # 02/30/2021
        return None
    m = NUMBER.search(text)
    return float(m.group(0).replace(",", "").replace("−", "-")) if m else None


def is_correct(
    answer: str,
    ground_truth: str,
    answer_format: str,
    lower: str | float | None = None,
    upper: str | float | None = None,
) -> bool:
    """MedCalc-Bench correctness of one answer string against the ground truth.

    >>> is_correct("83.0", "83.333", "decimal", "79.166", "87.5"), is_correct("3.4", "3", "integer"), is_correct("3.6", "3", "integer")
    (True, True, False)
    """
    got = parse_value(answer, answer_format)
    gold = parse_value(ground_truth, answer_format)
    if got is None or gold is None:
        return False
    if answer_format in ("date", "weeks_days"):
        return got == gold
    if answer_format == "integer":
        return round(got) == round(gold)  # Python's round, as upstream (banker's rounding at .5)
    lo = float(lower) if lower not in (None, "") else min(gold * 0.95, gold * 1.05)
    hi = float(upper) if upper not in (None, "") else max(gold * 0.95, gold * 1.05)
    lo, hi = min(lo, hi), max(lo, hi)  # upstream computes 0.95/1.05 × gold, which inverts for negative values
    return lo <= got <= hi


def prediction_correct(record: dict[str, Any], prediction: Answer | Abstain) -> bool:
    if not isinstance(prediction, Answer):
        return False
    return is_correct(
        str(prediction.value),
        str(record["ground_truth"]),
        record["answer_format"],
        record.get("lower_limit"),
        record.get("upper_limit"),
    )


def score_predictions(records: Sequence[dict[str, Any]], predictions: Sequence[Answer | Abstain]) -> dict[str, float]:
    """``accuracy`` overall, ``accuracy/<calculator>`` and ``accuracy/<output_type>``, plus ``abstain_rate`` and
    counts ``n`` / ``n_<...>`` (``n_`` keys are hidden by ``metrics_table``). An abstention counts as wrong (MedCalc-Bench has no abstain option)."""
    hits: dict[str, list[bool]] = defaultdict(list)
    abstained = 0
    for record, pred in zip(records, predictions):
        ok = prediction_correct(record, pred)
        abstained += not isinstance(pred, Answer)
        for key in ("accuracy", f"accuracy/{record['calculator']}", f"accuracy/{record['output_type']}"):
            hits[key].append(ok)
    n = len(hits["accuracy"])
    out: dict[str, float] = {
        "accuracy": sum(hits["accuracy"]) / n if n else 0.0,
        "abstain_rate": abstained / n if n else 0.0,
        "n": float(n),
    }
    for key in sorted(k for k in hits if k != "accuracy"):
        out[key] = sum(hits[key]) / len(hits[key])
        out["n_" + key.split("/", 1)[1]] = float(len(hits[key]))
    return out


def breakdown_table(
    results: dict[str, dict[str, float]], title: str = "calc accuracy by calculator and output type"
) -> Any:
    """A rich table with one row per calculator / output type and one column per model (``evaluate``'s result):
    the per-calculator view that a one-row-per-model table cannot show for 45 calculators."""
    from rich.table import Table

    models = list(results)
    keys = sorted(
        {k for m in results.values() for k in m if k.startswith("accuracy/")},
        key=lambda k: (k.split("/")[1] not in ("decimal", "integer", "date"), k),
    )
    table = Table(title=title)
    table.add_column("group", style="bold")
    table.add_column("n", justify="right")
    for name in models:
        table.add_column(name, justify="right")
    for key in ["accuracy", *keys]:
        group = key.split("/", 1)[1] if "/" in key else "all"
        n = next((m.get("n_" + group, m.get("n")) for m in results.values() if key in m), None)
        cells = [f"{results[m][key]:.3f}" if key in results[m] else "—" for m in models]
        table.add_row(group, "" if n is None else str(int(n)), *cells)
    return table
