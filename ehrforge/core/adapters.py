"""What LoRA SFT and GRPO share: a trainable base model, the LoRA shape, checkpoints, and an atomic adapter save.

An adapter folder is PEFT's files plus the tokenizer plus ``ehrforge_model.json`` (written last), whose
``base_model`` is the bundled alias or an absolute path, so the adapter loads from any working directory and
adapters trained on adapters stack (see ``transformers_backend.load_causal_lm``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ehrforge.core.io import atomic_write_json
from ehrforge.core.models import BUNDLED_ALIASES, MANIFEST, resolve_model


def base_model_spec(base_model: str) -> str:
    """How an adapter records its base: the bundled alias as is, anything else as an absolute path."""
    return base_model if base_model in BUNDLED_ALIASES else str(resolve_model(base_model).resolve())


def load_trainable(base_model: str, dtype: str = "auto", device: str = "auto") -> tuple[Any, Any, str]:
    """``(model, tokenizer, device)``; an adapter given as base is merged first so a new LoRA continues from it.
    ``dtype="auto"`` trains in bf16 on CUDA and on CPUs with native bf16 (AVX-512 BF16 or AMX), fp32 elsewhere."""
    from ehrforge.core.backends.transformers_backend import bf16_where_native, load_causal_lm, pick_device, pick_dtype

    device = pick_device(device)
    dtype = bf16_where_native(dtype, device)  # training on CPU: ~1.6x fp32 speed and half the weight memory
    model, tokenizer = load_causal_lm(resolve_model(base_model), pick_dtype(dtype, device))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, device


def lora_config(r: int, alpha: int, dropout: float, target_modules: list[str]) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM")


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder (one with trainer state), or None."""
    if not ckpt_dir.exists():
        return None
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists() and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def save_adapter(model: Any, tokenizer: Any, out: Path, manifest: dict[str, Any]) -> Path:
    """Save into ``<out>.tmp`` then move into ``out``: a crash never leaves a half-written adapter that looks
    complete (the manifest, which marks a finished adapter, is written last)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    atomic_write_json(tmp / MANIFEST, manifest)
    out.mkdir(parents=True, exist_ok=True)
    items = sorted(tmp.iterdir(), key=lambda p: p.name == MANIFEST)
    for item in items:
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()
    return out


def concatenate_loras(stack: list[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One LoRA adapter equal to a stack of them (``(weights, adapter_config)`` each, the first trained on the base,
    each next one on the previous ones merged), so a run continued over several sessions ships as one adapter on
    the base model. For each module ``W + sum_i s_i B_i A_i = W + s B A`` with ``A`` the rows of every ``A_i``,
    ``B`` the columns of every ``(s_i / s) B_i``, ``s = s_1``: exact, at rank ``sum_i r_i``.

    Only plain LoRA stacks on the same modules are accepted (no rsLoRA, DoRA or per-module rank patterns)."""
    import torch

    if not stack:
        raise ValueError("no adapters to concatenate")
    keys, first = set(stack[0][0]), stack[0][1]
    scales = []
    for weights, config in stack:
        odd = [k for k in ("use_rslora", "use_dora", "rank_pattern", "alpha_pattern") if config.get(k)]
        if odd or set(weights) != keys or set(config.get("target_modules") or []) != set(first.get("target_modules") or []):
            raise ValueError(f"these adapters do not stack into one LoRA ({', '.join(odd) or 'different modules'})")
        scales.append(config["lora_alpha"] / config["r"])
    merged: dict[str, Any] = {}
    for key in sorted(keys):
        parts = [weights[key].float() for weights, _ in stack]
        if ".lora_A." in key:
            merged[key] = torch.cat(parts, dim=0)
        elif ".lora_B." in key:
            merged[key] = torch.cat([p * (s / scales[0]) for p, s in zip(parts, scales)], dim=1)
        else:
            raise ValueError(f"{key}: not a LoRA A/B weight; these adapters do not stack into one LoRA")
    rank = sum(config["r"] for _, config in stack)
    return merged, {**first, "r": rank, "lora_alpha": scales[0] * rank}
