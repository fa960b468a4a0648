"""A local stand-in *teacher* that composes clinical sentences from templates and entity lexicons.

No teacher LLM is reachable from a hospital laptop or from CI, and the bundled 135M model cannot follow the JSON
instructions well enough to write training data. This backend answers the same synthesis prompt an LLM teacher gets
(:func:`ehrforge.tasks.extract.synth.teacher_prompt`) with the same JSON shape, so the whole synthesize → validate →
dedup → PHI-check → train path runs end to end. It is **not** an LLM: its sentences come from ~60 hand-written
templates across the four note styles, filled with disease and chemical names harvested from the *train* split of
an annotated corpus (never the evaluation split). Templates say which chemical *induces* which disease (the
CID relation) and include non-causal patterns (treatment, history, co-occurrence) so the relation classifier
sees negatives. Every name it emits comes from the lexicon, so its gold spans are exact by construction.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.types import Generation, Message
from ehrforge.errors import DataError

# {C1}/{C2}: chemicals, {D1}/{D2}: diseases, {pt}: a patient description, {topic}: the requested topic.
# The second element lists the (chemical, disease) slot pairs the sentence asserts as "chemical induces disease".
TEMPLATES: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {
    "abstract": [
        ("{C1}-induced {D1} in rats: a dose-response study.", [("C1", "D1")]),
        ("We report {n} cases of {D1} following treatment with {C1}.", [("C1", "D1")]),
        ("The incidence of {D1} was significantly higher in patients receiving {C1} than in those receiving {C2}.", [("C1", "D1")]),
        ("{C1} is widely used in the treatment of {D1}.", []),
        ("These results suggest that {C1} may protect against {D1} induced by {C2}.", [("C2", "D1")]),
        ("Chronic exposure to {C1} caused {D1} and {D2} in {n} of the animals studied.", [("C1", "D1"), ("C1", "D2")]),
        ("The efficacy of {C1} in patients with {D1} was evaluated in a randomized controlled trial.", []),
        ("{D1} is a rare but serious adverse effect of {C1} therapy.", [("C1", "D1")]),
        ("Pretreatment with {C1} attenuated the {D1} produced by {C2}.", [("C2", "D1")]),
        ("Mutations in this gene are associated with {D1} and an increased risk of {D2}.", []),
        ("Patients with {D1} are at increased risk of developing {D2}.", []),
        ("The mechanism by which {C1} produces {D1} remains unclear.", [("C1", "D1")]),
        ("{C1} and {C2} were compared for the prevention of {D1} in {topic} patients.", []),
        ("A case of {D1} associated with the use of {C1} is described.", [("C1", "D1")]),
        ("In this cohort, {D1} was the most common cause of {D2}.", []),
    ],
    "discharge summary": [
        ("{pt} was admitted with {D1} after starting {C1}.", [("C1", "D1")]),
        ("Hospital course was complicated by {C1}-associated {D1}; {C1} was discontinued.", [("C1", "D1")]),
        ("{pt} with a history of {D1} presented with worsening {D2}.", []),
        ("Discharge medications include {C1} and {C2} for {D1}.", []),
        ("{C1} was held because of {D1}, which resolved by discharge.", [("C1", "D1")]),
        ("Diagnoses at discharge: {D1}; {D2}.", []),
        ("She developed {D1} on day three of {C1} therapy and was treated with {C2}.", [("C1", "D1")]),
        ("He was started on {C1} for {D1} and tolerated it well.", []),
        ("Past medical history is notable for {D1} and {D2}.", []),
        ("The {topic} team attributed the {D1} to {C1} toxicity.", [("C1", "D1")]),
        ("Allergies: {C1} (causes {D1}).", [("C1", "D1")]),
        ("{pt} was transferred from the {topic} service for management of {D1}.", []),
        ("Follow-up is arranged to monitor for recurrence of {D1}.", []),
        ("He received {C1} with resolution of his {D1}.", []),
        ("Her {D1} was thought to be secondary to {C1} and improved after it was stopped.", [("C1", "D1")]),
    ],
    "radiology report": [
        ("Findings are consistent with {D1}.", []),
        ("Interval development of {D1} since the start of {C1} therapy.", [("C1", "D1")]),
        ("CT of the chest shows changes compatible with {C1}-related {D1}.", [("C1", "D1")]),
        ("No evidence of {D1}.", []),
        ("Indication: {pt} with known {D1}, rule out {D2}.", []),
        ("Impression: {D1}, likely drug-induced given recent {C1} exposure.", [("C1", "D1")]),
        ("MRI of the brain demonstrates findings suggestive of {D1}.", []),
        ("Comparison with the prior study shows progression of {D1}.", []),
        ("Contrast was not given because of a history of {D1} after {C1} administration.", [("C1", "D1")]),
        ("Ultrasound demonstrates {D1} without {D2}.", []),
        ("Clinical history: {topic} follow-up of {D1} treated with {C1}.", []),
        ("Impression: stable {D1}; no new {D2}.", []),
        ("Appearances may represent {D1} related to {C1} toxicity.", [("C1", "D1")]),
        ("Chest radiograph shows {D1} in a patient receiving {C1}.", []),
        ("Findings raise concern for {D1}; correlate clinically.", []),
    ],
    "progress note": [
        ("{pt} continues on {C1} for {D1}; symptoms are improving.", []),
        ("Assessment: {D1}, probably caused by {C1}.", [("C1", "D1")]),
        ("Plan: stop {C1} given new {D1}; start {C2}.", [("C1", "D1")]),
        ("Subjective: reports {D1} since the {C1} dose was increased.", [("C1", "D1")]),
        ("{D1} is stable on {C1}.", []),
        ("Will monitor for {D1}, a known side effect of {C1}.", [("C1", "D1")]),
        ("{pt} seen in {topic} clinic for {D1} and {D2}.", []),
        ("Labs reviewed; no signs of {D1}.", []),
        ("Continue {C1} and {C2}; reassess {D1} in two weeks.", []),
        ("Overnight she developed {D1}, attributed to {C1}.", [("C1", "D1")]),
        ("A/P: {D1} - likely {C1}-induced; discontinue and recheck.", [("C1", "D1")]),
        ("He denies {D1}.", []),
        ("{C1} was switched to {C2} because of {D1}.", [("C1", "D1")]),
        ("History of {D1}, currently treated with {C1}.", []),
        ("Discussed the risk of {D1} with {C1} and she agrees to proceed.", [("C1", "D1")]),
    ],
}

_PATIENTS = [
    "The patient", "A {age}-year-old man", "A {age}-year-old woman", "This {age}-year-old female", "This {age}-year-old male",
    "The {age}-year-old patient", "Patient",
]
_SLOT = re.compile(r"\{(C\d|D\d|pt|topic|n|age)\}")
_PROMPT_FIELD = re.compile(r"^(Note style|Topic|Entity types|Relation):\s*(.+)$", re.M)


def detokenize(name: str) -> str:
    """Undo CoNLL tokenization of an entity name ("5 - FU" → "5-FU", "Na ( + )" stays odd and is filtered)."""
    name = re.sub(r"\s*-\s*", "-", name)
    name = re.sub(r"\s+([,.;:)'])", r"\1", name)
    return re.sub(r"([(])\s+", r"\1", name).strip()


def lexicon_from_records(records: Iterable[dict[str, Any]], *, min_len: int = 3, max_words: int = 6) -> dict[str, list[str]]:
    """Entity names by label from annotated records, most frequent first; names with odd characters are skipped.

    >>> lexicon_from_records([{"entities": [{"label": "Chemical", "text": "5 - FU"}, {"label": "Chemical", "text": "( +"}]}])
    {'Chemical': ['5-FU']}
    """
    counts: dict[str, Counter[str]] = {}
    for rec in records:
        for ent in rec.get("entities", []):
            name = detokenize(ent["text"])
            if len(name) < min_len or len(name.split()) > max_words or not re.fullmatch(r"[\w][\w\s\-']*[\w]", name):
                continue
            counts.setdefault(ent["label"], Counter())[name] += 1
    return {label: [name for name, _ in c.most_common()] for label, c in sorted(counts.items())}


class TemplateTeacher:
    """A :class:`~ehrforge.core.backends.Backend` that answers synthesis prompts from templates (see module doc)."""

    name = "template-teacher"

    def __init__(self, lexicon: dict[str, Sequence[str]], *, seed: int = 0) -> None:
        missing = [label for label in ("Chemical", "Disease") if not lexicon.get(label)]
        if missing:
            raise DataError(
                f"template teacher lexicon has no {', '.join(missing)} names",
                "build it from an annotated train file with both types (e.g. BC5CDR train.tsv)",
            )
        self.lexicon = {k: list(v) for k, v in lexicon.items()}
        self.seed = seed

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], *, seed: int = 0) -> TemplateTeacher:
        return cls(lexicon_from_records(records), seed=seed)

    @classmethod
    def from_conll(cls, paths: Sequence[str | Path], *, seed: int = 0) -> TemplateTeacher:
        from ehrforge.tasks.extract.conll import read_conll

        return cls.from_records([r for p in paths for r in read_conll(p)], seed=seed)

    def generate(
        self, batch: list[list[Message]], *, max_new_tokens: int = 256, temperature: float = 0.0, seed: int | None = None
    ) -> list[Generation]:
        out = []
        for messages in batch:
            fields = dict(_PROMPT_FIELD.findall(messages[-1]["content"]))
            # Seeded by the prompt (which carries a note id), not by batch position: a resumed run that batches
            # attempts differently still gets the same note for the same attempt.
            rng = random.Random(f"{self.seed}|{messages[-1]['content']}")
            text = json.dumps(self.compose(fields, rng), ensure_ascii=False)
            out.append(Generation(text=text, tokens=text.split()))
        return out

    def compose(self, fields: dict[str, str], rng: random.Random) -> dict[str, Any]:
        """One note in the teacher JSON shape, for the style/topic/entity types named in the prompt fields."""
        style = fields.get("Note style", "abstract").strip().lower()
        templates = TEMPLATES.get(style, TEMPLATES["abstract"])
        wanted = {t.strip() for t in fields.get("Entity types", "Chemical, Disease").split(",")}
        with_relations = "Relation" in fields and {"Chemical", "Disease"} <= wanted
        text = ""
        entities: list[dict[str, Any]] = []
        relations: list[dict[str, Any]] = []
        for template, causes in rng.sample(templates, rng.choice((1, 1, 2))):
            start_len = len(text) + (1 if text else 0)
            piece, slots = self._fill(template, fields.get("Topic", "general medicine"), rng)
            text = f"{text} {piece}" if text else piece
            mentions: dict[str, list[int]] = {}
            for slot, (s, e) in slots:
                label = "Chemical" if slot[0] == "C" else "Disease"
                if label not in wanted:
                    continue  # the name stays in the text, unlabelled, as a disease-only annotator would leave it
                mentions.setdefault(slot, []).append(len(entities))
                entities.append({"text": text[start_len + s : start_len + e], "label": label, "start": start_len + s, "end": start_len + e})
            if with_relations:
                # Every mention pair of a causal (chemical, disease) slot pair is a gold relation.
                for chem, dis in causes:
                    for h in mentions.get(chem, []):
                        relations.extend({"head": h, "tail": t, "type": "CID"} for t in mentions.get(dis, []))
        note: dict[str, Any] = {"text": text, "entities": entities}
        if with_relations:
            note["relations"] = relations
        return note

    def _fill(self, template: str, topic: str, rng: random.Random) -> tuple[str, list[tuple[str, tuple[int, int]]]]:
        chosen: dict[str, str] = {}
        parts: list[str] = []
        slots: list[tuple[str, tuple[int, int]]] = []
        pos = 0
        for m in _SLOT.finditer(template):
            parts.append(template[pos : m.start()])
            key = m.group(1)
            if key == "pt":
                value = rng.choice(_PATIENTS).replace("{age}", str(rng.randint(18, 89)))
            elif key == "topic":
                value = topic
            elif key in ("n", "age"):
                value = str(rng.randint(2, 60))
            else:
                if key not in chosen:
                    pool = self.lexicon["Chemical" if key[0] == "C" else "Disease"]
                    # Zipf-ish: frequent names more often, but the long tail still appears.
                    taken = set(chosen.values())
                    while True:
                        name = pool[min(int(rng.paretovariate(0.6)) - 1, len(pool) - 1)] if rng.random() < 0.5 else rng.choice(pool)
                        if name not in taken or len(pool) <= len(taken):
                            break
                    chosen[key] = name
                value = chosen[key]
                start = sum(len(p) for p in parts)
                slots.append((key, (start, start + len(value))))
            parts.append(value)
            pos = m.end()
        parts.append(template[pos:])
        # A sentence may start with a lower-case lexicon name; it is left as is, because capitalising it would make
        # the span text differ from the lexicon entry.
        return "".join(parts), slots
