"""The SQL recipe end to end on a real SQLite database and a real (tiny) transformer: build → base → SFT →
threshold tuning → self-training; plus the CLI's `ask` and bad-input paths."""

import json
import math
import subprocess
import sys

import pytest

from ehrforge.config import load_config
from ehrforge.core.types import Abstain
from ehrforge.tasks.sql.recipe import ensure_database, run_sql_recipe
from ehrforge.tasks.sql.task import SQLTask


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return ensure_database(tmp_path_factory.mktemp("db") / "ehr.sqlite", None)


@pytest.mark.parametrize(("native", "dtype", "expected"), [("1", "auto", "bfloat16"), ("0", "auto", "float32"),
                                                         ("1", "float32", "float32")])
def test_the_recipe_generates_in_the_precision_its_students_train_in(tiny_model_dir, demo_db, tmp_path, monkeypatch,
                                                                     native, dtype, expected):
    import torch

    from ehrforge.core.adapters import load_trainable
    from ehrforge.tasks.sql.recipe import _load_student

    monkeypatch.setenv("EHRFORGE_CPU_BF16", native)  # the native-bf16 detection, forced either way
    cfg = load_config(overrides=[f"sft.dtype={dtype}", "sft.device=cpu"], model=str(tiny_model_dir),
                      output_dir=str(tmp_path), task_options={"db": str(demo_db)})
    student = _load_student(str(tiny_model_dir), SQLTask(db=str(demo_db)), cfg)
    trained, _, _ = load_trainable(str(tiny_model_dir), cfg.sft.dtype, cfg.sft.device)
    assert student.model.dtype == trained.dtype == getattr(torch, expected)


def test_recipe_end_to_end_with_tiny_model(tiny_model_dir, demo_db, tmp_path):
    cfg = load_config(
        overrides=["sft.max_steps=2", "sft.max_seq_len=6144", "data.train_limit=12", "data.valid_limit=6"],
        model=str(tiny_model_dir), output_dir=str(tmp_path / "run"), task_options={"db": str(demo_db)}, max_new_tokens=12,
    )
    result = run_sql_recipe(cfg, stages=2)
    rows = result["rows"]
    assert set(rows) == {"abstain-all", "draft-copy", "base", "stage1", "stage2"}
    # Abstaining on everything scores exactly the unanswerable share, whatever the penalty.
    share = 100 * result["sizes"]["test_unanswerable"] / result["sizes"]["test"]
    for key in ("RS0", "RS5", "RS10", "RSN"):
        assert rows["abstain-all"][key] == pytest.approx(share)
    for name in ("base", "stage1", "stage2"):
        assert -100 * result["sizes"]["test"] <= rows[name]["RSN"] <= rows[name]["RS0"] <= 100
    assert (tmp_path / "run" / "stage1" / "adapter_config.json").exists()
    assert (tmp_path / "run" / "stage2" / "adapter_config.json").exists()
    assert rows["stage2"]["pseudo_labelled"] >= 0
    saved = json.loads((tmp_path / "run" / "sql_results.json").read_text())
    assert saved["rows"]["stage1"]["RS10"] == rows["stage1"]["RS10"]
    # each trained folder carries the threshold that was measured for it (ask and serve use that policy)
    for stage in ("stage1", "stage2"):
        manifest = json.loads((tmp_path / "run" / stage / "ehrforge_model.json").read_text())
        assert manifest["tuned"]["threshold"] == rows[stage]["threshold"]
    # A second run reuses the trained stages (resume) instead of training again.
    mtime = (tmp_path / "run" / "stage1" / "adapter_model.safetensors").stat().st_mtime
    run_sql_recipe(cfg, stages=1, include_base=False)
    assert (tmp_path / "run" / "stage1" / "adapter_model.safetensors").stat().st_mtime == mtime


def test_gold_sql_scores_perfectly_and_abstains_on_unanswerable(demo_db):
    task = SQLTask(demo_db)
    records = task.load("valid", limit=20)
    from ehrforge.core.types import Answer

    preds = [Answer(r["sql"]) if r["sql"] != "null" else Abstain("gold") for r in records]
    scores = task.score(records, preds)
    assert scores["RS10"] == 100.0 and scores["execution_accuracy"] == 1.0


