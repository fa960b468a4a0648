"""Real MedCalc-Bench data for evaluation: the official one-shot exemplars and any MedCalc-Bench-format CSV
(``Calculator ID``, ``Patient Note``, ``Question``, ``Ground Truth Answer``, ``Lower Limit``, ``Upper Limit``, …).

Bad CSV rows never stop an evaluation: each is reported by its row number (the file's line, header = 1) with a
reason, and copied with that reason into a rejects CSV beside the input. Reasons never quote the note.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from ehrforge.core.io import load_json
from ehrforge.errors import DataError
from ehrforge.tasks.calc.calculators import BY_ID, Calculator, format_answer
from ehrforge.tasks.calc.score import parse_value

log = logging.getLogger("ehrforge.calc")
EXEMPLAR_FILE = "one_shot_finalized_explanation.json"
CSV_COLUMNS = ("Calculator ID", "Patient Note", "Question", "Ground Truth Answer")
MAX_NOTE_CHARS = 20_000  # MedCalc-Bench notes run to ~10k characters; beyond this a row is not a note


def limits(gold: str, answer_format: str, lower: Any = None, upper: Any = None) -> tuple[str, str]:
    """The accepted range: the given limits, or ±5 % of a decimal gold (MedCalc-Bench's rule); exact otherwise."""
    if answer_format != "decimal":
        return gold, gold
    if lower not in (None, "") and upper not in (None, ""):
        return str(lower), str(upper)
    a, b = float(gold) * 0.95, float(gold) * 1.05
    return f"{min(a, b):.6g}", f"{max(a, b):.6g}"


def medcalc_record(calc: Calculator, rid: str, note: str, question: str, gold: str, source: str, **extra: Any) -> dict:
    lower, upper = limits(gold, calc.answer_format, extra.pop("lower", None), extra.pop("upper", None))
    return {
        "id": rid,
        "calculator": calc.key,
        "calculator_id": calc.id,
        "calculator_name": calc.name,
        "category": calc.category,
        "output_type": calc.output_type,
        "answer_format": calc.answer_format,
        "note": note,
        "question": question,
        "ground_truth": gold,
        "lower_limit": lower,
        "upper_limit": upper,
        "source": source,
        **extra,
    }


def normalise_gold(raw: Any, calc: Calculator) -> str | None:
    """The ground truth as ehrforge writes it ("(34, 3)", "03/04/2021", "12.5"), or None when it does not parse."""
    text = " ".join(map(str, raw)) if isinstance(raw, (list, tuple)) else str(raw)
    value = parse_value(text, calc.answer_format)
    if value is None:
        return None
    return format_answer(value, calc.answer_format) if calc.answer_format in ("date", "weeks_days") else text.strip()


def load_exemplars(folder: Path, wanted: set[int]) -> list[dict]:
    """MedCalc-Bench one-shot exemplars for the wanted calculator ids (evaluation only: 9 overlap the test set)."""
    path = folder / EXEMPLAR_FILE if folder.is_dir() or not folder.suffix else folder
    if not path.exists():
        raise DataError(
            f"MedCalc-Bench exemplars not found: {path}",
            f"pass --data <folder with {EXEMPLAR_FILE}> (from github.com/ncbi-nlp/MedCalc-Bench, CC BY-SA 4.0)",
        )
    data = load_json(path, "MedCalc-Bench exemplar file")
    records = []
    for cid, ex in sorted(data.items(), key=lambda kv: int(kv[0])):
        if int(cid) not in wanted:
            continue
        calc = BY_ID[int(cid)]
        response = json.loads(ex["Response"]) if isinstance(ex["Response"], str) else ex["Response"]
        gold = normalise_gold(response["answer"], calc)
        if gold is None:
            continue
        question = calc.question
        if "{" in question:  # the steroid question names drugs: take them from the exemplar's own inputs
            params = ex.get("input_parameters", {})
            question = question.format(
                input_steroid=params.get("input steroid", ["the input steroid"])[0],
                target_steroid=params.get("target steroid", "the target steroid"),
            )
        records.append(
            medcalc_record(
                calc,
                f"medcalc-exemplar-{cid}",
                ex["Patient Note"],
                question,
                gold,
                "medcalc-bench-exemplar",
                reasoning=response.get("step_by_step_thinking", ""),
            )
        )
    return records


def _row_problem(row: dict[str, str], wanted: set[int]) -> tuple[str | None, Calculator | None, str | None]:
    """(problem, calculator, normalised gold) for one CSV row."""
    cid = str(row.get("Calculator ID") or "").strip()
    if not cid.isdigit() or int(cid) not in BY_ID:
        return "unknown or missing Calculator ID", None, None
    if int(cid) not in wanted:
        return None, None, None  # a calculator not selected: skipped silently, not a bad row
    calc = BY_ID[int(cid)]
    note = row.get("Patient Note") or ""
    if not note.strip():
        return "empty Patient Note", None, None
    if len(note) > MAX_NOTE_CHARS:
        return f"Patient Note longer than {MAX_NOTE_CHARS} characters", None, None
    if not (row.get("Question") or "").strip():
        return "empty Question", None, None
    gold = normalise_gold(row.get("Ground Truth Answer") or "", calc)
    if gold is None:
        return f"Ground Truth Answer does not parse as {calc.answer_format}", None, None
    if calc.answer_format == "decimal":
        for col in ("Lower Limit", "Upper Limit"):
            text = (row.get(col) or "").strip()
            if text and parse_value(text, "decimal") is None:
                return f"{col} is not a number", None, None
    return None, calc, gold


def load_medcalc_csv(
    path: Path, wanted: set[int], rejects: Path | None = None, *, bad_rows: list[tuple[int, str]] | None = None
) -> list[dict]:
    """Records from a MedCalc-Bench-format CSV. Missing required columns are a DataError; bad rows are skipped,
    reported by row number and written to ``rejects`` (default ``<file>.rejects.csv``); a caller that records them
    (a benchmark's JSON) passes ``bad_rows`` to receive each (row number, reason)."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}", "pass a MedCalc-Bench CSV file") from None
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    records: list[dict] = []
    bad: list[tuple[int, str, dict[str, str]]] = []
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError):
            header = []
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{path} lacks MedCalc-Bench columns: {', '.join(missing)}",
                "a MedCalc-Bench CSV has Calculator ID, Patient Note, Question, Ground Truth Answer, Lower Limit, Upper Limit",
            )
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                bad.append((reader.line_num, f"unreadable row ({type(exc).__name__})", {}))
                continue
            problem, calc, gold = _row_problem(row, wanted)
            if problem:
                bad.append((reader.line_num, problem, row))
            elif calc is not None:
                n = len(records)
                rid = str(row.get("Row Number") or row.get("Note ID") or f"row-{reader.line_num}")
                records.append(
                    medcalc_record(
                        calc,
                        f"medcalc-{rid}-{n}",
                        row["Patient Note"],
                        row["Question"].strip(),
                        gold,
                        "medcalc-bench-csv",
                        lower=(row.get("Lower Limit") or "").strip(),
                        upper=(row.get("Upper Limit") or "").strip(),
                    )
                )
    if bad_rows is not None:
        bad_rows.extend((n, reason) for n, reason, _ in bad)
    if bad:
        where = _write_rejects(path, rejects, header, bad)
        shown = ", ".join(str(n) for n, _, _ in bad[:20]) + (" …" if len(bad) > 20 else "")
        reasons = sorted({reason for _, reason, _ in bad})
        log.warning(
            "%s: skipped %d bad rows (rows %s): %s; written to %s",
            path.name,
            len(bad),
            shown,
            "; ".join(reasons),
            where,
        )
    return records


def _write_rejects(path: Path, rejects: Path | None, header: list[str], bad: list) -> Path:
    target = rejects or path.with_name(path.name + ".rejects.csv")
    for candidate in (target, Path(tempfile.gettempdir()) / target.name):
        try:
            with candidate.open("w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=["row", "reason", *header], extrasaction="ignore")
                writer.writeheader()
                for n, reason, row in bad:
                    writer.writerow({"row": n, "reason": reason, **{k: v for k, v in row.items() if k in header}})
            return candidate
        except OSError:
            continue
    return target
