"""calc on real clinical notes: MedCalc-Bench's 55 one-shot exemplars (PMC case reports and short medication/date
notes, ``ehrforge/tasks/calc/data/real_exemplars.json``), scored with MedCalc-Bench's rules, per arm.

    python benchmarks/calc_real_notes.py --arm rules                          # the rule-based baseline (no model)
    python benchmarks/calc_real_notes.py --arm sft --model runs/calc-sft      # a trained student (+ its synthetic-test accuracy)
    python benchmarks/calc_real_notes.py --arm rules --data test_data.csv --predictions-out preds.jsonl

Arms: ``rules`` (regex/lexicon extraction, ``ehrforge.tasks.calc.rules``) and the model arms ``base``, ``sft``,
``sft+grpo`` (``--model PATH``: the calc task's own predict path, tool mode). Every arm's answer comes from the same
tool path (``CalcTask.parse`` runs the call). Writes ``benchmarks/results/calc_real_notes.json`` (with ``--data``:
``calc_real_notes_<csv stem>.json``; an existing file keeps its other arms): ``arms.<arm>.accuracy``,
``abstain_rate``, ``param_accuracy`` (share of the fixture's gold parameters extracted within 2 %, exemplars only),
each by output type, MedCalc-Bench category and group (score / lab / physical / date / dosage); the command, device
and wall time; and how far the template generator's synthetic notes sit from these real ones. Bad CSV rows go to a
rejects file by row number and reason (``medcalc_data``); the run exits 1 only when no row is usable. Logs and the
predictions JSONL never hold note text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.core.types import Abstain, Answer, Generation  # noqa: E402
from ehrforge.errors import DataError  # noqa: E402
from ehrforge.tasks.calc.calculators import BY_ID, CALCULATORS  # noqa: E402
from ehrforge.tasks.calc.medcalc_data import load_medcalc_csv  # noqa: E402
from ehrforge.tasks.calc.rewards import PARAM_RTOL  # noqa: E402
from ehrforge.tasks.calc.score import prediction_correct, score_predictions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIXTURE = ROOT / "ehrforge" / "tasks" / "calc" / "data" / "real_exemplars.json"
MODEL_ARMS = ("base", "sft", "sft+grpo")
ARMS = ("rules", *MODEL_ARMS)
#: MedCalc-Bench categories -> the coarse groups this benchmark reports (risk, severity and diagnosis are scores)
GROUPS = {"risk": "score", "severity": "score", "diagnosis": "score", "lab": "lab", "physical": "physical",
          "date": "date", "dosage": "dosage"}  # fmt: skip
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def load_fixture(path: Path = FIXTURE) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["exemplars"]


def param_matches(gold: dict[str, Any], got: Any) -> bool:
    """Whether an extracted canonical value matches one fixture gold parameter: numbers within 2 % (the tool
    rewards' tolerance), dates as MM/DD/YYYY, bools and options exactly (GCS scores compare as text).

    >>> param_matches({"kind": "numeric", "canonical": 5.09}, 5.1), param_matches({"kind": "numeric", "canonical": 68}, 70)
    (True, False)
    >>> param_matches({"kind": "bool", "value": False}, False), param_matches({"kind": "categorical", "value": "4"}, 4)
    (True, True)
    """
    if got is None:
        return False
    if gold["kind"] == "numeric":
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        return abs(float(got) - gold["canonical"]) <= max(PARAM_RTOL * abs(gold["canonical"]), 1e-6)
    if gold["kind"] == "date":
        text = got.strftime("%m/%d/%Y") if hasattr(got, "strftime") else str(got)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # evidence inputs carry ISO dates
            y, m, d = text.split("-")
            text = f"{m}/{d}/{y}"
        return text == gold["value"]
    if gold["kind"] == "bool":
        return isinstance(got, bool) and got == gold["value"]
    return str(got) == str(gold["value"])


def note_stats(notes: list[str]) -> dict[str, dict[str, float]]:
    """Characters and numbers per note: mean / median / max.

    >>> note_stats(["BP 120/80, HR 90.", "x"])["numbers_per_note"]
    {'mean': 1.5, 'median': 1.5, 'max': 3}
    """

    def summary(values: list[int]) -> dict[str, float]:
        return {"mean": round(statistics.fmean(values), 1), "median": statistics.median(values), "max": max(values)}

    return {
        "notes": len(notes),
        "chars_per_note": summary([len(n) for n in notes]),
        "numbers_per_note": summary([len(NUMBER.findall(n)) for n in notes]),
    }


def synthetic_notes(per_calculator: int = 4) -> list[str]:
    """Template-generator notes, ``per_calculator`` for each of the 55 calculators (fixed seeds)."""
    from ehrforge.tasks.calc.notes import make_item

    return [
        make_item(calc, random.Random(f"real-notes-{calc.key}-{i}"), "s")["note"]
        for calc in CALCULATORS.values()
        for i in range(per_calculator)
    ]


def rule_predictions(task: Any, records: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The rules' predictions through the student's parse path, and the canonical inputs each call gives."""
    from ehrforge.tasks.calc.rules import extracted_inputs, rule_call

    preds = [task.parse(Generation(rule_call(r)), r) for r in records]
    return preds, [extracted_inputs(r) for r in records]


def load_student(task: Any, model: str, batch_size: int) -> Any:
    from ehrforge.core.loader import LoadOptions, load_model

    return load_model(model, task, LoadOptions(batch_size=batch_size))


def model_predictions(task: Any, records: list[dict[str, Any]], backend: Any, batch_size: int) -> tuple[list, list]:
    """A model arm: the calc task's predict path (tool mode); inputs from each answer's evidence."""
    preds = task.predict(backend, records, batch_size=batch_size)
    return preds, [dict(p.evidence.get("inputs", {})) if isinstance(p, Answer) else {} for p in preds]


def synthetic_accuracy(task: Any, backend: Any, n: int, batch_size: int) -> dict[str, Any]:
    """The same student on ``n`` template notes of the synthetic test split (what ``calc_rlvr.json`` scores), so the
    synthetic-to-real drop is one number."""
    test = task.load("test", limit=n)
    preds, _ = model_predictions(task, test, backend, batch_size)
    return {"n": len(test), "accuracy": round(score_predictions(test, preds)["accuracy"], 4)}


def param_scores(records: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Parameter accuracy over the fixture's gold parameters, overall and by kind / output type / group."""
    from ehrforge.tasks.calc.tool import tool_schema

    hits: dict[str, list[bool]] = defaultdict(list)
    for record, got in zip(records, inputs):
        features = {p.name: p.feature for p in tool_schema(record["calculator"])}
        for name, gold in (record.get("gold_params") or {}).items():
            ok = param_matches(gold, got.get(features[name]))
            for key in ("all", f"kind/{gold['kind']}", f"output_type/{record['output_type']}",
                        f"group/{GROUPS[record['category']]}"):  # fmt: skip
                hits[key].append(ok)
    if not hits:
        return None
    return {key: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)} for key, v in sorted(hits.items())}


