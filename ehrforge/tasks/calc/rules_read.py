"""Reading values off a note for the rule-based calc baseline (``rules.py``): numbers with their units, age, sex,
height and weight, blood pressure, dates, and the negation test the finding readers use. Pure functions on text;
each returns a :class:`Reading` (the value for the tool call and how it was found) or None when the note does not
say. The first mention wins: case reports give admission values first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from ehrforge.tasks.calc.features import NUMERIC
from ehrforge.tasks.calc.rules_lexicon import NUM, NUMERIC_LABELS, NumericLabel

LABEL_GAP = 40  # characters allowed between a label and its number ("creatinine level was elevated at 5.09")
STATED, INFERRED, KEYWORD, NEGATED, DEFAULT = "stated unit", "unit by magnitude", "keyword", "negated keyword", "default"


@dataclass(frozen=True)
class Reading:
    """One input read off a note: the value for the tool call (``unit`` is a schema unit label, "" for none) and how
    it was found (``stated unit`` / ``unit by magnitude`` / ``keyword`` / ``negated keyword`` / ``default``)."""

    value: Any
    unit: str = ""
    how: str = STATED

    def call_value(self) -> Any:
        return {"value": self.value, "unit": self.unit} if self.unit else self.value


# --- text helpers ------------------------------------------------------------------------------------------------


def to_number(text: str) -> float:
    """A number as notes write it: thousands commas dropped.

    >>> to_number("38,470"), to_number("5.09"), to_number(".5")
    (38470.0, 5.09, 0.5)
    """
    return float(text.replace(",", ""))


_NEG_BEFORE = re.compile(
    r"\b(?:no|not|denie[sd]|deny|denying|without|negative for|free of|absence of|never|nor|non|ruled out|"
    r"rule out|unremarkable for|resolved)\b",
    re.IGNORECASE,
)
_NEG_AFTER = re.compile(
    r"^[^.;:\n]{0,25}?\b(?:was|were|is|are|has been|had been)?\s*(?:negative|absent|not (?:seen|found|present|"
    r"detected|observed|noted)|ruled out|denied|excluded)\b",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"[.;:!?\n]|\b(?:but|however|although|though|except|apart from|aside from)\b", re.I)
FAMILY = re.compile(r"\b(?:family history|mother|father|brother|sister|sibling|parents?|aunt|uncle|grand\w+)\b", re.I)


def clause_before(text: str, start: int, span: int = 80) -> str:
    """The text between the last clause break (., ;, "but", …) and ``start``: a negation cue counts only there."""
    before = text[max(0, start - span) : start]
    return _CLAUSE_BREAK.split(before)[-1]


def is_negated(text: str, start: int, end: int) -> bool:
    """Whether the mention at ``text[start:end]`` is negated: a cue earlier in its clause, or "was negative" after.

    >>> t = "She denies chest pain or fever but reports cough. Troponin was negative."
    >>> [is_negated(t, m.start(), m.end()) for m in re.finditer("fever|cough|Troponin", t)]
    [True, False, True]
    """
    return bool(_NEG_BEFORE.search(clause_before(text, start)) or _NEG_AFTER.search(text[end : end + 60]))


_MONTHS = "january february march april may june july august september october november december".split()
_DATE = re.compile(
    r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b|\b(\d{4})-(\d{1,2})-(\d{1,2})\b|\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2}),?\s+(\d{4})\b",
    re.IGNORECASE,
)


def find_date(text: str) -> str | None:
    """The first date in ``text`` as MM/DD/YYYY (US slashes, ISO, or "March 4, 2021").

    >>> find_date("LMP was on 2/24/2000."), find_date("seen on March 4, 2021"), find_date("no date")
    ('02/24/2000', '03/04/2021', None)
    """
    for m in _DATE.finditer(text):
        g = m.groups()
        try:
            if g[0]:
                d = date(int(g[2]), int(g[0]), int(g[1]))
            elif g[3]:
                d = date(int(g[3]), int(g[4]), int(g[5]))
            else:
                d = date(int(g[8]), _MONTHS.index(g[6].lower()) + 1, int(g[7]))
        except ValueError:  # 02/30/2021: not a date, try the next one
            continue
        return d.strftime("%m/%d/%Y")
    return None


# --- numeric inputs ----------------------------------------------------------------------------------------------

_AFTER_LABEL = re.compile(rf"(?P<gap>(?:(?!\.\s)[^\d;\n]){{0,{LABEL_GAP}}}?)(?P<num>{NUM})\s*", re.S)
_NOT_A_MEASURE = re.compile(r"(?:days?|weeks?|months?|years?|hours?|hrs?|times|doses?|episodes?|mg\b(?!\s*/))", re.I)


@cache
def _label_regex(feature: str) -> re.Pattern[str]:
    return re.compile(NUMERIC_LABELS[feature].pattern, re.IGNORECASE)


def _unit_of(spec: NumericLabel, after: str, gap: str, number: float) -> tuple[str, float, str] | None:
    """(schema unit, factor, how) for a number: a unit written after it, or in the gap ("Creatinine (mg/dL) 1.2"),
    or one picked by magnitude. None when the text after it is a time or count ("3 days"), not a unit."""
    for spelling in spec.units:
        if re.match(spelling.pattern, after, re.IGNORECASE):
            return spelling.label, spelling.factor, STATED
    for spelling in spec.units:
        if re.search(rf"\(\s*(?:{spelling.pattern})\s*\)", gap, re.IGNORECASE):
            return spelling.label, spelling.factor, STATED
    if _NOT_A_MEASURE.match(after):
        return None
    for threshold, label in spec.bare:
        if number >= threshold:
            return label, 1.0, INFERRED
    return None


def _plausible(feature: str, value: float, unit: str) -> bool:
    """Whether a reading is within 4× the generator's range once converted (skips "creatinine 3 days later")."""
    f = NUMERIC.get(feature)
    if f is None:
        return True
    conv = {u.label: (u.factor, u.offset) for u in f.units}.get(unit, (1.0, 0.0))
    canonical = (value - conv[1]) / conv[0]
    return f.lo / 4 <= canonical <= f.hi * 4 or (f.lo == 0 and 0 <= canonical <= f.hi * 4)


