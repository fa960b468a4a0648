"""Simulated noisy teachers: stand-ins for a strong LLM teacher when none is reachable (benchmarks, demos).

Two models of a teacher. :class:`RealisticTeacher` (what ``--teacher simulated`` builds, and the classify benchmark's
stand-in) draws a per-table belief so that confidence is informative but imperfect - see its docstring.
:class:`SimulatedTeacher` is the older, simpler noise model kept for the core labelling tests:

How :class:`SimulatedTeacher` is simulated (exactly). For each record ``i`` with generator difficulty ``d_i`` (see ``tables.py``):

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
from typing import TYPE_CHECKING, Any

from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.tasks.classify.prompt_format import ANSWER_WORD, table_from_prompt

if TYPE_CHECKING:
    from ehrforge.tasks.classify.task import ClassifyTask
from ehrforge.tasks.classify.tables import NEGATIVE, POSITIVE
from ehrforge.core.backends.capabilities import BackendCapability


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class SimulatedTeacher:
    """A Backend over a known set of classify records (it recognises each table in the prompt)."""

    name = "simulated-teacher"
    capabilities = frozenset({BackendCapability.LOGPROBS})

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
        self.task = task or _default_task()
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
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
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


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


class RealisticTeacher:
    """A simulated teacher whose errors and confidences behave like an LLM's label-token probability (a stand-in).

    How it is simulated (exactly). Each table ``i`` gets the teacher's belief that it *is* a Schedule of Events as a
    logit ``z_i = s_i * m_i + bias`` with ``s_i = +1`` for gold SoE, else -1, and margin
    ``m_i = mu - difficulty_weight * d_i + N(0, shared_sd) + N(0, own_sd)``:

    * the generator's difficulty ``d_i`` lowers the margin on look-alikes, but the two noise terms mean easy tables are
      sometimes wrong and hard ones often right - errors are *not* pinned to the hardest items. The ``shared`` term is
      drawn per table independently of ``seed`` (what makes a table hard for every teacher), the ``own`` term per
      teacher seed, so two teachers (or k samples) agree more than chance but not always;
    * ``bias > 0`` leans towards "yes": false positives on look-alikes outnumber false negatives, as with real LLMs
      asked "is this X?", so a single global confidence threshold shifts the class balance of what it keeps;
    * greedy answer: ``yes`` iff ``z_i > 0``. Stated confidence: ``sigmoid(temperature * |z_i| + N(0, conf_sd))``
      (clipped to >= 0.5): informative (errors have small ``|z|``) but imperfect (over-confident when
      ``temperature > 1``, plus noise that carries no information about correctness). Its ECE is measured, not set;
    * sampled calls (``temperature > 0`` in the request) answer ``yes`` with probability ``sigmoid(z_i)``, seeded per
      call seed, so self-consistency voting is meaningful.

    ``noise_rate`` sets ``mu`` by bisection so the greedy error rate over the known tables is that rate
    (0 gives a perfect teacher).
    """

    name = "simulated-teacher"
    capabilities = frozenset({BackendCapability.LOGPROBS})

    def __init__(self, records: Sequence[dict[str, Any]], *, noise_rate: float = 0.22, seed: int = 0,
                 difficulty_weight: float = 2.5, shared_sd: float = 0.7, own_sd: float = 0.7, bias: float = 0.5,
                 temperature: float = 1.5, conf_sd: float = 0.3, garbage_rate: float = 0.0,
                 task: ClassifyTask | None = None) -> None:
        self.task = task or _default_task()
        self.seed, self.garbage_rate, self.calls = seed, garbage_rate, 0
        self.temperature, self.conf_sd, self.bias = temperature, conf_sd, bias
        self.by_table: dict[str, dict[str, Any]] = {}
        base = []
        for r in records:
            noise = shared_sd * _rng("shared", r["id"]).gauss(0, 1) + own_sd * _rng(seed, "own", r["id"]).gauss(0, 1)
            base.append((r, -difficulty_weight * float(r.get("difficulty", 0.2)) + noise))
        self.mu = self._solve_mu(base, noise_rate)
        for r, offset in base:
            sign = 1.0 if r["gold"] == POSITIVE else -1.0
            z = sign * (self.mu + offset) + bias
            conf = _sigmoid(temperature * abs(z) + conf_sd * _rng(seed, "conf", r["id"]).gauss(0, 1))
            self.by_table[self.task.table_text(r)] = {"id": r["id"], "gold": r["gold"], "z": z,
                                                       "confidence": min(0.999, max(0.5, conf))}

    def _solve_mu(self, base: list[tuple[dict[str, Any], float]], noise_rate: float) -> float:
        if noise_rate <= 0:
            return 1e6
        def error(mu: float) -> float:
            wrong = sum(((1.0 if r["gold"] == POSITIVE else -1.0) * (mu + off) + self.bias > 0) != (r["gold"] == POSITIVE)
                        for r, off in base)
            return wrong / max(1, len(base))
        lo, hi = -10.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if error(mid) > noise_rate else (lo, mid)
        return hi

    def generate(self, batch: list[list[Message]], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0,
                 seed: int | None = None) -> list[Generation]:
        out = []
        for messages in batch:
            self.calls += 1
            info = self.by_table.get(table_from_prompt(messages))
            garbage = _rng(self.seed, "garbage", info["id"] if info else "?", self.calls)
            if info is None or garbage.random() < self.garbage_rate:
                out.append(Generation(text="I am not able to tell.", tokens=["I"], token_logprobs=[math.log(0.3)]))
                continue
            if temperature > 0:
                p_yes = _sigmoid(info["z"])
                yes = _rng(self.seed, "sample", info["id"], seed).random() < p_yes
                conf = p_yes if yes else 1.0 - p_yes
            else:
                yes, conf = info["z"] > 0, info["confidence"]
            word = ANSWER_WORD[POSITIVE if yes else NEGATIVE]
            out.append(Generation(text=word, tokens=[word], token_logprobs=[math.log(max(1e-6, conf))]))
        return out


def simulated_teacher_for(
    task: ClassifyTask, sources: Sequence[str] = (), *, noise_rate: float = 0.2, seed: int = 0
) -> RealisticTeacher:
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
    return RealisticTeacher(records, noise_rate=noise_rate, seed=seed, task=task)


def _default_task() -> ClassifyTask:
    # through the registry: the task module imports this one (its stand-in teacher), so no import back
    from ehrforge.tasks import get_task

    return get_task("classify")  # type: ignore[return-value]
