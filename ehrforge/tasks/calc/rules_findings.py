"""Yes/no findings, categorical inputs and doses for the rule-based calc baseline (``rules.py``).

A finding is present when one of its words (``rules_lexicon.FINDINGS``) is mentioned and not negated in its clause,
absent when every mention is negated, and unknown (None) when the note never mentions it: the caller leaves it out
of the call, which the tool reads as absent. Mentions in a family-history clause are a relative's, not the
patient's. A few findings also follow from numbers (fever from a temperature ≥ 38 °C, obesity from BMI ≥ 30).
"""

from __future__ import annotations

import re
from functools import cache

from ehrforge.tasks.calc.calculators.dosing import OPIOIDS, STEROID_EQUIVALENT_MG
from ehrforge.tasks.calc.rules_lexicon import ABOUT_FAMILY, CHOICE_WORDS, DEFAULT_OPTIONS, FINDINGS, GCS_WORDS, INVERTED, NUM
from ehrforge.tasks.calc.rules_read import (
    DEFAULT,
    KEYWORD,
    NEGATED,
    Reading,
    FAMILY,
    clause_before,
    find_numeric,
    is_negated,
    to_number,
)

_LIKELY = re.compile(r"most likely|suspect|suspicion|concern for|probable|likely", re.I)


@cache
def _finding_regex(name: str) -> re.Pattern[str]:
    # unlisted findings fall back to their own name ("varicose_veins" -> "varicose veins")
    return re.compile(FINDINGS.get(name, r"\b" + name.replace("_", " ") + r"\b"), re.IGNORECASE)


def mentions(text: str, name: str) -> list[bool]:
    """Each mention of a finding in order: True affirmed, False negated (relatives' mentions skipped).

    >>> mentions("No history of hypertension. Mother had hypertension. Now hypertensive.", "hypertension")
    [False, True]
    """
    out = []
    for m in _finding_regex(name).finditer(text):
        if name not in ABOUT_FAMILY and FAMILY.search(clause_before(text, m.start(), 60)):
            continue
        out.append(not is_negated(text, m.start(), m.end()))
    return out


def _sentence_of(text: str, start: int) -> str:
    left = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start))
    right = text.find(". ", start)
    return text[left + 1 : right if right >= 0 else len(text)]


_DURATION = re.compile(
    r"\b(?:for|since|over)\s+(?:the\s+)?(?:past\s+|last\s+)?(\d+|one|two|three|four|five|six|seven|a few|several)\s+"
    r"(hours?|days?|weeks?|months?)",
    re.I,
)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "a few": 3, "several": 5}


def _onset_within_3_days(text: str) -> bool | None:
    m = _DURATION.search(text)
    if m is None:
        return True if re.search(r"\b(?:since yesterday|overnight|this morning)\b", text, re.I) else None
    n = int(m.group(1)) if m.group(1).isdigit() else _WORDS[m.group(1).lower()]
    unit = m.group(2).lower()
    return unit.startswith("hour") or (unit.startswith("day") and n <= 3)


def find_flag(text: str, name: str) -> Reading | None:
    """A yes/no finding: ``Reading(True)``, ``Reading(False, how="negated keyword")`` or None (never mentioned).

    >>> find_flag("She denies any cough.", "cough_absent").value, find_flag("No cough.", "hemoptysis")
    (True, None)
    >>> find_flag("He has no history of diabetes and no heart failure.", "chf")
    Reading(value=False, unit='', how='negated keyword')
    """
    if name == "onset_within_3_days":
        onset = _onset_within_3_days(text)
        return None if onset is None else Reading(onset, how=KEYWORD)
    found = mentions(text, name)
    if name in INVERTED:  # "no cough" is the finding "cough absent"
        return Reading(not any(found), how=KEYWORD) if found else None
    if name == "pe_most_likely":
        hits = [m for m in _finding_regex(name).finditer(text) if _LIKELY.search(_sentence_of(text, m.start()))]
        found = [not is_negated(text, m.start(), m.end()) for m in hits]
    if not found:
        return _from_numbers(text, name)
    return Reading(True, how=KEYWORD) if any(found) else Reading(False, how=NEGATED)


def _from_numbers(text: str, name: str) -> Reading | None:
    """Findings a number implies when the words are missing: fever (≥ 38 °C / 100.4 °F), obesity (BMI ≥ 30)."""
    if name == "fever_24h":
        temp = find_numeric(text, "temp_c")
        if temp is not None:
            celsius = temp.value if temp.unit == "°C" else (temp.value - 32) * 5 / 9
            return Reading(celsius >= 38.0, how=KEYWORD)
    if name == "obesity":
        m = re.search(rf"\b(?:BMI|body mass index)\b[^\d.;]{{0,25}}({NUM})", text, re.I)
        if m:
            return Reading(to_number(m.group(1)) >= 30, how=KEYWORD)
    return None


def find_choice(text: str, name: str) -> Reading | None:
    """A categorical input: the first option whose words the note uses (not negated), else the "absent/normal"
    option where there is one (MedCalc-Bench reads silence as absent), else None.

    >>> find_choice("Abdomen is nondistended with no ascites.", "ascites").value, find_choice("", "ascites").how
    ('absent', 'default')
    >>> find_choice("alcoholic cirrhosis", "liver_severity").value
    'moderate to severe'
    """
    for option, words in CHOICE_WORDS.get(name, ()):
        for m in re.finditer(words, text, re.IGNORECASE):
            # the "absent" options carry their own negation ("no ascites"); others must not be negated
            if option == DEFAULT_OPTIONS.get(name) or not is_negated(text, m.start(), m.end()):
                return Reading(option, how=KEYWORD)
    return Reading(DEFAULT_OPTIONS[name], how=DEFAULT) if name in DEFAULT_OPTIONS else None


