"""Pluggable verifiers: how any verifiable clinical task turns a completion into a reward.

A :class:`Verifier` scores one completion against one record (``verify(completion, record) -> float`` in [0, 1]).
:func:`verifier_reward` adapts it to TRL's reward signature, rebuilding each row's record from the dataset
columns TRL passes as keyword lists. Register a new task's verifier with :func:`register_verifier`; GRPO
(``ehrforge.core.grpo``) only ever sees the resulting plain reward functions.

Two ship here: ``medcalc`` (MedCalc-Bench answer checking) and ``eligibility`` (patient–trial matching on
synthetic criteria, see :mod:`ehrforge.tasks.calc.eligibility`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ehrforge.errors import UnknownNameError, closest
from ehrforge.core.contract import Record, RewardFn
from ehrforge.tasks.calc.rewards import completion_text
from ehrforge.tasks.calc.score import extract_tag, is_correct


@runtime_checkable
class Verifier(Protocol):
    name: str

    def verify(self, completion: str, record: Record) -> float:
        """1.0 for a verified-correct completion, 0.0 for a wrong one (partial credit allowed in between)."""
        ...


class MedCalcVerifier:
    """The tagged answer is correct under MedCalc-Bench's rules.

    >>> MedCalcVerifier().verify("<answer>12</answer>", {"ground_truth": "12", "answer_format": "integer"})
    1.0
    """

    name = "medcalc"

    def verify(self, completion: str, record: Record) -> float:
        answer = extract_tag(completion)
        if answer is None:
            return 0.0
        ok = is_correct(
            answer,
            str(record["ground_truth"]),
            record.get("answer_format", "decimal"),
            record.get("lower_limit"),
            record.get("upper_limit"),
        )
        return 1.0 if ok else 0.0


def parse_verdict(text: str) -> bool | None:
    """An eligibility verdict from a tagged answer (None when there is none).

    >>> parse_verdict("Not eligible"), parse_verdict("eligible"), parse_verdict("maybe")
    (False, True, None)
    """
    t = text.strip().lower().replace("-", " ")
    if t.startswith(("not eligible", "ineligible", "no")):
        return False
    if t.startswith(("eligible", "yes")):
        return True
    return None


class EligibilityVerifier:
    """The tagged verdict (``eligible`` / ``not eligible``) matches the rule-based matcher's verdict.

    >>> EligibilityVerifier().verify("Fails the HbA1c criterion. <answer>not eligible</answer>", {"eligible": False})
    1.0
    """

    name = "eligibility"

    def verify(self, completion: str, record: Record) -> float:
        verdict = parse_verdict(extract_tag(completion) or "")
        if verdict is None:
            return 0.0
        return 1.0 if verdict == bool(record["eligible"]) else 0.0


VERIFIERS: dict[str, Callable[[], Verifier]] = {"medcalc": MedCalcVerifier, "eligibility": EligibilityVerifier}


def register_verifier(name: str, factory: Callable[[], Verifier]) -> None:
    """Make a verifier available by name (call at import time of the task that defines it)."""
    VERIFIERS[name] = factory


def get_verifier(name: str) -> Verifier:
    """
    >>> get_verifier("medcal")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ehrforge.errors.UnknownNameError: unknown verifier 'medcal' — did you mean 'medcalc'? (known: ...)
    """
    if name not in VERIFIERS:
        raise UnknownNameError(f"unknown verifier '{name}'", closest(name, sorted(VERIFIERS)))
    return VERIFIERS[name]()


def verifier_reward(verifier: Verifier) -> RewardFn:
    """A TRL reward function (named ``<verifier>_reward``) that verifies each completion against its row.

    >>> reward = verifier_reward(MedCalcVerifier())
    >>> reward.__name__, reward(["<answer>5</answer>", "<answer>9</answer>"], ground_truth=["5", "5"], answer_format=["integer"] * 2)
    ('medcalc_reward', [1.0, 0.0])
    """

    def reward(completions: list[Any], **columns: Any) -> list[float]:
        out = []
        for i, completion in enumerate(completions):
            record = {k: v[i] for k, v in columns.items() if isinstance(v, (list, tuple)) and i < len(v)}
            out.append(float(verifier.verify(completion_text(completion), record)))
        return out

    reward.__name__ = f"{verifier.name}_reward"
    return reward
