"""The labelling pipeline: confidence methods, retries -> unlabelled, resume, filtering, review round trip.

Teachers here are the classify task's simulated teacher (known error rates), FakeBackend for prompt/parse paths,
the tiny random transformer (a real model that answers garbage) and a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.io import read_jsonl
from ehrforge.core.label import filter_labels, import_review, label_file, label_records, select_confident
from ehrforge.core.types import Generation
from ehrforge.errors import BackendError, ConfigError, DataError
from ehrforge.tasks.classify.simulated_teacher import SimulatedTeacher
from ehrforge.tasks.classify.task import ClassifyTask, table_from_prompt


@pytest.fixture()
def task():
    return ClassifyTask(n_train=40, max_chars=400)


@pytest.fixture()
def records(task):
    return task.load("train")


def _gold_answerer(records, task, conf=0.9):
    """A FakeBackend that answers the gold label (by table text) with a fixed token probability."""
    by_text = {task.table_text(r): r["gold"] for r in records}
    return FakeBackend(respond=lambda m: "yes" if by_text[table_from_prompt(m)] == "soe" else "no",
                       token_logprob=math.log(conf))


def test_logprob_labels_carry_label_token_probability(task, records, tmp_path):
    out = tmp_path / "labelled.jsonl"
    stats = label_records(task, _gold_answerer(records, task, 0.8), records, out, progress=False)
    got = read_jsonl(out).records
    assert [r["id"] for r in got] == [r["id"] for r in records]  # input order kept
    assert stats["labelled"] == len(records) and stats["method"] == "logprob"
    assert all(r["label"] == r["gold"] and r["confidence"] == pytest.approx(0.8) for r in got)
    assert all(r["input_label"] == r["gold"] and r["provenance"] == "teacher" for r in got)
    assert not (tmp_path / "labelled.jsonl.partial").exists()


def test_garbage_is_retried_then_unlabelled_never_a_label(task, records, tmp_path):
    teacher = FakeBackend(respond=lambda m: "I cannot tell from this table")
    out = tmp_path / "labelled.jsonl"
    stats = label_records(task, teacher, records[:5], out, retries=2, progress=False)
    got = read_jsonl(out).records
    assert stats["unlabelled"] == 5 and stats["labelled"] == 0
    assert all(r["label"] is None and r["label_status"] == "unlabelled" for r in got)
    assert all(r["label_attempts"] == 3 and r["label_error"] == "teacher reply not parseable" for r in got)
    assert len(teacher.prompts) == 15  # 1 try + 2 retries each


def test_teacher_errors_are_isolated_per_record(task, records, tmp_path):
    bad = {records[1]["id"], records[3]["id"]}
    by_text = {task.table_text(r): r for r in records}

    def respond(messages):
        rec = by_text[table_from_prompt(messages)]
        if rec["id"] in bad:
            raise BackendError("endpoint failed after 4 attempts (ReadTimeout)", "check the server")
        return "yes" if rec["gold"] == "soe" else "no"

    out = tmp_path / "labelled.jsonl"
    stats = label_records(task, FakeBackend(respond=respond), records[:6], out, retries=1, progress=False)
    got = {r["id"]: r for r in read_jsonl(out).records}
    assert stats["unlabelled"] == 2
    for rid in bad:
        assert got[rid]["label"] is None and got[rid]["label_error"] == "teacher call failed"
    assert all(got[r["id"]]["label"] == r["gold"] for r in records[:6] if r["id"] not in bad)


def test_real_tiny_model_teacher_answers_garbage_and_nothing_is_labelled(task, records, tmp_path, tiny_model_dir):
    from ehrforge.core.backends.transformers_backend import TransformersBackend

    teacher = TransformersBackend(tiny_model_dir)
    out = tmp_path / "labelled.jsonl"
    stats = label_records(task, teacher, records[:3], out, retries=1, progress=False)
    got = read_jsonl(out).records
    # A random model rarely starts with yes/no; whatever it labels must carry a real log-prob confidence < 1.
    for r in got:
        assert (r["label"] is None) == (r["label_status"] == "unlabelled")
        if r["label"] is not None:
            assert 0 < r["confidence"] < 1 and r["confidence_method"] == "logprob"
    assert stats["labelled"] + stats["unlabelled"] == 3


def test_resume_skips_finished_records_and_retries_unlabelled(task, records, tmp_path):
    out = tmp_path / "labelled.jsonl"
    answerer = _gold_answerer(records, task)
    calls = {"n": 0}

    def flaky(messages):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-run
        return answerer.respond(messages)

    with pytest.raises(KeyboardInterrupt):
        label_records(task, FakeBackend(respond=flaky), records, out, batch_size=1, progress=False)
    partial = tmp_path / "labelled.jsonl.partial"
    assert not out.exists() and partial.exists()  # no half-written output, progress kept
    assert len(read_jsonl(partial).records) == 10

    second = _gold_answerer(records, task)
    stats = label_records(task, second, records, out, batch_size=4, progress=False)
    assert stats["resumed"] == 10
    assert len(second.prompts) == len(records) - 10
    assert [r["id"] for r in read_jsonl(out).records] == [r["id"] for r in records]
    assert not partial.exists()


def test_self_consistency_with_simulated_teacher(task, records, tmp_path):
    teacher = SimulatedTeacher(records, noise_rate=0.3, seed=1, task=task)
    out = tmp_path / "labelled.jsonl"
    stats = label_records(task, teacher, records, out, samples=5, temperature=1.0, progress=False)
    got = read_jsonl(out).records
    assert stats["method"] == "consistency" and stats["teacher_calls"] == 5 * len(records)
    for r in got:
        assert len(r["samples"]) == 5
        assert r["confidence"] == pytest.approx(r["samples"].count(r["label"]) / 5)
    # easy tables (low error probability) must be more consistent than hard ones
    easy = [r["confidence"] for r in got if teacher.error_probability(r["id"]) < 0.1]
    hard = [r["confidence"] for r in got if teacher.error_probability(r["id"]) > 0.3]
    assert easy and hard and sum(easy) / len(easy) > sum(hard) / len(hard)


def test_two_teachers_disagreeing_get_zero_confidence(task, records, tmp_path):
    a = _gold_answerer(records, task, 0.9)
    b = FakeBackend(respond=lambda m: "yes", token_logprob=math.log(0.7))
    out = tmp_path / "labelled.jsonl"
    stats = label_records(task, a, records, out, second_teacher=b, progress=False)
    assert stats["method"] == "agreement"
    for r in read_jsonl(out).records:
        if r["gold"] == "soe":
            assert r["confidence"] == pytest.approx(0.8) and r["second_label"] == "soe"
        else:
            assert r["confidence"] == 0.0 and r["label"] == "other"


class _NoLogprobServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint without log-probs: answers 'yes' with a stated confidence only when asked."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        text = "yes\nConfidence: 70" if "Confidence: N" in user else "yes"
        payload = {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output clean
        pass


def test_http_teacher_without_logprobs_falls_back_to_verbalised_confidence(task, records, tmp_path):
    from ehrforge.core.backends import load_backend

    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoLogprobServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        teacher = load_backend(f"openai:http://127.0.0.1:{server.server_port}/v1#teacher")
        out = tmp_path / "labelled.jsonl"
        stats = label_records(task, teacher, records[:3], out, progress=False)
    finally:
        server.shutdown()
    got = read_jsonl(out).records
    assert stats["labelled"] == 3
    assert all(r["confidence_method"] == "verbalised" and r["confidence"] == pytest.approx(0.7) for r in got)
    assert all(r["teacher"] == "openai:teacher" for r in got)


def test_bad_options_are_listed_together(task, records, tmp_path):
    with pytest.raises(ConfigError) as err:
        label_records(task, FakeBackend(), records, tmp_path / "x.jsonl", method="vote", samples=0)
    assert "method must be one of" in str(err.value) and "samples must be at least 1" in str(err.value)


def test_label_file_reports_malformed_lines(task, tmp_path):
    src = tmp_path / "tables.jsonl"
    good = [{"id": f"t{i}", "text": "| Visit | V1 |\n|---|---|\n| ECG | X |"} for i in range(2)]
    src.write_text(json.dumps(good[0]) + "\n{not json\n" + json.dumps(good[1]) + "\n")
    stats = label_file(task, FakeBackend(respond=lambda m: "yes"), src, tmp_path / "out.jsonl", progress=False)
    assert stats["labelled"] == 2 and stats["rejected_lines"] == [2]
    assert (tmp_path / "tables.rejects.jsonl").read_text() == "{not json\n"


# -- filtering and review ---------------------------------------------------------------------------------------
def _labelled_file(task, records, tmp_path, noise=0.3):
    out = tmp_path / "labelled.jsonl"
    label_records(task, SimulatedTeacher(records, noise_rate=noise, garbage_rate=0.1, seed=3, task=task), records,
                  out, retries=0, progress=False)
    return out


def test_filter_keeps_confident_labels_and_queues_the_rest(task, records, tmp_path):
    labelled = _labelled_file(task, records, tmp_path)
    stats = filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85,
                          labels=task.labels)
    kept = read_jsonl(tmp_path / "kept.jsonl").records
    review = read_jsonl(tmp_path / "review.jsonl").records
    assert stats["kept"] + stats["review"] == len(records) == len(kept) + len(review)
    assert all(r["confidence"] >= 0.85 and r["label"] is not None for r in kept)
    assert stats["unlabelled"] > 0  # garbage_rate produced some; they must be in review, not kept
    assert sum(r["suggested_label"] is None for r in review) == stats["unlabelled"]
    # blind review: no gold label or generator metadata, but the table text is there
    assert all("gold" not in r and "kind" not in r and "difficulty" not in r and r["text"] for r in review)
    with open(tmp_path / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [r["id"] for r in review] and rows[0]["reviewed_label"] == ""
    argilla = json.loads((tmp_path / "review.argilla.json").read_text())
    assert argilla["settings"]["questions"][0]["labels"] == ["soe", "other"]
    assert len(argilla["records"]) == len(review) and "text" in argilla["records"][0]["fields"]


def test_filtering_lowers_noise_with_a_calibrated_teacher(task, tmp_path):
    big_task = ClassifyTask(n_train=300)
    big = big_task.load("train")
    labelled = _labelled_file(big_task, big, tmp_path, noise=0.25)
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85)
    noise = lambda rs: sum(r["label"] != r["gold"] for r in rs) / len(rs)  # noqa: E731
    all_labels = [r for r in read_jsonl(labelled).records if r["label"] is not None]
    kept = read_jsonl(tmp_path / "kept.jsonl").records
    assert noise(kept) < noise(all_labels)


def test_select_strategies():
    recs = [{"label": "a", "confidence": c} for c in (0.9, 0.8, 0.7, 0.6)] + [{"label": None, "confidence": 0.0}]
    assert select_confident(recs, "top-fraction", keep_fraction=0.5) == [True, True, False, False, False]
    recs.append({"label": "b", "confidence": 0.1})
    assert select_confident(recs, "per-label-top-fraction", keep_fraction=0.5)[-1] is True
    with pytest.raises(ConfigError):
        select_confident(recs, "best")


def test_import_review_round_trip_through_csv(task, records, tmp_path):
    labelled = _labelled_file(task, records, tmp_path)
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85)
    with open(tmp_path / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    gold = {r["id"]: r["gold"] for r in records}
    # the reviewer labels the first two rows (spelling as they like), rejects the third, leaves the rest
    rows[0]["reviewed_label"] = "YES" if gold[rows[0]["id"]] == "soe" else "no"
    rows[1]["reviewed_label"] = gold[rows[1]["id"]]
    rows[2]["reviewed_label"] = "skip"
    with open(tmp_path / "review.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from ehrforge.tasks.classify.sources import normalise_label

    stats = import_review(tmp_path / "kept.jsonl", tmp_path / "review.csv", tmp_path / "final.jsonl",
                          labels=task.labels, normalise=normalise_label)
    final = {r["id"]: r for r in read_jsonl(tmp_path / "final.jsonl").records}
    assert stats["human"] == 2 and stats["filtered-out"] == 1 and stats["unreviewed"] == len(rows) - 3
    assert stats["teacher"] == len(read_jsonl(tmp_path / "kept.jsonl").records)
    for row in rows[:2]:
        assert final[row["id"]]["label"] == gold[row["id"]] and final[row["id"]]["provenance"] == "human"
        assert final[row["id"]]["text"]  # the record came back from the review row
    assert final[rows[2]["id"]]["label"] is None and final[rows[2]["id"]]["provenance"] == "filtered-out"
    assert {final[r["id"]]["provenance"] for r in rows[3:]} == {"unreviewed"}
    assert all(final[r["id"]]["label"] is None for r in rows[3:])
    assert task.trainable(list(final.values())) == [r for r in final.values() if r["label"] is not None]


def test_import_review_from_argilla_responses(task, records, tmp_path):
    labelled = _labelled_file(task, records, tmp_path)
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85)
    export = json.loads((tmp_path / "review.argilla.json").read_text())
    first = export["records"][0]
    first["responses"] = {"label": [{"value": "other", "user_id": "u1"}]}
    (tmp_path / "annotated.json").write_text(json.dumps(export))
    stats = import_review(labelled, tmp_path / "annotated.json", tmp_path / "final.jsonl", labels=task.labels)
    final = {r["id"]: r for r in read_jsonl(tmp_path / "final.jsonl").records}
    assert stats["human"] == 1 and final[first["id"]]["label"] == "other"
    assert final[first["id"]]["provenance"] == "human"


def test_import_review_rejects_unknown_labels_and_writes_nothing(task, records, tmp_path):
    labelled = _labelled_file(task, records, tmp_path)
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85)
    rows = read_jsonl(tmp_path / "review.jsonl").records
    rows[0]["reviewed_label"] = "maybe"
    rows[1]["reviewed_label"] = "perhaps"
    (tmp_path / "review.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as err:
        import_review(labelled, tmp_path / "review.jsonl", tmp_path / "final.jsonl", labels=task.labels)
    assert "row 1" in str(err.value) and "row 2" in str(err.value)
    assert "Schedule" not in str(err.value) and rows[0]["text"][:20] not in str(err.value)  # no patient text
    assert not (tmp_path / "final.jsonl").exists()


def test_partial_review_file_keeps_unreviewed_queued_labels_out(task, records, tmp_path):
    """A reviewer returns one reviewed row and deletes the rest: the deleted ones must not come back as teacher
    labels when the full labelled file is merged (the manifest from `label filter` says they were queued)."""
    labelled = _labelled_file(task, records, tmp_path)
    stats = filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85)
    queued = read_jsonl(tmp_path / "review.jsonl").records
    assert stats["review"] == len(queued) > 3
    first = dict(queued[0], reviewed_label="other")
    (tmp_path / "review.jsonl").write_text(json.dumps(first) + "\n")
    merged_stats = import_review(labelled, tmp_path / "review.jsonl", tmp_path / "final.jsonl", labels=task.labels)
    final = {r["id"]: r for r in read_jsonl(tmp_path / "final.jsonl").records}
    assert merged_stats["human"] == 1 and merged_stats["unreviewed"] == len(queued) - 1
    assert merged_stats["teacher"] == stats["kept"] and merged_stats["missing_from_review"] == len(queued) - 1
    for row in queued[1:]:
        assert final[row["id"]]["provenance"] == "unreviewed" and final[row["id"]]["label"] is None
    assert task.trainable(list(final.values())) == [r for r in final.values() if r["provenance"] in ("teacher", "human")]


@pytest.mark.parametrize("name, content", [("review.jsonl", ""), ("review.csv", "id,suggested_label,confidence,reason,reviewed_label\n")])
def test_empty_review_file_is_an_error_and_writes_nothing(task, records, tmp_path, name, content):
    labelled = _labelled_file(task, records, tmp_path)
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.85)
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match="has no rows"):
        import_review(labelled, tmp_path / name, tmp_path / "final.jsonl", labels=task.labels)
    assert not (tmp_path / "final.jsonl").exists()


def test_review_file_that_is_not_utf8_or_a_folder_is_one_clear_error(task, records, tmp_path):
    labelled = _labelled_file(task, records, tmp_path)
    (tmp_path / "review.csv").write_bytes(b"id,reviewed_label\n1,caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        import_review(labelled, tmp_path / "review.csv", tmp_path / "final.jsonl")
    (tmp_path / "reviews.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        import_review(labelled, tmp_path / "reviews.csv", tmp_path / "final.jsonl")


def test_fake_generation_without_tokens_is_handled(task, records):
    # parse must not crash on a generation without tokens (HTTP servers without logprobs)
    pred = task.parse(Generation(text="No."), records[0])
    assert pred.value == "other" and pred.confidence == 1.0
