"""GGUF export of a real (tiny, random) model: read back by transformers and, when installed, by llama.cpp."""

from __future__ import annotations

import importlib.util

import pytest

from ehrforge.core.export import export_gguf, export_merged
from ehrforge.errors import ModelError

TEXT = "SELECT COUNT(*) FROM patients WHERE 42 and the patient is 67"


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return ids[0].tolist(), model(ids).logits[0].numpy()


def test_gguf_round_trips_through_transformers(tiny_model_dir, reference, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_gguf(tiny_model_dir, tmp_path / "tiny.gguf", out_type="f32")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.gguf"]  # no temp file left behind
    ids, logits = reference
    tok = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=out.name)
    assert tok(TEXT)["input_ids"] == ids
    assert tok.chat_template and "im_start" in tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=out.name)
    with torch.no_grad():
        got = model(torch.tensor([ids])).logits[0].numpy()
    assert abs(got - logits).max() < 1e-4


@pytest.mark.parametrize("out_type,tolerance", [("f32", 1e-3), ("f16", 5e-3), ("q8_0", 5e-2)])
def test_llama_cpp_computes_the_same_logits(tiny_model_dir, reference, tmp_path, out_type, tolerance):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed (optional CPU serving backend)")
    import numpy as np
    from llama_cpp import Llama

    out = export_gguf(tiny_model_dir, tmp_path / f"tiny-{out_type}.gguf", out_type=out_type)
    ids, logits = reference
    llm = Llama(str(out), n_ctx=128, logits_all=True, verbose=False, n_threads=1)
    try:
        assert llm.tokenize(TEXT.encode(), add_bos=False, special=True) == ids  # same tokenizer, same split
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    # a wrong rotary permutation or tensor mapping gives differences of order 1, not 1e-3
    assert abs(got - logits).max() < tolerance
    assert (got.argmax(-1) == logits.argmax(-1)).all()


def test_bad_requests_fail_clearly(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="must end in .gguf"):
        export_gguf(tiny_model_dir, tmp_path / "x.bin")
    with pytest.raises(ModelError, match="unknown GGUF output type"):
        export_gguf(tiny_model_dir, tmp_path / "x.gguf", out_type="q2")
    assert not (tmp_path / "x.gguf").exists()


def test_export_merged_writes_a_plain_hf_folder(tiny_model_dir, tmp_path):
    out = export_merged(tiny_model_dir, tmp_path / "merged")
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    with pytest.raises(ModelError, match="not empty"):
        export_merged(tiny_model_dir, out)
