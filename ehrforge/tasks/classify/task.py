"""The ``classify`` recipe: is this protocol table a Schedule of Events? (selective fine-tuning on teacher labels)

Records carry the table ``text`` plus two label fields that are kept apart on purpose:

* ``gold`` - the true label (``soe``/``other``), used only to *score*; synthetic data has it, user data may not.
* ``label`` - the label a student is *trained* on: the teacher's (written by ``ehrforge label``), a reviewer's
  (``ehrforge label import-review``) or, for the gold-trained reference student, a copy of ``gold``.

``label_field`` picks the training field (``--set label_field=gold`` trains on gold labels). A record whose
training label is ``None`` (the teacher failed, or review filtered it out) is never trained on.

The model answers one word, ``yes`` or ``no``; anything else is an abstention (never a guessed label).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ehrforge.core.confidence import label_token_probability
from ehrforge.core.io import atomic_write_jsonl
from ehrforge.core.types import Abstain, Answer, Generation, Message, Prediction
from ehrforge.errors import DataError
from ehrforge.core.contract import Capability, Record, RewardFn, Task, TaskOptions
from ehrforge.core.training import train_core
from ehrforge.tasks.classify.prompt_format import ANSWER_WORD, TABLE_END, TABLE_START, table_from_prompt
from ehrforge.tasks.classify.tables import LABELS, NEGATIVE, POSITIVE, generate_tables

__all__ = ["ANSWER_WORD", "TABLE_END", "TABLE_START", "ClassifyTask", "table_from_prompt"]

SYSTEM = "You classify tables taken from clinical-trial protocols. Answer with a single word."
QUESTION = (
    "Is the table below a Schedule of Events (also called schedule of activities, study flow chart or time and "
    "events schedule): a grid of study visits against procedures or assessments, marking which procedure is done "
    "at which visit? Answer yes or no."
)
_WORD_LABEL = {"yes": POSITIVE, "no": NEGATIVE, "soe": POSITIVE, "other": NEGATIVE, "true": POSITIVE, "false": NEGATIVE}
_FIRST_WORD = re.compile(r"[a-z]+")
# synthetic split sizes and seeds: disjoint seeds keep the splits independent
SPLIT_SEEDS = {"train": 1001, "valid": 2002, "test": 3003}


def answer_to_label(text: str) -> str | None:
    """First word of a reply mapped to a label; ``None`` when it is not an answer.

    >>> answer_to_label("Yes."), answer_to_label(" no, it is a dosing table"), answer_to_label("I think so")
    ('soe', 'other', None)
    """
    m = _FIRST_WORD.search(text.lower())
    return _WORD_LABEL.get(m.group(0)) if m else None


def answer_is_label(completions: list[Any], label: list[str | None] | None = None, **_: Any) -> list[float]:
    """GRPO reward: 1.0 when the completion's answer equals the record's training label, else 0.0.

    >>> answer_is_label(["yes", [{"content": "No"}], "maybe"], label=["soe", "other", "soe"])
    [1.0, 1.0, 0.0]
    """
    labels = label or [None] * len(completions)
    out = []
    for comp, lab in zip(completions, labels):
        text = comp[0]["content"] if isinstance(comp, list) else str(comp)
        out.append(1.0 if lab is not None and answer_to_label(text) == lab else 0.0)
    return out


def answer_is_one_word(completions: list[Any], **_: Any) -> list[float]:
    """GRPO format reward: 1.0 for a bare ``yes``/``no`` (the serving parser reads only the first word).

    >>> answer_is_one_word(["yes", "no.", "yes, because"])
    [1.0, 1.0, 0.0]
    """
    out = []
    for comp in completions:
        text = (comp[0]["content"] if isinstance(comp, list) else str(comp)).strip().lower().rstrip(".")
        out.append(1.0 if text in ("yes", "no") else 0.0)
    return out


def precision_recall_f1(gold: Sequence[str], predicted: Sequence[str | None], positive: str = POSITIVE) -> dict[str, float]:
    """P/R/F1 for the positive class; an abstention (``None``) is never a positive prediction, so it costs recall.

    >>> precision_recall_f1(["soe", "soe", "other", "other"], ["soe", None, "soe", "other"])
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'accuracy': 0.5, 'coverage': 0.75, 'n': 4.0}
    """
    tp = sum(g == positive and p == positive for g, p in zip(gold, predicted))
    fp = sum(g != positive and p == positive for g, p in zip(gold, predicted))
    fn = sum(g == positive and p != positive for g, p in zip(gold, predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(gold)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": sum(g == p for g, p in zip(gold, predicted)) / n if n else 0.0,
        "coverage": sum(p is not None for p in predicted) / n if n else 0.0,
        "n": float(n),
    }


class ClassifyOptions(TaskOptions):
    #: record field holding the training label (a teacher's label after `ehrforge label`)
    label_field: str = "label"
    #: record field holding the gold label (scoring)
    gold_field: str = "gold"
    #: lora (the generative model answers yes/no) or seqcls (a classification head on the MiniLM encoder)
    head: Literal["lora", "seqcls"] = "lora"
    max_chars: int = Field(1200, ge=100)
    n_train: int = Field(400, ge=1)
    n_valid: int = Field(200, ge=1)
    n_test: int = Field(200, ge=1)
    positive_rate: float = Field(0.4, ge=0, le=1)
    #: where malformed input lines are copied
    rejects: str | None = None


class ClassifyTask(Task):
    name = "classify"
    summary = "Schedule-of-Events table detection; selective fine-tuning on confident teacher labels"
    metric = "f1"
    default_max_new_tokens = 4
    labels = LABELS
    Options = ClassifyOptions
    capabilities = frozenset({Capability.SYNTH, Capability.CUSTOM_TRAINING, Capability.PREDICTOR,
                              Capability.STAND_IN_TEACHER})

    def stand_in_teacher(self, noise: float | None, sources: Sequence[str], seed: int = 0) -> Any:
        """The simulated teacher (a noise model over gold labels), for controlled-noise experiments."""
        from ehrforge.tasks.classify.simulated_teacher import simulated_teacher_for

        return simulated_teacher_for(self, sources, noise_rate=0.25 if noise is None else noise, seed=seed)

    def setup(self) -> None:
        o = self.options
        self.sizes = {"train": o.n_train, "valid": o.n_valid, "test": o.n_test}
        self.last_rejected: list[tuple[int, str]] = []

    # -- data -----------------------------------------------------------------------------------------------------
    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        """Synthetic tables for ``train``/``valid``/``test`` (``label`` = ``gold``), or the user's ``source``."""
        if source is not None:
            from ehrforge.tasks.classify.sources import load_tables

            report = load_tables(source, self.rejects)
            self.last_rejected = report.rejected
            if report.rejected:
                _warn_rejects(report.rejected, report.rejects_path)
            records = report.records
        else:
            if split not in SPLIT_SEEDS:
                raise DataError(f"unknown split '{split}'", f"use one of {', '.join(SPLIT_SEEDS)}, or pass a data file")
            records = generate_tables(
                self.sizes[split], seed=SPLIT_SEEDS[split] + seed, positive_rate=self.positive_rate, prefix=split
            )
            for rec in records:
                rec["label"] = rec["gold"]
        return records[:limit] if limit is not None else records

    def synthesize(self, out: Path, *, n: int, teacher: Any = None, seed: int = 0) -> dict[str, Any]:
        """Write ``n`` synthetic tables with gold labels (the teacher is not needed: the generator knows the truth)."""
        records = generate_tables(n, seed=seed, positive_rate=self.positive_rate, prefix="syn")
        atomic_write_jsonl(out, records)
        kinds: dict[str, int] = {}
        for r in records:
            kinds[str(r["kind"])] = kinds.get(str(r["kind"]), 0) + 1
        return {"n": n, "positives": sum(r["gold"] == POSITIVE for r in records), "kinds": kinds, "out": str(out)}

    # -- prompting ------------------------------------------------------------------------------------------------
    def table_text(self, record: Record) -> str:
        text = str(record.get("text", ""))
        # Long tables are cut: the header and first rows decide the class, and CPU prompts must stay short.
        return text if len(text) <= self.max_chars else text[: self.max_chars] + "\n[...]"

    def prompt(self, record: Record) -> list[Message]:
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{QUESTION}\n\n{TABLE_START}\n{self.table_text(record)}\n{TABLE_END}"},
        ]

    def training_label(self, record: Record) -> str | None:
        return record.get(self.label_field)

    def target(self, record: Record) -> str:
        label = self.training_label(record)
        if label not in ANSWER_WORD:
            raise DataError(
                f"record {record.get('id')} has no usable '{self.label_field}' label",
                "label it with `ehrforge label`, or drop unlabelled/filtered-out records before training",
            )
        return ANSWER_WORD[label]

    def gold(self, record: Record) -> Any:
        return record.get(self.gold_field)

    def trainable(self, records: Sequence[Record]) -> list[Record]:
        """Records with a training label (teacher failures and filtered-out records are left out)."""
        return [r for r in records if self.training_label(r) in ANSWER_WORD]

    @staticmethod
    def normalise_label(value: Any) -> str | None:
        """How reviewers may spell a label (``yes``/``no``/``soe``/``other``/``true``/``1``...); for import-review."""
        from ehrforge.tasks.classify.sources import normalise_label

        return normalise_label(value)

    def parse(self, generation: Generation, record: Record) -> Prediction:
        label = answer_to_label(generation.text)
        if label is None:
            return Abstain("answer is not yes/no", 0.0)
        conf = label_token_probability(generation, _first_word(generation.text))
        return Answer(label, confidence=1.0 if conf is None else conf)

    # -- scoring --------------------------------------------------------------------------------------------------
    def reference(self, record: Record) -> str:
        ref = record.get(self.gold_field, record.get(self.label_field))
        if ref not in ANSWER_WORD:
            raise DataError(
                f"record {record.get('id')} has no '{self.gold_field}' label to score against",
                "evaluate on data with gold labels (synthetic splits have them)",
            )
        return str(ref)

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        gold = [self.reference(r) for r in records]
        predicted = [p.value if isinstance(p, Answer) else None for p in predictions]
        return precision_recall_f1(gold, predicted)

    def rewards(self) -> list[RewardFn]:
        return [answer_is_label, answer_is_one_word]

    def grpo_example(self, record: Record) -> dict[str, Any]:
        return {"prompt": self.prompt(record), "label": self.training_label(record), "id": record.get("id")}

    # -- training -------------------------------------------------------------------------------------------------
    def train(self, records: Sequence[Record], base_model: str, out_dir: Path, cfg: Any = None, *, stage: str = "sft") -> Path:
        """LoRA SFT of the generative model on yes/no answers (``head=lora``), or a sequence-classification head
        on the MiniLM encoder (``head=seqcls``). Records without a training label are skipped."""
        usable = self.trainable(records)
        if not usable:
            raise DataError(
                f"no record has a usable '{self.label_field}' label (of {len(records)})",
                "label the data first (`ehrforge label`), or pass --set label_field=gold for gold-labelled data",
            )
        if self.head == "seqcls":
            from ehrforge.tasks.classify.seqcls import SeqClsConfig, train_sequence_classifier

            return train_sequence_classifier(self, usable, Path(out_dir), SeqClsConfig.from_sft(cfg), encoder=base_model)
        return train_core(self, usable, base_model, out_dir, cfg, stage=stage)

    def stages(self) -> tuple[str, ...]:
        return ("sft",) if self.head == "seqcls" else super().stages()


def _first_word(text: str) -> str | None:
    m = _FIRST_WORD.search(text.lower())
    return m.group(0) if m else None


def _warn_rejects(rejected: list[tuple[int, str]], path: Path | None) -> None:
    from rich.console import Console

    lines = ", ".join(f"{n} ({why})" for n, why in rejected[:10]) + (" ..." if len(rejected) > 10 else "")
    Console(stderr=True).print(
        f"[yellow]warning:[/] skipped {len(rejected)} malformed input line(s): {lines}; copied to {path}",
        highlight=False,
    )
