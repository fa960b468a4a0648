"""Teacher-written synthetic clinical text with entity spans and relations: prompt, validate, dedup, PHI-check.

The loop (:func:`synthesize`) asks any :class:`~ehrforge.core.backends.Backend` for one short note per prompt, in a
fixed JSON shape::

    {"text": "...", "entities": [{"text": "cisplatin", "label": "Chemical", "start": 14, "end": 23}, ...],
     "relations": [{"head": 0, "tail": 1, "type": "CID"}]}

Every generation is validated and either accepted whole or dropped with a counted reason; nothing is repaired.
Offsets, when given, must name exactly the entity text; when a teacher omits them, the mention is placed only if it
occurs exactly once in the text (``located`` is counted so this is visible). Diversity comes from rotating note
styles and topics; near-duplicates are removed with MinHash LSH over word 3-gram shingles. Accepted notes go through
the PHI check (:mod:`.phi`) and are dropped if it finds anything. Each attempt is written to a checkpoint as it
finishes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ehrforge.core.io import JsonlCheckpoint, atomic_write_json, atomic_write_jsonl, load_json
from ehrforge.core.progress import progress_bar
from ehrforge.core.types import Message
from ehrforge.errors import ConfigError, DataError
from ehrforge.tasks.extract.conll import check_spans
from ehrforge.core.phi import scan_phi

NOTE_STYLES = ("discharge summary", "radiology report", "progress note", "abstract")
TOPICS = (
    "cardiology", "oncology", "nephrology", "neurology", "hepatology", "psychiatry", "infectious disease",
    "rheumatology", "endocrinology", "haematology", "pulmonology", "gastroenterology", "dermatology",
    "obstetrics", "paediatrics", "anaesthesia", "toxicology", "geriatrics",
)
STYLE_HINTS = {
    "discharge summary": "a few sentences from a hospital discharge summary (hospital course, medications)",
    "radiology report": "a few lines of a radiology report (indication, findings, impression)",
    "progress note": "a few lines of a daily progress note (subjective, assessment, plan)",
    "abstract": "one or two sentences from a biomedical research abstract",
}
MAX_TEXT_CHARS = 1500


@dataclass(frozen=True)
class RelationSpec:
    """A directed relation type between two entity labels, e.g. chemical-induces-disease (BC5CDR's CID)."""

    name: str = "CID"
    head: str = "Chemical"
    tail: str = "Disease"
    description: str = "the chemical causes or induces the disease (an adverse effect, not a treatment)"


@dataclass
class SynthConfig:
    labels: list[str] = field(default_factory=lambda: ["Disease", "Chemical"])
    relation: RelationSpec | None = field(default_factory=RelationSpec)
    styles: list[str] = field(default_factory=lambda: list(NOTE_STYLES))
    topics: list[str] = field(default_factory=lambda: list(TOPICS))
    max_attempts: int = 0  # 0: 3 × n + 10
    batch_size: int = 8
    temperature: float = 0.8
    max_new_tokens: int = 320
    dedup_threshold: float = 0.8  # estimated Jaccard over word 3-grams above which a note is a near-duplicate
    drop_phi: bool = True

    def validate(self) -> None:
        problems = []
        if not self.labels:
            problems.append("labels: give at least one entity type")
        unknown = [s for s in self.styles if s not in NOTE_STYLES]
        if unknown:
            problems.append(f"styles: unknown {unknown} (known: {', '.join(NOTE_STYLES)})")
        if not self.topics:
            problems.append("topics: give at least one topic")
        if not 0 < self.dedup_threshold <= 1:
            problems.append("dedup_threshold: must be in (0, 1]")
        if self.batch_size < 1:
            problems.append("batch_size: must be >= 1")
        if self.relation is not None and not {self.relation.head, self.relation.tail} <= set(self.labels):
            problems.append(f"relation {self.relation.name}: needs labels {self.relation.head} and {self.relation.tail}")
        if problems:
            raise ConfigError(problems)


def teacher_prompt(
    style: str, topic: str, labels: Sequence[str], relation: RelationSpec | None, note_id: str = "0"
) -> list[Message]:
    """The chat messages asking a teacher for one synthetic note. The ``Field: value`` lines are also read by the
    template stand-in teacher, so keep their names stable. ``note_id`` makes every prompt distinct, so sampling
    teachers (and the template teacher) vary their output deterministically per attempt."""
    rel_lines = ""
    rel_schema = ""
    if relation is not None:
        rel_lines = f"Relation: {relation.name} ({relation.head} -> {relation.tail}: {relation.description})\n"
        rel_schema = (
            ', "relations": [{"head": <index of a ' + relation.head + ' entity>, "tail": <index of a '
            + relation.tail + ' entity>, "type": "' + relation.name + '"}]'
        )
    system = (
        "You write realistic but entirely fictional clinical text for training information-extraction models. "
        "Never include names, dates, record numbers, phone numbers, addresses or e-mail addresses."
    )
    user = (
        f"Write {STYLE_HINTS[style]} and annotate every mention of the requested entity types.\n"
        f"Note id: {note_id}\nNote style: {style}\nTopic: {topic}\nEntity types: {', '.join(labels)}\n{rel_lines}"
        "Answer with one JSON object only:\n"
        '{"text": "<the note>", "entities": [{"text": "<exact mention>", "label": "<type>", "start": <char offset>, '
        f'"end": <char offset>}}]{rel_schema}}}\n'
        "start/end are character offsets into text, end exclusive; text[start:end] must equal the mention."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a generation (teachers often wrap it in prose or code fences), or None.

    >>> extract_json_object('Sure! ```json\\n{"text": "x", "entities": []}\\n```')
    {'text': 'x', 'entities': []}
    >>> extract_json_object("no json here") is None
    True
    """
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def validate_note(raw: str, labels: Sequence[str], relation: RelationSpec | None) -> tuple[dict[str, Any] | None, str, int]:
    """Parse and check one teacher generation. Returns ``(note, "ok", n_located)`` or ``(None, reason, 0)``.

    >>> validate_note('{"text": "Aspirin caused ulcers.", "entities": [{"text": "Aspirin", "label": "Chemical", "start": 0, "end": 7}]}', ["Chemical"], None)[1]
    'ok'
    >>> validate_note('{"text": "Aspirin caused ulcers.", "entities": [{"text": "Aspirin", "label": "Chemical", "start": 1, "end": 8}]}', ["Chemical"], None)[1]
    'offset_mismatch'
    """
    obj = extract_json_object(raw)
    if obj is None:
        return None, "no_json", 0
    text = obj.get("text")
    ents = obj.get("entities")
    if not isinstance(text, str) or not text.strip() or not isinstance(ents, list):
        return None, "schema", 0
    if len(text) > MAX_TEXT_CHARS:
        return None, "too_long", 0
    entities: list[dict[str, Any]] = []
    located = 0
    for ent in ents:
        if not isinstance(ent, dict) or not isinstance(ent.get("text"), str) or not ent["text"]:
            return None, "schema", 0
        if ent.get("label") not in labels:
            return None, "unknown_label", 0
        start, end = ent.get("start"), ent.get("end")
        if start is None and end is None:
            hits = [m.start() for m in re.finditer(re.escape(ent["text"]), text)]
            if not hits:
                return None, "span_not_found", 0
            if len(hits) > 1:
                return None, "ambiguous_span", 0
            start, end = hits[0], hits[0] + len(ent["text"])
            located += 1
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            return None, "offset_mismatch", 0
        if text[start:end] != ent["text"]:
            return None, "offset_mismatch", 0
        entities.append({"start": start, "end": end, "label": ent["label"], "text": ent["text"]})
    relations: list[dict[str, Any]] = []
    for rel in obj.get("relations", []) or []:
        if relation is None:
            return None, "unexpected_relation", 0
        ok = isinstance(rel, dict) and all(isinstance(rel.get(k), int) and 0 <= rel[k] < len(entities) for k in ("head", "tail"))
        if not ok or rel.get("type", relation.name) != relation.name:
            return None, "bad_relation", 0
        if entities[rel["head"]]["label"] != relation.head or entities[rel["tail"]]["label"] != relation.tail:
            return None, "bad_relation", 0
        relations.append({"head": rel["head"], "tail": rel["tail"], "type": relation.name})
    note = {"text": text, "entities": entities, "relations": relations}
    problems = check_spans(note)
    if problems:
        return None, "overlap" if "overlapping entities" in problems else "schema", 0
    return note, "ok", located


def shingles(text: str, k: int = 3) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}


class NearDuplicateFilter:
    """Exact (normalised text hash) and near-duplicate (MinHash LSH, word 3-grams) detection."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 64) -> None:
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if threshold < 1 else None
        self.hashes: set[str] = set()

    def _sig(self, text: str) -> Any:
        m = self._minhash(num_perm=self.num_perm, seed=1)
        for s in shingles(text):
            m.update(s.encode("utf-8"))
        return m

    def check_and_add(self, key: str, text: str) -> str | None:
        """``"duplicate"``/``"near_duplicate"`` if ``text`` repeats an accepted one, else None (and remember it)."""
        digest = hashlib.sha1(" ".join(re.findall(r"\w+", text.lower())).encode()).hexdigest()
        if digest in self.hashes:
            return "duplicate"
        sig = self._sig(text) if self.lsh is not None else None
        if sig is not None and self.lsh.query(sig):
            return "near_duplicate"
        self.hashes.add(digest)
        if sig is not None:
            self.lsh.insert(key, sig)
        return None


def attempt_plan(i: int, cfg: SynthConfig, seed: int) -> tuple[str, str]:
    """Style and topic of attempt ``i``: styles rotate evenly, topics are drawn per attempt (reproducible)."""
    rng = random.Random(f"{seed}-{i}")
    return cfg.styles[i % len(cfg.styles)], rng.choice(cfg.topics)


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.jsonl")


def stats_path(out: Path) -> Path:
    return out.with_name(out.name + ".stats.json")


def synthesize(out: str | Path, *, teacher: Any, n: int, seed: int = 0, cfg: SynthConfig | None = None) -> dict[str, Any]:
    """Write ``n`` validated synthetic notes (span JSONL) to ``out``; return (and save beside it) the statistics.

    Stops early when ``cfg.max_attempts`` generations have been tried; the stats then show ``accepted < n``.
    """
    cfg = cfg or SynthConfig()
    cfg.validate()
    if n < 1:
        raise ConfigError(["n: must be >= 1"])
    out = Path(out)
    max_attempts = cfg.max_attempts or 3 * n + 10
    fingerprint = {"seed": seed, "labels": cfg.labels, "relation": asdict(cfg.relation) if cfg.relation else None,
                   "styles": cfg.styles, "topics": cfg.topics, "teacher": getattr(teacher, "name", type(teacher).__name__)}
    meta = out.with_name(out.name + ".checkpoint.json")
    ckpt_file = checkpoint_path(out)
    if ckpt_file.exists() and meta.exists() and load_json(meta, "checkpoint settings") != fingerprint:
        raise DataError(
            f"checkpoint {ckpt_file.name} was made with other settings (seed, labels, styles, topics or teacher)",
            "delete the checkpoint files beside the output, or write to another --out",
        )
    atomic_write_json(meta, fingerprint)
    dedup = NearDuplicateFilter(cfg.dedup_threshold)
    reasons: Counter[str] = Counter()
    accepted: list[dict[str, Any]] = []
    located = 0
    with JsonlCheckpoint(ckpt_file) as ckpt, progress_bar("synthesizing notes", total=n) as advance:
        # Replay finished attempts in order, so dedup state and counts are exactly those of an uninterrupted run.
        i = 0
        while i < max_attempts and f"a{i:06d}" in ckpt and len(accepted) < n:
            rec = ckpt.done[f"a{i:06d}"]
            if rec["status"] == "ok":
                dedup.check_and_add(rec["id"], rec["note"]["text"])
                accepted.append(rec["note"])
                located += rec.get("located", 0)
            else:
                reasons[rec["status"]] += 1
            i += 1
        advance(len(accepted))
        while len(accepted) < n and i < max_attempts:
            # Ask for a little more than is missing: most teachers get some notes wrong.
            ids = list(range(i, min(i + cfg.batch_size, max_attempts, i + 2 * (n - len(accepted)))))
            plans = [attempt_plan(j, cfg, seed) for j in ids]
            gens = teacher.generate(
                [teacher_prompt(style, topic, cfg.labels, cfg.relation, f"{seed}-{j}") for j, (style, topic) in zip(ids, plans)],
                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=seed + i,
            )
            for j, (style, topic), gen in zip(ids, plans, gens):
                if len(accepted) >= n:
                    break  # surplus generations are not recorded: a later run with a larger n redoes them
                key = f"a{j:06d}"
                note, status, n_loc = validate_note(gen.text, cfg.labels, cfg.relation)
                if note is not None and cfg.drop_phi and scan_phi(note["text"]):
                    note, status = None, "phi"
                if note is not None:
                    status = dedup.check_and_add(key, note["text"]) or "ok"
                if status == "ok":
                    note = {"id": f"synth-{seed}-{j}", **note, "style": style, "topic": topic}
                    accepted.append(note)
                    located += n_loc
                    ckpt.add({"id": key, "status": "ok", "note": note, "located": n_loc})
                    advance(1)
                else:
                    reasons[status] += 1
                    ckpt.add({"id": key, "status": status})  # the reason only: a rejected note may hold PHI
                i = j + 1
    atomic_write_jsonl(out, accepted[:n])
    stats = synthesis_stats(accepted[:n], attempts=i, rejected=reasons, located=located)
    stats["teacher"] = fingerprint["teacher"]
    atomic_write_json(stats_path(out), stats)
    return stats


def synthesis_stats(notes: Sequence[dict[str, Any]], *, attempts: int, rejected: Counter[str], located: int) -> dict[str, Any]:
    labels = Counter(e["label"] for r in notes for e in r["entities"])
    relations = Counter(rel["type"] for r in notes for rel in r.get("relations", []))
    return {
        "accepted": len(notes),
        "attempts": attempts,
        "acceptance_rate": round(len(notes) / attempts, 4) if attempts else 0.0,
        "rejected_by_reason": dict(sorted(rejected.items())),
        "spans_located_without_offsets": located,
        "label_distribution": dict(sorted(labels.items())),
        "relation_distribution": dict(sorted(relations.items())),
        "notes_without_entities": sum(1 for r in notes if not r["entities"]),
        "style_distribution": dict(sorted(Counter(r.get("style", "?") for r in notes).items())),
        "topic_distribution": dict(sorted(Counter(r.get("topic", "?") for r in notes).items())),
        "mean_chars": round(sum(len(r["text"]) for r in notes) / len(notes), 1) if notes else 0.0,
    }
