"""Real training and inference on the tiny local model: sequential LoRA (select → answer), eval, ask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehrforge.core.backends import load_backend
from ehrforge.core.evaluate import evaluate
from ehrforge.core.sft import SFTSettings
from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks import get_task
from ehrforge.tasks.fhirqa.training import train_sequential


def test_sequential_training_then_eval_and_ask(tiny_model_dir: Path, tmp_path: Path) -> None:
    task = get_task("fhirqa", subtask="both", max_candidates=2, context_tokens=256)
    records = task.load("train", limit=4, seed=0)
    cfg = SFTSettings(max_steps=1, batch_size=2, max_seq_len=2048, lora_r=4, lora_alpha=8, save_steps=100)
    out = train_sequential(records, str(tiny_model_dir), tmp_path / "fhirqa", cfg, task_options={"max_candidates": 2})
    assert (out["select"] / "adapter_config.json").exists() and (out["answer"] / "adapter_config.json").exists()
    meta = json.loads((out["answer"] / "ehrforge_model.json").read_text())
    assert Path(meta["base_model"]) == out["select"].resolve()  # stage 2 was trained on top of stage 1
    assert meta["steps"] == 1

    # the stacked adapter loads like any model and runs the whole two-step pipeline
    backend = load_backend(f"transformers:{out['answer']}")
    valid = task.load("valid", limit=2, seed=0)
    task = get_task("fhirqa", subtask="both", max_candidates=2, context_tokens=256, max_new_tokens=8)
    results = evaluate(task, {"tiny-seq": backend}, valid)
    metrics = results["tiny-seq"]
    assert {"select_f1", "meteor", "abstain_rate", "examples_per_s"} <= metrics.keys()
    assert 0.0 <= metrics["select_f1"] <= 1.0

    pid = task.store().patient_ids[0]
    pred = task.answer_patient(backend, pid, "What is the patient allergic to?")
    assert isinstance(pred, (Answer, Abstain))
    if isinstance(pred, Answer):
        assert pred.evidence["prompt_tokens"] > 0 and pred.evidence["resource_ids"]

    # re-running resumes: a finished stage is reused; an unfinished one (here: answer, removed) is trained again
    import shutil

    mtime = (out["select"] / "adapter_model.safetensors").stat().st_mtime
    shutil.rmtree(out["answer"])
    again = train_sequential(records, str(tiny_model_dir), tmp_path / "fhirqa", cfg, task_options={"max_candidates": 2})
    assert (out["select"] / "adapter_model.safetensors").stat().st_mtime == mtime
    assert (again["answer"] / "adapter_config.json").exists()


def test_task_train_single_subtask(tiny_model_dir: Path, tmp_path: Path) -> None:
    task = get_task("fhirqa", subtask="answer", max_candidates=2)
    records = task.load("train", limit=2, seed=1)
    adapter = task.train(records, str(tiny_model_dir), tmp_path / "ans", SFTSettings(max_steps=1, batch_size=2, max_seq_len=2048, lora_r=4))
    assert json.loads((adapter / "ehrforge_model.json").read_text())["task"] == "fhirqa"


@pytest.mark.slow
def test_bundled_model_runs_both_steps() -> None:
    """The real bundled SmolLM2 (≈20 s to load): the pipeline runs and returns a typed result."""
    task = get_task("fhirqa", max_candidates=6)
    backend = load_backend("bundled")
    records = task.load("valid", limit=2, seed=0)
    scores = task.score(records, task.predict(backend, records))
    assert 0.0 <= scores["select_f1"] <= 1.0 and 0.0 <= scores["meteor"] <= 1.0
    pid = next(p for p in task.store().patient_ids if p.startswith("6a4160eb"))
    assert isinstance(task.answer_patient(backend, pid, "What medications is she taking for hypertension?"), (Answer, Abstain))
