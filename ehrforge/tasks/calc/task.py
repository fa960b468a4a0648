"""The ``calc`` task: a patient note + a MedCalc-Bench question → the calculator's answer, in one of two modes.

* ``mode="tool"`` (default, program-aided): the student writes the calculator call as JSON (the calculator key and
  each input as the note gives it, units included where they matter); ehrforge validates it against the typed
  schema, converts units and runs the tested function (:mod:`ehrforge.tasks.calc.tool`). A 135M model cannot do
  the arithmetic; it can learn to read values off a note.
* ``mode="reasoning"``: step-by-step text ending in ``<answer>…</answer>`` (the seed paper's free-reasoning setup).

Training items are synthetic (all 55 calculators, sampled patients, rendered notes with unit variation and
distractors; gold from the function), in either mode. Evaluation uses MedCalc-Bench's checking rules on synthetic
splits, on a file written by ``ehrforge synth``, on any MedCalc-Bench-format CSV (``--data test_data.csv``; bad rows
reported and skipped into a rejects file), or on the official one-shot exemplars (split ``medcalc_exemplars``).
Training: ``train(..., stage="sft")`` (warm-up) then ``stage="grpo"`` with verifiable rewards; base → GRPO without
SFT is the seed paper's ablation.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ehrforge.core.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from ehrforge.core.types import Abstain, Answer, Generation, Message, Prediction
from ehrforge.errors import DataError
from ehrforge.core.contract import (
    MAX_QUESTION_CHARS,
    Capability,
    Record,
    RewardFn,
    Task,
    TaskOptions,
    reply_from_prediction,
)
from ehrforge.tasks.calc.calculators import CALCULATORS, format_answer, select_calculators
from ehrforge.tasks.calc.medcalc_data import MAX_NOTE_CHARS, load_exemplars, load_medcalc_csv
from ehrforge.tasks.calc.notes import make_item
from ehrforge.tasks.calc.rewards import (
    correctness_reward,
    format_reward,
    make_length_penalty,
    tool_correctness_reward,
    tool_format_reward,
    tool_param_reward,
)
from ehrforge.tasks.calc.score import extract_tag, parse_value, score_predictions
from ehrforge.tasks.calc.tool import match_calculator, prompt_params, run_tool_call, tool_target

SYSTEM = (
    "You are a careful clinical calculator. Read the patient note, extract the values the calculation needs "
    "(convert units where necessary), reason step by step, and finish with the final answer inside "
    "<answer></answer>."
)
#: kept short: every prompt token is paid for in SFT, GRPO and evaluation on CPU
TOOL_SYSTEM = 'Write the calculator call as JSON: each parameter as the note gives it, {"value": v, "unit": u} where units are listed.'
FORMAT_HINTS = {
    "decimal": "Put only the number (no units) inside <answer></answer>.",
    "integer": "Put only the whole-number score inside <answer></answer>.",
    "date": "Put only the date as MM/DD/YYYY inside <answer></answer>.",
    "weeks_days": "Put only (weeks, days), e.g. (12, 3), inside <answer></answer>.",
}
SPLIT_SEEDS = {"train": 0, "valid": 1_000_003, "test": 2_000_003}
DEV_MEDCALC_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "medcalc"
NO_NOTE = "no patient note: pass it with --context note=@note.txt (HTTP: context.note) or put it before the question"


class CalcOptions(TaskOptions):
    #: tool: write the calculator call as JSON, ehrforge computes; reasoning: step-by-step text and <answer>
    mode: Literal["tool", "reasoning"] = "tool"
    #: comma-separated calculator keys or MedCalc-Bench ids; None = all implemented
    calculators: str | None = None
    n_train: int = Field(2000, ge=0)
    n_valid: int = Field(220, ge=0)
    n_test: int = Field(440, ge=0)
    #: GRPO length penalty: characters of reasoning beyond this are penalised (0: off)
    length_penalty_chars: int = Field(0, ge=0)
    #: the MedCalc-Bench folder (exemplars); default ../shared/data/medcalc or $EHRFORGE_MEDCALC_DIR
    medcalc_dir: str | None = None
    #: where bad rows of a MedCalc-Bench CSV go (default: <file>.rejects.csv beside it)
    rejects: str | None = None


class CalcTask(Task):
    name = "calc"
    summary = "medical calculators (MedCalc-Bench, 55): tool-call or reasoning student, SFT then GRPO"
    metric = "accuracy"
    default_max_new_tokens = 384
    Options = CalcOptions
    capabilities = frozenset({Capability.SYNTH})
    ask_fields: ClassVar[dict[str, str]] = {
        "note": "the patient note to calculate from (CLI --context note=@note.txt; HTTP context.note)"
    }

    def setup(self) -> None:
        self.calculators = select_calculators(self.options.calculators)
        self.n = {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    @property
    def max_new_tokens(self) -> int:
        if self.options.max_new_tokens:
            return self.options.max_new_tokens
        return max(tool_budget(c.key) for c in self.calculators) if self.mode == "tool" else self.default_max_new_tokens

    # --- data ---------------------------------------------------------------------------------------------------

    def generate(self, n: int, *, seed: int = 0) -> list[Record]:
        """``n`` synthetic items, round-robin over the selected calculators; deterministic in (seed, index)."""
        items = []
        for i in range(n):
            calc = self.calculators[i % len(self.calculators)]
            items.append(make_item(calc, random.Random(f"calc-{seed}-{i}"), f"calc-{seed}-{i}"))
        return items

    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        wanted = {c.id for c in self.calculators}
        if split == "medcalc_exemplars":
            folder = Path(source or self.medcalc_dir or os.environ.get("EHRFORGE_MEDCALC_DIR", DEV_MEDCALC_DIR))
            records = load_exemplars(folder, wanted)
        elif source is not None and str(source).lower().endswith(".csv"):
            records = load_medcalc_csv(Path(source), wanted, Path(self.rejects) if self.rejects else None)
        elif source is not None:
            records = self._load_jsonl(source)
        elif split in SPLIT_SEEDS:
            # items are generated independently per index, so a limit larger than the split size is fine
            records = self.generate(self.n[split] if limit is None else limit, seed=SPLIT_SEEDS[split] + seed)
        else:
            raise DataError(f"unknown split '{split}' for task calc", "use train, valid, test or medcalc_exemplars")
        return records[:limit] if limit is not None else records

    @staticmethod
    def _load_jsonl(source: str) -> list[Record]:
        result = read_jsonl(source)
        if result.rejected_lines:
            raise DataError(
                f"{len(result.rejected_lines)} malformed lines in {source} (first: line {result.rejected_lines[0]})",
                "regenerate the file with `ehrforge synth --task calc`, or pass a MedCalc-Bench .csv",
            )
        records = result.records
        need = {"note", "question", "ground_truth", "answer_format", "calculator"}
        missing = [i for i, r in enumerate(records, 1) if not need <= r.keys()]
        if missing:
            raise DataError(
                f"{len(missing)} records in {source} lack calc fields (first: line {missing[0]})",
                "each line needs note, question, ground_truth, answer_format and calculator",
            )
        return records

    def load_exemplars(self, source: str | None = None) -> list[Record]:
        """MedCalc-Bench one-shot exemplars for the selected calculators (evaluation only)."""
        return self.load("medcalc_exemplars", source=source)

    def synthesize(self, out: Path, *, n: int, teacher: Any = None, seed: int = 0) -> dict[str, Any]:
        """Write ``n`` synthetic items to ``out`` (JSONL, atomically). Gold answers come from the calculator
        functions, so no teacher is needed; one passed is ignored (and said so in the stats). Each item carries
        both targets' sources: the worked reasoning and the inputs as shown (the tool call)."""
        items = self.generate(n, seed=seed)
        atomic_write_jsonl(out, items)
        per_calc: dict[str, int] = {}
        for item in items:
            per_calc[item["calculator"]] = per_calc.get(item["calculator"], 0) + 1
        stats = {
            "written": len(items),
            "calculators": len(per_calc),
            "per_calculator": per_calc,
            "seed": seed,
            "teacher_used": False,
            "out": str(out),
        }
        atomic_write_json(Path(str(out) + ".stats.json"), stats)
        return stats

    # --- model I/O ---------------------------------------------------------------------------------------------

    def prompt(self, record: Record) -> list[Message]:
        if self.mode == "tool":
            key = record.get("calculator", "")
            params = prompt_params(key) if key in CALCULATORS else ""
            return [
                {"role": "system", "content": TOOL_SYSTEM},
                {
                    "role": "user",
                    "content": f"Note:\n{record['note']}\n\nQuestion: {first_sentence(record['question'])}\n"
                    f"Calculator: {key}\nParameters: {params}",
                },
            ]
        hint = FORMAT_HINTS.get(record.get("answer_format", "decimal"), FORMAT_HINTS["decimal"])
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Patient note:\n{record['note']}\n\nQuestion: {record['question']}\n{hint}"},
        ]

    def prompt_fingerprint(self) -> str:
        return f"{super().prompt_fingerprint()}\nmode={self.mode}\n{TOOL_SYSTEM}\n{SYSTEM}"

    def target(self, record: Record) -> str:
        if self.mode == "tool":
            if "inputs" not in record:
                raise KeyError("inputs")  # real MedCalc-Bench rows have a gold answer but no gold call
            return tool_target(record["calculator"], record["inputs"], record.get("shown"))
        return f"{record.get('reasoning', '').strip()}\n<answer>{record['ground_truth']}</answer>".strip()

    def parse(self, generation: Generation, record: Record) -> Prediction:
        mean = generation.mean_logprob()
        confidence = min(1.0, math.exp(mean)) if mean is not None else 1.0  # geometric-mean token probability
        if self.mode == "tool":
            result = run_tool_call(generation.text, record.get("calculator"))
            if isinstance(result, Abstain):
                return Abstain(result.reason, confidence)
            return Answer(result.value, confidence=confidence, evidence=result.evidence)
        answer = extract_tag(generation.text)
        if answer is None:
            return Abstain("no <answer> tag", 0.0)
        fmt = record.get("answer_format", "decimal")
        value = parse_value(answer, fmt)
        if value is None:
            return Abstain(f"answer does not parse as {fmt}", 0.0)
        shown = format_answer(value, fmt) if fmt in ("date", "weeks_days") else answer
        return Answer(shown, confidence=confidence)

    def predict(
        self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None
    ) -> list[Prediction]:
        """Tool calls get their calculator's token budget (a BMI call is ~20 tokens, an APACHE II call ~180):
        records are batched in order of budget, each batch generating up to its largest budget."""
        if self.mode != "tool" or self.options.max_new_tokens:
            return super().predict(backend, records, batch_size=batch_size, progress=progress)

        def budget(i: int) -> int:
            key = str(records[i].get("calculator"))
            return tool_budget(key) if key in CALCULATORS else self.default_max_new_tokens

        order = sorted(range(len(records)), key=lambda i: (budget(i), str(records[i].get("calculator")), i))
        preds: dict[int, Prediction] = {}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            gens = backend.generate([self.prompt(records[i]) for i in chunk], max_new_tokens=max(map(budget, chunk)))
            for i, g in zip(chunk, gens):
                preds[i] = self.parse(g, records[i])
            if progress is not None:
                progress(len(chunk))
        return [preds[i] for i in range(len(records))]

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        return score_predictions(records, predictions)

    def rewards(self) -> list[RewardFn]:
        if self.mode == "tool":
            return [tool_format_reward, tool_param_reward, tool_correctness_reward]
        fns: list[RewardFn] = [format_reward, correctness_reward]
        if self.length_penalty_chars:
            fns.append(make_length_penalty(self.length_penalty_chars))
        return fns

    def grpo_example(self, record: Record) -> dict[str, Any]:
        # Only the flat columns the rewards read: nested "inputs" differ per calculator and would break Arrow.
        keep = ("id", "calculator", "output_type", "answer_format", "ground_truth", "lower_limit", "upper_limit")
        row = {"prompt": self.prompt(record), **{k: str(record[k]) for k in keep if k in record}}
        if self.mode == "tool":
            row["tool_target"] = (
                tool_target(record["calculator"], record["inputs"], record.get("shown")) if "inputs" in record else ""
            )
        return row

    def results_table(self, results: dict[str, dict[str, float]], title: str = "") -> Any:
        """One row per calculator and output type, one column per model: 55 calculators do not fit as columns."""
        from ehrforge.tasks.calc.score import breakdown_table

        return breakdown_table(results, title=title or "calc accuracy by calculator and output type")

    # --- ask ------------------------------------------------------------------------------------------------------

    def unanswerable_input(self, question: str, **context: Any) -> Abstain | None:
        """A question without a note (as a context field or before the question), a note too long to be one, or a
        question that names no calculator: an abstention saying what to do."""
        if not isinstance(question, str) or not question.strip():
            return Abstain("the question is empty: ask it in plain language")
        note = context.get("note")
        if not isinstance(note, str) or not note.strip():
            if len(question) > MAX_QUESTION_CHARS:
                return Abstain(
                    f"the question is {len(question)} characters long (limit {MAX_QUESTION_CHARS}): shorten it"
                )
            note, question = split_note(question)
            if not note:
                return Abstain(NO_NOTE)
        if len(note) > MAX_NOTE_CHARS:
            return Abstain(f"the note is {len(note)} characters long (limit {MAX_NOTE_CHARS}): pass the relevant part")
        if match_calculator(question) is None:
            return Abstain("the question names no calculator I know: ask e.g. 'What is the patient's CURB-65 score?'")
        return None

    def ask(self, backend: Any, question: str, **context: Any) -> dict[str, Any]:
        """The base reply plus, in tool mode, the calculator and the extracted inputs that produced the answer."""
        refused = self.unanswerable_input(question, **context)
        if refused is not None:
            return reply_from_prediction(refused)
        pred = self.predict(backend, [self.ask_record(question, **context)], batch_size=1)[0]
        reply = reply_from_prediction(pred)
        if isinstance(pred, Answer) and pred.evidence:
            reply["explanation"] = pred.evidence.get("explanation")
            reply["calculator"] = pred.evidence.get("calculator")
        return reply

    def ask_record(self, question: str, **context: Any) -> Record:
        """The note (context field, or the text before the question) and the calculator the question names."""
        note = context.get("note")
        if not isinstance(note, str) or not note.strip():
            note, question = split_note(question)
        calc = match_calculator(question)
        record: Record = {"id": "ask", "question": question.strip(), "note": note or ""}
        if calc is not None:
            record.update(calculator=calc.key, answer_format=calc.answer_format, output_type=calc.output_type)
        return record


