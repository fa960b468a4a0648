"""The ``extract`` recipe: teacher-written synthetic clinical text → a local NER + relation-extraction student.

* ``synthesize``: a teacher (any backend; by default the local template stand-in) writes notes with spans and
  chemical-induces-disease relations, validated, deduplicated and PHI-checked (:mod:`.synth`).
* ``train``: fine-tunes the packaged MiniLM encoder for NER and a relation classifier (:mod:`.extractor`), or, with
  ``student="decoder"``, LoRA-fine-tunes a causal LM on the JSON answers (core SFT).
* ``predict``/``score``: generative extraction (prompt → JSON → spans) or the trained encoder, scored with strict
  entity-level P/R/F1 (``entity_f1``) and relation F1 (``relation_f1``) when relations exist.

Options (``get_task("extract", **options)``; CLI ``--set task_options.key=value``): ``dataset`` (``bc5cdr``, ``ncbi_disease`` or
``sample``), ``entities`` (``Disease,Chemical``), ``relation`` (``CID`` or ``none``), ``data_dir`` (folder holding
the corpora; default ``$EHRFORGE_DATA`` or ``../shared/data``), ``lexicon`` (CoNLL file(s) for the template
teacher), ``student`` (``encoder``/``decoder``), ``encoder`` (an encoder folder to fine-tune instead of MiniLM).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from ehrforge.core.types import Abstain, Answer, Generation, Message, Prediction
from ehrforge.errors import ConfigError, DataError, closest
from ehrforge.core.contract import Capability, Record, RewardFn, Task, TaskOptions
from ehrforge.core.training import train_core
from ehrforge.tasks.extract.conll import check_spans, read_conll
from ehrforge.tasks.extract.score import score_extraction
from ehrforge.tasks.extract.synth import RelationSpec, SynthConfig, extract_json_object

DATASETS = {
    # name -> (folder under the data root, entity types in the files)
    "bc5cdr": ("bc5cdr", ["Chemical", "Disease"]),
    "ncbi_disease": ("ncbi_disease", ["Disease"]),
    "sample": ("", ["Chemical", "Disease"]),  # a small BC5CDR excerpt bundled in the package (CC BY 4.0)
}
SPLIT_FILES = {"train": "train.tsv", "valid": "devel.tsv", "devel": "devel.tsv", "dev": "devel.tsv"}
SAMPLE_DIR = Path(__file__).with_name("data")
ENCODER_MODEL_TYPES = {"bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet"}


def as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s.strip()]


def data_root(explicit: str | os.PathLike | None) -> Path | None:
    """Where the corpora live: the ``data_dir`` option, ``$EHRFORGE_DATA``, or ``shared/data`` beside the repo."""
    candidates = [explicit, os.environ.get("EHRFORGE_DATA"), Path(__file__).resolve().parents[4] / "shared" / "data",
                  Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def locate_mentions(text: str, mentions: Sequence[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Spans for generated (mention, label) pairs: every whole-word occurrence in ``text``, longest mentions first,
    never overlapping an already placed span. Returns the entities (in text order) and, per input mention, the
    indices of its placed spans (for mapping relations).

    >>> ents, where = locate_mentions("Aspirin and aspirin overdose", [("aspirin overdose", "Disease"), ("Aspirin", "Chemical")])
    >>> [(e["text"], e["label"]) for e in ents], where
    ([('Aspirin', 'Chemical'), ('aspirin overdose', 'Disease')], [[1], [0]])
    """
    placed: list[tuple[int, int, str, int]] = []
    order = sorted(range(len(mentions)), key=lambda k: -len(mentions[k][0]))
    for k in order:
        mention, label = mentions[k]
        if not mention.strip():
            continue
        for m in re.finditer(r"(?<!\w)" + re.escape(mention) + r"(?!\w)", text):
            if all(m.end() <= s or m.start() >= e for s, e, _, _ in placed):
                placed.append((m.start(), m.end(), label, k))
    placed.sort()
    entities = [{"start": s, "end": e, "label": lab, "text": text[s:e]} for s, e, lab, _ in placed]
    where: list[list[int]] = [[] for _ in mentions]
    for idx, (_, _, _, k) in enumerate(placed):
        where[k].append(idx)
    return entities, where


