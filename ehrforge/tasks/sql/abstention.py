"""The SQL abstention policy: one ordered list of small steps, used live and when tuning the threshold.

    model said "null"  →  uncertainty over threshold  →  guard  →  execute (read-only, limits)  →  empty result

Each step takes an :class:`Answer` and returns it (possibly with more evidence) or an :class:`Abstain` with the
reason; the first abstention ends the pipeline (sqlglot's optimizer ``RULES`` style). Tuning the entropy threshold
runs the same steps without the threshold once, then only *relabels* answers whose uncertainty is over each
candidate threshold with the very same step — there is no second implementation of the policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehrforge.core.types import ABSTAIN_TOKEN, Abstain, Answer, Prediction
from ehrforge.errors import SQLGuardError


@dataclass
class PolicyContext:
    """What the steps read: one set of limits, the same live and when tuning."""

    db: str | Path | None
    entropy: str = "max"
    threshold: float | None = None
    execution_filter: bool = True
    max_rows: int = 1000
    timeout_s: float = 5.0


Step = Callable[[Answer, PolicyContext], Prediction]


def model_said_null(pred: Answer, ctx: PolicyContext) -> Prediction:
    """The model may answer the literal ``null`` (it learned unanswerable questions in SFT)."""
    sql = str(pred.value or "").strip().lower().strip("'\" ")
    if not sql or sql == ABSTAIN_TOKEN:
        return Abstain("the model judged the question unanswerable", pred.confidence)
    return pred


def over_threshold(pred: Answer, ctx: PolicyContext) -> Prediction:
    """Token-entropy uncertainty above the (tuned) threshold abstains."""
    u = pred.evidence.get("uncertainty", 0.0)
    if ctx.threshold is not None and u > ctx.threshold:
        return Abstain(f"uncertain: {ctx.entropy} token entropy {u:.3f} > {ctx.threshold:.3f}", pred.confidence, withheld=pred)
    return pred


def guard(pred: Answer, ctx: PolicyContext) -> Prediction:
    """Exactly one read-only SELECT over known tables and columns (sqlglot AST)."""
    from ehrforge.tasks.sql.guard import check_sql

    if not ctx.execution_filter:
        return pred
    try:
        check_sql(pred.value)
    except SQLGuardError as exc:
        return Abstain(f"SQL rejected: {exc.message}", pred.confidence)
    return pred


def execute(pred: Answer, ctx: PolicyContext) -> Prediction:
    """Run read-only with the row and time limits; an error abstains."""
    from ehrforge.tasks.sql.execute import execute_readonly

    if not ctx.execution_filter or ctx.db is None:
        return pred
    try:
        result = execute_readonly(ctx.db, pred.value, max_rows=ctx.max_rows, timeout_s=ctx.timeout_s)
    except SQLGuardError as exc:  # the guard or the database refused this query: abstain on it
        return Abstain(f"SQL failed: {exc.message}", pred.confidence)
    # A DatabaseError (the database cannot be opened) propagates: it is not an answer about this question.
    return Answer(pred.value, pred.confidence, {**pred.evidence, "result": result})


def empty_result(pred: Answer, ctx: PolicyContext) -> Prediction:
    """An empty result is not an answer a clinician can use."""
    result = pred.evidence.get("result")
    if ctx.execution_filter and result is not None and not result.rows:
        return Abstain("SQL returned no rows", pred.confidence)
    return pred


#: the policy, in order
POLICY: tuple[Step, ...] = (model_said_null, over_threshold, guard, execute, empty_result)


def apply_policy(pred: Prediction, ctx: PolicyContext, *, skip: Sequence[Step] = ()) -> Prediction:
    for step in POLICY:
        if isinstance(pred, Abstain):
            return pred
        if step not in skip:
            pred = step(pred, ctx)
    return pred


@dataclass
class ThresholdChoice:
    threshold: float | None  # None: never abstain on entropy
    entropy: str
    penalty: int
    rs: float
    curve: list[tuple[float | None, float]] = field(default_factory=list)  # (threshold, RS(c)) for the report

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "entropy": self.entropy, "penalty": self.penalty, "rs": self.rs,
                "curve": [[t, rs] for t, rs in self.curve]}


def candidate_thresholds(uncertainties: Sequence[float]) -> list[float | None]:
    """``None`` (never abstain on entropy), an "abstain on everything" value below the smallest uncertainty, and
    the midpoints between consecutive observed uncertainties (never an observed value, so a tie cannot flip).

    >>> candidate_thresholds([0.4, 0.2, 0.2, 1.0])
    [None, 0.1, 0.30000000000000004, 0.7]
    """
    values = sorted({u for u in uncertainties if math.isfinite(u)})
    if not values:
        return [None]
    return [None, values[0] / 2, *((a + b) / 2 for a, b in zip(values, values[1:]))]


def tune_threshold(task: Any, records: Sequence[Any], raw: Sequence[Prediction], penalty: int) -> ThresholdChoice:
    """Choose the threshold maximising RS(``penalty``) on dev records; ``raw`` are parsed, pre-policy predictions.
    Ties keep the candidate that abstains least."""
    from ehrforge.tasks.sql.score import rs_table

    ctx = task.policy_context(threshold=None)
    policed = [apply_policy(p, ctx, skip=(over_threshold,)) for p in raw]
    real = task.gold_answers(records)
    answered = task.executed_answers(records, policed)  # executes each answer once
    key = f"RS{penalty}" if penalty in (0, 5, 10) else "RSN"

    def rs_at(t: float | None) -> float:
        at = PolicyContext(ctx.db, ctx.entropy, t)
        pred = {r["id"]: (ABSTAIN_TOKEN if isinstance(p, Abstain) or isinstance(over_threshold(p, at), Abstain)
                          else answered[r["id"]]) for r, p in zip(records, policed)}
        return rs_table(real, pred)[key]

    uncertainties = [p.evidence.get("uncertainty", 0.0) for p in policed if isinstance(p, Answer)]
    curve = [(t, rs_at(t)) for t in candidate_thresholds(uncertainties)]
    best_t, best_rs = curve[0]
    for t, rs in sorted(curve[1:], key=lambda c: -c[0]):  # highest threshold (fewest abstentions) first on ties
        if rs > best_rs:
            best_t, best_rs = t, rs
    return ThresholdChoice(best_t, ctx.entropy, penalty, best_rs, curve)


def abstention_counts(preds: Sequence[Prediction]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for p in preds:
        if isinstance(p, Abstain):
            kind = p.reason.split(":")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
    return reasons
