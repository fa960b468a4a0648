"""Rewards, the verifier interface, and the second verifiable task (patient–trial eligibility)."""

from __future__ import annotations

import doctest
import random

import pytest

import ehrforge.core.grpo
import ehrforge.tasks.calc.eligibility
import ehrforge.tasks.calc.rewards
import ehrforge.tasks.calc.score
import ehrforge.tasks.calc.verifiers
from ehrforge.core.types import Generation
from ehrforge.errors import UnknownNameError
from ehrforge.tasks.calc.eligibility import (
    EligibilityTask,
    Trial,
    TrialPatient,
    check_eligibility,
    make_eligibility_items,
    sample_patient_for,
    sample_trial,
)
from ehrforge.tasks.calc.rewards import correctness_reward, format_reward, length_penalty
from ehrforge.tasks.calc.task import CalcTask
from ehrforge.tasks.calc.verifiers import (
    MedCalcVerifier,
    Verifier,
    get_verifier,
    register_verifier,
    verifier_reward,
)


@pytest.mark.parametrize(
    "module",
    [
        ehrforge.tasks.calc.rewards,
        ehrforge.tasks.calc.score,
        ehrforge.tasks.calc.verifiers,
        ehrforge.tasks.calc.eligibility,
        ehrforge.core.grpo,
    ],
)
def test_doctests(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_gold_targets_earn_full_reward_and_wrong_answers_none() -> None:
    """The SFT targets are exactly what the rewards call correct: the two stages teach the same thing (both modes)."""
    task = CalcTask(mode="reasoning")
    records = task.load("train", limit=90)
    rows = [task.grpo_example(r) for r in records]
    cols = {k: [row[k] for row in rows] for k in rows[0] if k != "prompt"}
    gold = [[{"role": "assistant", "content": task.target(r)}] for r in records]
    assert format_reward(gold, **cols) == [1.0] * len(records)
    assert correctness_reward(gold, **cols) == [1.0] * len(records)
    assert verifier_reward(MedCalcVerifier())(gold, **cols) == [1.0] * len(records)
    wrong = []
    for r in records:
        if r["answer_format"] == "date":
            bad = "01/01/1990"
        elif r["answer_format"] == "weeks_days":
            bad = "(99, 6)"
        else:
            bad = str(abs(float(r["ground_truth"])) * 1.5 + 7)
        wrong.append(f"<answer>{bad}</answer>")
    assert correctness_reward(wrong, **cols) == [0.0] * len(records)
    assert format_reward(wrong, **cols) == [1.0] * len(records)
    tool = CalcTask(mode="tool")
    rows = [tool.grpo_example(r) for r in records]
    cols = {k: [row[k] for row in rows] for k in rows[0] if k != "prompt"}
    gold = [[{"role": "assistant", "content": tool.target(r)}] for r in records]
    for reward in tool.rewards():
        assert reward(gold, **cols) == [1.0] * len(records), reward.__name__


def test_length_penalty_is_opt_in() -> None:
    assert [f.__name__ for f in CalcTask(mode="reasoning").rewards()] == ["format_reward", "correctness_reward"]
    assert [f.__name__ for f in CalcTask().rewards()] == [
        "tool_format_reward",
        "tool_param_reward",
        "tool_correctness_reward",
    ]
    fns = CalcTask(mode="reasoning", length_penalty_chars=50).rewards()
    assert fns[-1].__name__ == "length_penalty" and fns[-1](["x" * 100]) == [-1.0]
    assert length_penalty(["short"]) == [0.0]


def test_verifier_registry_plugs_in_new_tasks() -> None:
    class EvenVerifier:
        name = "even"

        def verify(self, completion: str, record: dict) -> float:
            return float(completion.strip().isdigit() and int(completion) % 2 == 0)

    register_verifier("even", EvenVerifier)
    v = get_verifier("even")
    assert isinstance(v, Verifier)
    reward = verifier_reward(v)
    assert reward.__name__ == "even_reward" and reward(["4", "3", "x"]) == [1.0, 0.0, 0.0]
    with pytest.raises(UnknownNameError, match="eligibility"):
        get_verifier("eligibilty")


def test_eligibility_matcher_and_generator() -> None:
    trial = Trial(40, 75, "female", "hypertension", "egfr", 30.0, 60.0, ["pregnancy", "active cancer"], "warfarin")
    ok = TrialPatient(50, "female", ["hypertension", "COPD"], ["metformin"], {"egfr": 45.0})
    assert check_eligibility(ok, trial) == (True, [])
    bad = TrialPatient(50, "male", ["COPD", "pregnancy"], ["warfarin"], {"egfr": 61.0})
    assert check_eligibility(bad, trial)[1] == [
        "sex",
        "required condition",
        "egfr",
        "excluded condition: pregnancy",
        "excluded medication: warfarin",
    ]
    assert check_eligibility(TrialPatient(40, "female", ["hypertension"], [], {"egfr": 30.0}), trial)[
        0
    ]  # bounds inclusive
    rng = random.Random(3)
    for _ in range(200):  # the generator's intended label always matches the rule-based matcher
        t = sample_trial(rng)
        want = rng.random() < 0.5
        assert check_eligibility(sample_patient_for(t, rng, want), t)[0] == want
    items = make_eligibility_items(40, seed=1)
    assert items == make_eligibility_items(40, seed=1)  # deterministic
    assert sum(i["eligible"] for i in items) == 20 and len({i["id"] for i in items}) == 40


def test_eligibility_task_uses_the_verifier() -> None:
    task = EligibilityTask()
    records = task.load("valid", limit=6)
    rewards = task.rewards()
    rows = [task.grpo_example(r) for r in records]
    cols = {"eligible": [row["eligible"] for row in rows]}
    assert rewards[0]([task.target(r) for r in records], **cols) == [1.0] * 6
    flipped = ["<answer>eligible</answer>" if not r["eligible"] else "<answer>not eligible</answer>" for r in records]
    assert rewards[0](flipped, **cols) == [0.0] * 6
    preds = [task.parse(Generation(text=task.target(r)), r) for r in records]
    assert task.score(records, preds)["accuracy"] == 1.0
    assert not task.parse(Generation(text="unsure"), records[0])
