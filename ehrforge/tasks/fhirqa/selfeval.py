"""Self-evaluation experiment: does a model grade its own answers more kindly than another model's?

Every model (the *authors*) answers the same questions from the gold relevant resources. Every model (the *judges*)
then grades every author's answers on a 1–5 scale, seeing the question, the resources and the answer, but not the
gold answer (as in deployment, where no gold exists). For judge J:

* ``grade[J][A]``: J's mean grade of author A's answers (unparseable grades are left out and counted);
* ``self_preference[J]`` = grade[J][J] − mean over other authors A of grade[J][A];
* ``meteor[A]``: METEOR of A's answers against the gold answer, the objective yardstick.

A judge is *self-biased* when its self-preference is positive while its own answers are not better by METEOR
(``meteor_gap[J]`` = meteor[J] − mean meteor of the others ≤ 0). The result is plain JSON for the benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ehrforge.core.contract import Record
from ehrforge.tasks.fhirqa.meteor import meteor

JUDGE_PROMPT = """Grade an answer to a question about a patient's FHIR record.

Resources:
{resources}

Question: {question}
Answer: {answer}

Is the answer correct and complete given the resources? Reply with one digit: 1 (wrong) to 5 (fully correct)."""

_GRADE = re.compile(r"\b([1-5])\b")


def parse_grade(text: str) -> int | None:
    """The first digit 1–5 standing alone in the judge's reply.

    >>> parse_grade("Grade: 4/5")
    4
    >>> parse_grade("excellent") is None
    True
    """
    m = _GRADE.search(text)
    return int(m.group(1)) if m else None


def author_answers(task: Any, backend: Any, records: Sequence[Record]) -> list[str]:
    """Each author's answers from the gold resources ("" when it abstained)."""
    from ehrforge.tasks.fhirqa.task import FHIRQATask

    answer_task = FHIRQATask("answer", context_tokens=task.context_tokens) if task.subtask != "answer" else task
    preds = answer_task.predict(backend, records)
    return [str(p.value) if p else "" for p in preds]


def judge(task: Any, backend: Any, records: Sequence[Record], answers: Sequence[str], *, batch_size: int = 8) -> list[int | None]:
    grades: list[int | None] = []
    for start in range(0, len(records), batch_size):
        chunk = list(zip(records[start : start + batch_size], answers[start : start + batch_size]))
        msgs = []
        for rec, ans in chunk:
            lines = "\n".join(c["line"] for c in rec["candidates"] if c["id"] in set(rec["relevant_ids"])) or "(none)"
            text = JUDGE_PROMPT.format(resources=lines, question=rec["question"], answer=ans or "(no answer)")
            msgs.append([{"role": "user", "content": text}])
        grades.extend(parse_grade(g.text) for g in backend.generate(msgs, max_new_tokens=8))
    return grades


def self_evaluation(
    task: Any,
    models: Mapping[str, Any],
    records: Sequence[Record],
    *,
    answers: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Run the experiment over ``models`` (name → backend; at least two). ``answers`` may be given per author to
    skip generation (e.g. reuse the evaluation's outputs)."""
    if len(models) < 2:
        raise ValueError("self-evaluation needs at least two models")
    names = list(models)
    answers = dict(answers or {})
    for name in names:
        if name not in answers:
            answers[name] = author_answers(task, models[name], records)
    golds = [r["answer"] for r in records]
    meteor_by = {a: round(sum(meteor(g, h) if h else 0.0 for g, h in zip(golds, answers[a])) / max(1, len(golds)), 4) for a in names}
    grade: dict[str, dict[str, float | None]] = {}
    unparsed: dict[str, int] = {}
    for j in names:
        grade[j] = {}
        unparsed[j] = 0
        for a in names:
            grades = judge(task, models[j], records, answers[a])
            valid = [g for g in grades if g is not None]
            unparsed[j] += len(grades) - len(valid)
            grade[j][a] = round(sum(valid) / len(valid), 3) if valid else None
    self_pref: dict[str, float | None] = {}
    meteor_gap: dict[str, float] = {}
    for j in names:
        others = [grade[j][a] for a in names if a != j and grade[j][a] is not None]
        own = grade[j][j]
        self_pref[j] = round(own - sum(others) / len(others), 3) if own is not None and others else None
        meteor_gap[j] = round(meteor_by[j] - sum(meteor_by[a] for a in names if a != j) / (len(names) - 1), 4)
    return {
        "models": names,
        "n": len(records),
        "grade": grade,
        "unparsed_grades": unparsed,
        "meteor": meteor_by,
        "self_preference": self_pref,
        "meteor_gap": meteor_gap,
        "self_biased": {j: bool(self_pref[j] is not None and self_pref[j] > 0 and meteor_gap[j] <= 0) for j in names},
    }
