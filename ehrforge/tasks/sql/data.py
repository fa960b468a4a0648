"""Load EHRSQL-2024-style questions: the official folder layout, the bundled subset, or a user's JSONL.

Records are ``{"id", "question", "sql"}`` where ``sql`` is the gold SQL (SQLite dialect, may use ``current_time``)
or the literal ``"null"`` for unanswerable questions; ``sql`` is absent for unlabelled questions.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

from ehrforge.core.io import load_json, read_jsonl
from ehrforge.core.types import ABSTAIN_TOKEN
from ehrforge.errors import DataError

SPLITS = ("train", "valid")


def bundled_subset() -> dict[str, list[dict[str, Any]]]:
    text = resources.files("ehrforge.tasks.sql.assets").joinpath("ehrsql_subset.json").read_text(encoding="utf-8")
    return json.loads(text)


def _validate(records: list[Any], where: str) -> list[dict[str, Any]]:
    out = []
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) or not rec.get("question", "").strip():
            raise DataError(f"record {i} of {where} has no 'question' string", "each record needs {'id', 'question'[, 'sql']}")
        sql = rec.get("sql")
        if sql is not None and not isinstance(sql, str):
            raise DataError(f"record {i} of {where}: 'sql' must be a string or \"null\"", "use \"null\" for unanswerable questions")
        out.append({"id": str(rec.get("id", f"q{i}")), "question": rec["question"].strip(), **({"sql": sql.strip()} if sql else {})})
    return out


def load_ehrsql_folder(folder: Path, split: str) -> list[dict[str, Any]]:
    """The official layout: ``<folder>/<split>/data.json`` (+ ``label.json`` when labelled)."""
    data = load_json(folder / split / "data.json", f"EHRSQL {split} questions")
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise DataError(f"{folder / split / 'data.json'} has no 'data' list", "expected the EHRSQL 2024 format")
    label_path = folder / split / "label.json"
    labels = load_json(label_path, f"EHRSQL {split} labels") if label_path.exists() else {}
    records = [{"id": it.get("id"), "question": it.get("question"), "sql": labels.get(it.get("id"))} for it in items]
    return _validate(records, str(folder / split))


def load_questions(split: str, source: str | None = None) -> list[dict[str, Any]]:
    """Questions of ``split`` from ``source`` (EHRSQL folder, JSON/JSONL file) or, by default, the bundled subset."""
    if source is None:
        subset = bundled_subset()
        if split not in subset:
            raise DataError(f"unknown split '{split}'", f"use one of: {', '.join(subset)}")
        return _validate(subset[split], "bundled subset")
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / split / "data.json").exists():
            return load_ehrsql_folder(path, split)
        raise DataError(f"no {split}/data.json under {path}", "point --data at an EHRSQL version folder (e.g. .../ehrsql2024/v1.0)")
    if path.suffix == ".jsonl":
        result = read_jsonl(path)
        if result.rejected_lines:
            raise DataError(f"{path}: malformed JSON on line {result.rejected_lines[0]}", "each line must be one JSON object")
        return _validate(result.records, str(path))
    if path.suffix == ".json":
        obj = load_json(path, "questions file")
        records = obj.get(split) if isinstance(obj, dict) else obj
        if not isinstance(records, list):
            raise DataError(f"{path} has no '{split}' list", "use {\"train\": [...], \"valid\": [...]} or a list of records")
        return _validate(records, str(path))
    raise DataError(f"cannot read questions from {path}", "use an EHRSQL folder, a .json or a .jsonl file")


def is_answerable(record: dict[str, Any]) -> bool:
    return record.get("sql", ABSTAIN_TOKEN) != ABSTAIN_TOKEN


def gold_queries(source: str | None = None) -> list[str]:
    """The gold SQL of every answerable train and valid question of ``source`` (default: the bundled subset): what
    the synthetic database is seeded from, so that each question has rows to find."""
    return [r["sql"] for split in SPLITS for r in load_questions(split, source) if is_answerable(r)]


def subsample(records: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """A deterministic subsample that keeps the unanswerable ratio (stratified)."""
    if limit is None or limit >= len(records):
        return list(records)
    rng = random.Random(seed)
    ans = [r for r in records if is_answerable(r)]
    unans = [r for r in records if not is_answerable(r)]
    k_unans = round(limit * len(unans) / len(records))
    picked = rng.sample(unans, min(k_unans, len(unans))) + rng.sample(ans, min(limit - k_unans, len(ans)))
    order = {id(r): i for i, r in enumerate(records)}
    return sorted(picked, key=lambda r: order[id(r)])


def split_three(records: list[dict[str, Any]], seed: int = 0) -> tuple[list, list, list]:
    """Partition valid questions into dev (tune the abstention threshold), test (report) and pool (unlabelled
    questions for self-training), so no question is used for two purposes."""
    rng = random.Random(seed)
    shuffled = list(records)
    rng.shuffle(shuffled)
    n = len(shuffled)
    return shuffled[: n // 3], shuffled[n // 3 : 2 * n // 3], shuffled[2 * n // 3 :]
