"""The SFT loop's parts on a real tiny transformer: the label-only loss equals the full-logits loss (value and
gradient), length-grouped batches cover every example once, and an answer that would be truncated stops training."""

from __future__ import annotations

import pytest

from ehrforge.core.sft import (
    SFTSettings,
    check_lengths,
    collate,
    label_loss_sum,
    length_grouped_batches,
    tokenize_rows,
    train_sft,
)
from ehrforge.core.types import Answer
from ehrforge.errors import DataError
from ehrforge.core.contract import Task


def _lora_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))


def test_label_only_loss_matches_full_logits_loss_and_gradient(tiny_model_dir):
    import torch
    from transformers import AutoTokenizer

    from ehrforge.core import sft

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    rows = [{"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
            for q, a in [("count patients", "SELECT COUNT(*) FROM patients"), ("hi", "null"), ("creatinine?", "1.2 mg/dL")]]
    examples = tokenize_rows(rows, tok)
    assert all(0 < start < len(ids) for ids, start in examples)
    model = _lora_model(tiny_model_dir)
    input_ids, mask, index, targets, n_tokens = collate(examples, tok.pad_token_id, "cpu")
    assert n_tokens == sum(len(ids) for ids, _ in examples)

    def grads():
        out = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        model.zero_grad(set_to_none=True)
        return out

    old_chunk = sft.LOSS_CHUNK
    sft.LOSS_CHUNK = 5  # several chunks even on short examples
    try:
        ours = label_loss_sum(model, input_ids, None, index, targets) / len(targets)  # right padding: no mask needed
    finally:
        sft.LOSS_CHUNK = old_chunk
    ours.backward()
    ours_grads = grads()
    labels = torch.full_like(input_ids, -100)
    for row, (ids, start) in enumerate(examples):
        labels[row, start : len(ids)] = input_ids[row, start : len(ids)]
    reference = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
    reference.backward()
    assert float(ours.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    for a, b in zip(ours_grads, grads()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_length_grouped_batches_cover_each_example_once_with_less_padding():
    import random

    rng = random.Random(1)
    lengths = [rng.choice([rng.randint(10, 30), rng.randint(300, 400)]) for _ in range(200)]
    batches = length_grouped_batches(lengths, 8, seed=3, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert batches == length_grouped_batches(lengths, 8, seed=3, epoch=0)  # a resumed run sees the same order
    assert batches != length_grouped_batches(lengths, 8, seed=3, epoch=1)

    def padding(bs):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)

    arrival = [list(range(s, min(s + 8, 200))) for s in range(0, 200, 8)]
    assert padding(batches) < padding(arrival) / 4


class LongTask(Task):
    name = "long"
    metric = "accuracy"

    def load(self, split, **_):
        return [{"id": "0", "q": "word " * 60, "a": "yes"}, {"id": "1", "q": "short", "a": "no"}]

    def prompt(self, r):
        return [{"role": "user", "content": r["q"]}]

    def target(self, r):
        return r["a"]

    def parse(self, g, r):
        return Answer(g.text)

    def score(self, records, preds):
        return {"accuracy": 0.0}


def test_an_answer_that_would_be_truncated_stops_training_naming_the_setting(tiny_model_dir, tmp_path):
    task = LongTask()
    with pytest.raises(DataError, match=r"sft\.max_seq_len=32") as err:
        train_sft(task, task.load("train"), str(tiny_model_dir), tmp_path / "a", SFTSettings(max_seq_len=32, max_steps=1))
    assert "word" not in str(err.value)  # names lengths, never the text
    assert not (tmp_path / "a").exists()


def test_no_answer_tokens_is_a_data_error():
    with pytest.raises(DataError, match="no training example has answer tokens"):
        check_lengths([([1, 2, 3], 3)], 64)


def test_gradient_checkpointing_trains_the_same_adapter_shape(tiny_model_dir, tmp_path):
    import json

    task = LongTask()
    out = train_sft(task, task.load("train"), str(tiny_model_dir), tmp_path / "gc",
                    SFTSettings(max_steps=2, batch_size=2, gradient_checkpointing=True, save_steps=100))
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert meta["steps"] == 2 and meta["sft"]["gradient_checkpointing"] is True
    assert meta["trained_tokens"] > 0 and meta["longest_example_tokens"] <= 1024


def test_checkpointing_one_layer_in_two_trains_as_without_it(tiny_model_dir, tmp_path):
    """The default (recompute one decoder layer in two) changes memory, not the optimisation: same losses."""
    import json

    task = LongTask()
    losses = {}
    for name, checkpointing in {"off": {"gradient_checkpointing": False},
                                "half": {"gradient_checkpointing": True, "checkpoint_every": 2}}.items():
        out = train_sft(task, task.load("train"), str(tiny_model_dir), tmp_path / name,
                        SFTSettings(max_steps=2, batch_size=2, save_steps=100, logging_steps=1, dtype="float32",
                                    **checkpointing))
        meta = json.loads((out / "ehrforge_model.json").read_text())
        losses[name] = [row["loss"] for row in meta["log_history"] if "loss" in row]
    assert len(losses["off"]) == 2
    assert losses["half"] == pytest.approx(losses["off"], rel=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_lean_rms_norm_matches_the_model_own_norm(tiny_model_dir, dtype):
    import torch

    from ehrforge.core.sft import lean_rms_norms

    def loss_and_grads(lean):
        torch.manual_seed(0)
        model = _lora_model(tiny_model_dir).to(getattr(torch, dtype))
        if lean:
            assert lean_rms_norms(model) == 2 * 2 + 1  # two per layer plus the final norm
        for n, p in model.named_parameters():
            if "norm" in n:
                p.requires_grad_(True)  # the norm weight's gradient is checked too
        ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return float(loss.detach()), {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}

    ref_loss, ref = loss_and_grads(False)
    lean_loss, lean = loss_and_grads(True)
    tol = 1e-5 if dtype == "float32" else 2e-2
    assert lean_loss == pytest.approx(ref_loss, rel=tol) and ref.keys() == lean.keys()
    for name in ref:
        assert torch.allclose(ref[name], lean[name], rtol=tol * 10, atol=tol), name