def first_sentence(question: str) -> str:
    """The question's first sentence: in tool mode the calculation rules that follow it (which weight to use, which
    units to answer in) are the tool's job, and every prompt token costs on CPU.

    >>> first_sentence("What is the CrCl in mL/min? You should use the adjusted body weight.")
    'What is the CrCl in mL/min?'
    """
    m = re.match(r"(?s)\s*(.+?[?.])(\s|$)", question)
    return m.group(1) if m else question


_LAST_QUESTION = re.compile(r"(?s)^(?P<note>.*[.!\n])\s*(?:question\s*:\s*)?(?P<q>[^.!?\n]*\?)\s*$", re.IGNORECASE)


def split_note(text: str) -> tuple[str, str]:
    """(note, question) from one text holding both: the question is the final sentence ending in "?".

    >>> split_note("Note: 70-year-old man, BUN 25 mg/dL. What is the CURB-65 score?")
    ('70-year-old man, BUN 25 mg/dL.', 'What is the CURB-65 score?')
    >>> split_note("What is the CURB-65 score?")
    ('', 'What is the CURB-65 score?')
    """
    m = _LAST_QUESTION.match(text.strip())
    if not m:
        return "", text
    note = re.sub(r"^\s*(patient\s+)?note\s*:\s*", "", m.group("note"), flags=re.IGNORECASE).strip()
    return (note, m.group("q").strip()) if len(note) >= 20 else ("", text)


@cache
def tool_budget(calculator: str) -> int:
    """Generation budget for one calculator's call: the longest gold call among 24 generated items, at a
    conservative 2 characters per token, plus slack (measured: JSON calls run ~2.5-3 characters per token)."""
    calc = CALCULATORS[calculator]
    longest = max(
        len(
            tool_target(
                calc.key, (it := make_item(calc, random.Random(f"budget-{calculator}-{i}"), "b"))["inputs"], it["shown"]
            )
        )
        for i in range(24)
    )
    return min(320, longest // 2 + 16)
