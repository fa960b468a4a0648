"""Fixtures for the extract recipe: a tiny real BERT encoder (built locally in < 1 s) and synthetic notes."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT (hidden 32) with the packaged MiniLM word-piece tokenizer: a real model, trained for
    real in the tests, small enough for a few steps per second on a shared 2-core CPU."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ehrforge.tasks.extract.ner import encoder_path

    out = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_path()))
    tokenizer.save_pretrained(str(out))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def sample_lexicon_teacher():
    """The template stand-in teacher with names from the bundled BC5CDR train excerpt."""
    from ehrforge.tasks.extract.task import ExtractTask
    from ehrforge.tasks.extract.template_teacher import TemplateTeacher

    task = ExtractTask(dataset="sample")
    return TemplateTeacher.from_records(task.load("train"), seed=0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """On a shared, oversubscribed CPU, two spinning OpenMP threads ran these steps 4-7× slower than one (measured:
    MiniLM step of 16 sentences 0.74 s with 1 thread vs 5.0 s with 2 at load average 15). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
