"""vLLM backend: refuses clearly without vllm; on a CUDA machine with vllm, serves the tiny model."""

from __future__ import annotations

import importlib.util

import pytest

from ehrforge.errors import BackendError


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_is_a_clear_error(tmp_path):
    from ehrforge.core.backends.vllm_backend import VLLMBackend

    with pytest.raises(BackendError, match="pip install vllm"):
        VLLMBackend(tmp_path)


@pytest.mark.gpu
def test_vllm_generates_with_logprobs(tiny_model_dir):
    pytest.importorskip("vllm")
    from ehrforge.core.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(tiny_model_dir, gpu_memory_utilization=0.3, max_model_len=512)
    gens = backend.generate([[{"role": "user", "content": "how many patients"}]] * 3, max_new_tokens=8)
    assert len(gens) == 3 and all(g.token_logprobs and len(g.token_logprobs) == len(g.tokens) for g in gens)
    assert gens[0].text == gens[1].text  # greedy
