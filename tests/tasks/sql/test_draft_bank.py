"""The shipped draft bank: one train question per query skeleton, and what it gives the bundled question set."""

from ehrforge.tasks.sql import data as sql_data
from ehrforge.tasks.sql.demonstrations import DemonstrationPool, value_lexicon
from ehrforge.tasks.sql.draft_bank import build_draft_bank, query_skeleton, shipped_draft_bank
from ehrforge.tasks.sql.task import SQLTask


def test_the_shipped_bank_is_one_train_question_per_skeleton_and_never_a_valid_one():
    bank = shipped_draft_bank()
    records = bank["records"]
    skeletons = [query_skeleton(r["sql"]) for r in records]
    assert len(set(skeletons)) == len(records) > 500
    assert all(sql_data.is_answerable(r) for r in records)
    valid = sql_data.load_questions("valid")  # the bundled subset's valid part: the demo's dev and test questions
    assert not {r["id"] for r in records} & {r["id"] for r in valid}
    assert not {r["question"] for r in records} & {r["question"] for r in valid}
    assert set(value_lexicon(r["sql"] for r in records)) <= set(bank["values"])
    assert "_source" in bank and "CC BY 4.0" in bank["_source"]["licence"]


def test_rebuilding_from_the_bundled_train_questions_keeps_one_of_each_skeleton_in_file_order():
    train = sql_data.load_questions("train")
    bank = build_draft_bank(train, per_skeleton=1)
    firsts: dict[str, str] = {}
    for r in train:
        if sql_data.is_answerable(r):
            firsts.setdefault(query_skeleton(r["sql"]), r["id"])
    assert [r["id"] for r in bank["records"]] == list(firsts.values())
    assert len(build_draft_bank(train, per_skeleton=2)["records"]) > len(bank["records"])


def _shape_right(pool: DemonstrationPool, records: list) -> int:
    """How many answerable records get a draft with their gold query's skeleton."""
    right = 0
    for r in records:
        draft = pool.draft(r["question"], exclude={r["id"]})
        right += draft is not None and query_skeleton(draft) == query_skeleton(r["sql"])
    return right


def test_the_bundled_pool_draws_drafts_from_the_bank_and_gets_more_of_them_right():
    task = SQLTask(retrieval="bm25", k=1)
    pool = task.demonstration_pool()
    train = sql_data.load_questions("train")
    bank = shipped_draft_bank()
    assert len(pool.retriever) == len({r["id"] for r in train if r.get("sql")} | {r["id"] for r in bank["records"]})
    valid = [r for r in sql_data.load_questions("valid") if sql_data.is_answerable(r)]
    without = DemonstrationPool(train, method="bm25")
    assert _shape_right(pool, valid) >= _shape_right(without, valid) + 10


def test_a_question_set_of_the_users_own_draws_only_on_its_own_train_questions(tmp_path):
    import json

    mine = tmp_path / "mine.json"
    train = sql_data.load_questions("train")[:30]
    mine.write_text(json.dumps({"train": train, "valid": []}), encoding="utf-8")
    pool = SQLTask(retrieval="bm25", k=1, source=str(mine)).demonstration_pool()
    assert {r["id"] for r in pool.retriever.pool} == {r["id"] for r in train if r.get("sql")}


def test_rebuilding_from_a_wrong_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    from ehrforge.tasks.sql.draft_bank import main

    out = tmp_path / "bank.json"
    assert main(["--data", str(tmp_path / "missing"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    mine = tmp_path / "mine.json"
    mine.write_text('{"train": [{"id": "1", "question": "is it 2100?", "sql": "null"}], "valid": []}', encoding="utf-8")
    assert main(["--data", str(mine), "--out", str(out)]) == 1 and "no answerable" in capsys.readouterr().err
    assert not out.exists()