def parse_answer_json(text: str, record_text: str, labels: Sequence[str], relation: RelationSpec | None) -> dict[str, Any] | None:
    """Entities (and relations) from a generated ``{"entities": [{"text", "label"}], "relations": [...]}`` answer;
    None when there is no usable JSON. Mentions of unknown types or absent from the text are dropped (counted)."""
    obj = extract_json_object(text)
    if obj is None or not isinstance(obj.get("entities"), list):
        return None
    mentions: list[tuple[str, str]] = []
    dropped = 0
    for ent in obj["entities"]:
        if isinstance(ent, dict) and isinstance(ent.get("text"), str) and ent.get("label") in labels:
            mentions.append((ent["text"], ent["label"]))
        else:
            dropped += 1
            mentions.append(("", ""))  # keep indices aligned for relations
    entities, where = locate_mentions(record_text, mentions)
    dropped += sum(1 for (m, _), w in zip(mentions, where) if m and not w)
    relations = []
    if relation is not None:
        for rel in obj.get("relations", []) or []:
            if not isinstance(rel, dict):
                continue
            h, t = rel.get("head"), rel.get("tail")
            if isinstance(h, int) and isinstance(t, int) and 0 <= h < len(where) and 0 <= t < len(where) and where[h] and where[t]:
                head, tail = where[h][0], where[t][0]
                if entities[head]["label"] == relation.head and entities[tail]["label"] == relation.tail:
                    relations.append({"head": head, "tail": tail, "type": relation.name})
    return {"entities": entities, "relations": relations, "dropped_mentions": dropped}


def completion_text(completion: Any) -> str:
    """TRL passes chat completions as ``[{"role": "assistant", "content": ...}]``; plain strings also work."""
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return str(completion[0].get("content", ""))
    return str(completion)


def entity_f1_reward(completions: list[Any], text: list[str], entities: list[list[dict[str, Any]]], **_: Any) -> list[float]:
    """Strict entity F1 of each completion against its record's gold entities (0 when the JSON is unusable).

    >>> gold = [{"start": 0, "end": 7, "label": "Chemical"}]
    >>> entity_f1_reward(['{"entities": [{"text": "Cocaine", "label": "Chemical"}]}', "oops"], ["Cocaine use", "Cocaine use"], [gold, gold])
    [1.0, 0.0]
    """
    labels = sorted({e["label"] for ents in entities for e in ents} | {"Chemical", "Disease"})
    scores = []
    for comp, t, gold in zip(completions, text, entities):
        parsed = parse_answer_json(completion_text(comp), t, labels, None)
        if parsed is None:
            scores.append(0.0)
            continue
        if not gold and not parsed["entities"]:
            scores.append(1.0)  # correctly found nothing
            continue
        scores.append(score_extraction([{"entities": gold}], [parsed])["entity_f1"])
    return scores


def json_format_reward(completions: list[Any], **_: Any) -> list[float]:
    """1.0 when the completion is one JSON object with an ``entities`` list, else 0.0.

    >>> json_format_reward([[{"role": "assistant", "content": '{"entities": []}'}], "entities: none"])
    [1.0, 0.0]
    """
    out = []
    for comp in completions:
        obj = extract_json_object(completion_text(comp))
        out.append(1.0 if obj is not None and isinstance(obj.get("entities"), list) else 0.0)
    return out


