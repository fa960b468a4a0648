"""A simulated noisy teacher: a stand-in for a strong LLM teacher when none is reachable (benchmarks, demos).

How it is simulated (exactly). For each record ``i`` with generator difficulty ``d_i`` (see ``tables.py``):

* error probability ``p_i = min(0.49, noise_rate * d_i / mean(d))`` - so the *average* error rate is about
  ``noise_rate`` and hard look-alikes (dosing calendars, visit-window tables, transposed or plain-text SoEs) are
  mislabelled far more often than easy tables, as real teachers do;
* stated confidence ``c_i = clip(1 - p_i + N(0, confidence_jitter), 0.5, 1.0)`` - the teacher is roughly calibrated
  but not perfectly, and its confidence carries no information about the *particular draw*: a wrong answer and a
  right answer on the same table get the same confidence;
* answer: gold flipped with probability ``p_i``. Greedy calls (``temperature=0``) draw once per record (seeded by
  ``seed`` and the record id, so runs are reproducible); sampled calls draw afresh per ``seed``, so self-consistency
  works; a ``garbage_rate`` share of calls returns a non-answer, to exercise retry and *unlabelled*.

The answer is returned as a :class:`Generation` whose single token ``yes``/``no`` has log-prob ``log(c_i)``, so the
real labelling pipeline reads its confidence through the same log-prob path as a local model's.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Any

from ehrforge.core.types import Generation, Message
from ehrforge.tasks.classify.task import ANSWER_WORD, ClassifyTask, table_from_prompt
from ehrforge.tasks.classify.tables import NEGATIVE, POSITIVE


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class SimulatedTeacher:
    """A Backend over a known set of classify records (it recognises each table in the prompt)."""

    name = "simulated-teacher"

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        *,
        noise_rate: float = 0.2,
        confidence_jitter: float = 0.08,
        garbage_rate: float = 0.0,
        seed: int = 0,
        task: ClassifyTask | None = None,
    ) -> None:
        self.task = task or ClassifyTask()
        self.seed = seed
        self.garbage_rate = garbage_rate
        mean_d = sum(float(r.get("difficulty", 0.2)) for r in records) / max(1, len(records)) or 1.0
        self.by_table: dict[str, dict[str, Any]] = {}
        for r in records:
            p_err = min(0.49, noise_rate * float(r.get("difficulty", 0.2)) / mean_d)
            conf = 1.0 - p_err + _rng(seed, "conf", r["id"]).gauss(0.0, confidence_jitter)
            self.by_table[self.task.table_text(r)] = {
                "id": r["id"],
                "gold": r["gold"],
                "p_err": p_err,
                "confidence": min(1.0, max(0.5, conf)),
            }
        self.calls = 0

    def error_probability(self, record_id: str) -> float:
        return next(v["p_err"] for v in self.by_table.values() if v["id"] == record_id)

    def generate(
        self,
        batch: list[list[Message]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Generation]:
        out = []
        for messages in batch:
            self.calls += 1
            info = self.by_table.get(table_from_prompt(messages))
            draw = _rng(self.seed, "draw", info["id"] if info else "?", seed if temperature > 0 else "greedy")
            garbage = _rng(self.seed, "garbage", info["id"] if info else "?", self.calls)
            if info is None or garbage.random() < self.garbage_rate:
                out.append(Generation(text="I am not able to tell.", tokens=["I"], token_logprobs=[math.log(0.3)]))
                continue
            flipped = draw.random() < info["p_err"]
            label = (NEGATIVE if info["gold"] == POSITIVE else POSITIVE) if flipped else info["gold"]
            word = ANSWER_WORD[label]
            out.append(Generation(text=word, tokens=[word], token_logprobs=[math.log(info["confidence"])]))
        return out


def simulated_teacher_for(
    task: ClassifyTask, sources: Sequence[str] = (), *, noise_rate: float = 0.2, seed: int = 0
) -> SimulatedTeacher:
    """A simulated teacher that knows every synthetic split plus the gold-labelled tables in ``sources`` (e.g. the
    output of ``ehrforge synth --task classify``): what ``--teacher simulated`` should build for this task."""
    from ehrforge.errors import DataError

    records = [r for split in ("train", "valid", "test") for r in task.load(split, seed=seed)]
    for src in sources:
        extra = task.load("all", source=str(src))
        if any(r.get("gold") is None for r in extra):
            raise DataError(f"the simulated teacher needs gold labels in {src}",
                            "use tables from `ehrforge synth --task classify`, or a real teacher")
        records.extend(extra)
    return SimulatedTeacher(records, noise_rate=noise_rate, seed=seed, task=task)
