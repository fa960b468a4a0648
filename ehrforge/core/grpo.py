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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ehrforge.core.adapters import base_model_spec, last_checkpoint, load_trainable, lora_config, save_adapter
from ehrforge.core.io import atomic_open, atomic_write_text
from ehrforge.core.progress import training_progress_callback
from ehrforge.errors import ConfigError, DataError
from ehrforge.tasks.base import Record, RewardFn, Task


@dataclass
class GRPOSettings:
    num_generations: int = 4  # group size: completions per prompt
    prompts_per_step: int = 2  # prompts per optimiser step (per device)
    beta: float = 0.04  # KL weight (0 disables the reference model and saves memory)
    learning_rate: float = 1e-5
    max_steps: int = 30
    max_completion_length: int = 256
    temperature: float = 1.0
    num_iterations: int = 1  # optimisation passes per generated batch (μ in the GRPO paper)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    reward_weights: list[float] | None = None
    seed: int = 0
    save_steps: int = 10
    logging_steps: int = 1
    dtype: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    device: str = "auto"

    def problems(self) -> list[str]:
        out = []
        for name in (
            "num_generations",
            "prompts_per_step",
            "max_steps",
            "max_completion_length",
            "num_iterations",
            "lora_r",
            "save_steps",
            "logging_steps",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                out.append(f"{name} must be a positive integer (got {getattr(self, name)!r})")
        if isinstance(self.num_generations, int) and self.num_generations < 2:
            out.append("num_generations must be at least 2 (advantages are relative within a group)")
        if not self.learning_rate > 0:
            out.append(f"learning_rate must be > 0 (got {self.learning_rate})")
        if self.beta < 0:
            out.append(f"beta must be >= 0 (got {self.beta})")
        if not self.temperature > 0:
            out.append(f"temperature must be > 0 (got {self.temperature})")
        if not 0 <= self.lora_dropout < 1:
            out.append(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            out.append(f"dtype must be auto, float32, bfloat16 or float16 (got '{self.dtype}')")
        return out

    def validate(self) -> GRPOSettings:
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GRPOSettings:
        """Build from CLI-style ``key=value`` strings or a YAML mapping; lists every bad key/value at once.

        >>> GRPOSettings.from_mapping({"num_generations": "8", "beta": "0"}).num_generations
        8
        >>> GRPOSettings.from_mapping({"beta": "x", "group": 2})
        Traceback (most recent call last):
        ...
        ehrforge.errors.ConfigError: invalid configuration: beta must be a number (got 'x'); unknown setting 'group' — fix the listed fields and run again
        """
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        problems = []
        for key, raw in values.items():
            if key not in known:
                problems.append(f"unknown setting '{key}'")
                continue
            default = getattr(cls(), key)
            try:
                if isinstance(default, bool):
                    kwargs[key] = str(raw).lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    kwargs[key] = int(raw)
                elif isinstance(default, float):
                    kwargs[key] = float(raw)
                elif isinstance(default, list) or key == "reward_weights":
                    items = raw if isinstance(raw, list) else [x for x in str(raw).split(",") if x]
                    kwargs[key] = [float(x) for x in items] if key == "reward_weights" else [str(x) for x in items]
                else:
                    kwargs[key] = raw
            except (TypeError, ValueError):
                kind = (
                    "an integer" if isinstance(default, int) else "a number" if isinstance(default, float) else "a list"
                )
                problems.append(f"{key} must be {kind} (got '{raw}')")
        if problems:
            raise ConfigError(problems)
        return cls(**kwargs).validate()


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

    settings = (settings or GRPOSettings()).validate()
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
    checkpoint = last_checkpoint(ckpt_dir) if resume else None
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    write_reward_curve(trainer.state.log_history, out)

    return save_adapter(
        trainer.model,
        tokenizer,
        out,
        {
            "base_model": base_model_spec(base_model),
            "task": task.name,
            "stage": "grpo",
            "train_records": len(records),
            "grpo": asdict(settings),
            "rewards": [getattr(f, "__name__", str(f)) for f in rewards],
            "steps": result.global_step,
            "resumed_from": checkpoint.name if checkpoint else None,
            "train_loss": result.training_loss,
        },
    )


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
