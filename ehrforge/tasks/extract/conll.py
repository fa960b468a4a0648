"""IOB/CoNLL files ⇄ span JSONL, both ways, without losing a token or a tag.

A *span record* is the one shape the extract recipe works with::

    {"id": "ncbi-train-12", "text": "Germline mutations in BRCA1 ...",
     "tokens": [[0, 8], [9, 18], ...],                  # word offsets (optional; kept from CoNLL for round trips)
     "entities": [{"start": 22, "end": 27, "label": "Disease", "text": "BRCA1"}],
     "relations": [{"head": 0, "tail": 1, "type": "CID"}]}   # indices into ``entities``; absent = not annotated

Reading CoNLL joins the tokens with single spaces (so offsets are exact and the file round-trips byte for byte).
Records without ``tokens`` (synthetic text) are tokenized with :func:`word_offsets`, which also cuts words at entity
boundaries so that every span is a whole number of tokens.

IOB decoding follows conlleval: an ``I-X`` that does not continue an ``X`` entity starts a new one (the shared
NCBI-disease and BC5CDR files have none, so this only matters for model output).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.io import atomic_open
from ehrforge.errors import DataError

Record = dict[str, Any]
Span = tuple[int, int]

#: Words are runs of letters/digits, or single punctuation marks: close to the standoff2conll tokenization.
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_offsets(text: str, cut_points: Iterable[int] = ()) -> list[Span]:
    """Character offsets of the words of ``text``, also split at each of ``cut_points`` (entity boundaries).

    >>> word_offsets("5-FU induced cardiotoxicity.")
    [(0, 1), (1, 2), (2, 4), (5, 12), (13, 27), (27, 28)]
    >>> word_offsets("antiBRCA1", cut_points=[4])
    [(0, 4), (4, 9)]
    """
    cuts = sorted(set(cut_points))
    spans: list[Span] = []
    for m in _WORD.finditer(text):
        start, end = m.start(), m.end()
        for c in cuts:
            if start < c < end:
                spans.append((start, c))
                start = c
        spans.append((start, end))
    return spans


def record_words(record: Record) -> list[Span]:
    """The word offsets of a record: its stored ``tokens`` if any, else :func:`word_offsets` cut at its entities."""
    if record.get("tokens"):
        return [(int(s), int(e)) for s, e in record["tokens"]]
    cuts = [p for ent in record.get("entities", []) for p in (ent["start"], ent["end"])]
    return word_offsets(record["text"], cuts)


def iob_to_spans(words: Sequence[Span], tags: Sequence[str], text: str) -> list[dict[str, Any]]:
    """Entities (``start``, ``end``, ``label``, ``text``) from IOB tags over word offsets (conlleval decoding).

    >>> iob_to_spans([(0, 3), (4, 10), (11, 15)], ["B-Disease", "I-Disease", "O"], "von Hippel gene")
    [{'start': 0, 'end': 10, 'label': 'Disease', 'text': 'von Hippel'}]
    >>> [e['text'] for e in iob_to_spans([(0, 1), (2, 3)], ["I-Chemical", "I-Disease"], "a b")]
    ['a', 'b']
    """
    entities: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for (start, end), tag in zip(words, tags):
        prefix, _, label = tag.partition("-")
        if prefix == "I" and current is not None and current["label"] == label:
            current["end"] = end
            continue
        if current is not None:
            entities.append(current)
            current = None
        if prefix in ("B", "I") and label:
            current = {"start": start, "end": end, "label": label}
    if current is not None:
        entities.append(current)
    for ent in entities:
        ent["text"] = text[ent["start"] : ent["end"]]
    return entities


def spans_to_iob(words: Sequence[Span], entities: Sequence[dict[str, Any]], *, where: str = "record") -> list[str]:
    """IOB2 tags for words given entity spans. A span that does not start and end on word boundaries, or that
    overlaps another span, raises :class:`DataError` (IOB cannot express it; nothing is silently moved).

    >>> spans_to_iob([(0, 3), (4, 9), (10, 13)], [{"start": 4, "end": 13, "label": "Disease"}])
    ['O', 'B-Disease', 'I-Disease']
    """
    tags = ["O"] * len(words)
    starts = {s: i for i, (s, _) in enumerate(words)}
    ends = {e: i for i, (_, e) in enumerate(words)}
    for k, ent in enumerate(sorted(entities, key=lambda e: (e["start"], e["end"]))):
        first, last = starts.get(ent["start"]), ends.get(ent["end"])
        if first is None or last is None or last < first:
            raise DataError(
                f"entity {k} is not aligned to word boundaries ({where}, chars {ent['start']}-{ent['end']})",
                "give spans that start and end on whole words, or store the record's 'tokens'",
            )
        if any(t != "O" for t in tags[first : last + 1]):
            raise DataError(
                f"entity {k} overlaps another entity ({where}, chars {ent['start']}-{ent['end']})",
                "IOB cannot express nested or overlapping spans; keep one of them",
            )
        tags[first] = f"B-{ent['label']}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{ent['label']}"
    return tags


def tokens_to_record(tokens: Sequence[str], tags: Sequence[str], rec_id: str) -> Record:
    """One span record from a CoNLL sentence; the text is the tokens joined by single spaces."""
    words: list[Span] = []
    pos = 0
    for tok in tokens:
        words.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    text = " ".join(tokens)
    return {
        "id": rec_id,
        "text": text,
        "tokens": [list(w) for w in words],
        "entities": iob_to_spans(words, tags, text),
    }  # no "relations" key: IOB files carry no relation annotations (an empty list would claim "none here")


def read_conll(path: str | os.PathLike, *, id_prefix: str | None = None) -> list[Record]:
    """Read a CoNLL/IOB file (``token<TAB>tag`` per line, a blank line between sentences) as span records.

    A line with the wrong number of columns, a token containing whitespace, or a tag that is not ``O``/``B-X``/
    ``I-X`` raises :class:`DataError` naming the file and line (never its content).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path (CoNLL files are token<TAB>tag per line)")
    prefix = id_prefix if id_prefix is not None else path.stem
    records: list[Record] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            records.append(tokens_to_record(tokens, tags, f"{prefix}-{len(records)}"))
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                flush()
                continue
            if line.startswith("-DOCSTART-"):
                flush()
                continue
            cols = line.split("\t") if "\t" in line else line.split(" ")
            if len(cols) < 2 or not cols[0] or any(ch.isspace() for ch in cols[0]):
                raise DataError(f"malformed CoNLL line in {path.name} line {lineno}", "expected 'token<TAB>tag'")
            tag = cols[-1]
            if not (tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)):
                raise DataError(f"bad IOB tag in {path.name} line {lineno}", "tags must be O, B-<type> or I-<type>")
            tokens.append(cols[0])
            tags.append(tag)
    flush()
    return records


