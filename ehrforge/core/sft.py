"""Supervised fine-tuning with LoRA (TRL ``SFTTrainer`` + PEFT), for any task.

Rows are conversational prompt/completion pairs (``Task.sft_example``), so the loss is on the completion only and
any chat template works (no ``{% generation %}`` markers needed). The output folder is a PEFT adapter plus the
tokenizer and ``ehrforge_model.json`` (base model spec, task), loadable with ``load_backend("transformers:<dir>")``.
Interrupted runs resume from the last checkpoint in ``<out>/checkpoints``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from ehrforge.core.adapters import base_model_spec, last_checkpoint, load_trainable, lora_config, save_adapter
from ehrforge.core.loader import model_card
from ehrforge.core.progress import training_progress_callback
from ehrforge.core.settings import Settings
from ehrforge.errors import DataError

if TYPE_CHECKING:  # the task interface is only a type here: core never imports a recipe
    from ehrforge.tasks.base import Record, Task


class SFTSettings(Settings):
    """LoRA SFT settings: the one declaration used by the run config (``sft:`` block, ``--set sft.x=``) and the
    trainer alike."""

    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)  # > 0 overrides epochs; 0 is rejected (it used to run one step)
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    max_seq_len: int = Field(1024, ge=32)
    seed: int = 0
    warmup_steps: int = Field(0, ge=0)
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(5, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"

    @field_validator("max_steps")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (use epochs) or a positive number of steps")
        return value


def train_sft(
    task: Task,
    records: Sequence[Record],
    base_model: str,
    out_dir: str | os.PathLike,
    cfg: SFTSettings | None = None,
    *,
    resume: bool = True,
    extra_rows: Sequence[dict[str, Any]] = (),
) -> Path:
    """LoRA-fine-tune ``base_model`` on ``task.sft_example(r)`` for each record; return the adapter folder."""
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    cfg = cfg or SFTSettings()
    if not records and not extra_rows:
        raise DataError("no training records", "check the data split or filter settings")
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    # Training on top of an adapter (stage 2 on stage 1) merges it first; the new adapter records it as its base.
    model, tokenizer, device = load_trainable(base_model, cfg.dtype, cfg.device)
    rows = [task.sft_example(r) for r in records] + list(extra_rows)
    dataset = Dataset.from_list(rows)
    use_bf16 = str(model.dtype) == "torch.bfloat16"
    args = TRLSFTConfig(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_seq_len,
        seed=cfg.seed,
        warmup_steps=cfg.warmup_steps,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to="none",
        gradient_checkpointing=False,  # small models: memory is not the bottleneck, speed is
        bf16=use_bf16,
        use_cpu=device == "cpu",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    lora = lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[training_progress_callback(f"SFT {task.name}")],
    )
    from transformers.trainer_callback import PrinterCallback

    kept = len(trainer.train_dataset)
    if kept == 0:
        raise DataError(
            f"all {len(rows)} training examples lose their answer to truncation at max_seq_len={cfg.max_seq_len}",
            "raise sft.max_seq_len (prompt + answer must fit)",
        )

    trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout; the rich bar shows loss instead
    checkpoint = last_checkpoint(ckpt_dir) if resume else None
    resumed_from = int(checkpoint.name.split("-")[1]) if checkpoint else 0
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    save_adapter(
        trainer.model,
        tokenizer,
        out,
        {
            "base_model": base_model_spec(base_model),
            **model_card(task),
            "train_records": len(records),
            "examples_kept_after_truncation": kept,
            "extra_rows": len(extra_rows),
            "sft": cfg.model_dump(),
            "train_loss": result.training_loss,
            "steps": result.global_step,
            "resumed_from_step": resumed_from,
        },
    )
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return out
