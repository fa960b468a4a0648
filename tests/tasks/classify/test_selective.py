"""Filtering strategies chosen on dev, the realistic simulated teacher, and the review queue order."""

from __future__ import annotations

import random

import pytest

from ehrforge.core.calibration import expected_calibration_error
from ehrforge.tasks.classify import selective
from ehrforge.tasks.classify.simulated_teacher import RealisticTeacher
from ehrforge.tasks.classify.task import ClassifyTask


def _labelled(task, teacher, recs):
    gens = teacher.generate([task.prompt(r) for r in recs])
    out = []
    for g, r in zip(gens, recs):
        p = task.parse(g, r)
        out.append({**r, "label": p.value, "confidence": p.confidence})
    return out


@pytest.fixture(scope="module")
def labelled():
    task = ClassifyTask(n_train=400, n_valid=200)
    train, dev = task.load("train"), task.load("valid")
    teacher = RealisticTeacher(train + dev, noise_rate=0.25, task=task)
    return _labelled(task, teacher, train), _labelled(task, teacher, dev), dev


def test_realistic_teacher_is_noisy_informative_and_not_pinned_to_hard_items(labelled):
    train, _, _ = labelled
    wrong = [r["label"] != r["gold"] for r in train]
    assert sum(wrong) / len(train) == pytest.approx(0.25, abs=0.03)
    conf_wrong = sum(r["confidence"] for r, w in zip(train, wrong) if w) / sum(wrong)
    conf_right = sum(r["confidence"] for r, w in zip(train, wrong) if not w) / (len(train) - sum(wrong))
    assert conf_wrong < conf_right - 0.05  # informative
    ece = expected_calibration_error([r["confidence"] for r in train], [not w for w in wrong])
    assert 0.02 < ece < 0.2  # imperfect
    easy = [w for r, w in zip(train, wrong) if r["difficulty"] <= 0.2]
    assert 0 < sum(easy) < len(easy)  # easy tables are sometimes wrong too
    fp = sum(r["label"] == "soe" and r["gold"] != "soe" for r in train)
    fn = sum(r["label"] != "soe" and r["gold"] == "soe" for r in train)
    assert fp > fn  # leans to "yes" on look-alikes


def test_zero_noise_teacher_is_gold():
    task = ClassifyTask(n_train=30)
    recs = task.load("train")
    got = _labelled(task, RealisticTeacher(recs, noise_rate=0.0, task=task), recs)
    assert [r["label"] for r in got] == [r["gold"] for r in recs]


def test_isotonic_fit_is_monotone_and_per_label():
    rng = random.Random(0)
    confs = [rng.uniform(0.5, 1.0) for _ in range(300)]
    correct = [rng.random() < c - 0.1 for c in confs]
    fit = selective.isotonic_fit(confs, correct)
    probs = [p for _, p in fit]
    assert probs == sorted(probs) and 0 < probs[0] < probs[-1] < 1
    cal = selective.fit_label_calibrators([{"label": "a", "confidence": c, "gold": "a" if ok else "b"}
                                           for c, ok in zip(confs, correct)])
    assert set(cal) == {"a"}


def test_per_label_strategies_keep_both_classes_and_clean_labels(labelled):
    train, dev_lab, _ = labelled
    keep = selective.select(train, "per-label-top-fraction", 0.5)
    kept = [r for r, k in zip(train, keep) if k]
    assert {r["label"] for r in kept} == {"soe", "other"}
    noise_all = sum(r["label"] != r["gold"] for r in train) / len(train)
    assert sum(r["label"] != r["gold"] for r in kept) / len(kept) < noise_all - 0.05
    cal = selective.fit_label_calibrators(dev_lab)
    ckeep = selective.select(train, "per-label-calibrated", 0.8, cal)
    assert 0 < sum(ckeep) < len(train)
    with pytest.raises(ValueError):
        selective.select(train, "per-label-calibrated", 0.8, None)


