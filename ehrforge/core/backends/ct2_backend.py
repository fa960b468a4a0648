"""Fast CPU generation with CTranslate2 (``pip install ctranslate2``, a PyPI wheel; extra ``ehrforge[fast]``).

``ct2:<model spec>`` takes the same specs as ``transformers:`` (an HF folder, a LoRA adapter folder, ``bundled``).
On first use the model (an adapter merged into its base first) is converted to a CTranslate2 model, int8 weights
by default, cached under ``<ehrforge cache>/ct2/<key>``. The key hashes the names, sizes and modification times
of the model's files (and of its base's, for an adapter), the compute type and the CTranslate2 version, so a
retrained adapter gets a new entry. A conversion is built in a temporary folder and renamed into place: a
conversion killed half-way leaves no entry that looks complete.

Per-token log-probabilities and entropies come from the full next-token logits CTranslate2 returns at each step
(``return_logits_vocab``), so they mean what the transformers backend's do (raw logits, before temperature).
When CTranslate2 is not installed or cannot convert a model, :func:`load_ct2_or_transformers` prints one line
naming the fix and returns the transformers backend instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message

INSTALL_HINT = "pip install ctranslate2 (or ehrforge[fast]); using the transformers backend instead"
#: Temporary conversion folders older than this are leftovers of a killed conversion and are removed.
STALE_TMP_S = 3600


def ct2_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ctranslate2") is not None


def _file_signature(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())


def conversion_key(path: Path, compute_type: str) -> str:
    """A cache key for ``path`` (an HF folder or an adapter over a chain of bases) converted at ``compute_type``."""
    import ctranslate2

    from ehrforge.core.models import adapter_base, is_adapter_folder, resolve_model

    parts: list[Any] = [compute_type, ctranslate2.__version__]
    level = path
    while True:
        parts.append((str(level.resolve()), _file_signature(level)))
        if not is_adapter_folder(level):
            break
        level = resolve_model(adapter_base(level))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def converted_model(path: Path, compute_type: str = "int8") -> Path:
    """The cached CTranslate2 folder for ``path`` (model + tokenizer), converting it first if needed."""
    from ehrforge.core.models import cache_dir

    root = cache_dir() / "ct2"
    final = root / f"{path.name}-{compute_type}-{conversion_key(path, compute_type)}"
    if (final / "model.bin").exists() and (final / "ehrforge_ct2.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".*.tmp*"):  # a conversion killed by SIGKILL leaves only its temp folder
        if time.time() - stale.stat().st_mtime > STALE_TMP_S:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp", dir=root))
    try:
        _convert(path, tmp / "model", compute_type)
        model_dir = tmp / "model"
        (model_dir / "ehrforge_ct2.json").write_text(json.dumps({"source": str(path.resolve()), "compute_type": compute_type}))
        if final.exists():  # another process won the race, or an incomplete entry from an older version
            shutil.rmtree(final, ignore_errors=True)
        os.replace(model_dir, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _convert(path: Path, out: Path, compute_type: str) -> None:
    import ctranslate2

    from ehrforge.core.models import is_adapter_folder

    source = path
    merged = None
    if is_adapter_folder(path):  # CTranslate2 converts plain models: merge the LoRA (chain) into its base first
        import torch

        from ehrforge.core.backends.transformers_backend import load_causal_lm

        model, tokenizer = load_causal_lm(path, torch.float32)
        merged = out.parent / "merged"
        model.save_pretrained(str(merged))
        tokenizer.save_pretrained(str(merged))
        del model
        source = merged
    ctranslate2.converters.TransformersConverter(str(source)).convert(str(out), quantization=compute_type, force=True)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(out))  # the folder is self-contained
    if merged is not None:
        shutil.rmtree(merged, ignore_errors=True)


def thread_layout(threads: int, intra_threads: int = 1) -> tuple[int, int]:
    """``(intra, inter)``: threads per decoding worker and how many workers decode sub-batches in parallel.

    One thread per worker by default because CTranslate2's intra-op threading is slower than one thread on the
    2-core machines measured (docs/speed.md; throughput.json: the bundled model at batch 8 went from 95.5 tokens/s
    with one worker of 2 threads to 332.8 with two workers of 1 thread each).

    >>> thread_layout(2)
    (1, 2)
    >>> thread_layout(8, intra_threads=4)
    (4, 2)
    >>> thread_layout(1, intra_threads=4)
    (1, 1)
    """
    intra = max(1, min(intra_threads, threads))
    return intra, max(1, threads // intra)


class CT2Backend:
    """A local causal LM run by CTranslate2. ``path`` is an HF folder or a LoRA adapter folder.

    ``threads`` is the CPU budget (default: torch's thread count); it is spent as ``threads // intra_threads``
    workers, each decoding its own sub-batch with ``intra_threads`` threads (:func:`thread_layout`)."""

    name = "ct2"
    capabilities = frozenset({BackendCapability.LOGPROBS, BackendCapability.TOKEN_COUNT})

    def __init__(self, path: str | os.PathLike, *, compute_type: str = "int8", threads: int | None = None,
                 intra_threads: int = 1, batch_size: int = 8, device: str = "cpu") -> None:
        import ctranslate2
        from transformers import AutoTokenizer

        self.path = Path(path)
        self.model_dir = converted_model(self.path, compute_type)
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        self.intra_threads, self.workers = thread_layout(threads, intra_threads)
        self.generator = ctranslate2.Generator(str(self.model_dir), device=device, compute_type=compute_type,
                                               intra_threads=self.intra_threads, inter_threads=self.workers)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.batch_size = batch_size
        self.device = device
        self._end_tokens = self._eos_tokens()

    def render(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, batch: list[list[Message]], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0,
                 seed: int | None = None) -> list[Generation]:
        import ctranslate2

        prompts = [self.tokenizer(self.render(m), add_special_tokens=False)["input_ids"] for m in batch]
        if not prompts:
            return []
        sampling: dict[str, Any] = {"sampling_topk": 1}
        if temperature > 0:
            sampling = {"sampling_topk": 0, "sampling_topp": 1.0, "sampling_temperature": temperature}
            if seed is not None:  # best effort: CTranslate2's worker threads keep their own generator
                ctranslate2.set_random_seed(seed)
        results = self.generator.generate_batch(
            [self.tokenizer.convert_ids_to_tokens(ids) for ids in prompts],
            # split so every worker gets a share of this call's prompts (they decode their sub-batches in parallel)
            max_batch_size=min(self.batch_size, -(-len(prompts) // self.workers)),
            max_length=max_new_tokens,
            include_prompt_in_result=False,  # prompts are forwarded at once to fill the KV cache
            return_logits_vocab=True,
            return_end_token=True,
            end_token=self._end_tokens,
            **sampling,
        )
        return [self._to_generation(res, len(ids)) for res, ids in zip(results, prompts)]

    def _to_generation(self, res: Any, prompt_tokens: int) -> Generation:
        import numpy as np

        ids = list(res.sequences_ids[0])
        # Prompts longer than the batch's shortest are finished by constrained decoding, whose steps' logits come
        # first: the generated tokens' logits are the last len(ids).
        steps = res.logits[0][len(res.logits[0]) - len(ids) :]
        finish = "length"
        end_ids = {self.tokenizer.convert_tokens_to_ids(t) for t in self._end_tokens}
        if ids and ids[-1] in end_ids:
            ids, finish = ids[:-1], "stop"
        logprobs: list[float] = []
        entropies: list[float] = []
        if ids:  # one (steps x vocabulary) log-softmax instead of a numpy round per token
            logits = np.stack([np.asarray(step, dtype=np.float32) for step in steps[: len(ids)]])
            shifted = logits - logits.max(axis=1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            logprobs = logp[np.arange(len(ids)), ids].astype(float).tolist()
            # exp(-inf) * -inf is nan: a token the model rules out contributes 0, as torch.special.entr does
            entropies = (-np.where(np.isfinite(logp), np.exp(logp) * logp, 0.0).sum(axis=1)).astype(float).tolist()
        return Generation(
            text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
            tokens=[self.tokenizer.decode([t]) for t in ids],
            token_logprobs=logprobs,
            token_entropies=entropies,
            prompt_tokens=prompt_tokens,
            finish_reason=finish,
        )

    def _eos_tokens(self) -> list[str]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        generation_config = Path(self.model_dir) / "generation_config.json"
        if generation_config.exists():
            eos = json.loads(generation_config.read_text()).get("eos_token_id")
            ids.update(eos if isinstance(eos, list) else [eos])
        return sorted(self.tokenizer.convert_ids_to_tokens([i for i in ids if i is not None]))


#: Options the transformers fallback understands (the rest are CTranslate2's own).
_TRANSFORMERS_OPTIONS = ("device", "dtype", "batch_size")


def load_ct2_or_transformers(path: Path, **options: Any) -> Any:
    """A :class:`CT2Backend`, or -- CTranslate2 missing, or a model it cannot convert -- one line on stderr naming
    the fix and the transformers backend on the same model."""
    from ehrforge.core.backends.transformers_backend import TransformersBackend
    from ehrforge.core.progress import console

    if not ct2_available():
        console.print(f"note: the ct2 backend needs CTranslate2: {INSTALL_HINT}", soft_wrap=True, markup=False)
    else:
        try:
            return CT2Backend(path, **{k: v for k, v in options.items() if k != "dtype"})
        except (ValueError, KeyError, NotImplementedError, RuntimeError, OSError) as exc:
            # The converter raises these for architectures it does not know; the name only, never model text.
            console.print(f"note: CTranslate2 cannot convert {path.name} ({type(exc).__name__}); using the "
                          "transformers backend (pick a Llama/Qwen2/Gemma-family model for ct2)", soft_wrap=True, markup=False)
    return TransformersBackend(path, **{k: v for k, v in options.items() if k in _TRANSFORMERS_OPTIONS})
