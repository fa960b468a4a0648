"""Supervised fine-tuning with LoRA for any task: PEFT and our own loop (label-only loss, bf16 autocast,
length-grouped batches; docs/speed.md).

Rows are conversational prompt/completion pairs (``Task.sft_example``), so the loss is on the completion only and
any chat template works (no ``{% generation %}`` markers needed). The output folder is a PEFT adapter plus the
tokenizer and ``ehrforge_model.json`` (base model spec, task), loadable with ``load_backend("transformers:<dir>")``.
Interrupted runs resume from the last checkpoint in ``<out>/checkpoints``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from ehrforge.core.adapters import base_model_spec, last_checkpoint, load_trainable, lora_config, save_adapter
from ehrforge.core.io import atomic_write_json
from ehrforge.core.loader import model_card
from ehrforge.core.memory import release_freed_memory
from ehrforge.core.progress import console, progress_bar
from ehrforge.core.settings import Settings
from ehrforge.errors import DataError

if TYPE_CHECKING:  # the task interface is only a type here: core never imports a recipe
    from ehrforge.core.contract import Record, Task


#: Llama-family projection names (SmolLM2, Qwen2, Llama): attention only (the default), or every linear layer
ATTENTION_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR_LAYERS = ATTENTION_LAYERS + ("gate_proj", "up_proj", "down_proj")


class SFTSettings(Settings):
    """LoRA SFT settings: the one declaration used by the run config (``sft:`` block, ``--set sft.x=``) and the
    trainer alike."""

    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)  # > 0 overrides epochs; 0 is rejected (a run that trains nothing is a mistake)
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(ATTENTION_LAYERS))
    max_seq_len: int = Field(1024, ge=32)
    seed: int = 0
    warmup_steps: int = Field(0, ge=0)
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(5, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    #: recompute activations in backward instead of storing them (docs/speed.md). On by default for one decoder layer
    #: in ``checkpoint_every``: one in two saves much of the memory at almost no speed (the recompute hides behind the
    #: saved allocation), every layer saves more and costs speed (benchmarks/results/throughput.json).
    gradient_checkpointing: bool = True
    checkpoint_every: int = Field(2, ge=1)
    #: also save a loadable adapter folder (``<out>/snapshots/seen-<n>``) when this many examples have been trained
    #: on, for learning curves measured along one run
    snapshot_examples: list[int] = Field(default_factory=list)

    @field_validator("snapshot_examples")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError("every snapshot point must be a positive number of examples")
        return sorted(set(value))

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
    import torch
    from peft import get_peft_model

    cfg = cfg or SFTSettings()
    if not records and not extra_rows:
        raise DataError("no training records", "check the data split or filter settings")
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    # Training on top of an adapter (stage 2 on stage 1) merges it first; the new adapter records it as its base.
    model, tokenizer, device = load_trainable(base_model, cfg.dtype, cfg.device)
    rows = [task.sft_example(r) for r in records] + list(extra_rows)
    examples = tokenize_rows(rows, tokenizer)
    longest = check_lengths(examples, cfg.max_seq_len)
    compute_dtype = model.dtype
    console.print(f"SFT {task.name}: {len(examples)} examples, longest {longest} tokens (sft.max_seq_len="
                  f"{cfg.max_seq_len}), {str(compute_dtype).removeprefix('torch.')} on {device}", soft_wrap=True)
    torch.manual_seed(cfg.seed)  # the LoRA initialisation
    # PEFT keeps LoRA weights in fp32 on a bf16 base (autocast_adapter_dtype); the optimiser updates fp32 weights.
    model = get_peft_model(model, lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules))
    lean_rms_norms(model)
    if cfg.gradient_checkpointing:
        # transformers 5 picks one decoder layer in every_n_layers; the rest keep their activations
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False},
                                              every_n_layers=cfg.checkpoint_every)
    checkpoint = last_checkpoint(ckpt_dir) if resume else None
    base_spec, card = base_model_spec(base_model), model_card(task)  # the same for the fingerprint and every manifest
    fingerprint = run_fingerprint(cfg, examples, base_spec, card)
    if checkpoint is not None:
        check_resumable(checkpoint, fingerprint)

    def snapshot(examples_seen: int, state: dict[str, Any]) -> None:
        folder = out / "snapshots" / f"seen-{examples_seen}"
        save_adapter(model, tokenizer, folder, {"base_model": base_spec, **card,
                                                "train_records": len(records), "extra_rows": len(extra_rows), "examples_seen": examples_seen,
                                                "steps": state["global_step"], "sft": cfg.model_dump()})

    state = run_training(model, examples, cfg, device, tokenizer.pad_token_id, ckpt_dir, checkpoint, f"SFT {task.name}",
                         fingerprint=fingerprint, on_snapshot=snapshot)
    save_adapter(
        model,
        tokenizer,
        out,
        {
            "base_model": base_spec,
            **card,
            "train_records": len(records),
            "examples_kept_after_truncation": len(examples),  # all: a too-long example fails before training
            "longest_example_tokens": longest,
            "extra_rows": len(extra_rows),
            "sft": cfg.model_dump(),
            "compute_dtype": str(compute_dtype).removeprefix("torch."),
            "train_loss": state["train_loss"],
            "steps": state["global_step"],
            "resumed_from_step": state["resumed_from_step"],
            "trained_tokens": state["trained_tokens"],
            "tokens_per_s": round(state["tokens_per_s"], 1),
            "log_history": state["log_history"],
        },
    )
    remove_own_checkpoints(ckpt_dir)
    del model  # the caller usually loads the trained model next: the training heap goes back to the OS first
    release_freed_memory()
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The training loop. TRL's SFTTrainer computes full-vocabulary logits over every token (prompt included) and keeps
# them for the backward pass: on a 135M model with a 49k vocabulary that is a fifth of the compute and most of the
# memory. This loop runs the decoder once, picks the hidden states that predict a label token, and computes the
# output layer and cross-entropy on those only, in chunks, with the gradient formed in the same pass.

#: Label positions per output-layer chunk: bounds the fp32 logits block at chunk x vocab (512 x 49k = 100 MB).
LOSS_CHUNK = 512
#: Examples sorted by length within windows of this many batches, so a batch holds similar lengths (little padding)
#: while the order across windows stays random.
LENGTH_GROUP_WINDOW = 16


def tokenize_rows(rows: Sequence[dict[str, Any]], tokenizer: Any) -> list[tuple[list[int], int]]:
    """``(token ids, first label position)`` per row: the completion starts where the tokenized prompt and the
    tokenized prompt+completion diverge (as TRL does). Rows are ``prompt``/``completion`` (chat or plain text) or
    ``messages`` (the last message is the completion)."""

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    out = []
    for row in rows:
        if "messages" in row:
            prompt, completion = list(row["messages"][:-1]), list(row["messages"][-1:])
        else:
            prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str):
            prompt_ids, ids = encode(prompt), encode(prompt + completion) + [tokenizer.eos_token_id]
        else:
            prompt_ids = encode(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
            ids = encode(tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False))
        start = 0
        while start < min(len(prompt_ids), len(ids)) and prompt_ids[start] == ids[start]:
            start += 1
        out.append((ids, max(start, 1)))  # position 0 has no preceding token to predict it from
    return out


def check_lengths(examples: Sequence[tuple[list[int], int]], max_seq_len: int) -> int:
    """Report the longest example against ``max_seq_len``; refuse to train when any answer would be cut.

    >>> check_lengths([([1] * 10, 4), ([1] * 30, 20)], 32)
    30
    >>> check_lengths([([1] * 10, 4), ([1] * 40, 20)], 32)
    Traceback (most recent call last):
    ...
    ehrforge.errors.DataError: 1 of 2 training examples are longer than sft.max_seq_len=32 (longest: 40 tokens), so their answers would be truncated — raise sft.max_seq_len to at least 40, or shorten the prompts
    """
    longest = max(len(ids) for ids, _ in examples)
    too_long = sum(len(ids) > max_seq_len for ids, _ in examples)
    if too_long:
        raise DataError(
            f"{too_long} of {len(examples)} training examples are longer than sft.max_seq_len={max_seq_len} "
            f"(longest: {longest} tokens), so their answers would be truncated",
            f"raise sft.max_seq_len to at least {longest}, or shorten the prompts",
        )
    if all(start >= len(ids) for ids, start in examples):
        raise DataError("no training example has answer tokens", "check the task's sft_example() completions")
    return longest


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches (indices): shuffled, then sorted by length inside windows, then the batches shuffled.
    Deterministic in ``(seed, epoch)``, so a resumed run sees the same order.

    >>> lengths = [5, 100, 6, 98, 7, 99, 5, 101]
    >>> batches = length_grouped_batches(lengths, 2, seed=0, epoch=0)
    >>> sorted(i for b in batches for i in b) == list(range(8))
    True
    >>> pad = lambda bs: sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)
    >>> pad(batches), pad([[0, 1], [2, 3], [4, 5], [6, 7]])  # padding tokens: length-grouped vs arrival order
    (3, 375)
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * LENGTH_GROUP_WINDOW
    batches = []
    for s in range(0, len(order), window):
        chunk = sorted(order[s : s + window], key=lambda i: -lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _linear_cross_entropy() -> Any:
    import torch

    class LinearCrossEntropy(torch.autograd.Function):
        """Summed cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk; the gradient with
        respect to ``hidden`` (and ``weight`` if it trains) is formed during the forward pass, so no logits are kept."""

        @staticmethod
        def forward(ctx, hidden, weight, targets):
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_h = torch.empty_like(hidden)
            grad_w = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
            for s in range(0, hidden.shape[0], LOSS_CHUNK):
                h, y = hidden[s : s + LOSS_CHUNK], targets[s : s + LOSS_CHUNK]
                logits = (h @ weight.T).float()
                lse = torch.logsumexp(logits, dim=-1)
                rows = torch.arange(len(y), device=y.device)
                total += (lse - logits[rows, y]).sum()
                probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place: d(loss)/d(logits) = probs - onehot
                probs[rows, y] -= 1.0
                grad_h[s : s + LOSS_CHUNK] = probs.to(hidden.dtype) @ weight
                if grad_w is not None:
                    grad_w += probs.T @ h.float()
            ctx.save_for_backward(grad_h, grad_w)
            ctx.weight_dtype = weight.dtype
            return total

        @staticmethod
        def backward(ctx, grad_out):
            grad_h, grad_w = ctx.saved_tensors
            dw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
            return grad_h * grad_out.to(grad_h.dtype), dw, None

    return LinearCrossEntropy


def label_loss_sum(model: Any, input_ids: Any, attention_mask: Any, label_index: Any, targets: Any) -> Any:
    """Summed cross-entropy over the label positions only. ``label_index`` indexes the flattened ``[batch*seq]``
    hidden states that predict ``targets``. With right padding ``attention_mask`` may be None: under the causal mask
    a real token only attends to earlier, real, positions, and only real positions are read, so the plain causal
    attention kernel runs with no padding mask built or kept for backward."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, label_index)
    return _linear_cross_entropy().apply(picked, base.get_output_embeddings().weight, targets)


