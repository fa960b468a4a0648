"""EHRSQL 2024 reliability score RS(c), reimplemented with the official semantics.

The official program (``scoring_program/scoring.py`` + ``scoring_utils.py``, glee4810/ehrsql-2024, CC BY 4.0)
post-processes gold and predicted SQL, executes both, turns each result into a canonical string (numbers rounded to
3 decimals, rows sorted, first 100 rows kept), then scores each question:

====================  =========================  =====
question              system                     score
====================  =========================  =====
answerable            answer matches gold        +1
answerable            abstains (``"null"``)      0
answerable            wrong answer / SQL error   -1
unanswerable          abstains                   +1
unanswerable          answers anyway             -1
====================  =========================  =====

and RS(c) is the mean with every -1 replaced by -c. ``tests/tasks/sql/test_score.py`` runs the official program on
the same inputs and checks RS0/RS5/RS10/RSN are identical.

Two deliberate differences in *execution* (not in scoring): SQL runs through the guard and the read-only executor
with a time limit, so a guard violation or a timeout becomes ``error_pred`` / ``error_real`` exactly like an SQL
error in the official program (which would run a destructive or endless query as is).
"""

from __future__ import annotations

import os
from ast import literal_eval
from collections.abc import Iterable, Mapping
from typing import Any

from ehrforge.core.types import ABSTAIN_TOKEN, Abstain, Answer
from ehrforge.errors import DatabaseError, DataError
from ehrforge.tasks.sql.execute import QueryResult, execute_readonly
from ehrforge.tasks.sql.guard import post_process_sql

#: The official program compares only the first 100 (sorted) rows.
MAX_COMPARED_ROWS = 100
#: Results longer than this count as an error instead of being held in memory. The official program fetches every
#: row; EHRSQL gold answers are a handful of rows, so only runaway predictions (cross joins) ever reach this.
MAX_SCORED_ROWS = 100_000
#: Official scorer penalties reported by default (plus N = number of questions).
PENALTIES = (0, 5, 10)


def _process_item(item: Any) -> str:
    # Official: try round(float(item), 3), fall back to the item itself; always str().
    try:
        item = round(float(item), 3)
    except Exception:  # noqa: BLE001 - the official code uses a bare except; same fallback for every failure
        pass
    return str(item)


def process_answer(result: Any) -> str:
    """Canonical string of an execution result, exactly as the official ``process_answer``.

    ``result`` is a list of rows, a ``QueryResult``, an error tag such as ``"error_pred"``, or a stringified result
    as stored in EHRSQL's ``answer.json`` (parsed with ``literal_eval`` like the official code).

    >>> process_answer([(2.0004, "b"), (1, "a")])
    "[['1.0', 'a'], ['2.0', 'b']]"
    >>> process_answer("[['enterococcus sp.']]")
    "[['enterococcus sp.']]"
    >>> process_answer("error_pred")
    'error_pred'
    """
    if isinstance(result, QueryResult):
        result = result.rows
    if isinstance(result, str):
        try:
            result = literal_eval(result)
        except Exception:  # noqa: BLE001 - not a literal: it is an error tag or a plain string answer
            pass
    if isinstance(result, str):
        return result
    return str(sorted([[_process_item(c) for c in row] for row in result])[:MAX_COMPARED_ROWS])


def _as_sql(value: Any, key: str) -> str:
    """A prediction as the official program sees it: SQL text, or the abstention token ``"null"``."""
    if isinstance(value, Abstain) or value is None:
        return ABSTAIN_TOKEN
    if isinstance(value, Answer):
        value = value.value
    if not isinstance(value, str):
        raise DataError(f"prediction for id {key} is a {type(value).__name__}, not SQL text",
                        "give an SQL string, 'null' or an Abstain value")
    return value


def execution_answers(
    db_path: str | os.PathLike,
    sql_by_id: Mapping[str, Any],
    tag: str,
    *,
    timeout_s: float = 10.0,
    max_rows: int | None = MAX_SCORED_ROWS,
) -> dict[str, str]:
    """Execute every SQL (``tag`` is ``"real"`` for gold, ``"pred"`` for predictions) and return canonical answers.

    Abstentions stay ``"null"``; an SQL error, a guard violation or a timeout becomes ``"error_<tag>"``. Every row is
    needed because the official program sorts the full result before keeping 100, so a result with more than
    ``max_rows`` rows is also ``"error_<tag>"`` rather than a silently different answer (``None``: no limit).
    Raises ``DatabaseError`` once, up front, when the database is missing rather than marking every item wrong.
    """
    if tag not in ("real", "pred"):
        raise ValueError("tag must be 'real' or 'pred'")
    answers: dict[str, str] = {}
    checked_db = False
    for key, value in sql_by_id.items():
        sql = post_process_sql(_as_sql(value, key))
        if sql == ABSTAIN_TOKEN:
            answers[key] = ABSTAIN_TOKEN
            continue
        try:
            result = execute_readonly(db_path, sql, max_rows=max_rows, timeout_s=timeout_s)
            checked_db = True
            answers[key] = f"error_{tag}" if result.truncated else process_answer(result.rows)
        except DatabaseError:
            if not checked_db:
                raise
            answers[key] = f"error_{tag}"
        except Exception:  # noqa: BLE001 - the official scorer maps *any* execution failure to an error tag
            answers[key] = f"error_{tag}"
    return answers


