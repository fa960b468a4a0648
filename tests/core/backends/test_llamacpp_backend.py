"""The llama.cpp backend on a GGUF export of the tiny model, against the transformers backend (same weights)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (optional CPU serving backend)")

from ehrforge.core.backends.llamacpp_backend import LlamaCppBackend, render_chat  # noqa: E402
from ehrforge.core.backends.transformers_backend import TransformersBackend  # noqa: E402
from ehrforge.core.export import export_gguf  # noqa: E402
from ehrforge.errors import ModelError  # noqa: E402

MSGS = [[{"role": "user", "content": "how many patients"}],
        [{"role": "system", "content": "Write SQL."}, {"role": "user", "content": "count admissions in 2100"}]]


@pytest.fixture(scope="module")
def backends(tiny_model_dir, tmp_path_factory):
    gguf = export_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf", out_type="f32")
    lb = LlamaCppBackend(gguf, n_threads=1)
    yield lb, TransformersBackend(tiny_model_dir, device="cpu")
    lb.close()


def test_prompt_rendering_matches_transformers(backends):
    lb, tb = backends
    for m in MSGS:
        assert lb.render(m) == tb.render(m)


def test_greedy_generation_and_logprobs_match_transformers(backends):
    lb, tb = backends
    for a, b in zip(lb.generate(MSGS, max_new_tokens=10), tb.generate(MSGS, max_new_tokens=10)):
        assert a.text == b.text and a.finish_reason == b.finish_reason
        assert a.prompt_tokens == b.prompt_tokens
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-3)
        assert a.token_entropies == pytest.approx(b.token_entropies, abs=1e-3)


def test_stream_concatenates_to_the_generation(backends):
    lb, _ = backends
    full = lb.generate([MSGS[0]], max_new_tokens=10)[0]
    assert "".join(lb.generate_stream(MSGS[0], max_new_tokens=10)).strip() == full.text


def test_sampling_is_seeded(backends):
    lb, _ = backends
    a = lb.generate([MSGS[0]], max_new_tokens=8, temperature=1.0, seed=3)[0]
    b = lb.generate([MSGS[0]], max_new_tokens=8, temperature=1.0, seed=3)[0]
    assert a.tokens == b.tokens


def test_not_a_gguf_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a GGUF file"):
        LlamaCppBackend(tmp_path / "model.bin")


def test_generation_tags_are_ignored():
    assert render_chat("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}",
                       [{"role": "user", "content": "x"}]) == "x"
