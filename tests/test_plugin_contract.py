"""The plug-in contract end to end, for every registered task: a folder written by ``ehrforge train`` loads in
``eval`` (one predictions line per record) and in ``serve`` (answers or abstains, never 500); GRPO is reachable for
any task with rewards; a folder trained with another prompt warns when loaded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ehrforge.cli import _quiet_libraries, app
from ehrforge.tasks import TASKS, get_task, task_class

sys.path.insert(0, str(Path(__file__).parent / "serve"))
from serve_helpers import TOKEN, live_server  # noqa: E402

runner = CliRunner()
_quiet_libraries()  # what `ehrforge` (main) does before any command: library progress bars off
#: options that point a task at a tiny causal LM student (the default extract student is an encoder)
CHAT_STUDENT = {"extract": ["--set", "task_options.student=decoder", "--set", "task_options.dataset=sample"]}
TRAIN = ["--limit", "2", "--set", "sft.max_steps=1", "--set", "sft.batch_size=1", "--set", "sft.max_seq_len=4096"]


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from ehrforge.tasks.sql.recipe import ensure_database

    return Path(ensure_database(tmp_path_factory.mktemp("db") / "ehr.sqlite", None))


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """One folder per task, each written by ``ehrforge train`` (1 LoRA step on the tiny model)."""
    root = tmp_path_factory.mktemp("trained")
    out = {}
    for name in sorted(TASKS):
        folder = root / name
        printed = _cli("train", "--task", name, "--model", str(tiny_model_dir), "--out", str(folder), *TRAIN,
                       *CHAT_STUDENT.get(name, []))
        out[name] = Path(printed.strip().splitlines()[-1])  # fhirqa's sequential training ends in <out>/answer
    return out


def _context(name: str) -> dict[str, str]:
    values = {"patient_id": lambda: get_task("fhirqa").store().patient_ids[0],
              "note": lambda: "67-year-old man, weight 80 kg, height 175 cm, creatinine 1.1 mg/dL."}
    # any other field a task declares gets plain text: the reply must still be an answer or a reasoned abstention
    return {field: values.get(field, lambda: "Age 54; HbA1c 7.1 %; no prior stroke.")() for field in task_class(name).ask_fields}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_trained_folder_records_task_predictor_and_prompt(trained, name):
    card = json.loads((trained[name] / "ehrforge_model.json").read_text())
    assert card["task"] == name and card["predictor"] == "chat"
    assert card["prompt_format"] == get_task(name, **({"student": "decoder"} if name == "extract" else {})).prompt_format()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_eval_writes_one_prediction_line_per_record(trained, demo_db, tmp_path, name):
    preds, metrics = tmp_path / "p.jsonl", tmp_path / "m.json"
    db = ["--db", str(demo_db)] if "db" in task_class(name).Options.model_fields else []
    split = "valid"
    _cli("eval", "--task", name, "--model", f"student={trained[name]}", "--limit", "3", "--split", split, *db,
         "--predictions-out", str(preds), "--json", str(metrics), *CHAT_STUDENT.get(name, []), "--set", "max_new_tokens=8")
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    assert all(r["model"] == "student" and isinstance(r["abstained"], bool) and 0 <= r["confidence"] <= 1 for r in rows)
    assert all((r["prediction"] is None) == r["abstained"] and (r["reason"] is None) != r["abstained"] for r in rows)
    assert "student" in json.loads(metrics.read_text())


@pytest.mark.parametrize("name", sorted(TASKS))
def test_serve_loads_any_trained_folder_and_answers_or_abstains(trained, demo_db, name):
    from ehrforge.serve import ServeSettings, build_app

    db = str(demo_db) if "db" in task_class(name).Options.model_fields else None
    options = {"max_new_tokens": 8, **({"dataset": "sample"} if name == "extract" else {})}
    served = build_app(str(trained[name]), db, settings=ServeSettings(tokens={"t": TOKEN}), task_options={name: options})
    assert list(served.state.tasks) == [name]  # a trained folder serves the task it was trained for
    with live_server(served) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {"question": "What does the record say?", "context": _context(name)}
        r = httpx.post(f"{server.url}/v1/{name}/ask", json=body, headers=headers, timeout=120)
        assert r.status_code == 200, r.text
        reply = r.json()
        assert isinstance(reply["abstained"], bool) and (reply["reason"] is not None) == reply["abstained"]
        # a question without the context the task needs is a reasoned abstention or a 400, never a 500
        if task_class(name).ask_fields:
            r = httpx.post(f"{server.url}/v1/{name}/ask", json={"question": "x"}, headers=headers, timeout=120)
            assert r.status_code in (200, 400) and (r.status_code == 400 or r.json()["abstained"]), r.text


def test_grpo_is_reachable_for_any_task_with_rewards(trained, tiny_model_dir, tmp_path):
    out = tmp_path / "grpo"
    _cli("train", "--task", "classify", "--stage", "grpo", "--model", str(trained["classify"]), "--out", str(out),
         "--limit", "2", "--set", "grpo.max_steps=1", "--set", "grpo.num_generations=2", "--set", "grpo.prompts_per_step=1",
         "--set", "grpo.max_completion_length=4")
    card = json.loads((out / "ehrforge_model.json").read_text())
    assert card["task"] == "classify" and card["stage"] == "grpo" and card["rewards"]


def test_unknown_stage_is_one_line():
    result = runner.invoke(app, ["train", "--task", "classify", "--stage", "rlhf"])
    assert result.exit_code != 0 and "trains in stages: sft, grpo" in str(result.exception or result.output)


def test_folder_trained_with_another_prompt_warns(trained, capsys):
    from ehrforge.core.loader import check_prompt_format, read_manifest

    task = get_task("classify")
    manifest = read_manifest(str(trained["classify"]))
    assert check_prompt_format(manifest, task, "m") is True
    manifest["prompt_format"]["hash"] = "000000000000"
    assert check_prompt_format(manifest, task, "m") is False


@pytest.fixture(scope="module")
def encoder_folders(tmp_path_factory) -> dict[str, Path]:
    """Non-chat students written by ``ehrforge train``: a classification head (classify) and NER (extract)."""
    from ehrforge.core.tiny import make_tiny_encoder
    from ehrforge.tasks.classify.seqcls import default_encoder

    root = tmp_path_factory.mktemp("encoders")
    encoder = make_tiny_encoder(root / "tiny-bert", default_encoder())
    out = {}
    for name, extra in (("classify", ["--set", "task_options.head=seqcls"]),
                        ("extract", ["--set", "task_options.dataset=sample", "--set", f"task_options.encoder={encoder}"])):
        printed = _cli("train", "--task", name, "--model", str(encoder), "--out", str(root / name), "--limit", "8",
                       "--set", "sft.max_steps=2", *extra)
        out[name] = Path(printed.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("name", ["classify", "extract"])
def test_serve_and_eval_load_encoder_students_written_by_train(encoder_folders, tmp_path, name):
    from ehrforge.serve import ServeSettings, build_app

    card = json.loads((encoder_folders[name] / "ehrforge_model.json").read_text())
    assert card["task"] == name and card["predictor"] != "chat"
    extra = ["--set", "task_options.dataset=sample"] if name == "extract" else []
    preds = tmp_path / "p.jsonl"
    _cli("eval", "--task", name, "--model", str(encoder_folders[name]), "--limit", "4", "--predictions-out", str(preds),
         *extra)
    assert len(preds.read_text().splitlines()) == 4
    served = build_app(str(encoder_folders[name]), None, settings=ServeSettings(tokens={"t": TOKEN}),
                       task_options={"extract": {"dataset": "sample"}})
    with live_server(served) as server:
        r = httpx.post(f"{server.url}/v1/{name}/ask", json={"question": "Aspirin caused a rash. | Visit 1 | Visit 2 |"},
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["abstained"], bool)