def test_choose_on_dev_scores_candidates_and_skips_degenerate_ones(labelled):
    train, dev_lab, dev = labelled
    cal = selective.fit_label_calibrators(dev_lab)
    two = [{**r, "second_label": r["label"] if i % 3 else ("other" if r["label"] == "soe" else "soe")}
           for i, r in enumerate(train)]
    res = selective.choose_on_dev({"greedy": train, "two_teachers": two}, dev, cal, min_per_label=10)
    scored = [c for c in res["candidates"] if "proxy_dev_f1" in c]
    assert res["best"] in scored and round(res["best"]["proxy_dev_f1"], 2) == max(round(c["proxy_dev_f1"], 2) for c in scored)
    assert any(c["labelling"] == "two_teachers" for c in scored)
    assert all(min(c["kept_per_label"].values(), default=0) >= 10 for c in scored)
    assert {c["clean"] for c in scored} == {None, "cv-agreement"}


def test_cross_validated_agreement_drops_the_teachers_confident_mistakes(labelled):
    train, dev_lab, _ = labelled
    cal = selective.fit_label_calibrators(dev_lab)
    keep = selective.select(train, "per-label-calibrated", 0.8, cal)
    cleaned = selective.cross_validated_agreement(train, keep)
    assert all(k for k, c in zip(keep, cleaned) if c)  # never adds back what the first stage dropped

    def noise(mask):
        kept = [r for r, k in zip(train, mask) if k]
        return sum(r["label"] != r["gold"] for r in kept) / len(kept)

    assert sum(cleaned) > 0.7 * sum(keep)  # most labels survive ...
    assert noise(cleaned) < noise(keep) / 2  # ... and at least half of the kept noise goes
    row = {"strategy": "per-label-calibrated", "param": 0.8, "clean": "cv-agreement"}
    assert selective.select_candidate(train, row, cal) == cleaned
    with pytest.raises(ValueError, match="second stage"):
        selective.select_candidate(train, {**row, "clean": "vote"}, cal)


def test_choose_on_dev_breaks_proxy_ties_by_the_noise_it_keeps_on_dev(labelled):
    train, dev_lab, dev = labelled
    cal = selective.fit_label_calibrators(dev_lab)
    res = selective.choose_on_dev({"greedy": train}, dev, cal, dev_labelled=dev_lab)
    scored = [c for c in res["candidates"] if "proxy_dev_f1" in c]
    assert all("dev_label_noise" in c for c in scored)
    best = res["best"]
    ties = [c for c in scored if round(c["proxy_dev_f1"], 2) == round(best["proxy_dev_f1"], 2)]
    assert best["dev_label_noise"] == min(c["dev_label_noise"] for c in ties)
    without = selective.choose_on_dev({"greedy": train}, dev, cal)
    assert all("dev_label_noise" not in c for c in without["candidates"])


def test_review_order_puts_likely_teacher_errors_first(labelled):
    train, dev_lab, _ = labelled
    cal = selective.fit_label_calibrators(dev_lab)
    keep = selective.select(train, "per-label-top-fraction", 0.5)
    order = selective.review_order(train, keep, cal)
    left = [i for i, k in enumerate(keep) if not k]
    assert sorted(order) == left
    budget = 50
    random_orders = [random.Random(s).sample(left, len(left)) for s in range(20)]
    random_mean = sum(selective.errors_found(train, o, budget) for o in random_orders) / len(random_orders)
    assert selective.errors_found(train, order, budget) > random_mean


def test_dev_threshold_undoes_an_inherited_yes_prior():
    """A student of a yes-leaning teacher puts every table above 0.5; the dev threshold separates them again, and
    is a midpoint, never an observed probability (a test row at exactly that value would flip by luck)."""
    from ehrforge.core.types import Abstain, Answer

    dev = [Answer("soe", 0.9), Answer("soe", 0.85), Answer("soe", 0.62), Answer("soe", 0.6), Abstain("no yes/no", 0.0)]
    gold = ["soe", "soe", "other", "other", "soe"]
    p = [selective.positive_probability(x) for x in dev]
    threshold = selective.decision_threshold(p, gold)
    assert 0.62 < threshold < 0.85 and threshold not in p
    assert selective.apply_threshold(p, threshold) == ["soe", "soe", "other", "other", None]
    assert selective.decision_threshold(p, gold) == selective.decision_threshold(list(reversed(p)), list(reversed(gold)))
