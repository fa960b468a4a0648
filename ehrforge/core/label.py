"""Teacher labelling with confidence, confidence filtering, and a human review queue.

Three steps, each a function the CLI calls (``ehrforge label``, ``label filter``, ``label import-review``):

1. :func:`label_records` / :func:`label_file` - ask a teacher :class:`~ehrforge.core.backends.Backend` for every
   record through the task's own ``prompt``/``parse``, and attach ``label`` plus a ``confidence`` from one of the
   estimators in :mod:`ehrforge.core.confidence`. Finished records go to a checkpoint (``<out>.partial``) as they
   complete, so an interrupted run resumes where it stopped; the output file is written atomically at the end. A
   teacher error (timeout, HTTP failure - already retried by the HTTP backend) or a reply the task cannot parse is
   retried, then recorded with ``label: null, label_status: "unlabelled"`` - never as a label.
2. :func:`filter_labels` (in :mod:`ehrforge.core.review`, re-exported here) - keep confident labels; everything else
   goes to a review queue written three ways: JSONL, CSV (open it in a spreadsheet, fill ``reviewed_label``), and an
   Argilla-compatible JSON export.
3. :func:`import_review` (:mod:`ehrforge.core.review`) - merge reviewed labels back. Every record gets a ``provenance``: ``teacher`` (kept as
   labelled), ``human`` (label set by a reviewer), ``unreviewed`` (queued for review, not reviewed - also when its
   row is missing from the returned file) or ``filtered-out`` (rejected by the reviewer, or never labelled);
   unreviewed and filtered-out records have ``label: null`` so training skips them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.confidence import (
    VERBALISED_INSTRUCTION,
    parse_verbalised_confidence,
    self_consistency,
    strip_verbalised_confidence,
    teacher_agreement,
)
from ehrforge.core.io import JsonlCheckpoint, atomic_write_jsonl
from ehrforge.core.progress import progress_bar
from ehrforge.core.review import (  # noqa: F401 - steps 2 and 3 live there; re-exported as the pipeline's API
    REJECT_WORDS,
    STRATEGIES,
    export_argilla,
    filter_labels,
    import_review,
    queue_manifest_path,
    read_review,
    select_confident,
    write_review_csv,
)
from ehrforge.core.types import Answer, Generation, Message
from ehrforge.errors import BackendError, ConfigError, DataError

METHODS = ("auto", "logprob", "consistency", "verbalised", "agreement")


def _teacher_name(backend: Any) -> str:
    model = getattr(backend, "model", None)
    path = getattr(backend, "path", None)
    detail = model if isinstance(model, str) else (Path(path).name if path else "")
    return f"{backend.name}:{detail}" if detail else str(backend.name)


def _with_instruction(messages: list[Message], instruction: str) -> list[Message]:
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{m['content']}\n\n{instruction}"
            break
    return out


class _Labeller:
    """One labelling run: asks the teacher, retries failures, and computes each label's confidence."""

    def __init__(self, task: Any, teacher: Any, *, method: str, samples: int, temperature: float, retries: int,
                 seed: int, second_teacher: Any = None, strict_logprob: bool = False) -> None:
        self.task, self.teacher, self.second = task, teacher, second_teacher
        self.strict_logprob = strict_logprob  # --method logprob asked explicitly: no silent verbalised fallback
        self.method, self.samples, self.temperature = method, samples, temperature
        self.retries, self.seed = retries, seed
        self.calls = 0
        self.max_new_tokens = int(getattr(task, "max_new_tokens", 16))

    def _ask(self, backend: Any, batch: list[list[Message]], *, temperature: float, seed: int | None,
             extra_tokens: int = 0) -> list[Generation | None]:
        """One generation per prompt; a failing batch is retried one prompt at a time so one bad record cannot
        sink its neighbours. ``None`` marks a prompt whose teacher call failed."""
        kw = {"max_new_tokens": self.max_new_tokens + extra_tokens, "temperature": temperature, "seed": seed}
        try:
            self.calls += len(batch)
            return list(backend.generate(batch, **kw))
        except (BackendError, TimeoutError):
            if len(batch) == 1:
                return [None]
        out: list[Generation | None] = []
        for messages in batch:
            out.extend(self._ask(backend, [messages], temperature=temperature, seed=seed, extra_tokens=extra_tokens))
        return out

    def _parse(self, gen: Generation | None, record: dict[str, Any]) -> Answer | None:
        if gen is None:
            return None
        pred = self.task.parse(gen, record)
        return pred if isinstance(pred, Answer) and pred.value is not None else None

    def _single(self, backend: Any, records: list[dict[str, Any]], *, verbalised: bool, attempt: int) -> list[dict[str, Any]]:
        """Greedy (first attempt) or sampled (retries) answers with log-prob or verbalised confidence."""
        prompts = [self.task.prompt(r) for r in records]
        if verbalised:
            prompts = [_with_instruction(p, VERBALISED_INSTRUCTION) for p in prompts]
        temp = 0.0 if attempt == 0 else max(self.temperature, 0.5)  # a greedy retry would repeat the same garbage
        gens = self._ask(backend, prompts, temperature=temp, seed=self.seed + attempt, extra_tokens=24 if verbalised else 0)
        results = []
        for gen, rec in zip(gens, records):
            if gen is None:
                results.append({"error": "teacher call failed"})
                continue
            if verbalised:
                stated = parse_verbalised_confidence(gen.text)
                ans = self._parse(Generation(text=strip_verbalised_confidence(gen.text)), rec)
                if ans is None:
                    results.append({"error": "teacher reply not parseable"})
                else:
                    # A label without a stated score is kept but scored 0, so every threshold sends it to review.
                    results.append({"label": ans.value, "confidence": stated or 0.0, "method": "verbalised"})
                continue
            ans = self._parse(gen, rec)
            if ans is None:
                results.append({"error": "teacher reply not parseable"})
            elif gen.token_logprobs:
                results.append({"label": ans.value, "confidence": float(ans.confidence), "method": "logprob"})
            else:
                results.append({"label": ans.value, "confidence": None, "method": "none"})
        return results

    def _consistency(self, backend: Any, records: list[dict[str, Any]], attempt: int) -> list[dict[str, Any]]:
        prompts = [self.task.prompt(r) for r in records]
        votes: list[list[Any]] = [[] for _ in records]
        failed = [0] * len(records)
        for k in range(self.samples):
            gens = self._ask(backend, prompts, temperature=self.temperature, seed=self.seed + 7919 * (k + 1) + 104729 * attempt)
            for i, (gen, rec) in enumerate(zip(gens, records)):
                failed[i] += gen is None
                ans = self._parse(gen, rec)
                votes[i].append(None if ans is None else ans.value)
        results = []
        for v, nfail in zip(votes, failed):
            label, agree = self_consistency(v)
            if label is None:
                results.append({"error": "teacher call failed" if nfail == len(v) else "teacher reply not parseable"})
            else:
                results.append({"label": label, "confidence": agree, "method": "consistency", "samples": v})
        return results

    def _one_teacher(self, backend: Any, records: list[dict[str, Any]], attempt: int) -> list[dict[str, Any]]:
        if self.method == "consistency":
            return self._consistency(backend, records, attempt)
        if self.method == "verbalised":
            return self._single(backend, records, verbalised=True, attempt=attempt)
        results = self._single(backend, records, verbalised=False, attempt=attempt)
        # no log-probs from this teacher (typical of hosted APIs): ask again for a stated confidence
        missing = [i for i, r in enumerate(results) if r.get("method") == "none"]
        if missing and self.strict_logprob:
            raise BackendError(f"teacher {_teacher_name(backend)} returned no log-probs, so --method logprob cannot "
                               "score its labels", "use --method verbalised, or --method consistency --samples 5")
        if missing:
            again = self._single(backend, [records[i] for i in missing], verbalised=True, attempt=attempt)
            for i, res in zip(missing, again):
                results[i] = res if "label" in res else {**results[i], "confidence": 0.0, "method": "none"}
        return results

    def run_batch(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Results for a batch; failures are retried up to ``retries`` times."""
        results: list[dict[str, Any]] = [{} for _ in records]
        todo = list(range(len(records)))
        for attempt in range(self.retries + 1):
            if not todo:
                break
            batch = [records[i] for i in todo]
            res = self._one_teacher(self.teacher, batch, attempt)
            if self.second is not None:
                res_b = self._one_teacher(self.second, batch, attempt)
                for r, rb in zip(res, res_b):
                    if "label" in r and "label" in rb:
                        label, conf = teacher_agreement(r["label"], rb["label"], r["confidence"], rb["confidence"])
                        r.update(label=label, confidence=conf, method="agreement", second_label=rb["label"])
                    elif "label" in r:  # the second teacher failed: no agreement to speak of
                        r.update(confidence=0.0, method="agreement", second_label=None)
            for i, r in zip(todo, res):
                results[i] = {**r, "attempts": attempt + 1}
            todo = [i for i in todo if "label" not in results[i]]
        return results


def label_records(
    task: Any,
    teacher: Any,
    records: Sequence[dict[str, Any]],
    out: str | os.PathLike,
    *,
    method: str = "auto",
    samples: int = 1,
    temperature: float = 0.7,
    retries: int = 2,
    batch_size: int = 8,
    seed: int = 0,
    second_teacher: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Label ``records`` with ``teacher`` and write them, in input order, to ``out`` (JSONL).

    ``method``: ``logprob`` (label-token probability), ``consistency`` (``samples`` sampled answers, agreement rate),
    ``verbalised`` (the teacher states a score), ``agreement`` (needs ``second_teacher``), or ``auto``: consistency
    when ``samples > 1``, agreement when a second teacher is given, otherwise log-probs with a verbalised fallback for
    teachers that return none. Returns run statistics (counts, mean confidence, teacher calls, wall time).
    """
    problems = []
    if method not in METHODS:
        problems.append(f"method must be one of {', '.join(METHODS)} (got '{method}')")
    if samples < 1:
        problems.append("samples must be at least 1")
    if method == "consistency" and samples < 2:
        problems.append("consistency needs samples >= 2 (e.g. --samples 5)")
    if method == "agreement" and second_teacher is None:
        problems.append("agreement needs a second teacher (--second-teacher)")
    if retries < 0 or batch_size < 1:
        problems.append("retries must be >= 0 and batch_size >= 1")
    if problems:
        raise ConfigError(problems)
    strict_logprob = method == "logprob"
    if method == "auto":
        method = "consistency" if samples > 1 else ("agreement" if second_teacher is not None else "logprob")
    missing_id = [i + 1 for i, r in enumerate(records) if "id" not in r]
    if missing_id:
        raise DataError(f"records without an 'id' (record numbers {missing_id[:5]})", "give every record a unique id")

    out = Path(out)
    started = time.monotonic()
    # with two teachers, each answers greedily with its own confidence; the two are then combined
    labeller = _Labeller(task, teacher, method="logprob" if method == "agreement" else method, samples=samples,
                         temperature=temperature, retries=retries, seed=seed,
                         second_teacher=second_teacher if method == "agreement" else None,
                         strict_logprob=strict_logprob)
    teacher_name = _teacher_name(teacher)
    checkpoint_path = out.with_name(out.name + ".partial")
    with JsonlCheckpoint(checkpoint_path) as ckpt:
        _refuse_mixed_resume(ckpt.done.values(), teacher_name, method, checkpoint_path)
        # unlabelled records from an earlier run are tried again: the teacher may be back
        todo = [r for r in records if not (str(r["id"]) in ckpt and ckpt.done[str(r["id"])].get("label") is not None)]
        resumed = len(records) - len(todo)
        with progress_bar(f"labelling with {teacher_name}", len(records)) if progress else _silent() as advance:
            advance(resumed)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                for rec, res in zip(chunk, labeller.run_batch(chunk)):
                    ckpt.add(_labelled_record(rec, res, teacher_name))
                advance(len(chunk))
        final = [ckpt.done[str(r["id"])] for r in records]
    atomic_write_jsonl(out, final)
    checkpoint_path.unlink(missing_ok=True)
    labelled = [r for r in final if r["label"] is not None]
    return {
        "n": len(final),
        "labelled": len(labelled),
        "unlabelled": len(final) - len(labelled),
        "resumed": resumed,
        "method": method,
        "mean_confidence": sum(r["confidence"] for r in labelled) / len(labelled) if labelled else 0.0,
        "teacher_calls": labeller.calls,
        "wall_s": round(time.monotonic() - started, 3),
        "out": str(out),
    }


#: confidence methods a record may carry for each requested method (logprob falls back to a stated score under auto)
_COMPATIBLE_METHODS = {"logprob": {"logprob", "verbalised", "none"}, "verbalised": {"verbalised", "none"},
                       "consistency": {"consistency", "none"}, "agreement": {"agreement", "none"}}


def _refuse_mixed_resume(done: Any, teacher: str, method: str, checkpoint: Path) -> None:
    """A partial file started with another teacher or confidence method is never resumed: mixing the two would give
    one file whose confidences mean different things (and a threshold that fits neither)."""
    for rec in done:
        other_teacher = rec.get("teacher") not in (None, teacher)
        other_method = rec.get("label") is not None and rec.get("confidence_method") not in _COMPATIBLE_METHODS[method]
        if other_teacher or other_method:
            was = f"teacher {rec.get('teacher')}" if other_teacher else f"method {rec.get('confidence_method')}"
            raise DataError(f"{checkpoint.name} was started with {was}, not {teacher if other_teacher else method}",
                            f"re-run with the same --teacher/--method, or write to a new --out (or delete {checkpoint.name})")


def _labelled_record(record: dict[str, Any], result: dict[str, Any], teacher: str) -> dict[str, Any]:
    rec = dict(record)
    if record.get("label") is not None:
        rec["input_label"] = record["label"]  # keep what the input said; the teacher's label replaces it
    ok = result.get("label") is not None
    conf = result.get("confidence")
    rec.update(
        label=result.get("label") if ok else None,
        confidence=round(float(conf), 6) if ok and conf is not None else 0.0,
        confidence_method=result.get("method", "none"),
        teacher=teacher,
        label_status="labelled" if ok else "unlabelled",
        label_attempts=result.get("attempts", 1),
        provenance="teacher",
    )
    if not ok:
        rec["label_error"] = result.get("error", "no label")
    if "samples" in result:
        rec["samples"] = result["samples"]
    if "second_label" in result:
        rec["second_label"] = result["second_label"]
    return rec


@contextlib.contextmanager
def _silent() -> Iterator[Callable[[int], None]]:
    yield lambda n=1: None


def label_file(task: Any, teacher: Any, input: str | os.PathLike, out: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Read ``input`` through ``task.load(..., source=input)`` (which reports and sets aside malformed lines) and
    label it with :func:`label_records`."""
    records = task.load("all", source=str(input))
    if not records:
        raise DataError(f"no records to label in {input}", "check the input file is not empty")
    stats = label_records(task, teacher, records, out, **options)
    stats["rejected_lines"] = [n for n, _ in getattr(task, "last_rejected", [])]
    return stats
