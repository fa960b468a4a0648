"""Confidence estimators: how sure is a model of the label (or SQL, or answer) it just produced?

Each estimator is a small pure function over :class:`~ehrforge.core.types.Generation` objects or plain labels, so
recipes can combine them freely:

* :func:`label_token_probability` - probability the model gave to the tokens that spell its label (needs log-probs:
  local models, or HTTP servers that return ``logprobs``).
* :func:`self_consistency` - sample k answers; the majority label and the share of samples that agree with it.
* :func:`teacher_agreement` - two teachers: agreement keeps the label, disagreement zeroes the confidence.
* :func:`parse_verbalised_confidence` - for HTTP teachers without log-probs: the model states a score.
* :func:`mean_entropy` / :func:`max_entropy` - token-entropy summaries (the SQL recipe abstains on these).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Sequence

from ehrforge.core.types import Generation

# Tokens that carry no decision (leading whitespace, quotes, markdown bold) are skipped when locating the label.
_FILLER = re.compile(r"^[\s\"'`*_:.\-]*$")


def mean_entropy(gen: Generation) -> float | None:
    """Mean per-token entropy (nats) of a generation; ``None`` when the backend gave no entropies.

    >>> mean_entropy(Generation(text="a b", tokens=["a", "b"], token_entropies=[0.2, 0.4]))
    0.30000000000000004
    >>> mean_entropy(Generation(text="a")) is None
    True
    """
    if not gen.token_entropies:
        return None
    return sum(gen.token_entropies) / len(gen.token_entropies)


def max_entropy(gen: Generation) -> float | None:
    """Largest per-token entropy (nats): one uncertain token is enough to doubt a short answer.

    >>> max_entropy(Generation(text="a b", tokens=["a", "b"], token_entropies=[0.2, 0.4]))
    0.4
    """
    if not gen.token_entropies:
        return None
    return max(gen.token_entropies)


def label_token_probability(gen: Generation, label_text: str | None = None) -> float | None:
    """Probability the model assigned to the tokens that spell its answer.

    With ``label_text`` (the word the task parsed, e.g. ``"yes"``) the tokens that make up its first occurrence are
    used; otherwise the first non-filler token (the decision token of a one-word answer). Returns ``None`` without
    log-probs. Only the label's tokens count, so a long explanation after the label does not dilute the score.

    >>> g = Generation(text="Yes.", tokens=["Yes", "."], token_logprobs=[math.log(0.8), math.log(0.99)])
    >>> round(label_token_probability(g, "yes"), 3)
    0.8
    >>> g = Generation(text=" no", tokens=[" ", "n", "o"], token_logprobs=[0.0, math.log(0.5), math.log(0.9)])
    >>> round(label_token_probability(g, "no"), 3)
    0.45
    >>> label_token_probability(Generation(text="yes", tokens=["yes"])) is None
    True
    """
    lps = gen.token_logprobs
    if not lps or not gen.tokens:
        return None
    tokens = gen.tokens[: len(lps)]
    if label_text:
        span = _label_span(tokens, label_text)
        if span is not None:
            start, end = span
            return math.exp(sum(lps[start:end]))
    for i, tok in enumerate(tokens):
        if not _FILLER.match(tok):
            return math.exp(lps[i])
    return math.exp(sum(lps))


def _label_span(tokens: Sequence[str], label_text: str) -> tuple[int, int] | None:
    """Token index range [start, end) covering the first case-insensitive occurrence of ``label_text``."""
    joined = "".join(tokens).lower()
    pos = joined.find(label_text.lower())
    if pos < 0:
        return None
    end_pos = pos + len(label_text)
    start = end = None
    offset = 0
    for i, tok in enumerate(tokens):
        nxt = offset + len(tok)
        if start is None and nxt > pos:
            start = i
        if start is not None and nxt >= end_pos:
            end = i + 1
            break
        offset = nxt
    if start is None or end is None:
        return None
    return start, end


def self_consistency(labels: Sequence[Hashable | None]) -> tuple[Hashable | None, float]:
    """Majority label of k samples and the share of *all* k samples that agree with it.

    Unparseable samples (``None``) count against the majority rather than being dropped, so a teacher that answers
    garbage half of the time cannot look confident. Ties go to the label seen first (deterministic).

    >>> self_consistency(["soe", "soe", "other", "soe"])
    ('soe', 0.75)
    >>> self_consistency(["soe", None, None])
    ('soe', 0.3333333333333333)
    >>> self_consistency([None, None])
    (None, 0.0)
    """
    valid = [lab for lab in labels if lab is not None]
    if not valid:
        return None, 0.0
    counts = Counter(valid)
    best = max(counts.values())
    winner = next(lab for lab in valid if counts[lab] == best)
    return winner, best / len(labels)


def teacher_agreement(
    label_a: Hashable | None,
    label_b: Hashable | None,
    conf_a: float | None = None,
    conf_b: float | None = None,
) -> tuple[Hashable | None, float]:
    """Combine two teachers. Agreement keeps the label with the mean of their confidences (1.0 where a teacher
    gives none); disagreement keeps teacher A's label but with confidence 0, so any threshold sends it to review.

    >>> teacher_agreement("soe", "soe", 0.9, 0.7)
    ('soe', 0.8)
    >>> teacher_agreement("soe", "other", 0.99, 0.99)
    ('soe', 0.0)
    >>> teacher_agreement(None, "soe")
    (None, 0.0)
    """
    if label_a is None or label_b is None:
        return None, 0.0
    if label_a != label_b:
        return label_a, 0.0
    a = 1.0 if conf_a is None else conf_a
    b = 1.0 if conf_b is None else conf_b
    return label_a, (a + b) / 2


# "Confidence: 85", "confidence = 0.85", "confidence: 85%", "Confidence: 8/10", "confidence: high"
_VERBAL = re.compile(
    r"confidence\s*(?:score|level)?\s*[:=]?\s*(?:(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>%|/\s*10{1,2}\b)?|(?P<word>very high|high|medium|moderate|low|very low))",
    re.IGNORECASE,
)
_WORDS = {"very high": 0.95, "high": 0.85, "medium": 0.6, "moderate": 0.6, "low": 0.35, "very low": 0.15}

#: what to append to a prompt to get a verbalised score (the parser below reads this format).
VERBALISED_INSTRUCTION = (
    "After your answer, on a new line, write 'Confidence: N' where N (0-100) is how sure you are that the answer "
    "is correct."
)


def parse_verbalised_confidence(text: str) -> float | None:
    """Read a stated confidence from a model's text, as a probability in [0, 1]; ``None`` if there is none.

    Numbers above 1 are read as percentages; ``N/10`` and ``N/100`` as fractions; words map to fixed values.

    >>> parse_verbalised_confidence("yes\\nConfidence: 85")
    0.85
    >>> parse_verbalised_confidence("no (confidence = 0.6)")
    0.6
    >>> parse_verbalised_confidence("Confidence: 7/10")
    0.7
    >>> parse_verbalised_confidence("Confidence level: high")
    0.85
    >>> parse_verbalised_confidence("yes") is None
    True
    >>> parse_verbalised_confidence("Confidence: 250") is None
    True
    """
    m = _VERBAL.search(text)
    if m is None:
        return None
    if m.group("word"):
        return _WORDS[m.group("word").lower()]
    value = float(m.group("num"))
    unit = (m.group("unit") or "").replace(" ", "")
    if unit == "/10":
        value /= 10
    elif unit in ("%", "/100") or value > 1:
        value /= 100
    return value if 0.0 <= value <= 1.0 else None


def strip_verbalised_confidence(text: str) -> str:
    """The answer part of a verbalised reply (everything before the confidence statement).

    >>> strip_verbalised_confidence("yes\\nConfidence: 90")
    'yes'
    """
    m = _VERBAL.search(text)
    return text[: m.start()].strip() if m else text.strip()


def entropy_confidence(gen: Generation) -> float | None:
    """Map mean token entropy to [0, 1]: ``exp(-H)``, the probability of a uniform choice among ``e^H`` tokens.
    Monotone in entropy, so it ranks like entropy does; use :func:`label_token_probability` when you have log-probs
    of the label itself (it is better calibrated for one-word labels).

    >>> entropy_confidence(Generation(text="a", tokens=["a"], token_entropies=[0.0]))
    1.0
    """
    h = mean_entropy(gen)
    return None if h is None else math.exp(-h)
