"""GPU serving with vLLM (optional: ``pip install vllm`` on a CUDA machine; it brings its own torch).

Loads a merged HF folder (``ehrforge export --merged OUT --model ADAPTER``); vLLM batches the server's concurrent
requests itself. Per-token log-probs come from vLLM's ``logprobs=k``: the chosen token's log-prob is exact, the
entropy is estimated from the top-k as in the OpenAI backend (a lower bound).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ehrforge.core.backends.openai_backend import entropy_from_top_logprobs
from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.errors import BackendError, ModelError

INSTALL_HINT = "on a CUDA machine: `pip install vllm` (GPU only; the CPU install of ehrforge does not include it)"


class VLLMBackend:
    name = "vllm"
    capabilities = frozenset({BackendCapability.LOGPROBS})

    def __init__(self, path: str | os.PathLike, *, top_logprobs: int = 5, gpu_memory_utilization: float = 0.85,
                 max_model_len: int = 4096, dtype: str = "auto", **_: Any) -> None:
        try:
            import vllm
        except ImportError:
            raise BackendError("the vLLM backend needs the 'vllm' package", INSTALL_HINT) from None
        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise ModelError(f"not a merged HF model folder: {self.path}",
                             "merge adapters first: `ehrforge export --merged OUT --model ADAPTER_DIR`")
        self._vllm = vllm
        self.top_logprobs = top_logprobs
        self.llm = vllm.LLM(model=str(self.path), dtype=dtype, max_model_len=max_model_len,
                            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=False)

    def generate(self, batch: list[list[Message]], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0, seed: int | None = None) -> list[Generation]:
        params = self._vllm.SamplingParams(max_tokens=max_new_tokens, temperature=temperature, seed=seed, logprobs=self.top_logprobs)
        outputs = self.llm.chat(batch, params, use_tqdm=False)
        gens = []
        for out in outputs:
            best = out.outputs[0]
            tokens, lps, ents = [], [], []
            for token_id, top in zip(best.token_ids, best.logprobs or []):
                chosen = top[token_id]
                tokens.append(chosen.decoded_token or "")
                lps.append(float(chosen.logprob))
                ents.append(entropy_from_top_logprobs([{"logprob": float(v.logprob)} for v in top.values()]))
            gens.append(Generation(text=best.text.strip(), tokens=tokens, token_logprobs=lps or None, token_entropies=ents or None,
                                   prompt_tokens=len(out.prompt_token_ids or []),
                                   finish_reason="length" if best.finish_reason == "length" else "stop"))
        return gens
