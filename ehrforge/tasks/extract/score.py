"""Strict entity-level P/R/F1 (seqeval strict / conlleval style) and relation F1.

An entity counts as correct only when its start, end and label all match a gold entity; a relation only when its
type and both arguments (as exact spans with labels) match a gold relation. Micro-averaged over all records, plus
per-label figures. An abstention predicts nothing: its gold entities count as missed. Relations are scored only on
records that carry a ``relations`` key: CoNLL corpora have no relation annotations, so a relation predicted there
is neither right nor wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ehrforge.core.types import Answer, Prediction

EntityKey = tuple[int, int, str]
RelationKey = tuple[EntityKey, EntityKey, str]


def entity_keys(entities: Iterable[dict[str, Any]]) -> set[EntityKey]:
    return {(int(e["start"]), int(e["end"]), str(e["label"])) for e in entities}


def relation_keys(entities: Sequence[dict[str, Any]], relations: Iterable[dict[str, Any]]) -> set[RelationKey]:
    keys: set[RelationKey] = set()
    for r in relations:
        if not all(isinstance(r.get(x), int) and 0 <= r[x] < len(entities) for x in ("head", "tail")):
            continue  # a relation pointing nowhere cannot be correct; it is simply not counted as predicted
        h, t = entities[r["head"]], entities[r["tail"]]
        keys.add(
            ((int(h["start"]), int(h["end"]), str(h["label"])), (int(t["start"]), int(t["end"]), str(t["label"])), str(r.get("type", "")))
        )
    return keys


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1; 0/0 counts as 0 (nothing predicted and nothing to find is not a success to report).

    >>> prf(2, 4, 2)
    (0.5, 1.0, 0.6666666666666666)
    >>> prf(0, 0, 0)
    (0.0, 0.0, 0.0)
    """
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def predicted_value(pred: Prediction | dict[str, Any] | None) -> dict[str, Any]:
    """The ``{"entities": [...], "relations": [...]}`` a prediction commits to (empty for an abstention)."""
    if isinstance(pred, Answer):
        pred = pred.value
    if not isinstance(pred, dict):
        return {"entities": [], "relations": []}
    return {"entities": pred.get("entities", []) or [], "relations": pred.get("relations", []) or []}


def score_extraction(records: Sequence[dict[str, Any]], predictions: Sequence[Prediction | dict[str, Any] | None]) -> dict[str, float]:
    """Strict micro P/R/F1 for entities (``entity_*``), per label (``<label>_f1``) and, when any record is
    relation-annotated (has a ``relations`` key, even empty), for relations (``relation_*``) over those records.
    Also ``abstained`` (count) and ``n`` (records).

    >>> gold = [{"text": "a b", "entities": [{"start": 0, "end": 1, "label": "X"}, {"start": 2, "end": 3, "label": "Y"}]}]
    >>> pred = [{"entities": [{"start": 0, "end": 1, "label": "X"}, {"start": 2, "end": 3, "label": "X"}]}]
    >>> s = score_extraction(gold, pred)
    >>> (s["entity_precision"], s["entity_recall"], s["X_f1"], s["Y_f1"])
    (0.5, 0.5, 0.6666666666666666, 0.0)
    """
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    tp = n_pred = n_gold = 0
    per_label: dict[str, Counter] = {}
    r_tp = r_pred = r_gold = 0
    any_relations = False
    abstained = 0
    for rec, pred in zip(records, predictions):
        if pred is None or (not isinstance(pred, (Answer, dict))):
            abstained += 1
        value = predicted_value(pred)
        gold = entity_keys(rec.get("entities", []))
        guess = entity_keys(value["entities"])
        tp += len(gold & guess)
        n_pred += len(guess)
        n_gold += len(gold)
        for key in gold | guess:
            c = per_label.setdefault(key[2], Counter())
            c["gold"] += key in gold
            c["pred"] += key in guess
            c["tp"] += key in gold and key in guess
        if "relations" in rec:  # only relation-annotated records can score relations (absent = not annotated)
            any_relations = True
            gold_rel = rec["relations"] or []
            pred_rel = value["relations"]
            gr = relation_keys(rec.get("entities", []), gold_rel)
            pr = relation_keys(value["entities"], pred_rel)
            r_tp += len(gr & pr)
            r_pred += len(pr)
            r_gold += len(gr)
    p, r, f = prf(tp, n_pred, n_gold)
    out: dict[str, float] = {"entity_precision": p, "entity_recall": r, "entity_f1": f}
    for label in sorted(per_label):
        c = per_label[label]
        lp, lr, lf = prf(c["tp"], c["pred"], c["gold"])
        out.update({f"{label}_precision": lp, f"{label}_recall": lr, f"{label}_f1": lf})
    if any_relations:
        rp, rr, rf = prf(r_tp, r_pred, r_gold)
        out.update({"relation_precision": rp, "relation_recall": rr, "relation_f1": rf})
    out.update({"n": float(len(records)), "gold_entities": float(n_gold), "abstained": float(abstained)})
    return out