def arm_summary(records: list[dict[str, Any]], preds: list[Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = score_predictions(records, preds)
    by: dict[str, dict[str, list[Any]]] = {"output_type": defaultdict(list), "category": defaultdict(list),
                                          "group": defaultdict(list)}  # fmt: skip
    for record, pred in zip(records, preds):
        for field, key in (("output_type", record["output_type"]), ("category", record["category"]),
                           ("group", GROUPS[record["category"]])):  # fmt: skip
            by[field][key].append((record, pred))

    def cell(pairs: list[tuple[dict, Any]]) -> dict[str, float]:
        right = sum(prediction_correct(r, p) for r, p in pairs)
        abstained = sum(isinstance(p, Abstain) for _, p in pairs)
        return {"accuracy": round(right / len(pairs), 4), "abstain_rate": round(abstained / len(pairs), 4), "n": len(pairs)}

    params = param_scores(records, inputs)
    missing = Counter(
        name.strip()
        for p in preds
        if isinstance(p, Abstain) and "missing parameter" in p.reason
        for name in p.reason.split(":", 2)[-1].split(";")[0].split(",")
    )
    return {
        "n": len(records),
        "accuracy": round(metrics["accuracy"], 4),
        "abstain_rate": round(metrics["abstain_rate"], 4),
        "answered_accuracy": round(
            sum(prediction_correct(r, p) for r, p in zip(records, preds)) / max(1, sum(isinstance(p, Answer) for p in preds)), 4
        ),
        "param_accuracy": params["all"]["accuracy"] if params else None,
        "param_n": params["all"]["n"] if params else 0,
        "param_accuracy_by": {k: v for k, v in (params or {}).items() if k != "all"},
        **{f"by_{field}": {k: cell(v) for k, v in sorted(groups.items())} for field, groups in by.items()},
        "by_calculator": {r["calculator"]: bool(prediction_correct(r, p)) for r, p in zip(records, preds)}
        if len(records) <= 60 else {},
        "abstain_missing_params": dict(missing.most_common(15)),
        "abstain_other_reasons": dict(Counter(
            p.reason.split(": ", 1)[-1] for p in preds if isinstance(p, Abstain) and "missing parameter" not in p.reason
        ).most_common(10)),
    }  # fmt: skip


def prediction_rows(arm: str, records: list[dict], preds: list, inputs: list[dict]) -> list[dict[str, Any]]:
    """One JSONL row per record: ids, answer or abstention reason, gold, correctness, parameter hits (no note text)."""
    from ehrforge.tasks.calc.tool import tool_schema

    rows = []
    for record, pred, got in zip(records, preds, inputs):
        gold_params = record.get("gold_params") or {}
        features = {p.name: p.feature for p in tool_schema(record["calculator"])}
        rows.append({
            "arm": arm, "id": record["id"], "calculator": record["calculator"],
            "abstained": isinstance(pred, Abstain),
            "prediction": None if isinstance(pred, Abstain) else pred.value,
            "reason": pred.reason if isinstance(pred, Abstain) else None,
            "gold": record["ground_truth"], "correct": bool(prediction_correct(record, pred)),
            "params_right": sorted(n for n, g in gold_params.items() if param_matches(g, got.get(features[n]))),
            "params_wrong": sorted(n for n, g in gold_params.items() if not param_matches(g, got.get(features[n]))),
        })  # fmt: skip
    return rows


def rule_reading_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """How the rules found their values (stated unit, unit by magnitude, keyword, negated keyword, default)."""
    from ehrforge.tasks.calc.rules import read_note

    return dict(Counter(reading.how for r in records for reading in read_note(r).values()).most_common())


def load_records(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records to score and a description of where they came from (rejects included)."""
    if args.data is None:
        return load_fixture(args.fixture), {"source": str(args.fixture.relative_to(ROOT)) if args.fixture.is_relative_to(ROOT) else str(args.fixture)}
    data = Path(args.data)
    rejects = Path(args.rejects) if args.rejects else data.with_name(data.name + ".rejects.csv")
    bad: list[tuple[int, str]] = []
    records = load_medcalc_csv(data, set(BY_ID), rejects, bad_rows=bad)
    return records, {
        "source": str(data), "rows_usable": len(records), "rows_rejected": len(bad),
        "rejects_file": str(rejects) if bad else None,
        "rejected": [{"row": n, "reason": reason} for n, reason in bad[:200]],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", default="rules", choices=ARMS)
    ap.add_argument("--model", default=None, help="model arms: a trained folder, bundled, or a HF folder")
    ap.add_argument("--data", default=None, help="a MedCalc-Bench-format CSV instead of the 55 exemplars")
    ap.add_argument("--fixture", type=Path, default=FIXTURE, help=argparse.SUPPRESS)
    ap.add_argument("--rejects", default=None, help="where bad CSV rows go (default: <data>.rejects.csv)")
    ap.add_argument("--predictions-out", default=None, help="per-row predictions as JSONL (no note text)")
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default: benchmarks/results/calc_real_notes*.json)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--synthetic-n", type=int, default=110,
                    help="model arms: also score this many synthetic test notes (0: skip)")
    args = ap.parse_args(argv)
    if args.arm in MODEL_ARMS and not args.model:
        ap.error(f"--arm {args.arm} needs --model PATH (a model folder, e.g. runs/calc-sft)")
    start = time.perf_counter()
    try:
        records, source = load_records(args)
    except DataError as exc:
        print(f"calc_real_notes: {exc}", file=sys.stderr)
        return 1
    if not records:
        print(f"calc_real_notes: no usable row in {source['source']} (rejects: {source.get('rejects_file')})", file=sys.stderr)
        return 1

    from ehrforge.tasks.calc.task import CalcTask

    task = CalcTask(mode="tool")
    if args.arm == "rules":
        preds, inputs = rule_predictions(task, records)
    else:
        backend = load_student(task, args.model, args.batch_size)
        preds, inputs = model_predictions(task, records, backend, args.batch_size)
    entry = arm_summary(records, preds, inputs)
    if args.arm in MODEL_ARMS and args.synthetic_n and args.data is None:
        entry["synthetic_test"] = synthetic_accuracy(task, backend, args.synthetic_n, args.batch_size)
        entry["synthetic_to_real_drop"] = round(entry["synthetic_test"]["accuracy"] - entry["accuracy"], 4)
    if args.arm == "rules":
        entry["readings_by_how"] = rule_reading_counts(records)
    if args.predictions_out:
        with open(args.predictions_out, "w", encoding="utf-8") as fh:
            for row in prediction_rows(args.arm, records, preds, inputs):
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    from benchmarks._env import device_info

    command = "python " + " ".join(["benchmarks/calc_real_notes.py", *(argv if argv is not None else sys.argv[1:])])
    entry.update(command=command, model=args.model, wall_s=round(time.perf_counter() - start, 2), device=device_info())
    out = args.out or RESULTS / ("calc_real_notes.json" if args.data is None else f"calc_real_notes_{Path(args.data).stem}.json")
    previous = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    arms = previous.get("arms", {}) if previous.get("data", {}).get("source") == source["source"] else {}
    result = {
        "benchmark": "calc_real_notes",
        "command": command,
        "data": source,
        "scoring": "MedCalc-Bench rules (ehrforge/tasks/calc/score.py); an abstention counts wrong; param_accuracy: "
        "gold parameters of the fixture (upstream input_parameters) matched within 2 % after unit conversion",
        "arms": {**arms, args.arm: entry},
        "notes_real_vs_synthetic": {
            "real": note_stats([r["note"] for r in records]),
            "synthetic": note_stats(synthetic_notes()),
        },
        "wall_s": entry["wall_s"],
        "device": entry["device"],
    }
    atomic_write_json(out, result)
    summary = {k: entry[k] for k in ("n", "accuracy", "abstain_rate", "param_accuracy", "wall_s")}
    print(json.dumps({"arm": args.arm, **summary, "out": str(out)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
