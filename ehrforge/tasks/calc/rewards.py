"""GRPO rewards for the calc recipe: plain TRL-style functions ``(completions, **columns) -> list[float]``.

TRL passes conversational completions as ``[[{"role": "assistant", "content": ...}], ...]`` and dataset columns
as keyword lists; plain strings are accepted too, so the functions are easy to test and reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.calc.calculators import CALCULATORS
from ehrforge.tasks.calc.score import ANSWER_TAG, extract_tag, is_correct, parse_value
from ehrforge.tasks.calc.tool import parse_tool_call, read_call, run_tool_call, tool_schema


def completion_text(completion: Any) -> str:
    """The text of one completion, whether TRL gave a string, a message list or a message.

    >>> completion_text([{"role": "assistant", "content": "hi"}]), completion_text("hi")
    ('hi', 'hi')
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)) and completion:
        return completion_text(completion[-1])
    return ""


def _column(values: Sequence[Any] | None, i: int, default: Any = None) -> Any:
    return values[i] if values is not None and i < len(values) else default


def format_reward(completions: list[Any], answer_format: Sequence[str] | None = None, **_: Any) -> list[float]:
    """1.0 when the completion has exactly one ``<answer>…</answer>`` whose content parses for the item's answer
    format (a number, a MM/DD/YYYY date or a (weeks, days) pair), else 0.0.

    >>> format_reward(["2 × 40 = 80 <answer>80</answer>", "80", "<answer>soon</answer>", "<answer>1</answer><answer>2</answer>"])
    [1.0, 0.0, 0.0, 0.0]
    >>> format_reward([[{"role": "assistant", "content": "<answer>03/04/2021</answer>"}]], answer_format=["date"])
    [1.0]
    """
    out = []
    for i, completion in enumerate(completions):
        text = completion_text(completion)
        tags = ANSWER_TAG.findall(text)
        fmt = _column(answer_format, i, "decimal")
        out.append(1.0 if len(tags) == 1 and parse_value(tags[0], fmt) is not None else 0.0)
    return out


def correctness_reward(
    completions: list[Any],
    ground_truth: Sequence[str],
    answer_format: Sequence[str] | None = None,
    lower_limit: Sequence[str] | None = None,
    upper_limit: Sequence[str] | None = None,
    **_: Any,
) -> list[float | None]:
    """1.0 when the tagged answer is correct under MedCalc-Bench rules (dates and integer scores exact, decimals
    within ±5 %), else 0.0. No tag, no credit; no ground truth, None.

    >>> correctness_reward(["<answer>84</answer>", "<answer>90</answer>", "84"], ground_truth=["83.333"] * 3)
    [1.0, 0.0, 0.0]
    >>> correctness_reward(["<answer>3.4</answer>"], ground_truth=["3"], answer_format=["integer"])
    [1.0]
    """
    out: list[float | None] = []
    for i, completion in enumerate(completions):
        if _column(ground_truth, i) in (None, ""):
            out.append(None)  # unscorable row
            continue
        answer = extract_tag(completion_text(completion))
        if answer is None:
            out.append(0.0)
            continue
        ok = is_correct(
            answer,
            str(ground_truth[i]),
            _column(answer_format, i, "decimal"),
            _column(lower_limit, i),
            _column(upper_limit, i),
        )
        out.append(1.0 if ok else 0.0)
    return out


def length_penalty(completions: list[Any], max_chars: int = 1200, **_: Any) -> list[float]:
    """0 up to ``max_chars`` characters, then −(excess / max_chars), floored at −1: discourages rambling that eats
    the completion budget without changing which answers are rewarded.

    >>> length_penalty(["x" * 100, "x" * 1800, "x" * 5000])
    [0.0, -0.5, -1.0]
    """
    return [max(-1.0, -max(0, len(completion_text(c)) - max_chars) / max_chars) for c in completions]


def make_length_penalty(max_chars: int):
    """A length penalty with a fixed budget, named so TRL logs it as ``length_penalty``.

    >>> make_length_penalty(10)(["x" * 15])
    [-0.5]
    """

    def penalty(completions: list[Any], **columns: Any) -> list[float]:
        return length_penalty(completions, max_chars=max_chars)

    penalty.__name__ = "length_penalty"
    return penalty


# --- tool mode ----------------------------------------------------------------------------------------------------
# The gold column is the gold tool call (``tool_target``). Its canonical reading is cached per row (the same row is
# scored once per generation in a GRPO group and again every epoch).

PARAM_RTOL = 0.02  # a numeric input within 2 % of the gold (display rounding, unit conversion) counts as extracted


@lru_cache(maxsize=8192)
def _gold_call(target: str) -> tuple[str, dict[str, Any], frozenset[str]] | None:
    """(calculator key, canonical inputs, names written in the call) of a gold tool call, or None if unusable."""
    call = parse_tool_call(target)
    if isinstance(call, Abstain) or str(call.get("calculator")) not in CALCULATORS:
        return None
    calc = CALCULATORS[str(call["calculator"])]
    values, problems = read_call(call, calc)
    return None if problems else (calc.key, values, frozenset(call))


def _same(gold: Any, got: Any) -> bool:
    if isinstance(gold, bool) or isinstance(got, bool) or not isinstance(gold, (int, float)):
        return gold == got
    if not isinstance(got, (int, float)):
        return False
    return abs(got - gold) <= max(PARAM_RTOL * abs(gold), 1e-6)