def find_numeric(text: str, feature: str) -> Reading | None:
    """The first plausible labelled value of one numeric input, with its unit as the tool schema spells it.

    >>> find_numeric("Creatinine was elevated at 5.09 mg/dL.", "creatinine")
    Reading(value=5.09, unit='mg/dL', how='stated unit')
    >>> find_numeric("leukocyte of 38,470/mm3 and urine sodium 20", "wbc"), find_numeric("sodium 135", "sodium")
    (Reading(value=38470.0, unit='/mm³', how='stated unit'), Reading(value=135.0, unit='mmol/L', how='unit by magnitude'))
    >>> find_numeric("creatinine 120 (normal 60-110)", "creatinine").unit
    'µmol/L'
    """
    spec = NUMERIC_LABELS.get(feature)
    if spec is None:
        return None
    for label in _label_regex(feature).finditer(text):
        m = _AFTER_LABEL.match(text, label.end())
        if m is None:
            continue
        number = to_number(m.group("num"))
        unit = _unit_of(spec, text[m.end() : m.end() + 30], m.group("gap"), number)
        if unit is None:
            continue
        label_text, factor, how = unit
        value = round(number * factor, 4)
        if _plausible(feature, value, label_text):
            return Reading(value, label_text, how)
    return None


_AGE = [
    (re.compile(r"\b(\d{1,3})[- ](?:year|yr)s?[- ]old", re.I), 1),
    (re.compile(r"\b(\d{1,3})\s*(?:y/o|yo|y\.o\.)(?!\w)", re.I), 1),
    (re.compile(r"\b(\d{1,3})\s*years? of age", re.I), 1),
    (re.compile(r"\bage[ds]?\s*(?:of\s*|:\s*|was\s*|is\s*)?(\d{1,3})\b", re.I), 1),
    (re.compile(r"\b(\d{1,2})[- ]months?[- ]old", re.I), 1 / 12),
    (re.compile(r"\b(\d{1,2})[- ]weeks?[- ]old", re.I), 1 / 52),
]


def find_age(text: str) -> Reading | None:
    """Age in years from the usual phrasings ("66-year-old", "aged 72", "17 y/o", "a 3-month-old infant").

    >>> find_age("A 66-year-old Japanese male"), find_age("a 6-month-old boy").value
    (Reading(value=66, unit='', how='stated unit'), 0.5)
    """
    hits = [(m.start(), int(m.group(1)) * scale) for pattern, scale in _AGE for m in pattern.finditer(text)]
    hits = [(pos, age) for pos, age in hits if 0 <= age <= 120]
    if not hits:
        return None
    age = min(hits)[1]
    return Reading(age if isinstance(age, int) else round(age, 3))


_SEX_NOUN = re.compile(
    r"\b(?:\d{1,3}[- ](?:year|month|week|day)s?[- ]old|aged \d{1,3})(?:\s+[A-Za-z-]+){0,3}?\s+"
    r"(man|male|boy|gentleman|woman|female|girl|lady)\b",
    re.I,
)
_MALE = re.compile(r"\b(?:he|him|his|man|male|gentleman|boy|mr)\b", re.I)
_FEMALE = re.compile(r"\b(?:she|her|hers|woman|female|lady|girl|mrs|ms|pregnant)\b", re.I)


