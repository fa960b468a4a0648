"""The ``fhirqa`` recipe: question answering over one patient's FHIR R4 record, in two steps.

* **select** (task 1): relevance classification. Each (question, condensed resource) pair is scored by a relevance
  scorer (``relevance.py``: a decoder's log p(yes), a MiniLM cross-encoder, BM25) and the resources at or above the
  threshold (tuned on dev: :meth:`FHIRQATask.tune`) are selected; none above it abstains on the whole question.
  Backends that can only generate list the relevant ids instead, a long record in chunks (micro P/R/F1 either way).
* **answer** (task 2): answer from the relevant resources only (gold ones in training and in ``subtask="answer"``
  evaluation; the model's own selection in ``subtask="both"`` and in :meth:`FHIRQATask.ask`); METEOR.

Options (CLI ``--set key=value``): ``subtask`` (select|answer|both), ``data`` (FHIR folder/file for synth, load and
ask; default: the bundled 3-patient subset), ``context_tokens`` (token budget for resource lines per prompt),
``max_candidates`` (lines per synthesized question), ``abstain_below`` (answer confidence under which ``ask``
abstains), ``type_hint`` (``ask`` narrows the record to resource types named in the question).
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ehrforge.core.backends.capabilities import BackendCapability, supports
from ehrforge.core.io import read_jsonl
from ehrforge.core.types import Abstain, Answer, Generation, Message, Prediction
from ehrforge.errors import DataError
from ehrforge.core.contract import Capability, Record, RewardFn, Task, TaskOptions, Tuning
from ehrforge.core.training import train_core
from ehrforge.tasks.fhirqa.condense import CLINICAL_TYPES, approx_tokens, chunk_lines, condense
from ehrforge.tasks.fhirqa.fhir_load import FHIRStore, load_default
from ehrforge.tasks.fhirqa.relevance import choose, relevance_messages, relevance_scorer, tune_threshold
from ehrforge.tasks.fhirqa.score import answer_meteor, meteor_reward, parse_short_ids, selection_f1_reward, selection_prf
from ehrforge.tasks.fhirqa.synth import build_questions, patient_record, synthesize

SELECT_SYSTEM = (
    "You find the resources of a patient's FHIR record that are needed to answer a question. Each line is one "
    "resource: its id, its type and its facts. Reply with the ids of all relevant resources, separated by commas, "
    "or the word none."
)
ANSWER_SYSTEM = (
    "Answer the question about the patient using only the resources listed. Be brief and exact: copy names, values "
    "and dates as written. If the resources do not contain the answer, reply exactly: I can't answer that from the record."
)
# "The record has no resource about ..." is how trained students say it (hard_templates.NOT_IN_RECORD)
CANT_ANSWER = re.compile(r"^\s*(i can'?t answer|i cannot answer|unknown|null|none\b|(no: )?the record has no resource)", re.I)
#: default relevance threshold per scorer kind when none was set or tuned: p(yes) = 0.5, logit 0, half the best BM25
DEFAULT_THRESHOLDS = {"decoder": math.log(0.5), "cross_encoder": 0.0, "bm25": 0.5}

#: Words that point a question at resource types (for ``ask``'s optional narrowing of a long record).
TYPE_HINTS: dict[str, tuple[str, ...]] = {
    "Condition": ("condition", "disorder", "diagnos", "disease", "problem", "illness"),
    "MedicationRequest": ("medication", "medicine", "drug", "prescri", "taking", "dose", "tablet", "pill"),
    "AllergyIntolerance": ("allerg", "reaction"),
    "Encounter": ("encounter", "visit", "admission", "admitted", "appointment"),
    "Immunization": ("vaccin", "immuniz", "shot"),
    "Procedure": ("procedure", "surgery", "operation", "performed", "screening"),
    "Observation": ("lab", "level", "blood pressure", "weight", "bmi", "a1c", "glucose", "creatinine", "cholesterol", "hemoglobin", "heart rate", "vital"),
}


@dataclass(frozen=True)
class SelectionAbstain(Abstain):
    """An abstention that still reports which resources the selection step picked (scored for task 1)."""

    resource_ids: tuple[str, ...] = ()


def _confidence(gen: Generation) -> float:
    """Geometric-mean token probability of the generation (1.0 when the backend gives no log-probs)."""
    lp = gen.mean_logprob()
    return 1.0 if lp is None else math.exp(lp)


def hinted_types(question: str) -> list[str]:
    """Resource types the question names (empty: no hint, keep everything).

    >>> hinted_types("What medications is she taking for diabetes?")
    ['MedicationRequest']
    """
    q = question.lower()
    return [t for t, words in TYPE_HINTS.items() if any(w in q for w in words)]


class FHIRQAOptions(TaskOptions):
    #: select (task 1: relevant resources), answer (task 2, from given resources) or both
    subtask: Literal["select", "answer", "both"] = "both"
    #: FHIR data: a folder or file of NDJSON/Bundles; None = the bundled Synthea subset
    data: str | None = None
    context_tokens: int = Field(1024, ge=64)
    max_candidates: int = Field(16, ge=1)
    #: abstain when the answer's confidence is below this
    abstain_below: float = Field(0.0, ge=0, le=1)
    #: keep only the resource types the question names
    type_hint: bool = True
    synthetic_observations: bool = True
    #: task-1 student kind that `train --set subtask=select` builds: a decoder (yes/no SFT) or a MiniLM cross-encoder
    selector: Literal["decoder", "cross_encoder"] = "decoder"
    #: relevance score a resource must reach to be selected (None: tuned on dev, else the scorer's default)
    threshold: float | None = Field(None, allow_inf_nan=False)
    #: keep at most this many resources (the best-scoring) per question
    top_k: int | None = Field(None, ge=1)
    #: token budget per relevance scoring batch (pairs x padded length)
    pair_batch_tokens: int = Field(4096, ge=64)


class FHIRQATask(Task):
    name = "fhirqa"
    summary = "QA over a patient's FHIR R4 record: resource selection (F1) then answer (METEOR)"
    default_max_new_tokens = 96
    Options = FHIRQAOptions
    capabilities = frozenset({Capability.SYNTH, Capability.CUSTOM_TRAINING, Capability.TUNE})
    ask_fields = {"patient_id": "the patient whose record to read (CLI --patient ID; list them with `python -m ehrforge.tasks.fhirqa patients`)"}

    def __init__(self, subtask: str = "both", **options: Any) -> None:
        super().__init__(subtask=subtask, **options)

    def setup(self) -> None:
        self.metric = "meteor" if self.subtask == "answer" else "select_f1"
        self._stores: dict[str, FHIRStore] = {}

    # -- data ---------------------------------------------------------------------------------------------------
    def store(self, source: str | os.PathLike | None = None) -> FHIRStore:
        """The loaded FHIR data (cached per source)."""
        key = str(source or self.data or "<bundled>")
        if key not in self._stores:
            self._stores[key] = load_default(source or self.data)
        return self._stores[key]

    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        """A split of a synthesized dataset (``source`` = its JSONL), or of questions built on the fly from FHIR data
        (``source`` = a FHIR folder/file; default the ``data`` option, else the bundled subset)."""
        if split not in ("train", "valid", "test", "all"):
            raise DataError(f"unknown split '{split}'", "use train, valid, test or all")
        path = Path(source) if source else None
        if path is not None and path.is_file() and path.suffix == ".jsonl" and _is_dataset(path):
            records = read_jsonl(path).records
            missing = [i for i, r in enumerate(records, 1) if not {"question", "candidates", "relevant_ids", "answer"} <= r.keys()]
            if missing:
                raise DataError(f"{len(missing)} records lack question/candidates/relevant_ids/answer (first: record {missing[0]})", "regenerate the file with `ehrforge synth --task fhirqa`", file=str(path))
        else:
            records = build_questions(self.store(source), max_candidates=self.max_candidates, synthetic=self.synthetic_observations)
        if split != "all":
            records = [r for r in records if r.get("split") == split]
        if limit is not None and limit < len(records):
            records = sorted(random.Random(seed).sample(records, limit), key=lambda r: r["id"])
        return records

    def synthesize(self, out: Path, *, n: int, teacher: Any = None, seed: int = 0) -> dict[str, Any]:
        return synthesize(out, n=n, teacher=teacher, seed=seed, source=self.data, max_candidates=self.max_candidates, synthetic_observations=self.synthetic_observations)

    # -- prompts ------------------------------------------------------------------------------------------------
    def select_messages(self, question: str, lines: Sequence[str]) -> list[Message]:
        user = f"Question: {question}\n\nResources:\n" + "\n".join(lines)
        return [{"role": "system", "content": SELECT_SYSTEM}, {"role": "user", "content": user}]

    def answer_messages(self, question: str, lines: Sequence[str]) -> list[Message]:
        body = "\n".join(lines) if lines else "(no resources)"
        return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": f"Question: {question}\n\nResources:\n{body}"}]

    def _answer_lines(self, record: Record, ids: Sequence[str] | None = None) -> list[str]:
        wanted = set(record["relevant_ids"] if ids is None else ids)
        return [c["line"] for c in record["candidates"] if c["id"] in wanted]

    def prompt(self, record: Record) -> list[Message]:
        if "line" in record:  # one (question, resource) pair of relevance training (relevance.relevance_pairs)
            return relevance_messages(record["question"], record["line"])
        if self.subtask == "answer":
            return self.answer_messages(record["question"], self._answer_lines(record))
        return self.select_messages(record["question"], [c["line"] for c in record["candidates"]])

    def target(self, record: Record) -> str:
        if "line" in record:
            return "yes" if record["relevant"] else "no"
        if self.subtask == "answer":
            return record["answer"]
        gold = set(record["relevant_ids"])
        return ", ".join(c["short"] for c in record["candidates"] if c["id"] in gold) or "none"

    # -- parsing ------------------------------------------------------------------------------------------------
    def parse_selection(self, generation: Generation, candidates: Sequence[dict[str, str]]) -> Answer:
        to_full = {c["short"]: c["id"] for c in candidates}
        ids = [to_full[s] for s in parse_short_ids(generation.text, list(to_full))]
        return Answer(ids, _confidence(generation), {"prompt_tokens": generation.prompt_tokens})

    def parse_answer(self, generation: Generation) -> Prediction:
        text = generation.text.strip()
        conf = _confidence(generation)
        if not text or CANT_ANSWER.match(text):
            return Abstain("the model found no answer in the resources", conf)
        return Answer(text, conf, {"prompt_tokens": generation.prompt_tokens})

    def parse(self, generation: Generation, record: Record) -> Prediction:
        if self.subtask == "answer":
            return self.parse_answer(generation)
        return self.parse_selection(generation, record["candidates"])

    # -- inference ----------------------------------------------------------------------------------------------
    def _line_budget(self) -> int:
        return max(32, self.context_tokens)

    def select(self, backend: Any, items: Sequence[tuple[str, list[dict[str, str]]]], *, batch_size: int = 8) -> list[Answer]:
        """Task 1 for several (question, candidate rows) at once. A backend that can score relevance (a local LM,
        a cross-encoder, BM25: :func:`relevance.relevance_scorer`) classifies every (question, resource) pair;
        one that can only generate (an HTTP endpoint) lists ids, long candidate lists in chunks."""
        scorer = relevance_scorer(backend)
        if scorer is not None:
            return self.select_by_relevance(scorer, items)
        count = backend.count_tokens if supports(backend, BackendCapability.TOKEN_COUNT) else approx_tokens
        jobs: list[tuple[int, list[dict[str, str]]]] = []
        for i, (_, rows) in enumerate(items):
            for chunk in chunk_lines([r["line"] for r in rows], self._line_budget(), count):
                jobs.append((i, [rows[j] for j in chunk]))
        ids: list[list[str]] = [[] for _ in items]
        confs: list[list[float]] = [[] for _ in items]
        tokens = [0] * len(items)
        chunks = [0] * len(items)
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            gens = backend.generate([self.select_messages(items[i][0], [r["line"] for r in rows]) for i, rows in batch], max_new_tokens=self.max_new_tokens)
            for (i, rows), gen in zip(batch, gens):
                ans = self.parse_selection(gen, rows)
                ids[i].extend(x for x in ans.value if x not in ids[i])
                confs[i].append(ans.confidence)
                tokens[i] += gen.prompt_tokens or sum(count(r["line"]) for r in rows)
                chunks[i] += 1
        return [
            Answer(ids[i], min(confs[i]) if confs[i] else 0.0, {"prompt_tokens": tokens[i], "chunks": chunks[i], "line_budget": self._line_budget()})
            for i in range(len(items))
        ]

    def threshold_for(self, scorer: Any) -> float:
        if self.threshold is not None:
            return self.threshold
        return DEFAULT_THRESHOLDS.get(getattr(scorer, "name", ""), 0.0)

    def relevance_scores(self, scorer: Any, items: Sequence[tuple[str, list[dict[str, str]]]]) -> list[list[float]]:
        if hasattr(scorer, "batch_tokens"):
            scorer.batch_tokens = self.pair_batch_tokens
        return scorer.score_questions([(q, [r["line"] for r in rows]) for q, rows in items])

    def select_by_relevance(self, scorer: Any, items: Sequence[tuple[str, list[dict[str, str]]]]) -> list[Answer]:
        """Every resource scoring at least the threshold (best ``top_k`` when set); the evidence keeps the scores."""
        threshold = self.threshold_for(scorer)
        out = []
        counted = hasattr(scorer, "tokens_scored")  # a decoder: report what each question cost (tokens, batches)
        costs: list[tuple[int, int]] = []
        if counted:
            all_scores = []
            for item in items:
                before = (scorer.tokens_scored, scorer.batches)
                all_scores += self.relevance_scores(scorer, [item])
                costs.append((scorer.tokens_scored - before[0], scorer.batches - before[1]))
        else:
            all_scores = self.relevance_scores(scorer, items)
            costs = [(0, 0)] * len(items)
        for (question, rows), scores, (tokens, batches) in zip(items, all_scores, costs):
            ids = choose([r["id"] for r in rows], scores, threshold, self.top_k)
            best = max(scores, default=threshold - 10.0)
            # confidence: how far the best resource clears the threshold, squashed to (0, 1)
            conf = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, best - threshold))))
            out.append(Answer(ids, conf, {"pairs": len(rows), "threshold": threshold, "scorer": getattr(scorer, "name", "?"),
                                          "prompt_tokens": tokens, "chunks": batches, "line_budget": self.pair_batch_tokens,
                                          "scores": {r["id"]: round(s, 4) for r, s in zip(rows, scores)}}))
        return out

    def tune(self, backend: Any, dev: Sequence[Record], *, batch_size: int = 8, label: str = "") -> Tuning | None:
        """The relevance threshold with the best dev micro F1, as a new state (saved with a trained model).
        Backends that only generate have no score to threshold: None."""
        scorer = relevance_scorer(backend)
        if scorer is None or not dev:
            return None
        items = [(r["question"], r["candidates"]) for r in dev]
        scores = self.relevance_scores(scorer, items)
        result = tune_threshold([[c["id"] for c in rows] for _, rows in items], scores, [r["relevant_ids"] for r in dev], top_k=self.top_k)
        return Tuning(self.state.updated(threshold=result["threshold"]),
                      {**result, "dev_questions": len(dev), "scorer": getattr(scorer, "name", "?")})

    def manifest_extras(self) -> dict[str, Any]:
        return {"fhirqa_threshold": self.threshold}

    def restore(self, manifest: dict[str, Any]) -> None:
        if "fhirqa_threshold" in manifest:
            self.state = self.state.updated(threshold=manifest["fhirqa_threshold"])

    def predict(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        preds: list[Prediction] = []
        for start in range(0, len(records), batch_size):
            chunk = list(records[start : start + batch_size])
            if self.subtask == "answer":
                gens = backend.generate([self.prompt(r) for r in chunk], max_new_tokens=self.max_new_tokens)
                preds.extend(self.parse_answer(g) for g in gens)
            else:
                sels = self.select(backend, [(r["question"], r["candidates"]) for r in chunk], batch_size=batch_size)
                if self.subtask == "select":
                    preds.extend(sels)
                else:
                    preds.extend(self.answer_selected(backend, chunk, sels))
            if progress is not None:
                progress(len(chunk))
        return preds

    def answer_selected(self, backend: Any, records: Sequence[Record], sels: Sequence[Answer]) -> list[Prediction]:
        """Task 2 from each record's selection; a question where nothing was selected abstains as a whole (no
        generation: the record has nothing to answer from)."""
        todo = [i for i, s in enumerate(sels) if s.value]
        gens = backend.generate([self.answer_messages(records[i]["question"], self._answer_lines(records[i], sels[i].value)) for i in todo],
                                max_new_tokens=self.max_new_tokens) if todo else []
        out: list[Prediction] = [SelectionAbstain("no resource of the record clears the relevance threshold", s.confidence) for s in sels]
        for i, gen in zip(todo, gens):
            out[i] = self._combine(sels[i], self.parse_answer(gen))
        return out

    def _combine(self, selection: Answer, answer: Prediction) -> Prediction:
        ids = tuple(selection.value)
        if isinstance(answer, Answer) and answer.confidence >= self.abstain_below:
            return Answer({"ids": list(ids), "answer": answer.value}, answer.confidence, dict(selection.evidence))
        reason = answer.reason if isinstance(answer, Abstain) else f"answer confidence {answer.confidence:.2f} < {self.abstain_below:.2f}"
        return SelectionAbstain(reason, answer.confidence, ids)

    def ask(self, backend: Any, question: str, *, patient_id: str | None = None, **_: Any) -> dict[str, Any]:
        """The uniform ``ask`` of every task (CLI ``ask --patient`` and the server's ``/v1/fhirqa/ask``): a JSON-able
        reply with the answer and its cited resource ids, or the abstention and its reason."""
        from ehrforge.core.contract import reply_from_prediction

        refused = self.unanswerable_input(question, patient_id=patient_id)
        if refused is None and f"Patient/{patient_id}" not in self.store().resources:
            # the id is not echoed (it is input); the reply says how to see the ids that exist
            refused = Abstain(f"unknown patient id: list the {len(self.store().patient_ids)} known ones with "
                              f"`{patients_command(self.data)}`")
        if refused is not None:
            return reply_from_prediction(refused)
        pred = self.answer_patient(backend, patient_id, question)
        reply = reply_from_prediction(pred)
        if isinstance(pred, Answer):
            reply["answer"] = {"text": pred.value, "resource_ids": pred.evidence.get("resource_ids", []),
                               "prompt_tokens": pred.evidence.get("prompt_tokens"), "chunks": pred.evidence.get("chunks")}
        elif getattr(pred, "resource_ids", None):
            reply["answer"] = {"resource_ids": list(pred.resource_ids)}
        return reply

    def answer_patient(self, backend: Any, patient_id: str, question: str, *, source: str | None = None, answer_backend: Any = None) -> Prediction:
        """Answer ``question`` about one patient: select over the whole record (chunked), then answer.

        Returns ``Answer(text, confidence, evidence={"resource_ids", "prompt_tokens", "chunks", "line_budget",
        "record_lines", "types"})`` or an :class:`Abstain` (a :class:`SelectionAbstain` when resources were
        selected). ``answer_backend`` defaults to ``backend``. Unknown patient → DataError.
        """
        if not question.strip():
            raise DataError("empty question", "pass the question as the last argument")
        resources = patient_record(self.store(source), patient_id, synthetic=self.synthetic_observations)
        rows = condense(resources)
        types = hinted_types(question) if self.type_hint else []
        if types:
            rows = [r for r in rows if r["type"] in types or r["type"] == "Patient"]
        sel = self.select(backend, [(question, rows)])[0]
        evidence = {**sel.evidence, "record_lines": len(rows), "types": types or list(CLINICAL_TYPES)}
        if not sel.value:
            return Abstain("no relevant resources found in the record", sel.confidence)
        by_id = {r["id"]: r["line"] for r in rows}
        gen = (answer_backend or backend).generate([self.answer_messages(question, [by_id[i] for i in sel.value])], max_new_tokens=self.max_new_tokens)[0]
        evidence["prompt_tokens"] += gen.prompt_tokens
        result = self._combine(sel, self.parse_answer(gen))
        if isinstance(result, Answer):
            return Answer(result.value["answer"], result.confidence, {**evidence, "resource_ids": result.value["ids"]})
        return result

    # -- scoring ------------------------------------------------------------------------------------------------
    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        ids: list[list[str]] = []
        answers: list[str | None] = []
        tokens = []
        for p in predictions:
            if isinstance(p, Answer):
                value = p.value
                if self.subtask == "select":
                    ids.append(list(value))
                elif self.subtask == "answer":
                    answers.append(str(value))
                else:
                    ids.append(list(value["ids"]))
                    answers.append(value["answer"])
                tokens.append(p.evidence.get("prompt_tokens", 0))
            else:
                ids.append(list(getattr(p, "resource_ids", ())))
                answers.append(None)
        out: dict[str, float] = {"n": float(len(records))}
        if self.subtask in ("select", "both"):
            out.update(selection_prf([r["relevant_ids"] for r in records], ids))
        empty = [not r["relevant_ids"] for r in records]
        if self.subtask in ("answer", "both"):
            out.update(answer_meteor([r["answer"] for r in records], answers, empty))
        abstained = [not isinstance(p, Answer) or (self.subtask == "select" and not p.value) for p in predictions]
        out["abstain_rate"] = round(sum(abstained) / max(1, len(predictions)), 4)
        # abstention is right exactly where the record holds nothing relevant (negation "never", unanswerable)
        out["abstain_precision"] = round(sum(a and e for a, e in zip(abstained, empty)) / sum(abstained), 4) if any(abstained) else 1.0
        out["abstain_recall"] = round(sum(a and e for a, e in zip(abstained, empty)) / sum(empty), 4) if any(empty) else 1.0
        if tokens:
            out["mean_prompt_tokens"] = round(sum(tokens) / len(tokens), 1)
        return out

    def rewards(self) -> list[RewardFn]:
        return [meteor_reward] if self.subtask == "answer" else [selection_f1_reward]

    # -- training -----------------------------------------------------------------------------------------------
    def train(self, records: Sequence[Record], base_model: str, out_dir: str | os.PathLike, cfg: Any = None,
              *, stage: str = "sft") -> Path:
        """``both``: sequential fine-tuning (select, then answer on top); otherwise one LoRA for the subtask.
        ``stage="grpo"`` runs core GRPO with the subtask's reward."""
        if stage != "sft":
            return train_core(self, records, base_model, out_dir, cfg, stage=stage)
        from ehrforge.tasks.fhirqa.training import train_sequential, train_subtask

        if self.subtask == "select" and self.selector == "cross_encoder":
            from ehrforge.core.loader import model_card
            from ehrforge.tasks.fhirqa.cross_encoder import PREDICTOR, train_cross_encoder
            from ehrforge.tasks.fhirqa.relevance import relevance_pairs

            steps = getattr(cfg, "max_steps", -1) if cfg is not None else -1
            return train_cross_encoder(relevance_pairs(records), out_dir, base=None if base_model in ("bundled", "", None) else base_model,
                                       epochs=getattr(cfg, "epochs", 1.0) if cfg is not None else 1.0, max_steps=steps,
                                       card=model_card(self, PREDICTOR))
        if self.subtask == "both":
            return train_sequential(records, base_model, out_dir, cfg, task_options=self._options())["answer"]
        return train_subtask(self.subtask, records, base_model, out_dir, cfg, task_options=self._options())

    def _options(self) -> dict[str, Any]:
        return {"data": self.data, "context_tokens": self.context_tokens, "max_candidates": self.max_candidates}


def patients_command(data: str | None) -> str:
    """The command that lists the patient ids of the loaded FHIR data.

    >>> patients_command(None)
    'python -m ehrforge.tasks.fhirqa patients'
    """
    return "python -m ehrforge.tasks.fhirqa patients" + (f" --data {data}" if data else "")


def _is_dataset(path: Path) -> bool:
    """A synthesized QA file (records with candidates) rather than an NDJSON FHIR export."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return '"candidates"' in first and '"relevant_ids"' in first
