"""CalcTask: deterministic synthetic data, notes that state every input, prompt golden file, parse/abstain,
per-calculator scoring through core.evaluate, synth → load round trip, exemplars, and SFT → GRPO on a tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.evaluate import evaluate
from ehrforge.core.types import Abstain, Answer, Generation
from ehrforge.errors import ConfigError, DataError, UnknownNameError
from ehrforge.tasks import get_task
from ehrforge.tasks.calc.calculators import CALCULATORS
from ehrforge.tasks.calc.score import breakdown_table, is_correct
from ehrforge.tasks.calc.task import CalcTask

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "calc"


def test_registered_and_options_validated() -> None:
    assert isinstance(get_task("calc"), CalcTask)
    with pytest.raises(ConfigError) as err:
        CalcTask(mode_of_thinking="rl", n_train="many", n_valid=-1)
    assert all(f"task_options.{k}" in str(err.value) for k in ("mode_of_thinking", "n_train", "n_valid"))
    with pytest.raises(UnknownNameError):
        CalcTask(calculators="bmi,nonsense")
    assert CalcTask(n_valid="10").load("valid") and len(CalcTask(n_valid="10").load("valid")) == 10


def test_splits_are_deterministic_balanced_and_disjoint() -> None:
    task = CalcTask()
    valid = task.load("valid", limit=90)
    assert valid == CalcTask().load("valid", limit=90)
    assert {r["calculator"] for r in valid} == set(CALCULATORS)  # round-robin: 90 items cover all 45 twice
    train_notes = {r["note"] for r in task.load("train", limit=200)}
    assert not train_notes & {r["note"] for r in valid}
    with pytest.raises(DataError, match="unknown split"):
        task.load("dev")


def test_notes_state_every_input_and_gold_follows_from_them() -> None:
    task = CalcTask()
    for r in task.load("train", limit=450):
        for name, shown in r["shown"].items():
            # the displayed value (with its unit) is in the note; BP is written "150/90 mm Hg", alcohol in words
            expected = shown.split()[0] if name in ("sbp", "dbp", "alcohol_drinks_per_week") else shown
            assert expected in r["note"], (r["calculator"], name)
        assert is_correct(r["ground_truth"], r["ground_truth"], r["answer_format"], r["lower_limit"], r["upper_limit"])
        assert r["reasoning"].strip() and task.target(r).endswith(f"<answer>{r['ground_truth']}</answer>")
    styles = {r["note"][:4] for r in task.load("train", limit=60)}
    assert any(s.startswith("HPI") for s in styles) and any(s.startswith("A ") for s in styles)


def test_prompt_golden() -> None:
    task = CalcTask(calculators="cockcroft_gault,cha2ds2_vasc,gestational_age")
    records = task.load("valid", limit=3)
    got = {"prompts": [task.prompt(r) for r in records], "targets": [task.target(r) for r in records]}
    path = GOLDEN / "prompt_examples.json"
    if os.environ.get("EHRFORGE_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text())


def test_parse_answers_and_abstentions() -> None:
    task = CalcTask()
    r = {"answer_format": "decimal", "ground_truth": "12.5"}
    assert task.parse(Generation(text="12.0 + 0.5 <answer>12.5 mL/min</answer>"), r) == Answer("12.5 mL/min", 1.0)
    missing = task.parse(Generation(text="The CrCl is 12.5"), r)
    assert isinstance(missing, Abstain) and missing.reason == "no <answer> tag"
    assert isinstance(task.parse(Generation(text="<answer>unknown</answer>"), r), Abstain)
    date = task.parse(Generation(text="<answer>3/4/2021</answer>"), {"answer_format": "date"})
    assert date.value == "03/04/2021"
    g = Generation(text="<answer>1</answer>", tokens=["a"], token_logprobs=[-0.5])
    assert 0.6 < task.parse(g, r).confidence < 0.61  # e^-0.5


def test_evaluate_reports_by_calculator_and_output_type() -> None:
    task = CalcTask(calculators="bmi,cha2ds2_vasc,due_date")
    records = task.load("valid", limit=9)
    by_note = {r["note"]: r for r in records}

    def oracle_for_bmi_only(messages):
        rec = next(r for note, r in by_note.items() if note in messages[-1]["content"])
        return f"<answer>{rec['ground_truth']}</answer>" if rec["calculator"] == "bmi" else "I am not sure."

    results = evaluate(task, {"fake": FakeBackend(respond=oracle_for_bmi_only)}, records)
    m = results["fake"]
    assert m["accuracy/bmi"] == 1.0 and m["accuracy/cha2ds2_vasc"] == 0.0 and m["accuracy/due_date"] == 0.0
    assert m["accuracy/decimal"] == 1.0 and m["accuracy/integer"] == 0.0 and m["accuracy/date"] == 0.0
    assert m["accuracy"] == pytest.approx(1 / 3) and m["abstain_rate"] == pytest.approx(2 / 3)
    assert breakdown_table(results).row_count == 1 + 3 + 3  # all, three output types, three calculators


def test_synthesize_then_load_round_trip(tmp_path) -> None:
    task = CalcTask()
    stats = task.synthesize(tmp_path / "calc.jsonl", n=50, teacher=None, seed=7)
    assert stats["written"] == 50 and stats["calculators"] == 45 and not stats["teacher_used"]
    assert json.loads((tmp_path / "calc.jsonl.stats.json").read_text())["written"] == 50
    loaded = task.load("train", source=str(tmp_path / "calc.jsonl"))
    assert loaded == task.generate(50, seed=7)
    (tmp_path / "bad.jsonl").write_text('{"id": "1"}\nnot json\n')
    with pytest.raises(DataError, match="malformed lines"):
        task.load("train", source=str(tmp_path / "bad.jsonl"))
    (tmp_path / "thin.jsonl").write_text('{"id": "1"}\n')
    with pytest.raises(DataError, match="lack calc fields"):
        task.load("train", source=str(tmp_path / "thin.jsonl"))


def test_medcalc_exemplars(shared_data) -> None:
    task = CalcTask()
    ex = task.load("medcalc_exemplars", source=str(shared_data / "medcalc"))
    assert len(ex) == 45 and all(r["source"] == "medcalc-bench-exemplar" for r in ex)
    by_id = {r["calculator_id"]: r for r in ex}
    assert by_id[69]["ground_truth"] == "(34, 3)" and by_id[13]["ground_truth"] == "12/02/2000"
    assert all(
        is_correct(r["ground_truth"], r["ground_truth"], r["answer_format"], r["lower_limit"], r["upper_limit"])
        for r in ex
    )
    assert len(CalcTask(calculators="bmi,4").load("medcalc_exemplars", source=str(shared_data / "medcalc"))) == 2


def test_missing_exemplars_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="exemplars not found"):
        CalcTask().load("medcalc_exemplars", source=str(tmp_path))


def test_sft_then_grpo_then_eval_on_tiny_model(tiny_model_dir, tmp_path) -> None:
    """The two-stage recipe end to end on a real (tiny, random) model: SFT adapter → GRPO adapter on top → eval."""
    from ehrforge.core.backends import load_backend
    from ehrforge.core.grpo import GRPOSettings
    from ehrforge.core.sft import SFTSettings

    records = CalcTask().load("train", limit=4)
    sft = CalcTask().train(
        records, str(tiny_model_dir), tmp_path / "sft", SFTSettings(max_steps=1, batch_size=2, max_seq_len=2048)
    )
    grpo_task = CalcTask(max_new_tokens=8)
    settings = GRPOSettings(max_steps=1, num_generations=2, prompts_per_step=1, max_completion_length=8)
    out = grpo_task.train(records, str(sft), tmp_path / "grpo", settings, stage="grpo")
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert (
        meta["rewards"] == ["format_reward", "correctness_reward"]
        and Path(meta["base_model"]).resolve() == Path(sft).resolve()
    )
    results = evaluate(grpo_task, {"sft+grpo": load_backend(f"transformers:{out}")}, records[:2])
    assert 0.0 <= results["sft+grpo"]["accuracy"] <= 1.0 and "accuracy/cockcroft_gault" in results["sft+grpo"]
