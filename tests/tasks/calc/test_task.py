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
        CalcTask(mode_of_thinking="rl", n_train="many", n_valid=-1, mode="guess")
    assert all(f"task_options.{k}" in str(err.value) for k in ("mode_of_thinking", "n_train", "n_valid", "mode"))
    assert CalcTask().mode == "tool" and CalcTask(mode="reasoning").mode == "reasoning"
    with pytest.raises(UnknownNameError):
        CalcTask(calculators="bmi,nonsense")
    assert CalcTask(n_valid="10").load("valid") and len(CalcTask(n_valid="10").load("valid")) == 10


def test_splits_are_deterministic_balanced_and_disjoint() -> None:
    task = CalcTask(mode="reasoning")
    valid = task.load("valid", limit=110)
    assert valid == CalcTask().load("valid", limit=110)
    assert {r["calculator"] for r in valid} == set(CALCULATORS)  # round-robin: 110 items cover all 55 twice
    train_notes = {r["note"] for r in task.load("train", limit=200)}
    assert not train_notes & {r["note"] for r in valid}
    with pytest.raises(DataError, match="unknown split"):
        task.load("dev")


def test_notes_state_every_input_and_gold_follows_from_them() -> None:
    task, reasoning = CalcTask(), CalcTask(mode="reasoning")
    for r in task.load("train", limit=450):
        for name, shown in r["shown"].items():
            # the displayed value (with its unit) is in the note; BP is written "150/90 mm Hg", alcohol in words
            expected = shown.split()[0] if name in ("sbp", "dbp", "alcohol_drinks_per_week") else shown
            if name == "alcohol_drinks_per_week" and r["inputs"][name] == 0:
                expected = "does not drink alcohol"
            assert expected in r["note"], (r["calculator"], name)
        assert is_correct(r["ground_truth"], r["ground_truth"], r["answer_format"], r["lower_limit"], r["upper_limit"])
        assert r["reasoning"].strip() and reasoning.target(r).endswith(f"<answer>{r['ground_truth']}</answer>")
    styles = {r["note"][:4] for r in task.load("train", limit=60)}
    assert any(s.startswith("HPI") for s in styles) and any(s.startswith("A ") for s in styles)