def find_sex(text: str) -> Reading | None:
    """"male"/"female": the noun after the age ("a 66-year-old Japanese male"), else the majority of pronouns.

    >>> find_sex("A 42 year old female with cirrhosis").value, find_sex("He was admitted; his wife said he fell.").value
    ('female', 'male')
    """
    m = _SEX_NOUN.search(text)
    if m:
        return Reading("male" if m.group(1).lower() in ("man", "male", "boy", "gentleman") else "female", how=KEYWORD)
    male, female = len(_MALE.findall(text)), len(_FEMALE.findall(text))
    if male == female:
        return None
    return Reading("male" if male > female else "female", how=KEYWORD)


_FEET_INCHES = re.compile(r"\b([4-7])\s*(?:ft|feet|foot|')\s*(\d{1,2}(?:\.\d+)?)?\s*(?:in\b|inch(?:es)?|\"|'')?", re.I)
_NUMBER_FIRST = {
    # "168 cm tall", or a height written next to a weight: "(160 cm, 78 kg)"
    "height_cm": re.compile(rf"({NUM})\s*(cm|m|in(?:ches)?)\b\s*(?:tall|in height|height|[,;/and ]{{1,6}}(?:{NUM})\s*kg\b)", re.I),
    "weight_kg": re.compile(rf"(?<!lost )(?<!loss of )(?<!gained )({NUM})\s*(kg|kilograms?|lbs?|pounds?)\b(?!\s*/)", re.I),
}


def find_body(text: str, feature: str) -> Reading | None:
    """Height or weight: a labelled value, "5 ft 6 in", or a number-first phrasing ("168 cm tall", "weighing 68 kg"
    is labelled; a bare "68 kg" not followed by "/" also counts for weight, never a dose per kg).

    >>> find_body("He is 5 ft 6 in tall.", "height_cm"), find_body("Weight 154 lbs", "weight_kg")
    (Reading(value=66.0, unit='in', how='stated unit'), Reading(value=154.0, unit='lb', how='stated unit'))
    >>> find_body("obese (BMI 30.5 kg/m2 (160 cm, 78 kg))", "height_cm").value, find_body("a 3 cm mass", "height_cm")
    (160.0, None)
    """
    reading = find_numeric(text, feature)
    if reading is not None and not (feature == "height_cm" and reading.how == INFERRED):
        return reading
    if feature == "height_cm":
        m = _FEET_INCHES.search(text)
        if m and re.search(r"tall|height|stature|measur", text[max(0, m.start() - 40) : m.end() + 20], re.I):
            return Reading(int(m.group(1)) * 12 + float(m.group(2) or 0), "in")
    m = _NUMBER_FIRST[feature].search(text)
    if m is None:
        return reading
    unit = m.group(2).lower()
    label = {"k": "kg", "l": "lb", "p": "lb", "c": "cm", "i": "in"}.get(unit[0], "m")
    value = to_number(m.group(1))
    return Reading(value, label) if _plausible(feature, value, label) else reading


_BP = re.compile(r"(?:blood pressure|\bBP\b|arterial pressure)[^\d;\n]{0,40}?(\d{2,3})\s*/\s*(\d{2,3})", re.I)
_BP_BARE = re.compile(r"\b(\d{2,3})\s*/\s*(\d{2,3})\s*mm\s*hg", re.I)
_SBP = re.compile(r"systolic (?:blood )?pressure[^\d;\n]{0,30}?(\d{2,3})", re.I)
_DBP = re.compile(r"diastolic (?:blood )?pressure[^\d;\n]{0,30}?(\d{2,3})", re.I)


def find_bp(text: str, feature: str) -> Reading | None:
    """Systolic or diastolic pressure from "BP 130/80 mmHg", "110/70 mmHg" or "systolic blood pressure of 110".

    >>> find_bp("blood pressure of 130/80 mmHg", "sbp").value, find_bp("blood pressure of 130/80 mmHg", "dbp").value
    (130, 80)
    """
    m = _BP.search(text) or _BP_BARE.search(text)
    single = (_SBP if feature == "sbp" else _DBP).search(text)
    if single and (m is None or single.start() < m.start()):
        return Reading(int(single.group(1)), "mm Hg")
    if m is None:
        return None
    return Reading(int(m.group(1) if feature == "sbp" else m.group(2)), "mm Hg")
