"""Optional student: a sequence-classification head on a small encoder (default: the bundled MiniLM).

Trained with the transformers ``Trainer`` and (by default) a PEFT LoRA adapter on the attention projections plus a
fully trained classifier head; the adapter is merged before saving, so the output folder is a plain HF model with a
``ehrforge_seqcls.json`` marker. It is ~10x cheaper than the generative student on CPU (22M parameters, no
decoding), which is why the selective fine-tuning benchmark uses it.

:class:`SeqClsBackend` wraps a trained folder as a :class:`~ehrforge.core.backends.Backend`: it reads the table out
of the classify prompt and "answers" ``yes``/``no`` with the class probability as the answer token's log-prob, so
``task.predict``, ``core.evaluate`` and serving treat it like any other model.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ehrforge.core.encoder import bundled_encoder_path, resolve_encoder_path
from ehrforge.core.io import atomic_write_json
from ehrforge.core.loader import MANIFEST, model_card
from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.errors import ModelError
from ehrforge.tasks.classify.tables import LABELS
from ehrforge.core.backends.capabilities import BackendCapability

MARKER = "ehrforge_seqcls.json"  # the head's own settings; ehrforge_model.json names the predictor


# One place knows where the bundled encoder lives (ehrforge.core.encoder); the names stay for this task's callers.
default_encoder = bundled_encoder_path
resolve_encoder = resolve_encoder_path


@dataclass
class SeqClsConfig:
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs: compare students trained on different amounts of data fairly
    learning_rate: float = 1e-3
    batch_size: int = 16
    max_len: int = 128
    lora_r: int = 8  # 0 = full fine-tuning
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # LoRA on the top encoder layers only: back-propagation then stops there, which roughly halves CPU time per
    # step; table structure (visit headers, X marks) is easy enough for the top layers to pick up. 0 = all layers.
    lora_top_layers: int = 3
    seed: int = 0

    @classmethod
    def from_sft(cls, cfg: Any) -> SeqClsConfig:
        """Reuse the generic training options (``--epochs`` etc.) where they apply; keep our defaults otherwise.
        The generative SFT learning rate (2e-4) is too low for a freshly initialised classifier head, so it is only
        taken when the user changed it."""
        if cfg is None or isinstance(cfg, SeqClsConfig):
            return cfg or cls()
        out = cls()
        out.epochs = float(getattr(cfg, "epochs", out.epochs))
        out.batch_size = int(getattr(cfg, "batch_size", out.batch_size))
        out.lora_r = int(getattr(cfg, "lora_r", out.lora_r))
        out.lora_alpha = int(getattr(cfg, "lora_alpha", out.lora_alpha))
        out.seed = int(getattr(cfg, "seed", out.seed))
        lr = float(getattr(cfg, "learning_rate", 2e-4))
        if lr != 2e-4:  # the generic default
            out.learning_rate = lr
        return out


def train_sequence_classifier(
    task: Any, records: list[dict[str, Any]], out_dir: Path, cfg: SeqClsConfig | None = None, *, encoder: Any = None
) -> Path:
    """Fine-tune an encoder to predict ``task.training_label(r)`` from ``task.table_text(r)``; return ``out_dir``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from ehrforge.core.progress import training_progress_callback

    cfg = cfg or SeqClsConfig()
    enc_path = resolve_encoder(encoder)
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(enc_path))
    label2id = {lab: i for i, lab in enumerate(LABELS)}
    model = AutoModelForSequenceClassification.from_pretrained(
        str(enc_path), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=label2id
    )
    if cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        n_layers = int(model.config.num_hidden_layers)
        top = list(range(max(0, n_layers - cfg.lora_top_layers), n_layers)) if cfg.lora_top_layers > 0 else None
        model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.lora_dropout, target_modules=["query", "value"],
                                                 layers_to_transform=top))
    rows = [{"text": task.table_text(r), "label": label2id[task.training_label(r)]} for r in records]
    data = Dataset.from_list(rows).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=cfg.max_len), batched=True, remove_columns=["text"]
    )
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    args = TrainingArguments(
        output_dir=str(tmp / "trainer"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        seed=cfg.seed,
        save_strategy="no",  # a few minutes at most on CPU: restarting is cheaper than checkpoint I/O
        logging_steps=10,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    from transformers import DataCollatorWithPadding
    from transformers.trainer_callback import PrinterCallback

    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                      callbacks=[training_progress_callback("train classify (seqcls)")])
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    final = trainer.model.merge_and_unload() if cfg.lora_r > 0 else trainer.model
    final.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    atomic_write_json(tmp / MANIFEST, model_card(task, "ehrforge.tasks.classify.seqcls:SeqClsBackend"))
    atomic_write_json(tmp / MARKER, {
        "task": task.name, "head": "seqcls", "encoder": str(enc_path), "labels": list(LABELS),
        "train_records": len(records), "config": asdict(cfg), "train_loss": result.training_loss,
        "steps": result.global_step,
    })
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def is_seqcls_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / MARKER).exists()


class SeqClsBackend:
    """A trained sequence classifier behind the Backend interface (answers ``yes``/``no``)."""

    name = "seqcls"
    capabilities = frozenset({BackendCapability.LOGPROBS})

    def __init__(self, path: str | os.PathLike, *, batch_size: int = 32, max_len: int | None = None) -> None:
        import json

        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        if not is_seqcls_folder(self.path):
            raise ModelError(f"not a classify seqcls model: {self.path}", "train one with --set head=seqcls")
        meta = json.loads((self.path / MARKER).read_text())
        self.labels = meta["labels"]
        self.max_len = max_len or int(meta["config"]["max_len"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(self.path))
        self.model.eval()
        self.batch_size = batch_size

    def probabilities(self, texts: list[str]) -> list[list[float]]:
        import torch

        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start : start + self.batch_size], truncation=True, max_length=self.max_len,
                                 padding=True, return_tensors="pt")
            with torch.inference_mode():
                out.extend(torch.softmax(self.model(**enc).logits.float(), dim=-1).tolist())
        return out

    def generate(self, batch: list[list[Message]], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0,
                 seed: int | None = None) -> list[Generation]:
        from ehrforge.tasks.classify.prompt_format import ANSWER_WORD, table_from_prompt

        probs = self.probabilities([table_from_prompt(m) for m in batch])
        gens = []
        for p in probs:
            best = max(range(len(p)), key=p.__getitem__)
            word = ANSWER_WORD[self.labels[best]]
            ent = -sum(q * math.log(q) for q in p if q > 0)
            gens.append(Generation(text=word, tokens=[word], token_logprobs=[math.log(max(p[best], 1e-12))],
                                   token_entropies=[ent]))
        return gens
