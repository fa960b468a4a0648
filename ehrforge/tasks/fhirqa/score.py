"""Scores: task 1 resource selection (micro precision/recall/F1 over per-resource decisions), task 2 METEOR;
and the GRPO reward functions built on them.

Selection is a binary decision per (question, candidate resource), so scores are *micro*-averaged over all
decisions: a question with 6 relevant resources weighs more than one with 1. A question whose gold set is empty
("What is the patient allergic to?" for a patient without allergies) adds no true positives; selecting anything for
it adds false positives, which is what should be penalised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ehrforge.tasks.fhirqa.meteor import meteor, meteor_mode

_HEX_ID = re.compile(r"[0-9a-f]{8}(?:[0-9a-f-]{0,28})", re.I)


def selection_prf(gold: Iterable[Iterable[str]], predicted: Iterable[Iterable[str]]) -> dict[str, float]:
    """Micro P/R/F1 over selected resource ids (each list is one question's ids).

    >>> selection_prf([["a", "b"], ["c"]], [["a"], ["c", "d"]])
    {'select_precision': 0.6667, 'select_recall': 0.6667, 'select_f1': 0.6667}
    >>> selection_prf([[]], [[]])
    {'select_precision': 1.0, 'select_recall': 1.0, 'select_f1': 1.0}
    """
    tp = fp = fn = 0
    for g, p in zip(gold, predicted):
        gs, ps = set(g), set(p)
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
    # Nothing to find and nothing selected is a perfect (if vacuous) result, not 0/0.
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"select_precision": round(precision, 4), "select_recall": round(recall, 4), "select_f1": round(f1, 4)}


def answer_meteor(references: Sequence[str], hypotheses: Sequence[str | None],
                  abstain_ok: Sequence[bool] | None = None) -> dict[str, float]:
    """Mean METEOR; an abstention (None) scores 1 where ``abstain_ok`` (the record has nothing relevant: abstaining
    is the right answer) and 0 elsewhere. ``meteor_wordnet`` says whether synonyms were used.

    >>> answer_meteor(["a b c"], [None])["meteor"]
    0.0
    >>> answer_meteor(["a b c", "The record has no resource about that."], [None, None], [False, True])["meteor"]
    0.5
    """
    ok = list(abstain_ok) if abstain_ok is not None else [False] * len(references)
    scores = [meteor(r, h) if h else (1.0 if good else 0.0) for r, h, good in zip(references, hypotheses, ok)]
    return {
        "meteor": round(sum(scores) / len(scores), 4) if scores else 0.0,
        "meteor_wordnet": 1.0 if meteor_mode() == "wordnet" else 0.0,
    }


def _text(completion: Any) -> str:
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return str(completion[0].get("content", ""))
    return str(completion)


def parse_short_ids(text: str, shorts: Sequence[str]) -> list[str]:
    """The candidate short ids mentioned in ``text`` (in candidate order); "none" or nothing known → [].

    >>> parse_short_ids("1a2b3c4d, 99999999 and deadbeef", ["deadbeef", "1a2b3c4d", "00000000"])
    ['deadbeef', '1a2b3c4d']
    """
    found = {m.group(0).lower() for m in _HEX_ID.finditer(text)}
    # A model may write a longer prefix of the full id than the short one: accept any token starting with it.
    return [s for s in shorts if s.lower() in found or any(f.startswith(s.lower()) for f in found)]


def selection_f1_reward(completions: list[Any], candidates: list[list[dict[str, str]]], relevant_ids: list[list[str]], **_: Any) -> list[float]:
    """GRPO reward: per-question selection F1 of the ids written in the completion.

    >>> cands = [[{"id": "aaaaaaaa-1", "short": "aaaaaaaa"}, {"id": "bbbbbbbb-2", "short": "bbbbbbbb"}]]
    >>> selection_f1_reward([[{"content": "aaaaaaaa"}]], candidates=cands, relevant_ids=[["aaaaaaaa-1"]])
    [1.0]
    >>> selection_f1_reward(["aaaaaaaa, bbbbbbbb"], candidates=cands, relevant_ids=[["aaaaaaaa-1"]])
    [0.6667]
    """
    out = []
    for completion, cands, gold in zip(completions, candidates, relevant_ids):
        to_full = {c["short"]: c["id"] for c in cands}
        picked = [to_full[s] for s in parse_short_ids(_text(completion), list(to_full))]
        out.append(selection_prf([gold], [picked])["select_f1"])
    return out


def meteor_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """GRPO reward: METEOR of the completion against the gold answer.

    >>> meteor_reward(["Asthma was first recorded on 2001-02-03."], answer=["Asthma was first recorded on 2001-02-03."])[0] > 0.99
    True
    """
    return [round(meteor(ref, _text(c)), 4) for c, ref in zip(completions, answer)]
