"""The one model loader: manifests (predictor, prompt format, tuned state), corrupt folders, and the engine choice."""

from __future__ import annotations

import json

import pytest

from ehrforge.core.loader import LoadOptions, load_model, read_manifest, trained_task
from ehrforge.errors import ModelError


def test_a_corrupt_manifest_is_one_model_error(tmp_path):
    (tmp_path / "ehrforge_model.json").write_text('{"task": "sql", ')
    with pytest.raises(ModelError, match="not valid JSON"):
        read_manifest(str(tmp_path))
    (tmp_path / "ehrforge_model.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="not a model manifest"):
        load_model(str(tmp_path))


def test_a_predictor_this_version_lacks_is_one_model_error(tmp_path):
    (tmp_path / "ehrforge_model.json").write_text(json.dumps({"task": "classify", "predictor": "ehrforge.nope:Missing"}))
    assert trained_task(str(tmp_path)) == "classify"
    with pytest.raises(ModelError, match="needs predictor ehrforge.nope:Missing"):
        load_model(str(tmp_path))


def test_engine_choice_for_local_chat_models(tiny_model_dir, monkeypatch):
    pytest.importorskip("ctranslate2")
    fast = load_model(str(tiny_model_dir), options=LoadOptions(engine="ct2"))
    reference = load_model(str(tiny_model_dir), options=LoadOptions(engine="transformers"))
    assert type(fast).__name__ != type(reference).__name__
    monkeypatch.setenv("EHRFORGE_ENGINE", "ct2")
    assert LoadOptions().engine == "ct2"
    gen = fast.generate([[{"role": "user", "content": "hello"}]], max_new_tokens=4)[0]
    assert gen.token_logprobs is not None and len(gen.token_logprobs) == len(gen.tokens)
    # The compute type reaches the converted model (its cache entry is named by it).
    assert "-int8-" in fast.model_dir.name
    monkeypatch.setenv("EHRFORGE_CT2_COMPUTE", "float32")
    exact = load_model(str(tiny_model_dir), options=LoadOptions(engine="ct2"))
    assert "-float32-" in exact.model_dir.name


def test_a_corrupt_weights_file_is_one_model_error(tiny_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a half-copied file
    with pytest.raises(ModelError, match="corrupt"):
        load_model(str(broken), options=LoadOptions(engine="transformers"))


def test_entropies_are_finite_when_a_logit_is_minus_infinity():
    import torch

    logp = torch.log_softmax(torch.tensor([[0.0, float("-inf"), 1.0]]), dim=-1)
    assert torch.isfinite(torch.special.entr(logp.exp()).sum(-1)).all()
    assert not torch.isfinite(-(logp.exp() * logp).sum(-1)).all()  # the formula it replaced
