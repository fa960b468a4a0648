"""Students on real tiny models: LoRA SFT of the generative model, and the sequence-classification head.

The tiny models are random, so these tests check the plumbing (training runs on the right records, the output folder
loads as a backend, predictions are scored, unlabelled records are skipped) and that training moves the model; the
quality figures come from ``benchmarks/classify_selective.py``.
"""

from __future__ import annotations

import json

import pytest

from ehrforge.core.backends import load_backend
from ehrforge.core.sft import SFTSettings
from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.classify.seqcls import SeqClsBackend, SeqClsConfig, default_encoder, is_seqcls_folder
from ehrforge.tasks.classify.task import ClassifyTask


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """A 2-layer random BERT with the bundled MiniLM tokenizer, built locally in well under a second."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-encoder")
    tok = AutoTokenizer.from_pretrained(str(default_encoder()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=256)
    BertModel(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def test_generative_lora_student_trains_on_labelled_records_only(tiny_model_dir, tmp_path):
    task = ClassifyTask(n_train=12, n_test=6, max_chars=300)
    records = task.load("train")
    records[0] = {**records[0], "label": None}  # the teacher failed on this one
    out = task.train(records, str(tiny_model_dir), tmp_path / "student", SFTSettings(max_steps=2, batch_size=4))
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert meta["train_records"] == 11 and meta["task"] == "classify" and meta["steps"] == 2
    backend = load_backend(f"transformers:{out}")
    test = task.load("test")
    preds = task.predict(backend, test)
    assert len(preds) == len(test) and all(isinstance(p, (Answer, Abstain)) for p in preds)
    assert set(task.score(test, preds)) >= {"precision", "recall", "f1", "coverage"}


@pytest.mark.slow  # ~20 s alone, over a minute on a loaded 2-core machine; the LoRA test below covers the plumbing
def test_seqcls_student_learns_the_training_labels(tiny_encoder_dir, tmp_path):
    task = ClassifyTask(n_train=48, max_chars=300, head="seqcls")
    records = task.load("train")
    cfg = SeqClsConfig(epochs=6, batch_size=16, max_len=64, lora_r=0, learning_rate=3e-3)
    out = task.train(records, str(tiny_encoder_dir), tmp_path / "seqcls", cfg)
    assert is_seqcls_folder(out) and not (tmp_path / "seqcls.tmp").exists()
    meta = json.loads((out / "ehrforge_seqcls.json").read_text())
    assert meta["train_records"] == 48 and meta["steps"] == 18
    backend = SeqClsBackend(out)
    preds = task.predict(backend, records)
    assert all(isinstance(p, Answer) and 0.5 <= p.confidence <= 1.0 for p in preds)
    # a 2-layer random encoder trained 18 steps fits its own training set better than the majority class
    majority = max(sum(r["gold"] == "soe" for r in records), sum(r["gold"] == "other" for r in records)) / 48
    assert task.score(records, preds)["accuracy"] > majority


def test_seqcls_with_lora_on_top_layers(tiny_encoder_dir, tmp_path):
    task = ClassifyTask(n_train=16, max_chars=200, head="seqcls")
    cfg = SeqClsConfig(epochs=1, batch_size=8, max_len=32, lora_r=4, lora_top_layers=1)
    out = task.train(task.load("train"), str(tiny_encoder_dir), tmp_path / "lora", cfg)
    backend = SeqClsBackend(out)  # merged: loads as a plain model, no peft needed at inference
    gen = backend.generate([task.prompt(task.load("train")[0])])[0]
    assert gen.text in ("yes", "no") and gen.token_logprobs[0] <= 0.0


def test_seqcls_backend_refuses_a_causal_model_folder(tiny_model_dir):
    from ehrforge.errors import ModelError

    with pytest.raises(ModelError, match="not a classify seqcls model"):
        SeqClsBackend(tiny_model_dir)