def param_credit(completion_text_: str, target: str) -> float | None:
    """Fraction of the gold call's inputs the completion extracted within tolerance (None: the gold is unusable).
    Counted over the required inputs plus every optional one either call mentions, so agreeing that a finding is
    absent earns nothing and a wrongly claimed finding costs."""
    gold = _gold_call(target)
    if gold is None:
        return None
    key, gold_values, gold_names = gold
    call = parse_tool_call(completion_text_)
    if isinstance(call, Abstain) or str(call.get("calculator")) != key:
        return 0.0
    calc = CALCULATORS[key]
    params = [p for p in tool_schema(key) if p.required or p.name in gold_names or p.name in call or p.feature in call]
    if not params:
        return 1.0
    hits = 0
    for p in params:
        raw = call.get(p.name, call.get(p.feature))
        if raw is None:
            got = None if p.required else p.default
        else:
            got = read_call({p.name: raw}, calc)[0].get(p.feature)
        hits += got is not None and _same(gold_values.get(p.feature, p.default), got)
    return hits / len(params)


def tool_param_reward(completions: list[Any], tool_target: Sequence[str] | None = None, **_: Any) -> list[float | None]:
    """Parameter-level partial credit: the share of the calculator's inputs extracted correctly (numbers within 2 %
    after unit conversion). None for rows without a usable gold call.

    >>> gold = '{"calculator":"bmi","weight":{"value":154,"unit":"lb"},"height":{"value":170,"unit":"cm"}}'
    >>> tool_param_reward(['{"calculator": "bmi", "weight": 69.9, "height": {"value": 170, "unit": "cm"}}',
    ...                    '{"calculator": "bmi", "weight": {"value": 154, "unit": "kg"}, "height": 170}',
    ...                    '{"calculator": "mdrd_gfr"}', 'no call'], tool_target=[gold] * 4)
    [1.0, 0.5, 0.0, 0.0]
    >>> tool_param_reward(["{}"], tool_target=[""])
    [None]
    """
    out: list[float | None] = []
    for i, completion in enumerate(completions):
        target = _column(tool_target, i)
        out.append(param_credit(completion_text(completion), str(target)) if target else None)
    return out


def tool_correctness_reward(
    completions: list[Any],
    ground_truth: Sequence[str] | None = None,
    answer_format: Sequence[str] | None = None,
    lower_limit: Sequence[str] | None = None,
    upper_limit: Sequence[str] | None = None,
    calculator: Sequence[str] | None = None,
    **_: Any,
) -> list[float | None]:
    """1.0 when running the completion's tool call gives an answer that is correct under MedCalc-Bench rules, else
    0.0; None for rows without a ground truth.

    >>> tool_correctness_reward(['{"calculator": "bmi", "weight": 80, "height": {"value": 1.8, "unit": "m"}}',
    ...                          '{"calculator": "bmi", "weight": 80}', '{"calculator": "bmi", "weight": 80, "height": 150}'],
    ...                         ground_truth=["24.691"] * 3)
    [1.0, 0.0, 0.0]
    >>> tool_correctness_reward(["{}"], ground_truth=[None])
    [None]
    """
    out: list[float | None] = []
    for i, completion in enumerate(completions):
        gold = _column(ground_truth, i)
        if gold in (None, ""):
            out.append(None)
            continue
        result = run_tool_call(completion_text(completion), _column(calculator, i))
        ok = isinstance(result, Answer) and is_correct(
            str(result.value),
            str(gold),
            _column(answer_format, i, "decimal"),
            _column(lower_limit, i),
            _column(upper_limit, i),
        )
        out.append(1.0 if ok else 0.0)
    return out


def tool_format_reward(completions: list[Any], **_: Any) -> list[float]:
    """1.0 for a tool call that validates against its calculator's schema (runs), 0.5 for a JSON object that names a
    known calculator but fails validation, 0.0 otherwise.

    >>> tool_format_reward(['{"calculator": "bmi", "weight": 80, "height": 180}', '{"calculator": "bmi"}',
    ...                     '{"calculator": "nope"}', "80"])
    [1.0, 0.5, 0.0, 0.0]
    """
    out = []
    for completion in completions:
        text = completion_text(completion)
        call = parse_tool_call(text)
        if isinstance(call, Abstain) or str(call.get("calculator")) not in CALCULATORS:
            out.append(0.0)
            continue
        out.append(1.0 if isinstance(run_tool_call(call), Answer) else 0.5)
    return out


def zero_variance_share(grouped_rewards: Sequence[Sequence[float | None]] | dict[Any, Sequence[float | None]]) -> float:
    """Share of prompt groups whose scorable rewards are all equal (GRPO's advantage is then 0: no learning signal).
    Groups with fewer than two scorable rewards count as zero-variance.

    >>> zero_variance_share([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.5, None, 0.5], [None, None]])
    0.75
    >>> zero_variance_share({"p1": [0.2, 0.3]}), zero_variance_share([])
    (0.0, 0.0)
    """
    groups = list(grouped_rewards.values()) if isinstance(grouped_rewards, dict) else list(grouped_rewards)
    if not groups:
        return 0.0
    flat = 0
    for group in groups:
        scored = [r for r in group if r is not None]
        flat += len(scored) < 2 or max(scored) - min(scored) < 1e-9
    return flat / len(groups)


def group_by_prompt(prompts: Sequence[Any], rewards: Sequence[float | None]) -> dict[str, list[float | None]]:
    """Rewards grouped by their prompt (TRL repeats each prompt ``num_generations`` times), for
    :func:`zero_variance_share`.

    >>> group_by_prompt(["a", "a", "b", "b"], [1.0, 0.0, 1.0, 1.0])
    {'a': [1.0, 0.0], 'b': [1.0, 1.0]}
    """
    groups: dict[str, list[float | None]] = {}
    for prompt, reward in zip(prompts, rewards):
        groups.setdefault(prompt if isinstance(prompt, str) else repr(prompt), []).append(reward)
    return groups