_GCS_LETTERS = re.compile(r"\bE\s*([1-4])\s*,?\s*V\s*([1-5])\s*,?\s*M\s*([1-6])\b")


def find_gcs_component(text: str, name: str) -> Reading | None:
    """One Glasgow Coma Scale component as its score ("4"): from "E4V5M6" or the best response the words describe.

    >>> find_gcs_component("GCS E3V4M6", "gcs_verbal").value, find_gcs_component("he obeys commands", "gcs_motor").value
    ('4', '6')
    """
    m = _GCS_LETTERS.search(text)
    if m:
        return Reading(m.group(("gcs_eye", "gcs_verbal", "gcs_motor").index(name) + 1), how=KEYWORD)
    for score, words in GCS_WORDS[name]:
        if any(not is_negated(text, w.start(), w.end()) for w in re.finditer(words, text, re.IGNORECASE)):
            return Reading(score, how=KEYWORD)
    return None


# --- doses -------------------------------------------------------------------------------------------------------


def _drug_regex(name: str) -> str:
    """"MethylPrednisoLONE IV" -> a case-insensitive regex for the drug with an optional route."""
    drug, _, route = name.rpartition(" ")
    return rf"\b{re.escape(drug)}\b(?:\s+\(?(?:{route}|{'oral' if route == 'PO' else 'intravenous'})\)?)?"


def steroid_in(text: str) -> str | None:
    """The steroid option a text names (route included where written; else the first option of that drug: the
    equivalence tables give IV and PO the same dose).

    >>> steroid_in("Patient has taken 65.867 mg of Hydrocortisone IV."), steroid_in("prednisone 10 mg")
    ('Hydrocortisone IV', 'PredniSONE PO')
    """
    best: tuple[int, int, str] | None = None
    for option in STEROID_EQUIVALENT_MG:
        for m in re.finditer(_drug_regex(option), text, re.IGNORECASE):
            route_written = m.group(0).lower() != option.rpartition(" ")[0].lower()
            exact = route_written and option.rpartition(" ")[2].lower() in m.group(0).lower()
            key = (m.start(), 0 if exact else 1, option)
            if (route_written and not exact) or (best is not None and key >= best):
                continue
            best = key
    return best[2] if best else None


def find_steroid_dose(text: str) -> Reading | None:
    """The steroid dose in mg (or g) nearest before or after the steroid's name.

    >>> find_steroid_dose("Patient has taken 65.867 mg of Hydrocortisone IV.")
    Reading(value=65.867, unit='mg', how='stated unit')
    """
    m = re.search(rf"({NUM})\s*(mg|g)\b[^.;\d]{{0,30}}?(?=" + "|".join(_drug_regex(o) for o in STEROID_EQUIVALENT_MG) + ")", text, re.I)
    m = m or re.search(r"(?:" + "|".join(_drug_regex(o) for o in STEROID_EQUIVALENT_MG) + rf")[^.;\d]{{0,20}}({NUM})\s*(mg|g)\b", text, re.I)
    return Reading(to_number(m.group(1)), m.group(2).lower()) if m else None


_PER_DAY = (
    (r"(\d+)\s*times?\s*(?:a|per|/|each)\s*day", None), (r"once (?:a )?da(?:y|ily)|\bdaily\b|\bqd\b|every day", 1),
    (r"twice (?:a )?da(?:y|ily)|\bbid\b|\bb\.i\.d\.", 2), (r"(?:three times|thrice) (?:a )?da(?:y|ily)|\btid\b", 3),
    (r"four times (?:a )?da(?:y|ily)|\bqid\b", 4), (r"every (\d+) hours|\bq(\d+)h\b", "hours"),
)  # fmt: skip
_OPIOID_UNITS = {"mg": "mg", "µg": "µg", "μg": "µg", "mcg": "µg", "ug": "µg"}


def _doses_per_day(text: str) -> float | None:
    for pattern, value in _PER_DAY:
        m = re.match(rf"[^.;,\d]{{0,25}}?(?:{pattern})", text, re.I)
        if m:
            if value == "hours":
                hours = int(next(g for g in m.groups() if g))
                return 24 / hours if hours else None
            return float(m.group(1)) if value is None else float(value)
    return None


def find_opioids(text: str) -> dict[str, Reading]:
    """Each opioid's dose and doses per day ("10 mg of OxyMORphone 1 time a day"), by our parameter names.

    >>> sorted((k, r.value) for k, r in find_opioids("The patient takes 10 mg of OxyMORphone 1 time a day.").items())
    [('oxymorphone_dose', 10.0), ('oxymorphone_doses_per_day', 1.0)]
    """
    out: dict[str, Reading] = {}
    for drug, (display, unit, _factor) in OPIOIDS.items():
        name = re.escape(display).replace(r"\ ", r"\s+")
        m = re.search(rf"({NUM})\s*(mg|µg|μg|mcg|ug)(?:\s*/\s*h(?:r|our))?\s+(?:of\s+)?{name}\b", text, re.I)
        if m is None:
            continue
        dose, written = to_number(m.group(1)), _OPIOID_UNITS[m.group(2).lower()]
        if written != unit.split("/")[0]:  # the schema takes one unit per opioid: convert mg <-> µg
            dose = dose * 1000 if written == "mg" else dose / 1000
        per_day = _doses_per_day(text[m.end() : m.end() + 60])
        out[f"{drug}_dose"] = Reading(dose, unit)
        if per_day is not None:
            out[f"{drug}_doses_per_day"] = Reading(per_day)
    return out
