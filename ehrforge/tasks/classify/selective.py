"""Which teacher labels to train on, chosen on a small gold-labelled dev set; which to show a reviewer first.

A global confidence threshold is the obvious filter and the wrong one when the teacher is more sure of one class than
the other (an LLM asked "is this a Schedule of Events?" says "yes" to look-alikes with high confidence): the kept set
loses the class balance and the hard examples a student needs. The strategies here keep both:

* ``per-label-top-fraction`` - the most confident ``f`` of each predicted label;
* ``per-label-calibrated`` - confidence mapped to P(correct) by an isotonic fit *per predicted label* on the dev set
  (the teacher also labels dev), kept when the calibrated value is >= ``p``;
* ``agreement`` - kept when two teachers agree (``second_label``), or when ``k`` sampled answers agree at least
  ``p`` of the time (``confidence_method: consistency``);
* ``threshold`` - the global baseline;

and each can be followed by a second stage, ``cv-agreement`` (:func:`cross_validated_agreement`): a kept label
survives only if a proxy student trained on the other folds of the kept set predicts it too.

:func:`choose_on_dev` trains a cheap proxy student (multinomial naive Bayes over words, seconds on a CPU) on each
candidate's kept training labels and scores it on dev gold; the best candidate is the one the real student trains
on. :func:`review_order` ranks the records left out by the expected value of a human label: the calibrated
probability that the teacher is wrong, weighted up for the label the kept set is short of.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ehrforge.core.types import Answer
from ehrforge.tasks.classify.tables import NEGATIVE, POSITIVE
from ehrforge.tasks.classify.task import precision_recall_f1

Record = dict[str, Any]
Calibrators = dict[str, list[tuple[float, float]]]
_WORD = re.compile(r"[a-z0-9]+|[|\-x]")


# -- calibration ------------------------------------------------------------------------------------------------------
def isotonic_fit(confidences: Sequence[float], correct: Sequence[bool]) -> list[tuple[float, float]]:
    """Pool-adjacent-violators fit of P(correct) as a non-decreasing step function of confidence: a list of
    (upper confidence of the block, P(correct) of the block). Laplace-smoothed so a block of 3 is never 0 or 1.

    >>> isotonic_fit([0.6, 0.7, 0.8, 0.9], [False, True, False, True])
    [(0.6, 0.3333333333333333), (0.8, 0.5), (0.9, 0.6666666666666666)]
    """
    pairs = sorted(zip(confidences, correct))
    blocks: list[list[float]] = []  # [sum correct, count, max confidence]
    for c, ok in pairs:
        blocks.append([float(ok), 1.0, float(c)])
        while len(blocks) > 1 and (blocks[-2][0] + 1) / (blocks[-2][1] + 2) >= (blocks[-1][0] + 1) / (blocks[-1][1] + 2):
            s, n, top = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
            blocks[-1][2] = top
    return [(top, (s + 1) / (n + 2)) for s, n, top in blocks]


def apply_fit(fit: list[tuple[float, float]], confidence: float) -> float:
    """P(correct) for ``confidence`` under an :func:`isotonic_fit` (the block it falls in; above all: the last)."""
    for top, p in fit:
        if confidence <= top:
            return p
    return fit[-1][1] if fit else confidence


def fit_label_calibrators(dev_labelled: Sequence[Record], gold_field: str = "gold") -> Calibrators:
    """One isotonic fit per *predicted* label, from dev records the teacher labelled (their gold is known)."""
    by_label: dict[str, tuple[list[float], list[bool]]] = {}
    for r in dev_labelled:
        if r.get("label") is None:
            continue
        confs, oks = by_label.setdefault(r["label"], ([], []))
        confs.append(float(r["confidence"]))
        oks.append(r["label"] == r[gold_field])
    return {label: isotonic_fit(c, o) for label, (c, o) in by_label.items()}


def calibrated(record: Record, calibrators: Calibrators) -> float:
    fit = calibrators.get(record.get("label"))
    return apply_fit(fit, float(record["confidence"])) if fit else float(record.get("confidence", 0.0))


# -- selection --------------------------------------------------------------------------------------------------------
def select(records: Sequence[Record], strategy: str, param: float, calibrators: Calibrators | None = None) -> list[bool]:
    """Keep mask for ``records`` (teacher-labelled); unlabelled records are never kept.

    >>> recs = [{"label": "soe", "confidence": c} for c in (0.99, 0.97, 0.9)] + [{"label": "other", "confidence": 0.7}]
    >>> select(recs, "threshold", 0.95), select(recs, "per-label-top-fraction", 0.5)
    ([True, True, False, False], [True, True, False, True])
    """
    labelled = [r.get("label") is not None for r in records]
    if strategy == "threshold":
        return [ok and float(r["confidence"]) >= param for ok, r in zip(labelled, records)]
    if strategy == "per-label-calibrated":
        if calibrators is None:
            raise ValueError("per-label-calibrated needs calibrators fitted on dev")
        return [ok and calibrated(r, calibrators) >= param for ok, r in zip(labelled, records)]
    if strategy == "agreement":
        # two teachers: their labels agree; k samples: the vote share reaches param
        return [ok and (r["second_label"] == r["label"] if "second_label" in r else float(r["confidence"]) >= param)
                for ok, r in zip(labelled, records)]
    if strategy == "per-label-top-fraction":
        keep = [False] * len(records)
        groups: dict[str, list[int]] = {}
        for i, (ok, r) in enumerate(zip(labelled, records)):
            if ok:
                groups.setdefault(r["label"], []).append(i)
        for idx in groups.values():
            for i in sorted(idx, key=lambda i: (-float(records[i]["confidence"]), i))[: max(1, round(len(idx) * param))]:
                keep[i] = True
        return keep
    raise ValueError(f"unknown strategy '{strategy}'")


class ProxyStudent:
    """Multinomial naive Bayes over lower-cased words and table punctuation: a seconds-cheap stand-in for the real
    student, used only to compare label subsets on dev (never reported as a result)."""

    def __init__(self, records: Sequence[Record], label_field: str = "label") -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.docs: Counter[str] = Counter()
        for r in records:
            label = r.get(label_field)
            if label is None:
                continue
            self.docs[label] += 1
            self.counts.setdefault(label, Counter()).update(set(_WORD.findall(str(r["text"]).lower())))
        self.vocab = {w for c in self.counts.values() for w in c}

    def predict(self, text: str) -> str | None:
        words = set(_WORD.findall(text.lower())) & self.vocab
        total = sum(self.docs.values())
        best, best_score = None, -math.inf
        for label, counts in self.counts.items():
            n = self.docs[label]
            # Bernoulli-style presence features: what a table *has* (visit columns, X marks) decides the class
            score = math.log(n / total) + sum(math.log((counts[w] + 1) / (n + 2)) for w in words)
            score += sum(math.log(1 - (counts[w] + 1) / (n + 2)) for w in self.vocab - words) if len(self.vocab) < 4000 else 0.0
            if score > best_score:
                best, best_score = label, score
        return best


def cross_validated_agreement(records: Sequence[Record], keep: Sequence[bool], *, folds: int = 5,
                              seed: int = 0) -> list[bool]:
    """Second-stage filter (confident learning, Northcutt et al. 2021): of the kept records, keep those whose teacher
    label a proxy student trained on the *other* folds of the kept set also predicts.

    Why: the first stage leaves the teacher's confident mistakes (about one label in eight in the benchmark), and a
    fine-tuned encoder memorises them, while a student that never saw a record disagrees with a label only the
    teacher's quirk explains. Records the first stage dropped stay dropped; fewer than ``folds`` kept: unchanged.

    >>> recs = [{"label": "soe", "text": "visit | week 1 | x"} for _ in range(6)]
    >>> recs += [{"label": "other", "text": "dose | mg | daily"} for _ in range(5)]
    >>> recs += [{"label": "soe", "text": "dose | mg | daily"}]   # the teacher's odd one out
    >>> cross_validated_agreement(recs, [True] * len(recs))[-3:]
    [True, True, False]
    """
    kept = [i for i, k in enumerate(keep) if k]
    out = list(keep)
    if len(kept) < folds:
        return out
    order = kept[:]
    random.Random(seed).shuffle(order)
    for f in range(folds):
        held = set(order[f::folds])
        student = ProxyStudent([records[i] for i in kept if i not in held])
        for i in held:
            out[i] = student.predict(str(records[i]["text"])) == records[i]["label"]
    return out


def agrees_with(student: ProxyStudent, records: Sequence[Record], keep: Sequence[bool]) -> list[bool]:
    """``keep`` narrowed to the records whose label ``student`` (trained elsewhere) also predicts."""
    return [k and student.predict(str(r["text"])) == r["label"] for k, r in zip(keep, records)]


SECOND_STAGES = (None, "cv-agreement")


def select_candidate(records: Sequence[Record], row: dict[str, Any], calibrators: Calibrators | None = None,
                     *, seed: int = 0) -> list[bool]:
    """Keep mask of one :func:`choose_on_dev` row: its strategy, then its second stage (``clean``) if any."""
    keep = select(records, row["strategy"], row["param"], calibrators)
    if row.get("clean") == "cv-agreement":
        keep = cross_validated_agreement(records, keep, seed=seed)
    elif row.get("clean") is not None:
        raise ValueError(f"unknown second stage '{row['clean']}'")
    return keep


def proxy_f1(train_kept: Sequence[Record], dev: Sequence[Record], gold_field: str = "gold") -> float:
    if len({r.get("label") for r in train_kept if r.get("label") is not None}) < 2:
        return 0.0
    student = ProxyStudent(train_kept)
    return precision_recall_f1([r[gold_field] for r in dev], [student.predict(str(r["text"])) for r in dev])["f1"]


def candidates(calibrators: Calibrators | None, *, with_agreement: bool = False, with_consistency: bool = False) -> list[tuple[str, float]]:
    """The (strategy, parameter) grid :func:`choose_on_dev` searches."""
    grid = [("threshold", t) for t in (0.8, 0.9, 0.95)]
    grid += [("per-label-top-fraction", f) for f in (0.4, 0.5, 0.6, 0.7, 0.8)]
    if calibrators:
        grid += [("per-label-calibrated", p) for p in (0.8, 0.85, 0.9, 0.95)]
    if with_agreement:
        grid.append(("agreement", 1.0))
    if with_consistency:
        grid += [("agreement", p) for p in (0.8, 1.0)]
    return grid


def choose_on_dev(views: dict[str, Sequence[Record]], dev: Sequence[Record], calibrators: Calibrators | None,
                  *, min_per_label: int = 10, dev_labelled: Sequence[Record] | None = None) -> dict[str, Any]:
    """Score every candidate with the proxy student on dev gold; ``views`` maps a labelling name (``greedy``,
    ``two_teachers``, ``k_samples``) to the train records as that labelling left them. Every (strategy, parameter)
    is tried alone and followed by the :func:`cross_validated_agreement` second stage (``clean``). Candidates
    keeping fewer than ``min_per_label`` of some label are skipped. Returns the table of candidates and the best one.

    The proxy (naive Bayes) shrugs off label noise that a fine-tuned encoder memorises, so its dev F1 alone cannot
    tell a candidate from its cleaned twin. With ``dev_labelled`` (the teacher's greedy labels on dev), each greedy
    candidate's filter is also applied to dev and the share of wrong labels it keeps there is its ``dev_label_noise``:
    the best candidate has the highest proxy F1 (to 2 decimals), then the lowest estimated noise (unknown counts as
    worst), then the larger kept set (more data, same estimated quality)."""
    table = []
    for view, records in views.items():
        grid = candidates(calibrators if view == "greedy" else None, with_agreement=view == "two_teachers",
                          with_consistency=view == "k_samples")
        if view != "greedy":
            grid = [g for g in grid if g[0] == "agreement"]
        for strategy, param in grid:
            for clean in SECOND_STAGES:
                row: dict[str, Any] = {"labelling": view, "strategy": strategy, "param": param, "clean": clean}
                keep = select_candidate(records, row, calibrators)
                kept = [r for r, k in zip(records, keep) if k]
                per_label = Counter(r["label"] for r in kept)
                row.update(kept=len(kept), kept_per_label=dict(per_label))
                if len(per_label) < 2 or min(per_label.values()) < min_per_label:
                    row["skipped"] = f"fewer than {min_per_label} of a label"
                    table.append(row)
                    continue
                row["proxy_dev_f1"] = round(proxy_f1(kept, dev), 4)
                if dev_labelled is not None and view == "greedy":
                    dev_keep = select(dev_labelled, strategy, param, calibrators)
                    if clean is not None:
                        dev_keep = agrees_with(ProxyStudent(kept), dev_labelled, dev_keep)
                    dev_kept = [r for r, k in zip(dev_labelled, dev_keep) if k]
                    if dev_kept:
                        row["dev_label_noise"] = round(sum(r["label"] != r["gold"] for r in dev_kept) / len(dev_kept), 4)
                table.append(row)
    scored = [r for r in table if "proxy_dev_f1" in r]
    best = max(scored, key=lambda r: (round(r["proxy_dev_f1"], 2), -r.get("dev_label_noise", 1.0), r["kept"])) if scored else None
    return {"candidates": table, "best": best}


# -- review queue -----------------------------------------------------------------------------------------------------
def review_value(record: Record, calibrators: Calibrators | None, label_weight: dict[str, float]) -> float:
    """Expected value of a human label for one left-out record: P(the teacher is wrong) - what a review fixes - times
    the weight of the label the record would move to or from (the scarcer kept label weighs more). Records the
    teacher could not label at all are worth a full label."""
    if record.get("label") is None:
        return max(label_weight.values(), default=1.0)
    p_right = calibrated(record, calibrators) if calibrators else float(record["confidence"])
    return (1.0 - p_right) * label_weight.get(record["label"], 1.0) + 0.05 * label_weight.get(record["label"], 1.0)


def review_order(records: Sequence[Record], keep: Sequence[bool], calibrators: Calibrators | None) -> list[int]:
    """Indices of the left-out records, highest expected value of a human label first."""
    kept = Counter(r["label"] for r, k in zip(records, keep) if k)
    total = sum(kept.values()) or 1
    labels = {r["label"] for r in records if r.get("label") is not None}
    weight = {lab: min(4.0, (total / len(labels)) / max(1, kept.get(lab, 0))) for lab in labels}
    left = [i for i, k in enumerate(keep) if not k]
    return sorted(left, key=lambda i: (-review_value(records[i], calibrators, weight), i))


def errors_found(records: Sequence[Record], order: Sequence[int], budget: int, gold_field: str = "gold") -> int:
    """How many teacher errors (or missing labels) a reviewer meets in the first ``budget`` rows of ``order``."""
    return sum(records[i].get("label") != records[i][gold_field] for i in order[:budget])


def positive_share(records: Sequence[Record], field: str = "label") -> float:
    return sum(r.get(field) == POSITIVE for r in records) / len(records) if records else 0.0


# -- decision threshold -------------------------------------------------------------------------------------------------
# A classifier trained on a teacher that says "yes" to look-alikes inherits that prior: at the argmax rule (P >= 0.5)
# it can call every table an SoE. The same gold dev set that chooses the filter chooses the operating point.


def positive_probability(prediction: Any, positive: str = POSITIVE) -> float | None:
    """P(positive) from an ``Answer(label, confidence)`` of a two-label classifier; None for an abstention.

    >>> from ehrforge.core.types import Abstain, Answer
    >>> positive_probability(Answer("soe", 0.8)), positive_probability(Answer("other", 0.8)), positive_probability(Abstain("x", 0.1))
    (0.8, 0.19999999999999996, None)
    """
    if not isinstance(prediction, Answer):
        return None
    confidence = float(prediction.confidence)
    return confidence if prediction.value == positive else 1.0 - confidence


def decision_threshold(p_positive: Sequence[float | None], gold: Sequence[str], positive: str = POSITIVE) -> float:
    """The threshold on P(positive) that maximises positive-class F1 on gold-labelled dev rows: a midpoint between
    two observed probabilities (never an observed value), 0.5 (the argmax rule) among the candidates and preferred on
    ties, then the candidate nearest 0.5.

    >>> decision_threshold([0.95, 0.9, 0.8, 0.7, 0.2], ["soe", "soe", "soe", "other", "other"])
    0.75
    >>> decision_threshold([0.9, 0.1], ["soe", "other"])
    0.5
    """
    seen = sorted({p for p in p_positive if p is not None})
    candidates = {0.5} | {(lo + hi) / 2 for lo, hi in zip(seen, seen[1:])}

    def f1_at(threshold: float) -> float:
        return precision_recall_f1(gold, apply_threshold(p_positive, threshold, positive), positive)["f1"]

    return max(sorted(candidates), key=lambda t: (round(f1_at(t), 12), -abs(t - 0.5)))


def apply_threshold(p_positive: Sequence[float | None], threshold: float, positive: str = POSITIVE,
                    negative: str = NEGATIVE) -> list[str | None]:
    """Labels at a decision threshold; an abstention (None) stays None.

    >>> apply_threshold([0.9, 0.4, None], 0.5)
    ['soe', 'other', None]
    """
    return [None if p is None else positive if p >= threshold else negative for p in p_positive]
