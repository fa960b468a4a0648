"""Demonstrations for the SQL prompt: found by question shape (values masked), on real MiniLM embeddings."""

import pytest
from pydantic import ValidationError

from ehrforge.tasks.sql.demonstrations import DemonstrationPool, QuestionShape, demonstration_retriever, value_lexicon
from ehrforge.tasks.sql.task import DRAFT_INSTRUCTION, SQLTask

POOL = [
    # the decoy shares the query's patient and drug, not its shape
    {"id": "decoy", "question": "Was heparin prescribed to patient 10021487 in 2100?",
     "sql": "SELECT dose_val_rx FROM prescriptions WHERE subject_id = 10021487 AND drug = 'heparin'"},
    {"id": "twin", "question": "When was aspirin first prescribed to patient 10018081?",
     "sql": "SELECT starttime FROM prescriptions WHERE subject_id = 10018081 AND drug = 'aspirin' ORDER BY starttime ASC LIMIT 1"},
    {"id": "filler", "question": "When did patient 5 first visit the hospital?", "sql": "SELECT MIN(admittime) FROM admissions WHERE subject_id = 5"},
    {"id": "unlabelled", "question": "When was insulin first prescribed to patient 1?", "sql": None},
]
QUERY = "When was heparin first prescribed to patient 10021487?"


def test_the_shape_retriever_finds_the_template_twin_where_word_overlap_finds_the_shared_values():
    assert demonstration_retriever(POOL, method="bm25", mask_values=False).nearest(QUERY, 1)[0]["id"] == "decoy"
    for method in ("bm25", "minilm"):
        got = demonstration_retriever(POOL, method=method, mask_values=True).nearest(QUERY, 3)
        assert [r["id"] for r in got][0] == "twin" and "unlabelled" not in {r["id"] for r in got}, method


def test_the_lexicon_comes_from_the_pool_sql_so_unknown_values_stay_words():
    shape = QuestionShape(value_lexicon(r["sql"] for r in POOL if r["sql"]))
    assert shape(QUERY) == "when was VAL first prescribed to patient ID?"
    assert shape("When was warfarin first prescribed to patient 7?") == "when was warfarin first prescribed to patient NUM?"


def test_a_year_is_never_put_where_an_age_was():
    shape = QuestionShape([])
    age = ("How many patients are 60 or above?", "SELECT COUNT(*) FROM admissions WHERE age >= 60")
    assert shape.adapt(*age, "How many patients are 75 or above?") == "SELECT COUNT(*) FROM admissions WHERE age >= 75"
    assert shape.adapt(*age, "How many patients were admitted in 2100?") is None
    assert shape("admitted in 2100") != shape("aged 60")


def test_the_task_builds_its_pool_with_its_retrieval_options_and_rebuilds_when_they_change():
    task = SQLTask(k=1)
    default = task.retriever()
    assert (default.method, task.options.mask_values) == ("minilm", True) and task.retriever() is default
    task.state = task.state.updated(retrieval="bm25")  # e.g. restored from a trained folder's manifest
    assert task.retriever().method == "bm25"
    with pytest.raises(ValidationError):  # the options are what the user asked for: never written afterwards
        task.options.retrieval = "minilm"


def test_a_model_saved_before_the_retrieval_choice_gets_the_bm25_it_was_trained_with():
    old_manifest = {"prompt_options": {"prompt": "compact", "k": 3}}
    task = SQLTask()
    task.restore(old_manifest)
    assert (task.setting("retrieval"), task.setting("mask_values"), task.setting("draft")) == ("bm25", False, False)
    assert task.options.retrieval == "minilm"  # the options themselves are untouched
    current = SQLTask(retrieval="minilm", mask_values=False)
    saved = current.manifest_extras()
    later = SQLTask()
    later.restore(saved)
    assert (later.retrieval, later.mask_values) == ("minilm", False)
    assert later.prompt_format() == current.prompt_format()
    assert SQLTask(mask_values=False).prompt_format()["hash"] != SQLTask().prompt_format()["hash"]


def test_a_draft_is_the_nearest_lined_up_demonstration_with_the_question_values():
    pool = DemonstrationPool(POOL)
    draft = pool.draft(QUERY)
    assert draft == "SELECT starttime FROM prescriptions WHERE subject_id = 10021487 AND drug = 'heparin' ORDER BY starttime ASC LIMIT 1"
    assert pool.draft(QUERY, exclude={"twin"}) != draft  # never from an excluded record
    assert pool.draft("Count the rooms") is None  # no pool question is value-free, so none lines up


def test_the_prompt_carries_drafts_but_never_from_the_training_question_itself(tmp_path):
    import json

    task = SQLTask(k=3)
    assert DRAFT_INSTRUCTION.strip() in task.system_prompt()
    drafted = 0
    for record in task.load("train")[:20]:
        question = task.prompt(record)[-1]["content"]
        assert question.startswith(record["question"])
        if "\nDraft: " in question:
            drafted += 1
            assert question.split("\nDraft: ", 1)[1] == task.demonstration_pool().draft(record["question"], exclude={record["id"]})
    assert drafted >= 10  # most EHRSQL questions share their template with a train question
    # a pool of the training question alone: nothing to draft from, no demonstration either
    source = tmp_path / "one.json"
    source.write_text(json.dumps({"train": [POOL[1]]}))
    alone = SQLTask(k=3, source=str(source))
    assert [m["role"] for m in alone.prompt(POOL[1])] == ["system", "user"]
    assert alone.prompt(POOL[1])[-1]["content"] == POOL[1]["question"]
    assert alone.prompt({**POOL[1], "id": "a user question"})[-1]["content"].endswith("\nDraft: " + POOL[1]["sql"])
    plain = SQLTask(k=3, draft=False)
    assert DRAFT_INSTRUCTION.strip() not in plain.system_prompt()
    assert plain.prompt_format()["hash"] != task.prompt_format()["hash"]
