"""Relation classification with entity markers on the same encoder (e.g. chemical-induces-disease, CID).

Every (head-type, tail-type) entity pair in a sentence becomes one example: the text with ``@ … @`` around the head
and ``# … #`` around the tail ("punctuation" entity markers, Zhou & Chen 2021), classified as *related* or *not*.
Punctuation already in the vocabulary is used rather than new special tokens because new tokens would start with
identical (mean) embeddings, and the embeddings are frozen to keep CPU fine-tuning fast. At prediction time the
pairs come from the NER output, so relation errors include NER errors, as in end-to-end evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ehrforge.errors import DataError, ModelError
from ehrforge.tasks.extract.ner import (
    EncoderConfig,
    data_fingerprint,
    encoder_path,
    freeze_embeddings,
    is_complete,
    quiet_transformers,
    run_trainer,
)
from ehrforge.tasks.extract.synth import RelationSpec

HEAD_MARK, TAIL_MARK = "@", "#"


def marked_text(text: str, head: dict[str, Any], tail: dict[str, Any]) -> str:
    """The text with entity markers around the head and tail spans (they never overlap).

    >>> marked_text("cocaine caused seizures", {"start": 0, "end": 7}, {"start": 15, "end": 23})
    '@ cocaine @ caused # seizures #'
    """
    inserts = sorted(
        [(head["start"], 0, f"{HEAD_MARK} "), (head["end"], 1, f" {HEAD_MARK}"),
         (tail["start"], 0, f"{TAIL_MARK} "), (tail["end"], 1, f" {TAIL_MARK}")],
        key=lambda x: (x[0], -x[1]),
    )
    out, pos = [], 0
    for at, _, marker in inserts:
        out.append(text[pos:at])
        out.append(marker)
        pos = at
    out.append(text[pos:])
    return "".join(out)


def candidate_pairs(entities: Sequence[dict[str, Any]], spec: RelationSpec) -> list[tuple[int, int]]:
    """Every (head-type, tail-type) pair of entities in one record, as index pairs.

    >>> candidate_pairs([{"label": "Chemical"}, {"label": "Disease"}, {"label": "Disease"}], RelationSpec())
    [(0, 1), (0, 2)]
    """
    heads = [i for i, e in enumerate(entities) if e["label"] == spec.head]
    tails = [i for i, e in enumerate(entities) if e["label"] == spec.tail]
    return [(h, t) for h in heads for t in tails if h != t]


def relation_examples(records: Sequence[dict[str, Any]], spec: RelationSpec) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        gold = {(r["head"], r["tail"]) for r in rec.get("relations", []) or [] if r.get("type", spec.name) == spec.name}
        ents = rec.get("entities", [])
        for h, t in candidate_pairs(ents, spec):
            rows.append({"text": marked_text(rec["text"], ents[h], ents[t]), "label": int((h, t) in gold)})
    return rows


def train_relations(records: Sequence[dict[str, Any]], out: str | os.PathLike, *, spec: RelationSpec | None = None,
                    base: str | os.PathLike | None = None, cfg: EncoderConfig | None = None, resume: bool = True) -> Path:
    """Fine-tune the encoder as a binary pair classifier for ``spec`` on records with gold relations."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    spec = spec or RelationSpec()
    cfg = cfg or EncoderConfig()
    cfg.validate()
    rows = relation_examples(records, spec)
    positives = sum(r["label"] for r in rows)
    if not rows or positives == 0 or positives == len(rows):
        raise DataError(
            f"relation training needs both related and unrelated {spec.head}-{spec.tail} pairs "
            f"({positives} of {len(rows)} pairs related)",
            "train on records with 'relations' (e.g. synthetic notes), or skip relation training",
        )
    out = Path(out)
    fingerprint = data_fingerprint(records, {"spec": asdict(spec), "cfg": asdict(cfg), "base": str(base)})
    if resume and is_complete(out, fingerprint):
        return out
    base_path = Path(base) if base else encoder_path()
    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=cfg.max_len * 2)
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                                 "labels": [r["label"] for r in rows]})
    set_seed(cfg.seed)  # the new classifier head is initialised from the global RNG, before Trainer seeds it
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_path), num_labels=2, id2label={0: "none", 1: spec.name}, label2id={"none": 0, spec.name: 1}
    )
    freeze_embeddings(model, cfg)
    meta = {"kind": "relation", "relation": asdict(spec), "train_records": len(records), "pairs": len(rows),
            "positive_pairs": positives, "fingerprint": fingerprint, "base": str(base_path)}
    return run_trainer(model, tokenizer, dataset, DataCollatorWithPadding(tokenizer), out, cfg,
                       f"relation fine-tune ({spec.name})", meta, resume=resume)


class RelationPredictor:
    """A trained relation folder: adds relations between already-found entities."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        import json

        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        if not is_complete(self.path):
            raise ModelError(f"not a trained relation model folder: {self.path}", "train one with `ehrforge train --task extract`")
        self.spec = RelationSpec(**json.loads((self.path / "ehrforge_train.json").read_text())["relation"])
        self.device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(self.path)).to(self.device).eval()

    def predict(self, texts: Sequence[str], entity_lists: Sequence[Sequence[dict[str, Any]]], *, batch_size: int = 64,
                threshold: float = 0.5) -> list[list[dict[str, Any]]]:
        """Relations (``head``/``tail`` indices into each entity list) whose probability is at least ``threshold``."""
        import torch

        jobs = [(k, h, t) for k, ents in enumerate(entity_lists) for h, t in candidate_pairs(ents, self.spec)]
        out: list[list[dict[str, Any]]] = [[] for _ in texts]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            inputs = [marked_text(texts[k], entity_lists[k][h], entity_lists[k][t]) for k, h, t in chunk]
            enc = self.tokenizer(inputs, truncation=True, max_length=512, padding=True, return_tensors="pt")
            with torch.no_grad():
                probs = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.softmax(-1)[:, 1].cpu()
            for (k, h, t), p in zip(chunk, probs.tolist()):
                if p >= threshold:
                    out[k].append({"head": h, "tail": t, "type": self.spec.name, "confidence": round(p, 4)})
        return out
