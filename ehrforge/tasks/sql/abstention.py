"""Choose the token-entropy abstention threshold on the dev split to maximise RS(c).

Scoring the raw predictions once gives, per question, the executed answer and the uncertainty; sweeping a
threshold then only relabels items as abstained, so the sweep costs no model or database calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ehrforge.core.types import ABSTAIN_TOKEN, Abstain, Answer, Prediction
from ehrforge.tasks.base import Record


@dataclass
class ThresholdChoice:
    threshold: float | None  # None: never abstain on entropy
    entropy: str
    penalty: int
    rs: float
    curve: list[tuple[float, float]] = field(default_factory=list)  # (threshold, RS(c)) for the report


def tune_threshold(task, records: Sequence[Record], raw: Sequence[Prediction], penalty: int) -> ThresholdChoice:  # noqa: ANN001
    """``task`` is an SQLTask with a database; ``raw`` are predictions *before* the abstention policy."""
    from ehrforge.tasks.sql.score import execution_answers, rs_table

    real = task.gold_answers(records)
    sql = {r["id"]: (p.value if isinstance(p, Answer) else ABSTAIN_TOKEN) for r, p in zip(records, raw)}
    executed = execution_answers(task.db, sql, "pred")
    if task.policy.execution_filter:  # fixed part of the policy: errors and empty results abstain
        executed = {i: (ABSTAIN_TOKEN if a.startswith("error") or a == "[]" else a) for i, a in executed.items()}
    unc = {r["id"]: (p.evidence.get("uncertainty", 0.0) if isinstance(p, Answer) else math.inf) for r, p in zip(records, raw)}
    key = f"RS{penalty}" if penalty in (0, 5, 10) else "RSN"

    def rs_at(t: float | None) -> float:
        pred = {i: (ABSTAIN_TOKEN if t is not None and unc[i] > t else executed[i]) for i in executed}
        return rs_table(real, pred)[key]

    candidates = sorted({u for u in unc.values() if math.isfinite(u)})
    curve = [(t, rs_at(t)) for t in candidates]
    best_t, best_rs = None, rs_at(None)
    for t, rs in curve:
        if rs > best_rs:
            best_t, best_rs = t, rs
    return ThresholdChoice(best_t, task.policy.entropy, penalty, best_rs, curve)


def abstention_counts(preds: Sequence[Prediction]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for p in preds:
        if isinstance(p, Abstain):
            kind = p.reason.split(":")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
    return reasons