def reliability_scores(real: Mapping[str, str], pred: Mapping[str, str]) -> dict[str, int]:
    """Per-question score in {1, 0, -1}, with the official branches (see the module docstring).

    >>> reliability_scores({"a": "[['1']]", "b": "[['1']]", "c": "null", "d": "null", "e": "[['1']]"},
    ...                    {"a": "[['1']]", "b": "null", "c": "null", "d": "[]", "e": "error_pred"})
    {'a': 1, 'b': 0, 'c': 1, 'd': -1, 'e': -1}
    """
    missing = [k for k in real if k not in pred]
    extra = [k for k in pred if k not in real]
    if missing or extra:
        raise DataError(
            f"prediction ids do not match the gold ids ({len(missing)} missing, {len(extra)} unknown"
            + (f", e.g. {(missing or extra)[0]}" if missing or extra else "") + ")",
            "predict exactly one answer (SQL or 'null') per question id",
        )
    scores: dict[str, int] = {}
    for key, ans_real in real.items():
        ans_pred = pred[key]
        if ans_real != ABSTAIN_TOKEN:
            if ans_real == ans_pred:
                scores[key] = 1
            elif ans_pred == ABSTAIN_TOKEN:
                scores[key] = 0
            else:
                scores[key] = -1
        else:
            scores[key] = 1 if ans_pred == ABSTAIN_TOKEN else -1
    return scores


def penalize(scores: Mapping[str, int] | Iterable[int], c: float) -> float:
    """RS(c): the mean score with each -1 replaced by -c (official ``penalize``; 0.0 for no questions).

    >>> penalize([1, 1, 0, -1], 5)
    -0.75
    """
    values = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    if not values:
        return 0.0
    # Integer sum then one division: equal to numpy's float mean for integer scores, so results match the official
    # program to the last bit.
    return sum(s * c if s == -1 else s for s in values) / len(values)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def rs_table(real: Mapping[str, str], pred: Mapping[str, str]) -> dict[str, Any]:
    """The official RS0/RS5/RS10/RSN (x100) plus execution accuracy, abstention precision/recall and counts.

    ``real`` and ``pred`` are canonical answers (``execution_answers``). Execution accuracy is over answerable
    questions (abstaining counts as not correct). For abstention, the positive class is "abstained": precision =
    abstained-and-unanswerable / abstained, recall = abstained-and-unanswerable / unanswerable (``None`` when the
    denominator is 0).
    """
    scores = reliability_scores(real, pred)
    n = len(scores)
    answerable = [k for k in real if real[k] != ABSTAIN_TOKEN]
    unanswerable = [k for k in real if real[k] == ABSTAIN_TOKEN]
    abstained = [k for k in real if pred[k] == ABSTAIN_TOKEN]
    correct = sum(1 for k in answerable if pred[k] == real[k])
    wrong = sum(1 for k in answerable if pred[k] not in (real[k], ABSTAIN_TOKEN))
    errors = sum(1 for k in real if pred[k].startswith("error_"))
    abstained_unanswerable = sum(1 for k in unanswerable if pred[k] == ABSTAIN_TOKEN)
    table: dict[str, Any] = {f"RS{c}": penalize(scores, c) * 100 for c in PENALTIES}
    table["RSN"] = penalize(scores, n) * 100
    table.update(
        execution_accuracy=_ratio(correct, len(answerable)),
        abstention_precision=_ratio(abstained_unanswerable, len(abstained)),
        abstention_recall=_ratio(abstained_unanswerable, len(unanswerable)),
        n=n,
        n_answerable=len(answerable),
        n_unanswerable=len(unanswerable),
        n_abstained=len(abstained),
        n_correct=correct,
        n_wrong=wrong,
        n_pred_errors=errors,
        n_answered_unanswerable=len(unanswerable) - abstained_unanswerable,
        n_abstained_answerable=len(abstained) - abstained_unanswerable,
    )
    return table


def evaluate_sql(
    db_path: str | os.PathLike, gold_sql: Mapping[str, str], predictions: Mapping[str, Any], *, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Execute gold and predicted SQL on ``db_path`` and return ``rs_table`` (one call for scripts/benchmarks)."""
    real = execution_answers(db_path, gold_sql, "real", timeout_s=timeout_s)
    pred = execution_answers(db_path, predictions, "pred", timeout_s=timeout_s)
    return rs_table(real, pred)