@pytest.mark.parametrize("mode", ["reasoning", "tool"])
def test_prompt_golden(mode: str) -> None:
    task = CalcTask(calculators="cockcroft_gault,cha2ds2_vasc,gestational_age", mode=mode)
    records = task.load("valid", limit=3)
    got = {"prompts": [task.prompt(r) for r in records], "targets": [task.target(r) for r in records]}
    path = GOLDEN / ("prompt_examples.json" if mode == "reasoning" else "prompt_examples_tool.json")
    if os.environ.get("EHRFORGE_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text())


def test_parse_answers_and_abstentions() -> None:
    task = CalcTask(mode="reasoning")
    r = {"answer_format": "decimal", "ground_truth": "12.5"}
    assert task.parse(Generation(text="12.0 + 0.5 <answer>12.5 mL/min</answer>"), r) == Answer("12.5 mL/min", 1.0)
    missing = task.parse(Generation(text="The CrCl is 12.5"), r)
    assert isinstance(missing, Abstain) and missing.reason == "no <answer> tag"
    assert isinstance(task.parse(Generation(text="<answer>unknown</answer>"), r), Abstain)
    date = task.parse(Generation(text="<answer>3/4/2021</answer>"), {"answer_format": "date"})
    assert date.value == "03/04/2021"
    g = Generation(text="<answer>1</answer>", tokens=["a"], token_logprobs=[-0.5])
    assert 0.6 < task.parse(g, r).confidence < 0.61  # e^-0.5


@pytest.mark.parametrize("mode", ["reasoning", "tool"])
def test_evaluate_reports_by_calculator_and_output_type(mode: str) -> None:
    task = CalcTask(calculators="bmi,cha2ds2_vasc,due_date", mode=mode)
    records = task.load("valid", limit=9)
    by_note = {r["note"]: r for r in records}

    def oracle_for_bmi_only(messages):
        rec = next(r for note, r in by_note.items() if note in messages[-1]["content"])
        if rec["calculator"] != "bmi":
            return "I am not sure."
        return task.target(rec) if mode == "tool" else f"<answer>{rec['ground_truth']}</answer>"

    results = evaluate(task, {"fake": FakeBackend(respond=oracle_for_bmi_only)}, records)
    m = results["fake"]
    assert m["accuracy/bmi"] == 1.0 and m["accuracy/cha2ds2_vasc"] == 0.0 and m["accuracy/due_date"] == 0.0
    assert m["accuracy/decimal"] == 1.0 and m["accuracy/integer"] == 0.0 and m["accuracy/date"] == 0.0
    assert m["accuracy"] == pytest.approx(1 / 3) and m["abstain_rate"] == pytest.approx(2 / 3)
    assert breakdown_table(results).row_count == 1 + 3 + 3  # all, three output types, three calculators


def test_synthesize_then_load_round_trip(tmp_path) -> None:
    task = CalcTask()
    stats = task.synthesize(tmp_path / "calc.jsonl", n=50, teacher=None, seed=7)
    assert stats["written"] == 50 and stats["calculators"] == 50 and not stats["teacher_used"]
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
    assert len(ex) == 55 and all(r["source"] == "medcalc-bench-exemplar" for r in ex)
    assert "Dexamethasone PO" in {r["calculator_id"]: r for r in ex}[24]["question"]  # steroid question filled in
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
    from ehrforge.core.training import train

    records = CalcTask().load("train", limit=4)
    sft = train(
        CalcTask(), records, str(tiny_model_dir), tmp_path / "sft", SFTSettings(max_steps=1, batch_size=2, max_seq_len=2048)
    )
    grpo_task = CalcTask(max_new_tokens=8)
    settings = GRPOSettings(max_steps=1, num_generations=2, prompts_per_step=1, max_completion_length=8)
    out = train(grpo_task, records, str(sft), tmp_path / "grpo", settings, stage="grpo")
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert (
        meta["rewards"] == ["tool_format_reward", "tool_param_reward", "tool_correctness_reward"]
        and Path(meta["base_model"]).resolve() == Path(sft).resolve()
    )
    results = evaluate(grpo_task, {"sft+grpo": load_backend(f"transformers:{out}")}, records[:2])
    assert 0.0 <= results["sft+grpo"]["accuracy"] <= 1.0 and "accuracy/cockcroft_gault" in results["sft+grpo"]


def test_tool_mode_parse_runs_the_call_and_abstains_naming_the_fault() -> None:
    task = CalcTask()
    record = task.load("valid", limit=1)[0]  # cockcroft_gault
    got = task.parse(Generation(text=task.target(record)), record)
    assert isinstance(got, Answer)
    assert is_correct(got.value, record["ground_truth"], "decimal", record["lower_limit"], record["upper_limit"])
    assert "weight" in got.evidence["explanation"] and got.evidence["inputs"]["age"] == record["inputs"]["age"]
    call = json.loads(task.target(record))
    call.pop("creatinine")
    missing = task.parse(Generation(text=json.dumps(call)), record)
    assert isinstance(missing, Abstain) and "missing parameter: creatinine" in missing.reason
    unknown = task.parse(Generation(text='{"calculator": "crcl_magic", "age": 3}'), record)
    assert isinstance(unknown, Abstain) and "unknown calculator" in unknown.reason
    # the prompt lists the calculator's parameters; budgets follow the calculator's call length
    assert "Parameters: age; sex (male|female); weight (kg|lb)" in task.prompt(record)[1]["content"]
    from ehrforge.tasks.calc.task import tool_budget

    assert tool_budget("bmi") < tool_budget("apache_ii") <= 320


NOTE = (
    "A 70-year-old man with pneumonia. He is confused. BUN 25 mg/dL, respiratory rate 31, blood pressure 85/50 mm Hg."
)


def test_ask_needs_a_note_and_a_calculator_never_a_key_error() -> None:
    task = CalcTask()
    gold = '{"calculator":"curb65","age":70,"bun":{"value":25,"unit":"mg/dL"},"resp_rate":31,"sbp":85,"dbp":50,"confusion":true}'
    backend = FakeBackend(respond=lambda messages: gold)
    no_note = task.ask(backend, "What is the CURB-65 score?")
    assert no_note["abstained"] and "no patient note" in no_note["reason"]
    with_note = task.ask(backend, "What is the CURB-65 score?", note=NOTE)
    assert with_note["answer"] == "5" and not with_note["abstained"] and with_note["calculator"] == "curb65"
    assert "bun: 25 mg/dL" in with_note["explanation"]  # the extracted inputs explain the answer
    inline = task.ask(backend, f"{NOTE} What is the CURB-65 score?")  # the note in the question text
    assert inline["answer"] == "5"
    huge = task.ask(backend, "What is the CURB-65 score?", note="x" * 1_000_000)
    assert huge["abstained"] and "characters long" in huge["reason"]
    unknown = task.ask(backend, "How tall is the patient going to be?", note=NOTE)
    assert unknown["abstained"] and "names no calculator" in unknown["reason"]
    empty_values = FakeBackend(respond=lambda messages: '{"calculator": "curb65"}')
    nothing = task.ask(empty_values, "What is the CURB-65 score?", note="Seen today. Feels fine.")
    assert nothing["abstained"] and "missing parameters: age, bun" in nothing["reason"]
    assert not CalcTask().missing_ask_fields({"note": NOTE})


def test_eligibility_ask_without_context_is_a_clear_abstention() -> None:
    task = get_task("eligibility")
    reply = task.ask(FakeBackend(respond=lambda m: "<answer>eligible</answer>"), "Is this patient eligible?")
    assert reply["abstained"] and "criteria" in reply["reason"]
    ok = task.ask(
        FakeBackend(respond=lambda m: "<answer>eligible</answer>"),
        "Is this patient eligible?",
        criteria="Age 40-75",
        patient="52-year-old woman",
    )
    assert ok["answer"] is True


def _medcalc_csv(path: Path, rows: list[dict]) -> Path:
    import csv

    cols = [
        "Row Number",
        "Calculator ID",
        "Patient Note",
        "Question",
        "Ground Truth Answer",
        "Lower Limit",
        "Upper Limit",
    ]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_medcalc_csv_eval_reports_and_rejects_bad_rows(tmp_path, caplog) -> None:
    good = {"Row Number": "1", "Calculator ID": "45", "Patient Note": NOTE, "Question": "What is the CURB-65 score?",
            "Ground Truth Answer": "5", "Lower Limit": "5", "Upper Limit": "5"}  # fmt: skip
    bmi = {"Row Number": "2", "Calculator ID": "6", "Patient Note": "Weight 80 kg, height 180 cm.",
           "Question": "What is the BMI?", "Ground Truth Answer": "24.691", "Lower Limit": "23.457", "Upper Limit": "25.926"}  # fmt: skip
    bad = [
        good | {"Row Number": "3", "Calculator ID": "999"},
        good | {"Row Number": "4", "Patient Note": ""},
        good | {"Row Number": "5", "Ground Truth Answer": "five"},
        bmi | {"Row Number": "6", "Lower Limit": "low"},
    ]
    path = _medcalc_csv(tmp_path / "test_data.csv", [good, *bad, bmi])
    task = CalcTask()
    with caplog.at_level("WARNING", logger="ehrforge.calc"):
        records = task.load("test", source=str(path))
    assert [r["calculator"] for r in records] == ["curb65", "bmi"]
    assert "skipped 4 bad rows (rows 3, 4, 5, 6)" in caplog.text and NOTE not in caplog.text
    rejects = (tmp_path / "test_data.csv.rejects.csv").read_text()
    assert rejects.count("\n") == 5 and "unknown or missing Calculator ID" in rejects
    calls = {"curb65": '{"calculator":"curb65","age":70,"bun":25,"resp_rate":31,"sbp":85,"dbp":50,"confusion":true}',
             "bmi": '{"calculator":"bmi","weight":80,"height":170}'}  # fmt: skip
    backend = FakeBackend(respond=lambda m: calls["bmi" if "BMI" in m[-1]["content"] else "curb65"])
    m = evaluate(task, {"fake": backend}, records)["fake"]
    assert m["accuracy"] == 0.5 and m["accuracy/curb65"] == 1.0 and m["accuracy/bmi"] == 0.0  # 80/1.7² = 27.7
    assert m["accuracy/integer"] == 1.0 and m["abstain_rate"] == 0.0
    (tmp_path / "wrong.csv").write_text("id,note\n1,x\n")
    with pytest.raises(DataError, match="lacks MedCalc-Bench columns: Calculator ID"):
        task.load("test", source=str(tmp_path / "wrong.csv"))
