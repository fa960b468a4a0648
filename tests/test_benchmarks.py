"""Every benchmark script imports cleanly (a moved or renamed package name fails here, not in the next long run)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_module_imports(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module(f"benchmarks.{name}")
    if not name.startswith("_"):  # a script, not a helper: it runs only under `python benchmarks/<name>.py`
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
    assert module.__name__ in sys.modules


def _row(answerable: bool, score: int | None, mean_u: float, agrees: bool = True) -> dict:
    return {"answerable": answerable, "policed": score is not None, "score_if_answered": score, "mean_u": mean_u,
            "max_u": mean_u, "agrees_with_draft": agrees, "unanswerable_abstain_score": 0 if answerable else 1}


def test_sql_confidence_tunes_the_threshold_that_keeps_only_the_confident_right_answers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.sql_confidence import counts, decide, rs, tune

    # two confident right answers, one unsure wrong one, one unanswerable question the model answered unsure
    rows = [_row(True, 1, 0.01), _row(True, 1, 0.02), _row(True, -1, 0.5), _row(False, -1, 0.9)]
    assert rs(rows, [False] * 4, 10) == 25.0  # abstain on all: only the unanswerable question scores
    threshold, best = tune(rows, "mean_u", False)
    assert 0.02 < threshold < 0.5 and best == 75.0
    kept = counts(rows, decide(rows, "mean_u", False, threshold))
    assert (kept["answered"], kept["right"], kept["wrong"]) == (2, 2, 0)
    # requiring agreement with the draft drops the answers that disagree, whatever their entropy
    rows[1]["agrees_with_draft"] = False
    assert counts(rows, decide(rows, "mean_u", True, threshold))["answered"] == 1


def test_every_current_result_file_is_indexed_in_the_results_readme():
    results = ROOT / "benchmarks" / "results"
    index = (results / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in results.glob("*.json") if f"`{p.name}`" not in index]
    assert missing == [], f"add a row for each to benchmarks/results/README.md: {missing}"


def test_sql_confidence_never_reuses_another_models_generations(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.sql_confidence import cache_key

    class Prompted:
        def prompt_format(self):
            return {"name": "sql/compact", "hash": "abc"}

    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"epoch one")
    first = cache_key(str(folder), Prompted(), "ct2")
    assert cache_key(str(folder), Prompted(), "ct2") == first
    assert cache_key(str(folder), Prompted(), "transformers") != first
    (folder / "adapter_model.safetensors").write_bytes(b"epoch two")  # re-shipped under the same name
    assert cache_key(str(folder), Prompted(), "ct2") != first


def test_a_continued_learning_curve_arm_counts_every_run_before_it(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    import json

    from benchmarks.sql_learning_curve import CONTINUES, examples_before

    def finished(arm: str, rows: int) -> None:
        (tmp_path / arm).mkdir()
        (tmp_path / arm / "ehrforge_model.json").write_text(json.dumps({"train_records": 0, "extra_rows": rows,
                                                                          "sft": {"epochs": 1.0}}))

    assert CONTINUES["k0-draft-r16-e3"] == "k0-draft-r16-e2" and CONTINUES["k0-draft-r16-e2"] == "k0-draft-r16"
    finished("k0-draft-r16", 5124)
    finished("k0-draft-r16-e2", 5124)
    assert examples_before(tmp_path, "k0-draft-r16") == 0
    assert examples_before(tmp_path, "k0-draft-r16-e2") == 5124
    assert examples_before(tmp_path, "k0-draft-r16-e3") == 10248


def test_sql_ship_refuses_a_stack_whose_runs_do_not_continue_each_other(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    import json

    from benchmarks.sql_ship import export_adapter, run_stack

    assert [p.name for p in run_stack(tmp_path, "k0-draft-r16-e2")] == ["k0-draft-r16", "k0-draft-r16-e2"]
    for arm, base in (("k0-draft-r16", "bundled"), ("k0-draft-r16-e2", str(tmp_path / "elsewhere"))):
        (tmp_path / arm).mkdir()
        (tmp_path / arm / "ehrforge_model.json").write_text(json.dumps({"base_model": base}))
    with pytest.raises(SystemExit, match="was not trained on top of"):
        export_adapter(run_stack(tmp_path, "k0-draft-r16-e2"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
