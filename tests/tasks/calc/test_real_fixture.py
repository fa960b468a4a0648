"""The real-note dev fixture (MedCalc-Bench's 55 one-shot exemplars, CC BY-SA 4.0): integrity, gold parameters typed
per the tool schema, a deterministic builder, and the benchmark's handling of bad CSV rows."""

from __future__ import annotations

import csv
import json
import re
import sys
from datetime import datetime
from pathlib import Path

import pytest

from ehrforge.tasks.calc.calculators import BY_ID
from ehrforge.tasks.calc.score import parse_value
from ehrforge.tasks.calc.tool import tool_schema

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "ehrforge" / "tasks" / "calc" / "data"
FIXTURE = DATA / "real_exemplars.json"
SOURCE = ROOT.parent / "shared" / "data" / "medcalc" / "one_shot_finalized_explanation.json"
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_one_entry_per_calculator_with_a_parseable_gold(fixture: dict) -> None:
    exemplars = fixture["exemplars"]
    assert len(exemplars) == 55
    assert sorted(e["calculator_id"] for e in exemplars) == sorted(BY_ID)
    for e in exemplars:
        calc = BY_ID[e["calculator_id"]]
        assert e["calculator"] == calc.key and e["output_type"] == calc.output_type and e["note"].strip()
        assert parse_value(e["ground_truth"], e["answer_format"]) is not None


def test_gold_parameters_are_typed_per_schema_and_every_parameter_is_accounted_for(fixture: dict) -> None:
    for e in fixture["exemplars"]:
        schema = {p.name: p for p in tool_schema(e["calculator"])}
        unparsed = {u["param"] for u in e["unparsed"]}
        assert set(e["gold_params"]) | unparsed == set(schema) and not set(e["gold_params"]) & unparsed
        assert all(u["reason"] for u in e["unparsed"] + e["unmapped_upstream"])
        for name, gold in e["gold_params"].items():
            p = schema[name]
            assert gold["kind"] == p.kind and gold["from"]
            if p.kind == "numeric":
                assert isinstance(gold["canonical"], float) and isinstance(gold["value"], (int, float))
                assert gold["unit"] in p.units or (not p.units and gold["unit"] == p.unit), (e["calculator"], name)
            elif p.kind == "bool":
                assert isinstance(gold["value"], bool)
            elif p.kind == "categorical":
                assert gold["value"] in p.options
            else:
                datetime.strptime(gold["value"], "%m/%d/%Y")


def test_coverage_counts_match_the_entries(fixture: dict) -> None:
    cov, exemplars = fixture["coverage"], fixture["exemplars"]
    assert cov["exemplars"] == 55
    assert cov["parsed"] == sum(len(e["gold_params"]) for e in exemplars)
    assert cov["unparsed"] == sum(len(e["unparsed"]) for e in exemplars)
    assert cov["parsed"] + cov["unparsed"] == cov["schema_params"]
    # a spot check against upstream's own inputs: Cockcroft-Gault's exemplar is a 66-year-old man, 5.09 mg/dL
    cg = next(e for e in exemplars if e["calculator"] == "cockcroft_gault")["gold_params"]
    assert (cg["age"]["value"], cg["sex"]["value"], cg["creatinine"]["canonical"]) == (66, "male", 5.09)


def test_notice_gives_the_licence_and_says_never_train(fixture: dict) -> None:
    notice = (DATA / "NOTICE.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in notice and "Never train on it" in notice and fixture["_source"]["sha256"] in notice


@pytest.mark.skipif(not SOURCE.exists(), reason="MedCalc-Bench exemplars not available offline here")
def test_builder_is_deterministic_and_matches_the_committed_file(tmp_path: Path) -> None:
    from benchmarks.calc_real_fixture import main

    out = tmp_path / "real_exemplars.json"
    assert main(["--source", str(SOURCE), "--out", str(out)]) == 0
    assert out.read_bytes() == FIXTURE.read_bytes()
    assert (tmp_path / "NOTICE.md").read_bytes() == (DATA / "NOTICE.md").read_bytes()


# --- the benchmark's bad-row path --------------------------------------------------------------------------------

COLUMNS = ["Row Number", "Calculator ID", "Patient Note", "Question", "Ground Truth Answer", "Lower Limit", "Upper Limit"]
GOOD_NOTE = "A 70-year-old man, confused. BUN 25 mg/dL. BP 120/80 mmHg, respiratory rate 31 breaths/min."


def _write_csv(path: Path, rows: list[list[str]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


@pytest.fixture()
def quiet_device(monkeypatch):
    import benchmarks._env

    monkeypatch.setattr(benchmarks._env, "device_info", lambda: {"cpu": "test"})  # no torch import in a unit test


def test_bad_rows_are_rejected_by_row_number_and_the_rest_scored(tmp_path: Path, quiet_device) -> None:
    from benchmarks.calc_real_notes import main

    question = "What is the patient's CURB-65 score?"
    data = _write_csv(tmp_path / "test.csv", [
        ["1", "45", GOOD_NOTE, question, "4", "", ""],
        ["2", "999", GOOD_NOTE, question, "4", "", ""],
        ["3", "45", "", question, "4", "", ""],
        ["4", "45", "x" * 1_000_000, question, "4", "", ""],
        ["5", "45", GOOD_NOTE, question, "four", "", ""],
    ])  # fmt: skip
    out, preds = tmp_path / "result.json", tmp_path / "preds.jsonl"
    assert main(["--data", str(data), "--out", str(out), "--predictions-out", str(preds)]) == 0
    result = json.loads(out.read_text())
    assert result["data"]["rows_usable"] == 1 and result["data"]["rows_rejected"] == 4
    reasons = {r["row"]: r["reason"] for r in result["data"]["rejected"]}
    assert reasons == {
        3: "unknown or missing Calculator ID",
        4: "empty Patient Note",
        5: "Patient Note longer than 20000 characters",
        6: "Ground Truth Answer does not parse as integer",
    }
    with open(result["data"]["rejects_file"], newline="", encoding="utf-8") as fh:
        assert [row["row"] for row in csv.DictReader(fh)] == ["3", "4", "5", "6"]
    rules = result["arms"]["rules"]
    assert rules["n"] == 1 and rules["accuracy"] == 1.0 and rules["param_accuracy"] is None
    lines = preds.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["prediction"] == "4"
    assert "BUN" not in preds.read_text() and not re.search(r"year-old", out.read_text())  # no note text


def test_no_usable_row_exits_1(tmp_path: Path, quiet_device) -> None:
    from benchmarks.calc_real_notes import main

    only_bad = _write_csv(tmp_path / "bad.csv", [["1", "999", GOOD_NOTE, "q?", "4", "", ""]])
    assert main(["--data", str(only_bad), "--out", str(tmp_path / "r.json")]) == 1
    no_columns = _write_csv(tmp_path / "cols.csv", [["x"]], ["Patient Note"])
    assert main(["--data", str(no_columns), "--out", str(tmp_path / "r.json")]) == 1
    assert not (tmp_path / "r.json").exists()
