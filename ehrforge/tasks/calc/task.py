"""The ``calc`` task: a patient note + a MedCalc-Bench question → step-by-step reasoning and ``<answer>…</answer>``.

Training items are synthetic (implemented calculators, sampled patients, rendered notes; gold from the function).
Evaluation uses the same MedCalc-Bench checking rules on synthetic splits, on a file written by ``ehrforge synth``,
or on the official one-shot exemplars (split ``medcalc_exemplars``; a dev sanity set — never trained on).
Training is two-stage: ``stage="sft"`` (warm-up, core SFT) then ``stage="grpo"`` (core GRPO with this task's
verifiable rewards); base → GRPO without SFT is the seed paper's ablation.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ehrforge.core.io import atomic_write_json, atomic_write_jsonl, load_json, read_jsonl
from ehrforge.core.types import Abstain, Answer, Generation, Message, Prediction
from ehrforge.errors import DataError
from ehrforge.tasks.base import Capability, Record, RewardFn, Task, TaskOptions
from ehrforge.tasks.calc.calculators import BY_ID, format_answer, select_calculators
from ehrforge.tasks.calc.notes import make_item
from ehrforge.tasks.calc.rewards import correctness_reward, format_reward, make_length_penalty
from ehrforge.tasks.calc.score import extract_tag, parse_value, score_predictions

SYSTEM = (
    "You are a careful clinical calculator. Read the patient note, extract the values the calculation needs "
    "(convert units where necessary), reason step by step, and finish with the final answer inside "
    "<answer></answer>."
)
FORMAT_HINTS = {
    "decimal": "Put only the number (no units) inside <answer></answer>.",
    "integer": "Put only the whole-number score inside <answer></answer>.",
    "date": "Put only the date as MM/DD/YYYY inside <answer></answer>.",
    "weeks_days": "Put only (weeks, days), e.g. (12, 3), inside <answer></answer>.",
}
SPLIT_SEEDS = {"train": 0, "valid": 1_000_003, "test": 2_000_003}
EXEMPLAR_FILE = "one_shot_finalized_explanation.json"
DEV_MEDCALC_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "medcalc"


class CalcOptions(TaskOptions):
    #: comma-separated calculator keys or MedCalc-Bench ids; None = all implemented
    calculators: str | None = None
    n_train: int = Field(2000, ge=0)
    n_valid: int = Field(220, ge=0)
    n_test: int = Field(440, ge=0)
    #: GRPO length penalty: characters of reasoning beyond this are penalised (0: off)
    length_penalty_chars: int = Field(0, ge=0)
    #: the MedCalc-Bench folder (exemplars); default ../shared/data/medcalc or $EHRFORGE_MEDCALC_DIR
    medcalc_dir: str | None = None


class CalcTask(Task):
    name = "calc"
    summary = "medical calculators (MedCalc-Bench): SFT warm-up then GRPO with verifiable rewards"
    metric = "accuracy"
    default_max_new_tokens = 384
    Options = CalcOptions
    capabilities = frozenset({Capability.SYNTH})
    ask_fields = {"note": "the patient note to calculate from (CLI --context note=@note.txt; HTTP field 'note')"}

    def setup(self) -> None:
        self.calculators = select_calculators(self.options.calculators)
        self.n = {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    # --- data ---------------------------------------------------------------------------------------------------

    def generate(self, n: int, *, seed: int = 0) -> list[Record]:
        """``n`` synthetic items, round-robin over the selected calculators; deterministic in (seed, index)."""
        items = []
        for i in range(n):
            calc = self.calculators[i % len(self.calculators)]
            items.append(make_item(calc, random.Random(f"calc-{seed}-{i}"), f"calc-{seed}-{i}"))
        return items

    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        if split == "medcalc_exemplars":
            records = self.load_exemplars(source)
        elif source is not None:
            result = read_jsonl(source)
            if result.rejected_lines:
                raise DataError(
                    f"{len(result.rejected_lines)} malformed lines in {source} (first: line {result.rejected_lines[0]})",
                    "regenerate the file with `ehrforge synth --task calc`",
                )
            records = result.records
            missing = [
                i
                for i, r in enumerate(records, 1)
                if not {"note", "question", "ground_truth", "answer_format", "calculator"} <= r.keys()
            ]
            if missing:
                raise DataError(
                    f"{len(missing)} records in {source} lack calc fields (first: line {missing[0]})",
                    "each line needs note, question, ground_truth, answer_format and calculator",
                )
        elif split in SPLIT_SEEDS:
            # items are generated independently per index, so a limit larger than the split size is fine
            records = self.generate(self.n[split] if limit is None else limit, seed=SPLIT_SEEDS[split] + seed)
        else:
            raise DataError(f"unknown split '{split}' for task calc", "use train, valid, test or medcalc_exemplars")
        return records[:limit] if limit is not None else records

    def load_exemplars(self, source: str | None = None) -> list[Record]:
        """MedCalc-Bench one-shot exemplars for the calculators implemented here (evaluation only)."""
        folder = Path(source or self.medcalc_dir or os.environ.get("EHRFORGE_MEDCALC_DIR", DEV_MEDCALC_DIR))
        path = folder / EXEMPLAR_FILE if folder.is_dir() or not folder.suffix else folder
        if not path.exists():
            raise DataError(
                f"MedCalc-Bench exemplars not found: {path}",
                f"pass --data <folder with {EXEMPLAR_FILE}> (from github.com/ncbi-nlp/MedCalc-Bench, CC BY-SA 4.0)",
            )
        data = load_json(path, "MedCalc-Bench exemplar file")
        wanted = {c.id for c in self.calculators}
        records = []
        for cid, ex in sorted(data.items(), key=lambda kv: int(kv[0])):
            if int(cid) not in wanted:
                continue
            calc = BY_ID[int(cid)]
            response = json.loads(ex["Response"]) if isinstance(ex["Response"], str) else ex["Response"]
            raw = response["answer"]
            if calc.answer_format == "weeks_days":
                gold = "(" + ", ".join(str(parse_value(" ".join(map(str, raw)), "weeks_days")[k]) for k in (0, 1)) + ")"
            elif calc.answer_format == "date":
                gold = format_answer(parse_value(str(raw), "date"), "date")
            else:
                gold = str(raw)
            lower = upper = gold
            if calc.answer_format == "decimal":
                lower, upper = (
                    f"{min(float(gold) * 0.95, float(gold) * 1.05):.6g}",
                    f"{max(float(gold) * 0.95, float(gold) * 1.05):.6g}",
                )
            records.append(
                {
                    "id": f"medcalc-exemplar-{cid}",
                    "calculator": calc.key,
                    "calculator_id": calc.id,
                    "calculator_name": calc.name,
                    "category": calc.category,
                    "output_type": calc.output_type,
                    "answer_format": calc.answer_format,
                    "note": ex["Patient Note"],
                    "question": calc.question,
                    "ground_truth": gold,
                    "lower_limit": lower,
                    "upper_limit": upper,
                    "reasoning": response.get("step_by_step_thinking", ""),
                    "source": "medcalc-bench-exemplar",
                }
            )
        return records

    def synthesize(self, out: Path, *, n: int, teacher: Any = None, seed: int = 0) -> dict[str, Any]:
        """Write ``n`` synthetic items to ``out`` (JSONL, atomically). Gold answers come from the calculator
        functions, so no teacher is needed; one passed is ignored (and said so in the stats)."""
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
        hint = FORMAT_HINTS.get(record.get("answer_format", "decimal"), FORMAT_HINTS["decimal"])
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Patient note:\n{record['note']}\n\nQuestion: {record['question']}\n{hint}"},
        ]

    def target(self, record: Record) -> str:
        return f"{record.get('reasoning', '').strip()}\n<answer>{record['ground_truth']}</answer>".strip()

    def parse(self, generation: Generation, record: Record) -> Prediction:
        answer = extract_tag(generation.text)
        if answer is None:
            return Abstain("no <answer> tag", 0.0)
        fmt = record.get("answer_format", "decimal")
        value = parse_value(answer, fmt)
        if value is None:
            return Abstain(f"answer does not parse as {fmt}", 0.0)
        mean = generation.mean_logprob()
        confidence = min(1.0, math.exp(mean)) if mean is not None else 1.0  # geometric-mean token probability
        shown = format_answer(value, fmt) if fmt in ("date", "weeks_days") else answer
        return Answer(shown, confidence=confidence)

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        return score_predictions(records, predictions)

    def rewards(self) -> list[RewardFn]:
        fns: list[RewardFn] = [format_reward, correctness_reward]
        if self.length_penalty_chars:
            fns.append(make_length_penalty(self.length_penalty_chars))
        return fns

    def grpo_example(self, record: Record) -> dict[str, Any]:
        # Only the flat columns the rewards read: nested "inputs" differ per calculator and would break Arrow.
        keep = ("id", "calculator", "output_type", "answer_format", "ground_truth", "lower_limit", "upper_limit")
        return {"prompt": self.prompt(record), **{k: str(record[k]) for k in keep if k in record}}

    def results_table(self, results: dict[str, dict[str, float]], title: str = "") -> Any:
        """One row per calculator and output type, one column per model: 45 calculators do not fit as columns."""
        from ehrforge.tasks.calc.score import breakdown_table

        return breakdown_table(results, title=title or "calc accuracy by calculator and output type")

    # --- training ---------------------------------------------------------------------------------------------------

    def ask_record(self, question: str, **context: Any) -> Record:
        """A free-text calculation request: the note and question; the calculator is read off the question."""
        return {"id": "ask", "question": question, "note": context.get("note", ""), "answer_format": "decimal"}