def collate(examples: Sequence[tuple[list[int], int]], pad_id: int, device: str) -> tuple[Any, Any, Any, Any, int]:
    """Right-padded ids and mask, the flat indices of the hidden states that predict a label, the labels, and
    the count of real (unpadded) tokens."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    index, targets = [], []
    for row, (ids, start) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        index.extend(row * width + t - 1 for t in range(start, len(ids)))
        targets.extend(ids[start:])
    as_tensor = lambda xs: torch.tensor(xs, dtype=torch.long, device=device)
    return input_ids.to(device), mask.to(device), as_tensor(index), as_tensor(targets), int(mask.sum())


def save_checkpoint(model: Any, optimizer: Any, schedule: Any, state: dict[str, Any], ckpt_dir: Path, keep: int = 2) -> Path:
    """``checkpoint-<step>``: adapter weights, optimiser state and ``trainer_state.json`` (written last, into a temp
    folder that is then renamed, so a crash never leaves a checkpoint that looks complete)."""
    import torch

    final = ckpt_dir / f"checkpoint-{state['global_step']}"
    tmp = ckpt_dir / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    training_state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "rng": torch.get_rng_state()}
    torch.save(training_state, tmp / "training_state.pt")
    atomic_write_json(tmp / "trainer_state.json", state)
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    done = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                  key=lambda p: int(p.name.split("-")[-1]))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def compact_checkpoint(checkpoint: Path) -> int:
    """Store a checkpoint's optimiser moments in bf16, in place (half the size, so it can be committed as a run goes;
    ``load_state_dict`` casts them back to the weights' fp32 on resume, at bf16 precision). Returns the new size of
    ``training_state.pt`` in bytes."""
    import torch

    path = checkpoint / "training_state.pt"
    saved = torch.load(path, weights_only=True)
    for state in saved["optimizer"]["state"].values():
        for key, value in state.items():
            if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                state[key] = value.to(torch.bfloat16)
    tmp = path.with_suffix(".tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)
    return path.stat().st_size


def remove_own_checkpoints(ckpt_dir: Path) -> None:
    """Delete the checkpoints this trainer wrote (``checkpoint-N`` with our trainer state, and unfinished temp
    folders) and the folder itself once empty; anything else another tool put there stays."""
    if not ckpt_dir.is_dir():
        return
    for item in ckpt_dir.iterdir():
        ours = item.is_dir() and item.name.startswith(("checkpoint-", ".checkpoint-")) and (
            item.name.endswith(".tmp") or (item / "training_state.pt").exists())
        if ours:
            shutil.rmtree(item, ignore_errors=True)
    with contextlib.suppress(OSError):
        ckpt_dir.rmdir()


def load_checkpoint(model: Any, optimizer: Any, schedule: Any, checkpoint: Path) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))
    # weights_only: a checkpoint folder may come from someone else (a commit, a shared drive); a full unpickle of it
    # would run whatever code it carries.
    try:
        saved = torch.load(checkpoint / "training_state.pt", weights_only=True)
    except Exception as exc:  # UnpicklingError, truncated file, ...: never fall back to a full unpickle
        raise DataError(f"{checkpoint / 'training_state.pt'} is not a plain training state ({exc.__class__.__name__}): "
                        "refused, loading it could run code", "delete that checkpoint folder to start afresh") from None
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    torch.set_rng_state(saved["rng"])
    return json.loads((checkpoint / "trainer_state.json").read_text())


#: settings a run may resume with changed: how often things are written or logged, and how long it trains (a longer
#: run continues the same data order; the schedule is recomputed for the new length, and the manifest records the
#: step it resumed from)
RESUMABLE_CHANGES = ("save_steps", "logging_steps", "snapshot_examples", "device", "max_steps", "epochs")


def run_fingerprint(cfg: Any, examples: Sequence[tuple[list[int], int]], base_model: str, card: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must have been trained with to be resumed: the learning settings, the base model, the
    task and its prompt format, and a hash of the tokenized training examples (data, prompt and order of records)."""
    import hashlib

    digest = hashlib.sha256()
    for ids, start in examples:
        digest.update(f"{start}:{','.join(map(str, ids))};".encode())
    settings = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}
    return {"settings": settings, "base_model": base_model, "task": card.get("task"),
            "prompt_format": card.get("prompt_format"), "examples": len(examples), "data_sha256": digest.hexdigest()}


