"""Self-evaluation experiment: grade matrix, self-preference and the METEOR yardstick."""

from __future__ import annotations

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.tasks import get_task
from ehrforge.tasks.fhirqa.selfeval import self_evaluation


def _model(name: str, records, *, correct: bool, grades_self: str, grades_other: str) -> FakeBackend:
    by_q = {r["question"]: r for r in records}

    def respond(messages):
        text = messages[-1]["content"]
        if text.startswith("Grade an answer"):
            return grades_self if f"[{name}]" in text else grades_other
        rec = by_q[text.split("\n", 1)[0].removeprefix("Question: ")]
        return f"[{name}] " + (rec["answer"] if correct else "Something unrelated entirely.")

    return FakeBackend(respond=respond)


def test_self_preference_is_measured_against_meteor() -> None:
    task = get_task("fhirqa", subtask="answer")
    records = task.load("valid", limit=5, seed=0)
    models = {
        # "vain" writes worse answers but grades itself 5 and the other 2: self-biased
        "vain": _model("vain", records, correct=False, grades_self="5", grades_other="2"),
        # "fair" writes correct answers and grades everything 4, except an unparseable reply for its own
        "fair": _model("fair", records, correct=True, grades_self="four", grades_other="Grade 4"),
    }
    out = self_evaluation(task, models, records)
    assert out["grade"]["vain"] == {"vain": 5.0, "fair": 2.0}
    assert out["grade"]["fair"] == {"vain": 4.0, "fair": None}
    assert out["unparsed_grades"] == {"vain": 0, "fair": 5}
    assert out["meteor"]["fair"] > out["meteor"]["vain"]
    assert out["self_preference"]["vain"] == 3.0 and out["self_preference"]["fair"] is None
    assert out["self_biased"] == {"vain": True, "fair": False}
    with pytest.raises(ValueError):
        self_evaluation(task, {"one": models["vain"]}, records)
