"""Local generation with transformers: greedy or sampled, batched, with exact per-token log-probs and entropies."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.errors import ModelError


def pick_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 matmuls (AVX-512 BF16 or AMX flags in /proc/cpuinfo); elsewhere bf16 is
    emulated and slower than fp32. ``EHRFORGE_CPU_BF16=0``/``1`` overrides the detection."""
    forced = os.environ.get("EHRFORGE_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_where_native(dtype: str, device: str) -> str:
    """``dtype`` with ``auto`` resolved for a CPU with native bf16 (AVX-512 BF16/AMX): ``bfloat16`` there, ``auto``
    elsewhere (which :func:`pick_dtype` makes bf16 on CUDA, fp32 on other CPUs). Training always resolves this way;
    a recipe that generates with the model it trains can too, so the two run in one precision.

    >>> bf16_where_native("float32", "cpu"), bf16_where_native("auto", "cuda")
    ('float32', 'auto')
    """
    return "bfloat16" if dtype == "auto" and device == "cpu" and cpu_supports_bf16() else dtype


def pick_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        # bf16 on GPUs; fp32 on CPU (safe everywhere, and what the tiny test models use).
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_causal_lm(path: Path, dtype: Any) -> tuple[Any, Any]:
    """Load an HF folder, or a LoRA adapter folder on top of its base, recursively: an adapter trained on top of
    another adapter (stage 2 on stage 1, GRPO on SFT) records that adapter as its base, and each level is merged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ehrforge.core.models import adapter_base, is_adapter_folder, resolve_model

    if not is_adapter_folder(path):
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype), AutoTokenizer.from_pretrained(str(path))
    from peft import PeftModel

    base, tokenizer = load_causal_lm(resolve_model(adapter_base(path)), dtype)
    model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()  # faster inference; adapter on disk unchanged
    if (path / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer


def load_model_and_tokenizer(path: Path, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    device = pick_device(device)
    try:
        model, tokenizer = load_causal_lm(path, pick_dtype(dtype, device))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {path}: {type(exc).__name__}", "check the folder is a complete HF model") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batched generation needs left padding
    model.to(device)
    model.eval()
    return model, tokenizer


def step_logprobs_and_entropies(step_logits: Sequence[Any], chosen_ids: Any) -> tuple[Any, Any]:
    """The log-prob of each chosen token and the entropy of each step's distribution, ``[batch, steps]`` each.

    One step at a time: stacking every step's full-vocabulary logits, then their log-softmax, exp and entropy,
    held four copies of ``batch x steps x 49k`` floats at once (about 400 MB each at 8 x 256 steps in fp32).

    >>> import torch
    >>> lp, ent = step_logprobs_and_entropies([torch.tensor([[0.0, float("-inf")]])], torch.tensor([[0]]))
    >>> lp.tolist(), ent.tolist()  # a -inf logit adds nothing to the entropy, never NaN
    ([[0.0]], [[0.0]])
    """
    import torch

    logprobs, entropies = [], []
    for t, logits in enumerate(step_logits):
        logp = torch.log_softmax(logits.float(), dim=-1)  # [batch, vocab]
        # entr(p) = -p log p with entr(0) = 0: a -inf logit (masked token) gives 0, not 0 * -inf = NaN
        entropies.append(torch.special.entr(logp.exp()).sum(-1))
        logprobs.append(logp.gather(-1, chosen_ids[:, t : t + 1]).squeeze(-1))
    return torch.stack(logprobs, dim=1), torch.stack(entropies, dim=1)


class TransformersBackend:
    """A local causal LM. ``path`` is an HF folder or LoRA adapter folder (see :func:`resolve_model`)."""

    name = "transformers"
    capabilities = frozenset({BackendCapability.LOGPROBS, BackendCapability.LOCAL_WEIGHTS, BackendCapability.TOKEN_COUNT})

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", dtype: str = "auto", batch_size: int = 8) -> None:
        self.path = Path(path)
        self.model, self.tokenizer = load_model_and_tokenizer(self.path, device, dtype)
        self.device = str(self.model.device)
        self.batch_size = batch_size

    def render(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self,
        batch: list[list[Message]],
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Generation]:
        out: list[Generation] = []
        for start in range(0, len(batch), self.batch_size):
            out.extend(self._generate_chunk(batch[start : start + self.batch_size], max_new_tokens, temperature, seed))
        return out

    def _generate_chunk(self, batch: list[list[Message]], max_new_tokens: int, temperature: float, seed: int | None) -> list[Generation]:
        import torch

        prompts = [self.render(m) for m in batch]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        if seed is not None:
            torch.manual_seed(seed)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
        with torch.inference_mode():
            res = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True,
                output_logits=True,  # raw logits: confidence must not depend on sampling processors
                **sampling,
            )
        prompt_len = enc["input_ids"].shape[1]
        seqs = res.sequences[:, prompt_len:]
        chosen, entropies = step_logprobs_and_entropies(res.logits, seqs)
        del res
        eos_ids = self._eos_ids()
        gens = []
        for i in range(len(batch)):
            ids = seqs[i].tolist()
            n = len(ids)
            finish = "length"
            for j, t in enumerate(ids):
                if t in eos_ids:
                    n, finish = j, "stop"
                    break
            gens.append(
                Generation(
                    text=self.tokenizer.decode(ids[:n], skip_special_tokens=True).strip(),
                    tokens=[self.tokenizer.decode([t]) for t in ids[:n]],
                    token_logprobs=chosen[i, :n].tolist(),
                    token_entropies=entropies[i, :n].tolist(),
                    prompt_tokens=int(enc["attention_mask"][i].sum()),
                    finish_reason=finish,
                )
            )
        return gens

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif gen_eos:
            ids.update(gen_eos)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return {i for i in ids if i is not None}
