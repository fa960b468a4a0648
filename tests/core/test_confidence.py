"""Confidence estimators: each on hand-built generations whose right answer is known by construction."""

from __future__ import annotations

import math

import pytest

from ehrforge.core.confidence import (
    entropy_confidence,
    label_token_probability,
    max_entropy,
    mean_entropy,
    parse_verbalised_confidence,
    self_consistency,
    strip_verbalised_confidence,
    teacher_agreement,
)
from ehrforge.core.types import Generation


def test_label_token_probability_uses_only_the_label_tokens():
    # "Yes" is split over two tokens; the long explanation after it must not dilute the label's probability.
    gen = Generation(
        text="Yes, it has visits and X marks",
        tokens=["Y", "es", ",", " it", " has", " visits"],
        token_logprobs=[math.log(0.9), math.log(0.8), math.log(0.1), math.log(0.1), math.log(0.1), math.log(0.1)],
    )
    assert label_token_probability(gen, "yes") == pytest.approx(0.72)
    # without a label the first non-filler token decides
    assert label_token_probability(gen) == pytest.approx(0.9)


def test_label_token_probability_skips_leading_filler_and_handles_missing_label():
    gen = Generation(text='"no"', tokens=['"', "no", '"'], token_logprobs=[math.log(0.99), math.log(0.6), 0.0])
    assert label_token_probability(gen) == pytest.approx(0.6)
    # label text not in the tokens: fall back to the decision token rather than failing
    assert label_token_probability(gen, "maybe") == pytest.approx(0.6)


def test_label_token_probability_without_logprobs_is_none():
    assert label_token_probability(Generation(text="yes", tokens=["yes"], token_logprobs=None)) is None
    assert label_token_probability(Generation(text="yes", tokens=[], token_logprobs=[])) is None


def test_entropy_helpers():
    gen = Generation(text="a b c", tokens=["a", "b", "c"], token_entropies=[0.1, 0.5, 0.3])
    assert mean_entropy(gen) == pytest.approx(0.3)
    assert max_entropy(gen) == pytest.approx(0.5)
    assert entropy_confidence(gen) == pytest.approx(math.exp(-0.3))
    empty = Generation(text="a", tokens=["a"])
    assert mean_entropy(empty) is None and max_entropy(empty) is None and entropy_confidence(empty) is None


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        (["soe"] * 5, ("soe", 1.0)),
        (["soe", "other", "soe", "other", "soe"], ("soe", 0.6)),
        (["other", "soe"], ("other", 0.5)),  # tie: the first seen wins, deterministically
        ([None, None, "soe"], ("soe", 1 / 3)),  # garbage counts against confidence
        ([None], (None, 0.0)),
    ],
)
def test_self_consistency(votes, expected):
    label, conf = self_consistency(votes)
    assert label == expected[0]
    assert conf == pytest.approx(expected[1])


def test_teacher_agreement():
    assert teacher_agreement("soe", "soe", 0.8, 0.6) == ("soe", pytest.approx(0.7))
    assert teacher_agreement("soe", "soe") == ("soe", 1.0)
    assert teacher_agreement("soe", "other", 1.0, 1.0) == ("soe", 0.0)
    assert teacher_agreement("soe", None, 0.9, None) == (None, 0.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes\nConfidence: 92", 0.92),
        ("no\nconfidence=0.4", 0.4),
        ("Confidence: 75%", 0.75),
        ("Confidence score: 9/10", 0.9),
        ("confidence: 1", 1.0),
        ("Confidence: very low", 0.15),
        ("yes", None),
        ("Confidence: 140", None),
    ],
)
def test_parse_verbalised_confidence(text, expected):
    got = parse_verbalised_confidence(text)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_strip_verbalised_confidence_keeps_the_answer():
    assert strip_verbalised_confidence("no\n\nConfidence: 30") == "no"
    assert strip_verbalised_confidence("yes") == "yes"