def conll_lines(record: Record) -> list[str]:
    """``token<TAB>tag`` lines for one span record (no trailing blank line)."""
    words = record_words(record)
    tags = spans_to_iob(words, record.get("entities", []), where=f"id={record.get('id', '?')}")
    text = record["text"]
    return [f"{text[s:e]}\t{t}" for (s, e), t in zip(words, tags)]


def write_conll(records: Iterable[Record], path: str | os.PathLike) -> Path:
    """Write span records as a CoNLL/IOB2 file (atomically). Relations are not representable in IOB and dropped."""
    with atomic_open(path) as fh:
        for rec in records:
            fh.write("\n".join(conll_lines(rec)) + "\n\n")
    return Path(path)


def check_spans(record: Record) -> list[str]:
    """Problems with a record's spans (empty list when valid): offsets inside the text, ``text`` equal to the
    slice it names, no overlaps, relation indices in range. Used on teacher output and on JSONL input."""
    problems: list[str] = []
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        return ["empty text"]
    ents = record.get("entities", [])
    if not isinstance(ents, list):
        return ["entities is not a list"]
    ranges: list[Span] = []
    for k, ent in enumerate(ents):
        if not isinstance(ent, dict):
            problems.append(f"entity {k} is not an object")
            continue
        s, e = ent.get("start"), ent.get("end")
        if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
            problems.append(f"entity {k} offsets out of range")
            continue
        if ent.get("text") is not None and text[s:e] != ent["text"]:
            problems.append(f"entity {k} text does not match its offsets")
        if not isinstance(ent.get("label"), str) or not ent["label"]:
            problems.append(f"entity {k} has no label")
        ranges.append((s, e))
    ranges.sort()
    if any(a[1] > b[0] for a, b in zip(ranges, ranges[1:])):
        problems.append("overlapping entities")
    for k, rel in enumerate(record.get("relations", []) or []):
        if not isinstance(rel, dict) or not all(isinstance(rel.get(x), int) and 0 <= rel[x] < len(ents) for x in ("head", "tail")):
            problems.append(f"relation {k} does not point at two entities")
    return problems
