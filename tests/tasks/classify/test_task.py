"""ClassifyTask: synthetic data, prompt (golden file), parse, score, rewards, options, synthesize."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.io import read_jsonl
from ehrforge.core.types import Abstain, Answer, Generation
from ehrforge.errors import ConfigError, DataError
from ehrforge.tasks import get_task
from ehrforge.tasks.classify.task import ClassifyTask, answer_is_label, answer_is_one_word, table_from_prompt
from ehrforge.tasks.classify.tables import FORMATS, NEGATIVE_KINDS, generate_tables

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "classify"


def test_registry_builds_the_task_with_options():
    task = get_task("classify", head="seqcls", max_chars="500")
    assert isinstance(task, ClassifyTask) and task.head == "seqcls" and task.max_chars == 500


def test_bad_options_are_listed_together():
    with pytest.raises(ConfigError) as err:
        ClassifyTask(head="svm", max_chars=10, positive_rate=2)
    msg = str(err.value)
    assert "task_options.head" in msg and "task_options.max_chars" in msg and "task_options.positive_rate" in msg


def test_synthetic_splits_are_deterministic_disjoint_and_cover_every_kind():
    task = ClassifyTask(n_train=300, n_valid=50)
    train, again, valid = task.load("train"), task.load("train"), task.load("valid")
    assert train == again
    assert not {r["text"] for r in train} & {r["text"] for r in valid}
    assert {r["kind"] for r in train} == {"soe", *NEGATIVE_KINDS}
    assert {r["format"] for r in train} == set(FORMATS)
    assert all(r["label"] == r["gold"] for r in train)
    assert 0.3 < sum(r["gold"] == "soe" for r in train) / len(train) < 0.5
    with pytest.raises(DataError, match="unknown split"):
        task.load("dev")


def test_prompt_matches_golden_file():
    task = ClassifyTask()
    record = generate_tables(1, seed=7)[0]
    rendered = json.dumps(task.prompt(record), indent=1, ensure_ascii=False)
    golden = GOLDEN / "prompt.json"
    if not golden.exists():  # first run writes it and fails: review the file, then commit it
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered + "\n")
        pytest.fail(f"golden file written: {golden}; review and commit it")
    assert rendered + "\n" == golden.read_text()


def test_prompt_truncates_long_tables_and_round_trips_the_table():
    task = ClassifyTask(max_chars=150)
    record = {"id": "x", "text": "| Visit | " + " | ".join(f"V{i}" for i in range(100)) + " |"}
    shown = table_from_prompt(task.prompt(record))
    assert shown == task.table_text(record) and shown.endswith("[...]") and len(shown) < 170


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", "soe"), ("Yes.", "soe"), ("NO", "other"), (" no - this is a dosing table", "other")],
)
def test_parse_answers(text, value):
    gen = Generation(text=text, tokens=[text], token_logprobs=[math.log(0.7)])
    pred = ClassifyTask().parse(gen, {"id": "1"})
    assert isinstance(pred, Answer) and pred.value == value and pred.confidence == pytest.approx(0.7)


@pytest.mark.parametrize("text", ["", "maybe", "The table shows visits", "42"])
def test_parse_non_answers_abstain(text):
    assert isinstance(ClassifyTask().parse(Generation(text=text), {"id": "1"}), Abstain)


def test_score_against_gold_not_the_training_label():
    task = ClassifyTask()
    recs = [{"id": "1", "gold": "soe", "label": "other"}, {"id": "2", "gold": "other", "label": "soe"},
            {"id": "3", "gold": "soe", "label": "soe"}]
    preds = [Answer("soe"), Answer("other"), Abstain("x")]
    s = task.score(recs, preds)
    assert s["precision"] == 1.0 and s["recall"] == 0.5 and s["f1"] == pytest.approx(2 / 3)
    assert s["coverage"] == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="no 'gold' label"):
        task.score([{"id": "4", "text": "t"}], [Answer("soe")])


def test_predict_with_fake_backend_scores_perfectly_when_it_answers_gold():
    task = ClassifyTask(n_test=30)
    recs = task.load("test")
    by_text = {task.table_text(r): r["gold"] for r in recs}
    fake = FakeBackend(respond=lambda m: "yes" if by_text[table_from_prompt(m)] == "soe" else "no")
    assert task.score(recs, task.predict(fake, recs))["f1"] == 1.0


def test_target_and_trainable_respect_the_label_field():
    task = ClassifyTask()
    recs = [{"id": "1", "gold": "soe", "label": None}, {"id": "2", "gold": "other", "label": "soe"}]
    assert task.trainable(recs) == [recs[1]]
    assert task.target(recs[1]) == "yes"
    with pytest.raises(DataError, match="no usable 'label' label"):
        task.target(recs[0])
    assert ClassifyTask(label_field="gold").target(recs[0]) == "yes"
    row = task.sft_example(recs[1])
    assert row["completion"] == [{"role": "assistant", "content": "yes"}]


def test_train_refuses_data_without_any_label(tmp_path):
    with pytest.raises(DataError, match="no record has a usable"):
        ClassifyTask().train([{"id": "1", "text": "t", "label": None}], "bundled", tmp_path / "m")


def test_rewards():
    assert answer_is_label([[{"content": "Yes"}], "no", "yes"], label=["soe", "soe", None]) == [1.0, 0.0, 0.0]
    assert answer_is_one_word(["No.", "no way"]) == [1.0, 0.0]
    assert ClassifyTask().rewards() == [answer_is_label, answer_is_one_word]


def test_synthesize_writes_gold_labelled_tables(tmp_path):
    out = tmp_path / "tables.jsonl"
    stats = ClassifyTask().synthesize(out, n=25, teacher=None, seed=5)
    recs = read_jsonl(out).records
    assert len(recs) == 25 == stats["n"] and stats["positives"] == sum(r["gold"] == "soe" for r in recs)
    assert len({r["id"] for r in recs}) == 25


def test_reviewer_spellings_are_normalised():
    task = ClassifyTask()
    assert [task.normalise_label(v) for v in ("Yes", "NO", "soe", 1, "unsure")] == ["soe", "other", "soe", "soe", None]