def test_no_threshold_accuracy_scores_the_sql_a_threshold_held_back(demo_db):
    """Gold SQL held back by a tight threshold scores 0 as answered, and 1.0 with the threshold lifted."""
    from ehrforge.core.types import Answer

    task = SQLTask(demo_db, threshold=0.1)
    records = [r for r in task.load("valid", limit=20) if r["sql"] != "null"]
    preds = [task.apply_policy(Answer(r["sql"], 0.5, {"uncertainty": 0.7})) for r in records]
    assert all(isinstance(p, Abstain) and p.reason.startswith("uncertain") for p in preds)
    scores = task.score(records, preds)
    assert scores["execution_accuracy"] == 0.0
    assert scores["execution_accuracy_no_threshold"] == 1.0
    # Held-back SQL that does not run stays wrong when the threshold is lifted (the execution filter still applies).
    broken = [task.apply_policy(Answer("SELECT nope FROM patients", 0.5, {"uncertainty": 0.7})) for _ in records]
    assert task.score(records, broken)["execution_accuracy_no_threshold"] == 0.0


def test_execution_filter_turns_bad_sql_into_abstentions(demo_db):
    task = SQLTask(demo_db)
    from ehrforge.core.types import Answer

    assert isinstance(task.apply_policy(Answer("SELECT nope FROM patients", 0.9, {"uncertainty": 0.1})), Abstain)
    assert "rejected" in task.apply_policy(Answer("DROP TABLE patients", 0.9, {"uncertainty": 0.1})).reason
    empty = task.apply_policy(Answer("SELECT subject_id FROM patients WHERE subject_id = -1", 0.9, {"uncertainty": 0.1}))
    assert isinstance(empty, Abstain) and "no rows" in empty.reason
    ok = task.apply_policy(Answer("SELECT COUNT(*) FROM patients", 0.9, {"uncertainty": 0.1}))
    assert ok.evidence["result"].rows[0][0] > 0


def _cli(*args, env_home):
    import os

    env = {**os.environ, "EHRFORGE_HOME": str(env_home), "EHRFORGE_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "ehrforge", *args], capture_output=True, text=True, env=env, timeout=600)


def test_cli_ask_prints_sql_result_or_abstention(tiny_model_dir, demo_db, tmp_path):
    proc = _cli("ask", "How many patients were admitted in 2100?", "--model", str(tiny_model_dir), "--db", str(demo_db),
                "--json", "--set", "max_new_tokens=8", env_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    assert set(reply) >= {"answer", "abstained", "reason", "confidence"}
    assert reply["abstained"] is True and reply["reason"]  # a random tiny model cannot write valid SQL


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--task", "sqll"], "did you mean 'sql'"),
        (["ask", "q", "--model", "/no/such/model", "--db", "{db}"], "model not found"),
        (["ask", "q", "--db", "/no/such.sqlite", "--model", "{model}"], "database"),
        (["train", "--config", "{bad_yaml}"], "not valid YAML"),
        (["eval", "--data", "{bad_jsonl}", "--db", "{db}"], "malformed JSON on line 2"),
        (["ask", "q", "--model", "{bad_manifest}", "--db", "{db}"], "not valid JSON"),
        (["ask", "q", "--model", "{bad_weights}", "--db", "{db}"], "error:"),
    ],
)
def test_cli_bad_input_is_one_line_exit_1(args, message, tiny_model_dir, demo_db, tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("sft: [1\n")
    bad_jsonl = tmp_path / "q.jsonl"
    bad_jsonl.write_text('{"id": "1", "question": "Patient 10021118 secret note"}\n{broken\n')
    bad_manifest = tmp_path / "half-copied"
    bad_manifest.mkdir()
    (bad_manifest / "ehrforge_model.json").write_text("{broken")
    bad_weights = tmp_path / "corrupt-adapter"  # a LoRA adapter whose weights file is random bytes
    bad_weights.mkdir()
    (bad_weights / "ehrforge_model.json").write_text(json.dumps({"task": "sql", "base_model": str(tiny_model_dir)}))
    (bad_weights / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(tiny_model_dir)}))
    (bad_weights / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4)
    args = [a.format(db=demo_db, model=tiny_model_dir, bad_yaml=bad_yaml, bad_jsonl=bad_jsonl, bad_manifest=bad_manifest,
                     bad_weights=bad_weights) for a in args]
    proc = _cli(*args, env_home=tmp_path)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "secret" not in proc.stderr