class ExtractOptions(TaskOptions):
    #: bc5cdr, ncbi_disease, or the bundled 'sample' (a slice of BC5CDR train)
    dataset: str = "bc5cdr"
    #: entity types, e.g. Disease,Chemical; None = the dataset's own
    entities: list[str] | None = None
    #: relation type between entities (CID: chemical-induced disease), or none
    relation: str = "CID"
    #: the folder holding bc5cdr/ and ncbi_disease/ (default: ../shared/data or $EHRFORGE_DATA)
    data_dir: str | None = None
    #: span files the built-in template teacher draws names from (default: the train split)
    lexicon: list[str] | None = None
    #: encoder (token classification, MiniLM) or decoder (the causal LM writes JSON)
    student: Literal["encoder", "decoder"] = "encoder"
    #: an encoder folder to fine-tune instead of the packaged MiniLM
    encoder: str | None = None

    @field_validator("entities", "lexicon", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return as_list(value) or None

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in DATASETS:
            raise ValueError(f"unknown '{value}' ({closest(value, list(DATASETS))})")
        return value


class ExtractTask(Task):
    name = "extract"
    summary = "synthetic clinical text from a teacher → local NER + relation extraction (strict entity F1)"
    metric = "entity_f1"
    default_max_new_tokens = 160
    Options = ExtractOptions
    capabilities = frozenset({Capability.SYNTH, Capability.CUSTOM_TRAINING, Capability.PREDICTOR})
    training_stages = ("sft",)

    def setup(self) -> None:
        o = self.options
        self.entities = list(o.entities or DATASETS[o.dataset][1])
        spec = RelationSpec(name=o.relation) if o.relation and o.relation.lower() != "none" else None
        self.relation: RelationSpec | None = spec if spec and {spec.head, spec.tail} <= set(self.entities) else None
        self.lexicon = list(o.lexicon or [])

    # ---- data ---------------------------------------------------------------------------------------------------
    def split_path(self, split: str) -> Path:
        if split == "test":
            raise DataError("the test splits of NCBI-disease and BC5CDR are held out", "evaluate on 'valid', or pass --data FILE")
        if split not in SPLIT_FILES:
            raise DataError(f"unknown split '{split}'", f"use one of: {', '.join(SPLIT_FILES)}")
        if self.dataset == "sample":
            return SAMPLE_DIR / f"bc5cdr_sample_{SPLIT_FILES[split].replace('.tsv', '.jsonl')}"
        root = data_root(self.data_dir)
        if root is None:
            raise DataError(f"cannot find the {self.dataset} corpus folder",
                            "pass --set task_options.data_dir=DIR (the folder holding bc5cdr/ and ncbi_disease/), "
                            "set EHRFORGE_DATA, or use --set task_options.dataset=sample")
        return root / DATASETS[self.dataset][0] / SPLIT_FILES[split]

    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        path = Path(source) if source else self.split_path(split)
        records = read_span_file(path)
        wanted = set(self.entities)
        for rec in records:
            kept = {i: len([e for e in rec["entities"][:i] if e["label"] in wanted])
                    for i, e in enumerate(rec.get("entities", [])) if e["label"] in wanted}
            rec["entities"] = [e for e in rec.get("entities", []) if e["label"] in wanted]
            if "relations" in rec:
                # Keep relations whose two entities survived the type filter, with indices remapped.
                rec["relations"] = [{**r, "head": kept[r["head"]], "tail": kept[r["tail"]]}
                                    for r in rec["relations"] if r["head"] in kept and r["tail"] in kept]
        if limit is not None and limit < len(records):
            keep = sorted(random.Random(seed).sample(range(len(records)), limit))
            records = [records[i] for i in keep]
        return records

    # ---- generative extraction ----------------------------------------------------------------------------------
    def prompt(self, record: Record) -> list[Message]:
        rel = ""
        if self.relation is not None:
            rel = (f', "relations": [{{"head": <index of a {self.relation.head}>, "tail": <index of a '
                   f'{self.relation.tail}>, "type": "{self.relation.name}"}}]')
        user = (
            f"Find every mention of these entity types: {', '.join(self.entities)}.\n"
            + (f"Relation {self.relation.name}: {self.relation.description}.\n" if self.relation else "")
            + f"Text: {record['text']}\n"
            + 'Answer with JSON only: {"entities": [{"text": "<exact mention>", "label": "<type>"}]' + rel + "}"
        )
        return [{"role": "system", "content": "You extract named entities from clinical and biomedical text."},
                {"role": "user", "content": user}]

    def target(self, record: Record) -> str:
        ents = sorted(record.get("entities", []), key=lambda e: e["start"])
        index = {id(e): i for i, e in enumerate(ents)}
        answer: dict[str, Any] = {"entities": [{"text": e["text"], "label": e["label"]} for e in ents]}
        if self.relation is not None and "relations" in record:
            orig = record.get("entities", [])
            answer["relations"] = [{"head": index[id(orig[r["head"]])], "tail": index[id(orig[r["tail"]])], "type": r["type"]}
                                   for r in record["relations"]]
        return json.dumps(answer, ensure_ascii=False)

    def parse(self, generation: Generation, record: Record) -> Prediction:
        parsed = parse_answer_json(generation.text, record["text"], self.entities, self.relation)
        if parsed is None:
            return Abstain("no JSON entity list in the answer", 0.0)
        lp = generation.mean_logprob()
        confidence = math.exp(lp) if lp is not None else 1.0
        dropped = parsed.pop("dropped_mentions")
        return Answer(parsed, confidence=confidence, evidence={"dropped_mentions": dropped})

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        return score_extraction(records, predictions)

    def rewards(self) -> list[RewardFn]:
        return [entity_f1_reward, json_format_reward]

    def predict(self, backend: Any, records: Sequence[Record], *, batch_size: int = 8, progress: Any = None) -> list[Prediction]:
        from ehrforge.tasks.extract.extractor import EncoderExtractor

        if isinstance(backend, EncoderExtractor):
            return backend.predict(records, batch_size=max(batch_size, 32), progress=progress)
        return super().predict(backend, records, batch_size=batch_size, progress=progress)

    def ask(self, backend: Any, question: str, **context: Any) -> dict[str, Any]:
        """Extract entities (and relations) from one free text (CLI ``ask``, server ``/v1/extract/ask``)."""
        from ehrforge.core.contract import reply_from_prediction

        refused = self.unanswerable_input(question, **context)
        if refused is not None:
            return reply_from_prediction(refused)
        record = {"id": "ask", "text": question, "entities": [], **context}
        return reply_from_prediction(self.predict(backend, [record], batch_size=1)[0])

    # ---- training and synthesis ---------------------------------------------------------------------------------
    def train(self, records: Sequence[Record], base_model: str | None, out_dir: str | os.PathLike, cfg: Any = None,
              *, stage: str = "sft") -> Path:
        if self.student == "decoder":
            return train_core(self, records, base_model or "bundled", out_dir, cfg, stage=stage)
        from ehrforge.core.io import atomic_write_json
        from ehrforge.core.loader import MANIFEST, model_card
        from ehrforge.tasks.extract.extractor import train_extractor

        out = train_extractor(records, out_dir, entity_labels=self.entities, relation=self.relation,
                              cfg=encoder_config_from(cfg), base=self.encoder_base(base_model))
        atomic_write_json(out / MANIFEST, model_card(self, "ehrforge.tasks.extract.extractor:EncoderExtractor"))
        return out

    def stages(self) -> tuple[str, ...]:
        return ("sft", "grpo") if self.student == "decoder" else ("sft",)

    def encoder_base(self, base_model: str | None) -> str | None:
        """The encoder to fine-tune: the ``encoder`` option, an encoder folder given as base model, else MiniLM."""
        if self.encoder:
            return self.encoder
        if base_model in (None, "", "bundled", "encoder", "minilm"):
            return None
        config = Path(str(base_model)) / "config.json"
        if config.exists() and json.loads(config.read_text()).get("model_type") in ENCODER_MODEL_TYPES:
            return str(base_model)
        raise ConfigError([f"base model '{base_model}' is not an encoder folder (BERT-like config.json)"],
                          "omit it to fine-tune the packaged MiniLM encoder, or use --set task_options.student=decoder for a causal LM")

    def synthesize(self, out: Path, *, n: int, teacher: Any = None, seed: int = 0) -> dict[str, Any]:
        from ehrforge.tasks.extract.synth import synthesize
        from ehrforge.tasks.extract.template_teacher import TemplateTeacher

        lexicon_source = None
        if teacher is None:
            # The local stand-in teacher; its names come from the *train* split only, never the evaluation data.
            sources = self.lexicon or [str(self.lexicon_train_file())]
            lexicon_source = ", ".join(Path(s).name for s in sources)
            teacher = TemplateTeacher.from_records([r for s in sources for r in read_span_file(Path(s))], seed=seed)
        cfg = SynthConfig(labels=list(self.entities), relation=self.relation)
        stats = synthesize(out, teacher=teacher, n=n, seed=seed, cfg=cfg)
        if lexicon_source:
            stats["lexicon_from"] = lexicon_source
        return stats

    def lexicon_train_file(self) -> Path:
        """The train split the template teacher draws names from; on a machine without the corpora (a user's laptop
        has no ../shared/data) the bundled BC5CDR sample's train part, so `ehrforge synth` works out of the box."""
        if self.dataset != "sample" and data_root(self.data_dir) is None:
            return SAMPLE_DIR / "bc5cdr_sample_train.jsonl"
        return self.split_path("train")


def encoder_config_from(cfg: Any) -> Any:
    """An :class:`EncoderConfig` from ``cfg``: itself, None (defaults), or the shared fields of a core SFTSettings
    (epochs, max_steps, batch size, seed, device; its LoRA learning rate and sequence length do not carry over)."""
    from ehrforge.tasks.extract.ner import EncoderConfig

    if cfg is None or isinstance(cfg, EncoderConfig):
        return cfg or EncoderConfig()
    shared = {k: getattr(cfg, k) for k in ("epochs", "max_steps", "batch_size", "seed", "device") if hasattr(cfg, k)}
    return EncoderConfig(**shared)


def read_span_file(path: Path) -> list[Record]:
    """Span records from a CoNLL/IOB file or a span JSONL file; every JSONL record's spans are checked."""
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    if path.suffix != ".jsonl":
        return read_conll(path)
    from ehrforge.core.io import read_jsonl

    result = read_jsonl(path)
    if result.rejected_lines:
        raise DataError(f"{len(result.rejected_lines)} malformed lines in {path.name} (first: line {result.rejected_lines[0]})",
                        "each line must be one JSON object")
    for lineno, rec in enumerate(result.records, start=1):
        rec.setdefault("id", f"{path.stem}-{lineno}")
        problems = check_spans(rec)
        if problems:
            raise DataError(f"bad spans in {path.name} record {lineno}: {problems[0]}",
                            "fix the offsets so text[start:end] equals each entity's text")
    return result.records
