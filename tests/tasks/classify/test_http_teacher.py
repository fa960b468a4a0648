"""Labelling through a real OpenAI-compatible teacher endpoint (ehrforge's own server on 127.0.0.1), and the bad
inputs of that path: resuming with another teacher or method, and a teacher without log-probs under --method logprob."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))  # serve_helpers: the real LiveServer

from serve_helpers import live_server

from ehrforge.core.backends.openai_backend import OpenAIBackend
from ehrforge.core.io import read_jsonl
from ehrforge.core.label import label_records
from ehrforge.serve.run import build_app
from ehrforge.serve.settings import ServeSettings
from ehrforge.core.types import Generation
from ehrforge.errors import BackendError, DataError
from ehrforge.tasks.classify.simulated_teacher import RealisticTeacher
from ehrforge.tasks.classify.task import ClassifyTask

TOKEN = "classify-teacher-token-0123456789"
KEY_ENV = "EHRFORGE_TEST_TEACHER_KEY"


class NoLogprobTeacher:
    """Answers like a hosted API that returns text only (no log-probs)."""

    name = "no-logprobs"

    def generate(self, batch, *, max_new_tokens=256, temperature=0.0, seed=None):
        return [Generation(text="yes", tokens=[], token_logprobs=None) for _ in batch]


def _app(backend, model_name):
    settings = ServeSettings(model_name=model_name, tokens={"t": TOKEN}, rate_per_minute=1e6, rate_burst=10000)
    return build_app(model_name, backend=backend, settings=settings, tasks=[])


@pytest.fixture()
def records():
    task = ClassifyTask(n_train=40)
    return task, task.load("train")


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, TOKEN)


def test_labels_and_logprob_confidence_come_through_http(records, tmp_path):
    task, recs = records
    teacher = RealisticTeacher(recs, noise_rate=0.25, task=task)
    with live_server(_app(teacher, "stand-in")) as server:
        client = OpenAIBackend(server.url + "/v1", model="stand-in", api_key_env=KEY_ENV)
        stats = label_records(task, client, recs, tmp_path / "l.jsonl", progress=False, method="logprob")
    got = read_jsonl(tmp_path / "l.jsonl").records
    direct = [task.parse(g, r) for g, r in zip(teacher.generate([task.prompt(r) for r in recs]), recs)]
    assert stats["labelled"] == len(recs)
    assert [r["label"] for r in got] == [p.value for p in direct]  # the endpoint changes nothing
    assert [r["confidence"] for r in got] == pytest.approx([p.confidence for p in direct], abs=1e-5)
    assert {r["confidence_method"] for r in got} == {"logprob"}
    assert all(r["teacher"] == "openai:stand-in" for r in got)


def _partial_from(done_out: Path) -> Path:
    """Turn a finished labelled file into the partial checkpoint an interrupted run leaves behind."""
    partial = done_out.with_name(done_out.name + ".partial")
    partial.write_text(done_out.read_text())
    return partial


def test_resume_with_another_teacher_or_method_is_refused(records, tmp_path):
    task, recs = records
    a, b = RealisticTeacher(recs, seed=0, task=task), RealisticTeacher(recs, seed=1, task=task)
    out = tmp_path / "labelled.jsonl"
    with live_server(_app(a, "teacher-a")) as sa, live_server(_app(b, "teacher-b")) as sb:
        ca = OpenAIBackend(sa.url + "/v1", model="teacher-a", api_key_env=KEY_ENV)
        cb = OpenAIBackend(sb.url + "/v1", model="teacher-b", api_key_env=KEY_ENV)
        label_records(task, ca, recs[:10], out, progress=False)
        partial = _partial_from(out)
        with pytest.raises(DataError, match="started with teacher openai:teacher-a"):
            label_records(task, cb, recs, out, progress=False)
        assert len(read_jsonl(partial).records) == 10  # nothing mixed in
        with pytest.raises(DataError, match="started with method logprob"):
            label_records(task, ca, recs, out, progress=False, method="consistency", samples=3)
        stats = label_records(task, ca, recs, out, progress=False)  # same teacher and method: resumes
    assert stats["resumed"] == 10 and stats["labelled"] == len(recs)


def test_no_logprobs_under_method_logprob_is_one_clear_error(records, tmp_path):
    task, recs = records
    with live_server(_app(NoLogprobTeacher(), "plain")) as server:
        client = OpenAIBackend(server.url + "/v1", model="plain", api_key_env=KEY_ENV)
        with pytest.raises(BackendError, match="--method verbalised") as err:
            label_records(task, client, recs[:4], tmp_path / "l.jsonl", progress=False, method="logprob")
        assert "consistency" in str(err.value)
        # auto keeps falling back to a stated confidence (a label without one scores 0: it goes to review)
        stats = label_records(task, client, recs[:4], tmp_path / "auto.jsonl", progress=False)
        assert stats["labelled"] == 4
        # the CLI prints it as one line and exits 1
        table = tmp_path / "tables.jsonl"
        table.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in recs[:3]))
        proc = subprocess.run(
            [sys.executable, "-m", "ehrforge", "label", "--task", "classify", "--teacher", f"openai:{server.url}/v1#plain",
             "--input", str(table), "--out", str(tmp_path / "cli.jsonl"), "--method", "logprob"],
            capture_output=True, text=True, check=False, env={**os.environ, "EHRFORGE_API_KEY": TOKEN}, timeout=120)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "--method verbalised" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "cli.jsonl").exists()  # nothing half-written