def test_pseudo_labels_are_capped_at_the_unanswerable_rate_most_uncertain_first(demo_db):
    from ehrforge.core.backends.fake import FakeBackend
    from ehrforge.tasks.sql.recipe import pseudo_label_unanswerable, unanswerable_rate

    task = SQLTask(db=str(demo_db), threshold=0.5, k=0, draft=False)
    pool = [{"id": f"p{i}", "question": f"question {i}", "sql": "null" if i < 3 else "SELECT 1"} for i in range(10)]
    answers = {"question 0": "null", "question 1": "SELECT nonsense FROM nowhere", "question 2": "SELECT COUNT(*) FROM patients"}
    # question 0: the model says null; 1: SQL that fails; the rest (2 included, truly unanswerable) confident SQL
    backend = FakeBackend(respond=lambda m: answers.get(m[-1]["content"], "SELECT COUNT(*) FROM patients"), token_logprob=math.log(0.99))
    cfg = load_config(overrides=[], task="sql")
    rate = unanswerable_rate([{"sql": "null"}, {"sql": "SELECT 1"}, {"sql": "SELECT 2"}, {"sql": "SELECT 3"}, {"sql": "SELECT 4"}])
    assert rate == pytest.approx(0.2)
    pseudo, stats = pseudo_label_unanswerable(task, backend, pool, cfg, rate)
    # two abstentions (null, failing SQL), cap round(0.2 * 10) = 2: both, the confident answers never
    assert [p["id"] for p in pseudo] == ["pseudo-p0", "pseudo-p1"] and all(p["sql"] == "null" for p in pseudo)
    assert stats == {"pool": 10, "stage1_abstained": 2, "cap_rate": 0.2, "cap": 2, "pseudo_labelled": 2,
                     "truly_unanswerable": 2, "pool_unanswerable": 3}
    # a stage 1 that abstains on everything still labels only the capped share
    pseudo, stats = pseudo_label_unanswerable(task, FakeBackend(respond=lambda m: "null"), pool, cfg, rate)
    assert len(pseudo) == 2 and stats["stage1_abstained"] == 10


def test_a_trained_sql_folder_given_as_the_model_is_stage1_as_shipped(tiny_model_dir, demo_db, tmp_path):
    """What `ehrforge demo` does with `bundled-sql`: the folder is stage 1 as it is (no training, its own
    threshold), its base model is the base row, and stage 2 is a short pass trained on top of it."""
    from ehrforge.core.sft import SFTSettings, train_sft
    from ehrforge.core.models import MANIFEST

    task = SQLTask(db=str(demo_db), k=0)
    shipped = train_sft(task, task.load("train", limit=8), str(tiny_model_dir), tmp_path / "shipped",
                        SFTSettings(max_steps=1, max_seq_len=6144, batch_size=2, grad_accum=1))
    manifest = json.loads((shipped / MANIFEST).read_text())
    manifest["tuned"] = {"threshold": 1.5, "entropy": "max"}
    (shipped / MANIFEST).write_text(json.dumps(manifest))
    before = sorted(p.name for p in shipped.iterdir())
    cfg = load_config(overrides=["sft.max_steps=1", "sft.max_seq_len=6144", "data.train_limit=8", "data.valid_limit=4"],
                      model=str(shipped), output_dir=str(tmp_path / "run"), task_options={"db": str(demo_db)}, max_new_tokens=8)
    result = run_sql_recipe(cfg, stages=2)
    rows = result["rows"]
    assert rows["stage1"]["threshold"] == 1.5 and rows["stage1"]["threshold_from"] == "its manifest"
    assert "train_s" not in rows["stage1"] and not (tmp_path / "run" / "stage1").exists()
    stage2 = json.loads((tmp_path / "run" / "stage2" / MANIFEST).read_text())
    assert stage2["base_model"] == str(shipped.resolve())  # trained on top of the given folder
    assert rows["stage2"]["threshold"] == 1.5  # kept: stage 1 was not tuned here
    assert result["verdict"].startswith("stage 1 answers ")
    assert sorted(p.name for p in shipped.iterdir()) == before  # the given folder is never written
    assert json.loads((shipped / MANIFEST).read_text())["tuned"]["threshold"] == 1.5

    # benchmarks/sql_rs.py: every row tuned on dev, the shipped folder too (its folder still untouched)
    cfg.output_dir = str(tmp_path / "run-tuned")
    rows = run_sql_recipe(cfg, stages=1, include_base=False, tune_shipped=True)["rows"]
    assert rows["stage1"]["threshold_from"] == "dev" and rows["stage1"]["threshold"] != 1.5
    assert sorted(p.name for p in shipped.iterdir()) == before
    assert json.loads((shipped / MANIFEST).read_text())["tuned"]["threshold"] == 1.5
