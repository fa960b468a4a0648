"""GRPO with verifiable rewards (TRL ``GRPOTrainer`` + a LoRA adapter), for any task's ``rewards()``.

For each prompt the policy samples ``num_generations`` completions; each is scored by the task's plain reward
functions; advantages are the rewards normalised within the group, and ``beta`` weighs a KL penalty to the
starting model. The starting model may be a base model or an SFT adapter folder (merged first), so
"SFT then GRPO" and "GRPO without SFT" are the same call. Output: a PEFT adapter folder loadable with
``load_backend("transformers:<dir>")``, plus ``reward_curve.csv`` / ``reward_curve.png``. Checkpoints in
``<out>/checkpoints`` are kept: an interrupted run resumes where it stopped, and re-running with a larger
``max_steps`` continues training. Multi-GPU: run the same command under ``accelerate launch``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from ehrforge.core.adapters import base_model_spec, last_checkpoint, load_trainable, lora_config, save_adapter
from ehrforge.core.io import atomic_open, atomic_write_text
from ehrforge.core.loader import model_card
from ehrforge.core.memory import release_freed_memory
from ehrforge.core.progress import training_progress_callback
from ehrforge.core.settings import Settings, build
from ehrforge.errors import DataError

if TYPE_CHECKING:  # the task interface is only a type here: core never imports a recipe
    from ehrforge.core.contract import Record, RewardFn, Task


class GRPOSettings(Settings):
    """GRPO settings: the one declaration used by the run config (``grpo:`` block, ``--set grpo.x=``) and the trainer.

    >>> GRPOSettings.from_mapping({"num_generations": "8", "beta": "0"}).num_generations
    8
    >>> GRPOSettings.from_mapping({"beta": "x", "group": 2})
    Traceback (most recent call last):
    ...
    ehrforge.errors.ConfigError: invalid configuration: grpo.beta: Input should be a valid number, unable to parse string as a number; grpo.group: unknown setting — fix the listed fields and run again
    """

    num_generations: int = Field(4, ge=2)  # group size: advantages are relative within a group, so at least 2
    prompts_per_step: int = Field(2, ge=1)  # prompts per optimiser step (per device)
    beta: float = Field(0.04, ge=0)  # KL weight (0 disables the reference model and saves memory)
    learning_rate: float = Field(1e-5, gt=0, lt=1)
    max_steps: int = Field(30, ge=1)
    max_completion_length: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0)
    num_iterations: int = Field(1, ge=1)  # optimisation passes per generated batch (μ in the GRPO paper)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    reward_weights: list[float] | None = None
    seed: int = 0
    save_steps: int = Field(10, ge=1)
    logging_steps: int = Field(1, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"

    @field_validator("reward_weights", "lora_target_modules", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``--set grpo.reward_weights=1,0.5`` arrives as one string."""
        return [x.strip() for x in value.split(",") if x.strip()] if isinstance(value, str) else value

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GRPOSettings:
        """Build from CLI-style strings or a YAML mapping; every bad key/value listed at once."""
        return build(cls, values, prefix="grpo.")


def train_grpo(
    task: Task,
    records: Sequence[Record],
    base_model: str,
    out_dir: str | os.PathLike,
    settings: GRPOSettings | None = None,
    *,
    resume: bool = True,
    reward_funcs: Sequence[RewardFn] | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """GRPO-train a LoRA adapter on ``task.grpo_example(r)`` rows with ``task.rewards()`` (or ``reward_funcs``)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = settings or GRPOSettings()
    rewards = list(reward_funcs if reward_funcs is not None else task.rewards())
    problems = []
    if not records:
        problems.append("no training records")
    if not rewards:
        problems.append(f"task '{task.name}' defines no reward functions")
    if settings.reward_weights is not None and len(settings.reward_weights) != len(rewards):
        problems.append(f"reward_weights has {len(settings.reward_weights)} values for {len(rewards)} reward functions")
    if problems:
        raise DataError("; ".join(problems), "check the data split, the task's rewards() and the GRPO settings")

    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    model, tokenizer, device = load_trainable(base_model, settings.dtype, settings.device)
    tokenizer.padding_side = "left"
    dataset = Dataset.from_list([task.grpo_example(r) for r in records])
    args = GRPOConfig(
        output_dir=str(ckpt_dir),
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        beta=settings.beta,
        num_generations=settings.num_generations,
        # TRL counts completions, not prompts: one step sees prompts_per_step groups of num_generations.
        per_device_train_batch_size=settings.num_generations * settings.prompts_per_step,
        gradient_accumulation_steps=1,
        num_iterations=settings.num_iterations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        reward_weights=settings.reward_weights,
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_steps=settings.save_steps,
        save_total_limit=1,
        report_to="none",
        bf16=str(model.dtype) == "torch.bfloat16",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
    )
    lora = lora_config(settings.lora_r, settings.lora_alpha, settings.lora_dropout, settings.lora_target_modules)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[training_progress_callback(f"GRPO {task.name}"), _CurveWriter(out), *callbacks],
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints raw {'loss': ...} dicts on stdout
    checkpoint = last_checkpoint(ckpt_dir) if resume else None
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    write_reward_curve(trainer.state.log_history, out)

    saved = save_adapter(
        trainer.model,
        tokenizer,
        out,
        {
            "base_model": base_model_spec(base_model),
            **model_card(task),
            "stage": "grpo",
            "train_records": len(records),
            "grpo": settings.model_dump(),
            "rewards": [getattr(f, "__name__", str(f)) for f in rewards],
            "steps": result.global_step,
            "resumed_from": checkpoint.name if checkpoint else None,
            "train_loss": result.training_loss,
        },
    )
    # as train_sft: the trainer holds the policy, its optimiser state and the generation buffers; the caller
    # usually loads the trained model next, so that heap goes back to the OS first
    del trainer, model
    release_freed_memory()
    return saved


CURVE_KEYS = ("reward", "reward_std", "kl", "loss", "completions/mean_length", "learning_rate")


def write_reward_curve(log_history: Sequence[Mapping[str, Any]], out: Path) -> Path | None:
    """Write ``reward_curve.csv`` (one row per logged step: mean reward, each reward function's mean, KL, loss,
    completion length) and ``reward_curve.png``. Both atomically; the history includes resumed runs' steps."""
    rows = [dict(h) for h in log_history if "reward" in h and "step" in h]
    if not rows:
        return None
    per_fn = sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    columns = ["step", *CURVE_KEYS, *per_fn]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in sorted(rows, key=lambda r: r["step"]):
        writer.writerow({c: r.get(c, "") for c in columns})
    out.mkdir(parents=True, exist_ok=True)
    csv_path = atomic_write_text(out / "reward_curve.csv", buf.getvalue())
    _plot_curve(rows, per_fn, out / "reward_curve.png")
    return csv_path


def _plot_curve(rows: list[dict[str, Any]], per_fn: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: training machines have no display
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["reward"] for r in rows], label="total reward", linewidth=2)
    for key in per_fn:
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], label=key.split("/")[1], alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title("GRPO reward curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def _CurveWriter(out: Path) -> Any:  # noqa: N802 - a factory standing in for a class, to import transformers lazily
    """Rewrite the curve at every checkpoint, so an interrupted run still leaves an up-to-date curve."""
    from transformers import TrainerCallback

    class CurveWriter(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            write_reward_curve(state.log_history, out)

    return CurveWriter()
