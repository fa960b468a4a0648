"""A local stand-in *teacher* that composes clinical sentences from templates and entity lexicons.

No teacher LLM is reachable from a hospital laptop or from CI, and the bundled 135M model cannot follow the JSON
instructions well enough to write training data. This backend answers the same synthesis prompt an LLM teacher gets
(:func:`ehrforge.tasks.extract.synth.teacher_prompt`) with the same JSON shape, so the whole synthesize → validate →
dedup → PHI-check → train path runs end to end. It is **not** an LLM: its sentences come from ~60 hand-written
templates across the four note styles, filled with disease and chemical names harvested from the *train* split of
an annotated corpus (never the evaluation split). Templates say which chemical *induces* which disease (the
CID relation) and include non-causal patterns (treatment, history, co-occurrence) so the relation classifier
sees negatives. Every mention's span is exact by construction (it is placed, not searched for).

Beyond the lexicon (so a student does not just memorise it): a share of mentions is written as a surface variant -
an abbreviation defined in the note (``acute renal failure (ARF)``, both spans annotated, as BC5CDR does), a
misspelling (one adjacent-letter swap or a dropped letter), a capitalised or upper-case form, or a multi-word
chemical salt (``<name> hydrochloride``). Negated (``denies``, ``no evidence of``, ``ruled out``) and family-history
mentions are annotated as entities but never as CID. Entity-free *context sentences* keep the student from learning
that every word outside the templates is an entity: hand-written clinical filler, plus (``context_fragments``)
entity-free word runs harvested from the same train split the names come from - never from the evaluation split.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.errors import DataError
from ehrforge.core.backends.capabilities import BackendCapability

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

# Negated and family-history mentions: annotated entities (as BC5CDR annotates them), never a CID relation.
NEGATED_TEMPLATES: list[tuple[str, list[tuple[str, str]]]] = [
    ("There is no evidence of {D1}.", []),
    ("{pt} denies any history of {D1} or {D2}.", []),
    ("Family history is significant for {D1} in her mother.", []),
    ("No family history of {D1}.", []),
    ("His father was treated for {D1}.", []),
    ("{D1} was ruled out.", []),
    ("Negative for {D1}; no {D2} was seen.", []),
    ("{pt} has never taken {C1}.", []),
    ("No {D1} occurred in the {C1} group.", []),
    ("A sibling has {D1}; there is no personal history of {D2}.", []),
    ("{C1} did not cause {D1} in any of the {n} patients.", []),
    ("There was no association between {C1} and {D1}.", []),
]
#: entity-free sentences (what real notes are mostly made of)
FILLER = [
    "Vital signs were stable overnight.", "The study was approved by the local ethics committee.",
    "Blood pressure and heart rate were recorded every hour.", "Informed consent was obtained from all participants.",
    "Laboratory values were within normal limits.", "Follow-up was arranged in the outpatient clinic in four weeks.",
    "Data were analysed with a mixed-effects model.", "The patient was ambulating independently at discharge.",
    "Samples were collected at baseline and after treatment.", "No changes were made to the current regimen.",
    "Statistical significance was set at p < 0.05.", "The family was updated at the bedside.",
    "Rats were randomly assigned to four groups.", "Serum levels were measured by high-performance assay.",
    "Physical examination was otherwise unremarkable.", "The results were compared with those of age-matched controls.",
    "Tolerating a regular diet.", "Plan discussed with the attending physician.",
    "Mean follow-up was eighteen months.", "Comparison is made with the previous examination.",
]
_ABBREV_OK = re.compile(r"[A-Za-z][A-Za-z\-]*")
SALTS = ("hydrochloride", "sodium", "sulfate", "citrate", "maleate", "acetate")

_PATIENTS = [
    "The patient", "A {age}-year-old man", "A {age}-year-old woman", "This {age}-year-old female", "This {age}-year-old male",
    "The {age}-year-old patient", "Patient",
]
_SLOT = re.compile(r"\{(C\d|D\d|pt|topic|n|age)\}")
_PROMPT_FIELD = re.compile(r"^(Note style|Topic|Entity types|Relation):\s*(.+)$", re.MULTILINE)


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


def context_fragments(records: Iterable[dict[str, Any]], *, min_words: int = 4, max_words: int = 14,
                      limit: int = 20000) -> list[str]:
    """Entity-free runs of words from annotated records, as context sentences for the template teacher.

    >>> rec = {"text": "Pretreatment with cocaine raised the blood pressure in all rats .",
    ...        "entities": [{"start": 18, "end": 25, "label": "Chemical", "text": "cocaine"}]}
    >>> context_fragments([rec], min_words=3)
    ['Raised the blood pressure in all rats.']
    """
    out: list[str] = []
    seen: set[str] = set()
    for rec in records:
        text = rec["text"]
        cuts = [0]
        for e in sorted(rec.get("entities", []), key=lambda e: e["start"]):
            cuts += [e["start"], e["end"]]
        cuts.append(len(text))
        for s, e in zip(cuts[::2], cuts[1::2]):
            piece = detokenize(text[s:e]).strip(" ,;:-(")
            piece = re.sub(r"\s*[.]\s*$", "", piece)
            words = piece.split()
            if not min_words <= len(words) <= max_words or not re.fullmatch(r"[\w\s,;:()'/%.\-]+", piece):
                continue
            sentence = piece[0].upper() + piece[1:] + "."
            if sentence not in seen:
                seen.add(sentence)
                out.append(sentence)
            if len(out) >= limit:
                return out
    return out


#: function words never used as unannotated neighbours (the templates already place them)
_NEIGHBOUR_STOP = frozenset("""a an the of and or in on to for by with from at as is was were be been are that this
these those than then their its his her our no not all any some each after before during into per via may might
can could has have had did does who which when while but both either between plus also without against following
due whereas""".split())


def neighbour_words(records: Iterable[dict[str, Any]], *, min_count: int = 2, limit: int = 300) -> dict[str, dict[str, list[str]]]:
    """Content words written right before / after an entity but *outside* its span, by label, most frequent first.

    Real text qualifies a name with words the annotators leave out ("oral [prazosin]", "metastatic [renal cell
    carcinoma]", "[cardiovascular disease] risk"). A student that only ever sees a name framed by the templates'
    function words learns to swallow such a qualifier into the span; placing harvested ones next to names teaches
    the boundary.

    >>> rec = {"text": "Oral prazosin caused hypotension risk .", "entities": [
    ...     {"start": 5, "end": 13, "label": "Chemical", "text": "prazosin"},
    ...     {"start": 21, "end": 32, "label": "Disease", "text": "hypotension"}]}
    >>> neighbour_words([rec, rec], min_count=2)
    {'Chemical': {'before': ['oral'], 'after': ['caused']}, 'Disease': {'before': ['caused'], 'after': ['risk']}}
    """
    counts: dict[str, dict[str, Counter[str]]] = {}
    for rec in records:
        text = rec["text"]
        spans = [(e["start"], e["end"]) for e in rec.get("entities", [])]
        for ent in rec.get("entities", []):
            sides = counts.setdefault(ent["label"], {"before": Counter(), "after": Counter()})
            before = re.search(r"(\w+)\s+$", text[: ent["start"]])
            after = re.match(r"\s+(\w+)", text[ent["end"] :])
            for side, m, at in (("before", before, before and before.start(1)), ("after", after, after and ent["end"] + after.start(1))):
                if not m:
                    continue
                word = m.group(1)
                if at == 0 and word.istitle():
                    word = word.lower()  # a qualifier that starts the sentence: "Oral prazosin"
                inside = any(s <= at < e for s, e in spans)
                if not inside and word.isalpha() and word.islower() and len(word) >= 3 and word not in _NEIGHBOUR_STOP:
                    sides[side][word] += 1
    return {label: {side: [w for w, n in c.most_common(limit) if n >= min_count] for side, c in sides.items()}
            for label, sides in sorted(counts.items())}


class TemplateTeacher:
    """A :class:`~ehrforge.core.backends.Backend` that answers synthesis prompts from templates (see module doc)."""

    name = "template-teacher"
    capabilities = frozenset({BackendCapability.LOGPROBS})

    def __init__(self, lexicon: dict[str, Sequence[str]], *, seed: int = 0, contexts: Sequence[str] = (),
                 variant_rate: float = 0.25, neighbours: dict[str, dict[str, list[str]]] | None = None,
                 neighbour_rate: float = 0.3) -> None:
        missing = [label for label in ("Chemical", "Disease") if not lexicon.get(label)]
        if missing:
            raise DataError(
                f"template teacher lexicon has no {', '.join(missing)} names",
                "build it from an annotated train file with both types (e.g. BC5CDR train.tsv)",
            )
        self.lexicon = {k: list(v) for k, v in lexicon.items()}
        self.seed = seed
        self.contexts = list(contexts)
        self.variant_rate = variant_rate
        self.neighbours = neighbours or {}
        self.neighbour_rate = neighbour_rate
        self.variants: Counter[str] = Counter()  # how many mentions were written as each kind of variant

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], *, seed: int = 0, context_fragments: bool = True,
                     variant_rate: float = 0.25, neighbour_rate: float = 0.3) -> TemplateTeacher:
        records = list(records)
        contexts = globals()["context_fragments"](records) if context_fragments else []
        neighbours = neighbour_words(records) if neighbour_rate > 0 else None
        return cls(lexicon_from_records(records), seed=seed, contexts=contexts, variant_rate=variant_rate,
                   neighbours=neighbours, neighbour_rate=neighbour_rate)

    @classmethod
    def from_conll(cls, paths: Sequence[str | Path], *, seed: int = 0) -> TemplateTeacher:
        from ehrforge.tasks.extract.conll import read_conll

        return cls.from_records([r for p in paths for r in read_conll(p)], seed=seed)

    def generate(
        self, batch: list[list[Message]], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0, seed: int | None = None
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
        chosen = rng.sample(templates, rng.choice((1, 1, 2)))
        if rng.random() < 0.35:
            chosen.append(rng.choice(NEGATED_TEMPLATES))
        for _ in range(rng.choice((0, 1, 1, 2))):
            chosen.insert(rng.randrange(len(chosen) + 1), (None, []))  # an entity-free context sentence
        for template, causes in chosen:
            if template is None:
                pool = self.contexts if self.contexts and rng.random() < 0.7 else FILLER
                piece = rng.choice(pool)
                text = f"{text} {piece}" if text else piece
                continue
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
                at_start = not "".join(parts).strip()
                value = self._variant(chosen[key], key[0] == "C", rng, sentence_start=at_start)
                start = sum(len(p) for p in parts)
                if isinstance(value, tuple):  # "full form (ABBR)": two annotated mentions of the same entity
                    full, abbr = value
                    slots.append((key, (start, start + len(full))))
                    slots.append((key, (start + len(full) + 2, start + len(full) + 2 + len(abbr))))
                    value = f"{full} ({abbr})"
                else:
                    before, value, after = self._neighbours(value, key[0] == "C", rng, sentence_start=at_start,
                                                            lexicon_name=chosen[key])
                    start += len(before)
                    slots.append((key, (start, start + len(value))))
                    value = before + value + after
            parts.append(value)
            pos = m.end()
        parts.append(template[pos:])
        return "".join(parts), slots

    def _neighbours(self, value: str, chemical: bool, rng: random.Random, *, sentence_start: bool,
                    lexicon_name: str = "") -> tuple[str, str, str]:
        """(unannotated word before, the name, unannotated word after): now and then a harvested qualifier."""
        sides = self.neighbours.get("Chemical" if chemical else "Disease", {})
        before = after = ""
        if sides.get("before") and rng.random() < self.neighbour_rate / 2:
            word = rng.choice(sides["before"])
            before = (word[0].upper() + word[1:] if sentence_start else word) + " "
            # the qualifier now starts the sentence, not the name: undo the capital the sentence start gave it, but
            # keep one the lexicon has ("Parkinson disease" stays capitalised after "early")
            if sentence_start and value[:1].isupper() and value[1:2].islower() and lexicon_name[:1].islower():
                value = value[0].lower() + value[1:]
            self.variants["unannotated_word_before"] += 1
        if sides.get("after") and rng.random() < self.neighbour_rate / 2:
            after = " " + rng.choice(sides["after"])
            self.variants["unannotated_word_after"] += 1
        return before, value, after

    def _variant(self, name: str, chemical: bool, rng: random.Random, *, sentence_start: bool) -> str | tuple[str, str]:
        """The name as written: usually as in the lexicon, sometimes a surface form the lexicon does not hold."""
        value: str | tuple[str, str] = name
        kind = "lexicon"
        if rng.random() < self.variant_rate:
            words = name.split()
            roll = rng.random()
            if roll < 0.3 and len(words) >= 2 and all(_ABBREV_OK.fullmatch(w) for w in words):
                value, kind = (name, "".join(w[0] for w in words).upper()), "abbreviation"
            elif roll < 0.5 and len(name) >= 7 and name.isalpha():
                i = rng.randrange(1, len(name) - 2)
                value = name[:i] + name[i + 1] + name[i] + name[i + 2 :] if rng.random() < 0.5 else name[:i] + name[i + 1 :]
                kind = "misspelling"
            elif roll < 0.65 and chemical and len(words) == 1 and name.isalpha() and name.islower():
                value, kind = f"{name} {rng.choice(SALTS)}", "multi_word_chemical"
            elif roll < 0.85 and name[:1].islower():
                value, kind = name[0].upper() + name[1:], "capitalised"
            elif len(name) <= 12 and name.isalpha():
                value, kind = name.upper(), "upper_case"
        if kind == "lexicon" and sentence_start and name[:1].islower():
            value, kind = name[0].upper() + name[1:], "capitalised"  # a sentence starts with a capital
        self.variants[kind] += 1
        return value
