"""Verifiable rewards for GRPO on text-to-SQL: plain ``(completions, **columns) -> list[float]`` functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ehrforge.core.types import ABSTAIN_TOKEN


def _text(completion: Any) -> str:
    """TRL passes chat completions as ``[{"role": "assistant", "content": ...}]``; plain strings work too."""
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return str(completion[0].get("content", ""))
    return str(completion)


def sql_format_reward(completions: list[Any], **_: Any) -> list[float]:
    """1.0 for a single parseable SELECT or the abstention token, else 0.0.

    >>> sql_format_reward(["SELECT COUNT(*) FROM patients", "null", "DROP TABLE patients", "hello"])
    [1.0, 1.0, 0.0, 0.0]
    """
    from ehrforge.tasks.sql.guard import check_sql
    from ehrforge.tasks.sql.parse import clean_sql

    out = []
    for c in completions:
        sql = clean_sql(_text(c))
        if sql.lower() == ABSTAIN_TOKEN:
            out.append(1.0)
            continue
        try:
            check_sql(sql)
            out.append(1.0)
        except Exception:  # noqa: BLE001 - any guard/parse failure is simply "bad format"
            out.append(0.0)
    return out


def make_execution_reward(db: str | Path, penalty: float = 1.0):
    """Reward = the EHRSQL per-question reliability outcome: +1 correct answer or correct abstention, 0 abstaining
    on an answerable question, -``penalty`` for a wrong answer or answering an unanswerable one. The gold SQL comes
    in the ``sql`` column."""
    from ehrforge.tasks.sql.score import execution_answers
    from ehrforge.tasks.sql.parse import clean_sql

    def execution_reward(completions: list[Any], sql: list[str], **_: Any) -> list[float]:
        preds = {str(i): clean_sql(_text(c)) or ABSTAIN_TOKEN for i, c in enumerate(completions)}
        gold = {str(i): g or ABSTAIN_TOKEN for i, g in enumerate(sql)}
        real = execution_answers(db, gold, "real")
        pred = execution_answers(db, preds, "pred")
        rewards = []
        for key in preds:
            if real[key] == ABSTAIN_TOKEN:
                rewards.append(1.0 if pred[key] == ABSTAIN_TOKEN else -penalty)
            elif pred[key] == ABSTAIN_TOKEN:
                rewards.append(0.0)
            else:
                rewards.append(1.0 if pred[key] == real[key] else -penalty)
        return rewards

    return execution_reward
