"""Tool-mode rewards on real generated items: the gold call earns full credit, corrupted calls earn less, and the
zero-variance helper sees groups GRPO cannot learn from."""

from __future__ import annotations

import doctest
import json
import random

import ehrforge.tasks.calc.rewards
from ehrforge.tasks.calc.calculators import CALCULATORS
from ehrforge.tasks.calc.notes import make_item
from ehrforge.tasks.calc.rewards import (
    _gold_call,
    group_by_prompt,
    tool_correctness_reward,
    tool_format_reward,
    tool_param_reward,
    zero_variance_share,
)
from ehrforge.tasks.calc.tool import tool_target


def test_doctests() -> None:
    assert doctest.testmod(ehrforge.tasks.calc.rewards).failed == 0


def _rows(n: int = 55) -> list[dict]:
    rows = []
    for i, calc in enumerate(list(CALCULATORS.values())[:n]):
        item = make_item(calc, random.Random(f"reward-{i}"), f"r{i}")
        item["tool_target"] = tool_target(calc.key, item["inputs"], item["shown"])
        rows.append(item)
    return rows


def _columns(rows: list[dict]) -> dict[str, list]:
    keys = ("tool_target", "ground_truth", "answer_format", "lower_limit", "upper_limit", "calculator")
    return {k: [r[k] for r in rows] for k in keys}


def test_gold_calls_earn_full_reward_on_every_calculator() -> None:
    rows = _rows()
    gold = [r["tool_target"] for r in rows]
    cols = _columns(rows)
    assert tool_param_reward(gold, **cols) == [1.0] * len(rows)
    assert tool_correctness_reward(gold, **cols) == [1.0] * len(rows)
    assert tool_format_reward(gold, **cols) == [1.0] * len(rows)
    # TRL's conversational form scores the same
    assert tool_param_reward([[{"role": "assistant", "content": g}] for g in gold], **cols) == [1.0] * len(rows)


def test_dropping_one_parameter_costs_partial_credit() -> None:
    rows = [r for r in _rows() if len(json.loads(r["tool_target"])) >= 4]
    damaged = []
    for r in rows:
        call = json.loads(r["tool_target"])
        name = next(k for k in call if k != "calculator")
        call.pop(name)
        damaged.append(json.dumps(call))
    credit = tool_param_reward(damaged, **_columns(rows))
    assert all(c is not None and 0.0 < c < 1.0 for c in credit)
    fmt = tool_format_reward(damaged)
    assert set(fmt) <= {0.5, 1.0} and 0.5 in fmt  # a missing required input fails validation but is still a call


def test_wrong_calculator_and_unscorable_rows() -> None:
    rows = _rows(3)
    cols = _columns(rows)
    wrong = ['{"calculator": "bmi", "weight": 70, "height": 170}'] * 3
    assert tool_param_reward(wrong, **cols) == [0.0 if r["calculator"] != "bmi" else 1.0 for r in rows]
    cols["tool_target"] = [None, "", "{broken"]
    assert tool_param_reward(wrong, **cols) == [None, None, None]


def test_gold_is_cached_per_row() -> None:
    _gold_call.cache_clear()
    rows = _rows(5)
    cols = _columns(rows)
    for _ in range(3):
        tool_param_reward([r["tool_target"] for r in rows], **cols)
    info = _gold_call.cache_info()
    assert info.misses == 5 and info.hits == 10


def test_zero_variance_share_on_grouped_rewards() -> None:
    prompts = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    rewards = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.25, 0.25, None, 0.25]
    assert zero_variance_share(group_by_prompt(prompts, rewards)) == 2 / 3