def check_resumable(checkpoint: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to continue a checkpoint made with other settings, data or prompt (one line naming the difference):
    resuming would mix two runs and record the new settings as if they had been used throughout."""
    try:
        saved = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError) as exc:
        raise DataError(f"checkpoint {checkpoint} is unreadable ({exc.__class__.__name__})",
                        "delete that checkpoint folder to start afresh") from None
    if saved is None:
        raise DataError(f"checkpoint {checkpoint} does not record what it was trained with",
                        "delete its checkpoints/ folder to start afresh")
    differences = [f"sft.{k}: {saved['settings'].get(k)!r} -> {v!r}" for k, v in fingerprint["settings"].items()
                   if saved.get("settings", {}).get(k) != v]
    for key, what in (("base_model", "base model"), ("task", "task"), ("prompt_format", "prompt format"),
                      ("examples", "number of training examples"), ("data_sha256", "training data")):
        if saved.get(key) != fingerprint[key]:
            differences.append(f"{what} differs from the checkpoint's")
    if differences:
        raise DataError(f"cannot resume {checkpoint.parent.parent}: {'; '.join(dict.fromkeys(differences))}",
                        "re-run with the checkpoint's data and settings, or delete its checkpoints/ folder to start afresh")


def mixed_precision(model: Any, device: str) -> Any:
    """Autocast for a bf16/fp16 base: LoRA's fp32 weights are cast to the base dtype inside each matmul (cheap:
    rank-r matrices) instead of PEFT casting every activation to fp32 and back, which cost more than the LoRA
    matmuls themselves on CPU. A nullcontext for an fp32 base."""
    import contextlib
    import functools

    import torch

    dtype = model.get_base_model().get_output_embeddings().weight.dtype  # the base's; LoRA weights are fp32
    if dtype not in (torch.bfloat16, torch.float16):
        return contextlib.nullcontext
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False
    return functools.partial(torch.autocast, device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def _rms_norm_function() -> Any:
    import torch

    class RMSNormFunction(torch.autograd.Function):
        """RMSNorm as Llama/Qwen2 compute it (in fp32, result cast back), saving only the bf16 input and the
        per-token scale for backward: PyTorch's autograd would keep two fp32 copies of every normalised activation,
        a third of the activation memory of a small model."""

        @staticmethod
        def forward(ctx, x, weight, eps):
            h = x.float()
            scale = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            ctx.save_for_backward(x, scale, weight)
            return weight * (h * scale).to(x.dtype)

        @staticmethod
        def backward(ctx, grad_out):
            x, scale, weight = ctx.saved_tensors
            normed = x.float() * scale
            grad_w = (grad_out.float() * normed.to(x.dtype).float()).sum(dim=tuple(range(grad_out.dim() - 1))) if ctx.needs_input_grad[1] else None
            g = (grad_out * weight).float()
            grad_x = scale * (g - normed * (g * normed).mean(-1, keepdim=True))
            return grad_x.to(x.dtype), grad_w.to(weight.dtype) if grad_w is not None else None, None

    return RMSNormFunction


def _bound_rms_norm(fn: Any, module: Any) -> Any:
    def forward(hidden_states: Any) -> Any:
        return fn.apply(hidden_states, module.weight, module.variance_epsilon)

    return forward


def lean_rms_norms(model: Any) -> int:
    """Route Llama/Qwen2-style RMSNorm layers (``weight`` and ``variance_epsilon``, output ``weight * norm(x)``)
    through :func:`_rms_norm_function`; returns how many. Other norms (Gemma's ``1 + weight``) are left alone."""
    fn = _rms_norm_function()
    count = 0
    for module in model.modules():
        if type(module).__name__ in ("LlamaRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "MistralRMSNorm") and hasattr(module, "variance_epsilon"):
            module.forward = _bound_rms_norm(fn, module)
            count += 1
    return count


def run_training(model: Any, examples: list[tuple[list[int], int]], cfg: Any, device: str, pad_id: int, ckpt_dir: Path,
                 checkpoint: Path | None, description: str, *, fingerprint: dict[str, Any] | None = None,
                 on_snapshot: Any = None) -> dict[str, Any]:
    """Optimise the LoRA weights of ``model`` (a PEFT model); return the final trainer state (steps, loss, speed)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    per_epoch = math.ceil(math.ceil(len(examples) / cfg.batch_size) / cfg.grad_accum)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * per_epoch))
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    warmup = cfg.warmup_steps

    def lr_factor(step: int) -> float:  # linear warm-up then linear decay to 0, like transformers' default
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    state: dict[str, Any] = {"global_step": 0, "max_steps": total, "log_history": [], "run": fingerprint}
    if checkpoint is not None:
        state = load_checkpoint(model, optimizer, schedule, checkpoint)
        state["max_steps"] = total
    examples_per_step = cfg.batch_size * cfg.grad_accum
    snapshots = [n for n in getattr(cfg, "snapshot_examples", []) if n > state["global_step"] * examples_per_step]
    start_step = state["global_step"]
    lengths = [len(ids) for ids, _ in examples]
    micro_per_step = cfg.grad_accum

    def micro_batches():
        epoch = 0
        while True:
            yield from length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
            epoch += 1

    stream = micro_batches()
    for _ in range(start_step * micro_per_step):  # a resumed run skips the batches it already trained on
        next(stream)
    model.train()
    autocast = mixed_precision(model, device)
    losses, tokens, started = [], 0, time.monotonic()
    with progress_bar(description, total - start_step) as advance:
        for step in range(start_step, total):
            batch = [[examples[i] for i in next(stream)] for _ in range(micro_per_step)]
            collated = [collate(b, pad_id, device) for b in batch]
            n_labels = sum(len(c[3]) for c in collated)
            step_loss = 0.0
            for input_ids, mask, index, targets, n_tokens in collated:
                with autocast():
                    loss = label_loss_sum(model, input_ids, None, index, targets) / n_labels  # right-padded
                loss.backward()
                step_loss += float(loss.detach())
                tokens += n_tokens
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            state["global_step"] = step + 1
            if (step + 1) % cfg.logging_steps == 0 or step + 1 == total:
                elapsed = time.monotonic() - started
                state["log_history"].append({"step": step + 1, "loss": round(sum(losses[-cfg.logging_steps:]) / len(losses[-cfg.logging_steps:]), 4),
                                             "learning_rate": schedule.get_last_lr()[0], "tokens_per_s": round(tokens / elapsed, 1)})
            if (step + 1) % cfg.save_steps == 0:
                save_checkpoint(model, optimizer, schedule, state, ckpt_dir)
            seen = (step + 1) * examples_per_step
            while snapshots and on_snapshot is not None and (seen >= snapshots[0] or step + 1 == total):
                snapshots.pop(0)
                on_snapshot(min(seen, len(examples) * math.ceil(cfg.epochs)), state)
            advance(1)
    elapsed = time.monotonic() - started
    state.update(train_loss=sum(losses) / len(losses) if losses else float("nan"), trained_tokens=tokens,
                 tokens_per_s=tokens / elapsed if elapsed > 0 else 0.0, resumed_from_step=start_step)
    return state
