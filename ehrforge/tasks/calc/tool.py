"""Tool mode (program-aided calculation): the student writes which calculator applies and its inputs as JSON; ehrforge
validates the call against the calculator's typed parameter schema, converts units, and runs the tested function.

A call looks like ``{"calculator": "cockcroft_gault", "age": 67, "sex": "male", "weight": {"value": 154, "unit":
"lb"}, ...}``: a numeric parameter is a number (in its canonical unit) or ``{"value", "unit"}`` in any accepted unit;
a bool is ``true``/``false`` (omitted = absent, MedCalc-Bench's convention for unmentioned findings); a categorical is
one of its options; a date is MM/DD/YYYY or YYYY-MM-DD. Nothing here raises on model output: every problem is an
:class:`Abstain` that names the calculator or parameter at fault (never note text). No dependence on ``CalcTask``.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.calc.calculators import BY_ID, CALCULATORS, Calculator, format_answer, num
from ehrforge.tasks.calc.calculators.dosing import MME_INPUTS, OPIOIDS, STEROID_EQUIVALENT_MG
from ehrforge.tasks.calc.features import CHOICES, FLAGS, INT_CHOICES, NUMERIC

KINDS = ("numeric", "categorical", "bool", "date")
#: tool names for features whose internal name carries a unit (the unit belongs in the call, not the name)
TOOL_NAMES = {"weight_kg": "weight", "height_cm": "height", "temp_c": "temperature", "qt_ms": "qt_interval"}
MAX_CALL_CHARS = 20_000  # a tool call is a few hundred characters; anything longer is not one
MAX_SCAN = 64  # how many "{" positions the parser tries before giving up (bounded work on a 1 MB string)


@dataclass(frozen=True)
class Param:
    """One typed input of a calculator's tool schema. ``units`` maps each accepted unit label to (factor, offset)
    with display = canonical × factor + offset, the same conversion the note generator used."""

    name: str
    feature: str
    kind: str
    unit: str = ""
    units: dict[str, tuple[float, float]] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    required: bool = True
    default: Any = None

    @property
    def convertible(self) -> bool:
        """Whether the unit matters: only then does the call need ``{"value", "unit"}`` (``mm Hg`` alone: a number)."""
        return len(set(self.units.values())) > 1

    def describe(self) -> str:
        """One line of the prompt's parameter list, e.g. ``weight (numeric; kg, lb)``."""
        if self.kind == "numeric":
            detail = ", ".join(self.units) if self.units else "number"
        elif self.kind == "categorical":
            detail = " | ".join(self.options)
        else:
            detail = "true if present" if self.kind == "bool" else "MM/DD/YYYY"
        return f"{self.name} ({self.kind}{'' if self.required else ', optional'}; {detail})"


def _norm_unit(unit: str) -> str:
    """Units compared loosely: case, spaces, µ/u/mc, ° and ^ do not matter ("mmHg" = "mm Hg", "umol/l" = "µmol/L")."""
    text = unit.strip().lower().replace(" ", "").replace("°", "").replace("^", "").replace("μ", "µ")
    return text.replace("mcg", "µg").replace("µ", "u").replace("×", "x").replace("*", "x")


def _numeric_param(feature: str) -> Param:
    f = NUMERIC[feature]
    units: dict[str, tuple[float, float]] = {}
    for u in f.units:
        units.setdefault(u.label, (u.factor, u.offset))
    if f.canonical_unit and f.canonical_unit not in units:
        units[f.canonical_unit] = (1.0, 0.0)
    return Param(
        TOOL_NAMES.get(feature, feature),
        feature,
        "numeric",
        f.canonical_unit,
        units,
        required=not f.p_zero,
        default=0.0 if f.p_zero else None,
    )


def _param(feature: str) -> Param:
    if feature == "age":
        return Param("age", "age", "numeric", "years", {"years": (1.0, 0.0)})
    if feature == "sex":
        return Param("sex", "sex", "categorical", options=("male", "female"))
    if feature in ("lmp", "today"):
        return Param(feature, feature, "date")
    if feature == "cycle_length":
        return Param("cycle_length", "cycle_length", "numeric", "days", {"days": (1.0, 0.0)})
    if feature in NUMERIC:
        return _numeric_param(feature)
    if feature in FLAGS:
        return Param(feature, feature, "bool", required=False, default=False)
    if feature in CHOICES:
        return Param(feature, feature, "categorical", options=tuple(CHOICES[feature].options))
    if feature in ("input_steroid", "target_steroid"):
        return Param(feature, feature, "categorical", options=tuple(STEROID_EQUIVALENT_MG))
    if feature == "steroid_dose":
        return Param(feature, feature, "numeric", "mg", {"mg": (1.0, 0.0), "g": (0.001, 0.0)})
    if feature in MME_INPUTS:
        drug, part = feature.split("_dose", 1)
        unit = OPIOIDS[drug][1] if part == "" else ""
        return Param(feature, feature, "numeric", unit, {unit: (1.0, 0.0)} if unit else {}, required=False, default=0.0)
    raise KeyError(f"no tool parameter type for input '{feature}'")


@cache
def tool_schema(calculator: str | int) -> tuple[Param, ...]:
    """The typed parameters of one calculator (by key or MedCalc-Bench id)."""
    calc = _lookup(calculator)
    if calc is None:
        raise KeyError(f"unknown calculator '{calculator}'")
    return tuple(_param(n) for n in calc.inputs)


def schema_json(calculator: str | int) -> dict[str, Any]:
    """The schema as plain JSON (for docs, the HTTP API and prompts)."""
    calc = _lookup(calculator)
    return {
        "calculator": calc.key if calc else str(calculator),
        "parameters": [
            {
                "name": p.name,
                "kind": p.kind,
                "unit": p.unit,
                "units": list(p.units),
                "options": list(p.options),
                "required": p.required,
            }
            for p in tool_schema(calculator)
        ],
    }


def parameter_list(calculator: str | int) -> str:
    """The prompt's compact parameter list, one parameter per line."""
    return "\n".join(p.describe() for p in tool_schema(calculator))


def _lookup(name: Any) -> Calculator | None:
    text = str(name).strip()
    if text.isdigit():
        return BY_ID.get(int(text))
    return CALCULATORS.get(text) or CALCULATORS.get(text.lower().replace("-", "_").replace(" ", "_"))


# --- the gold call ---------------------------------------------------------------------------------------------------


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if re.fullmatch(r"-?\d+", text) else value


def _canonical_number(value: float) -> int | float:
    rounded = round(float(value), 3)
    return int(rounded) if float(rounded).is_integer() else rounded


def tool_target(calculator: str | int, canonical_values: dict[str, Any], shown: dict[str, str] | None = None) -> str:
    """The gold tool call the student must write, as compact JSON. Numeric inputs use the value and unit the note
    shows (``shown``: ``{"weight_kg": "154 lb"}``, as synthetic records store it), else the canonical value, and a bare
    number where every accepted unit means the same (mm Hg); bools are listed only when present; optional inputs at
    their default are left out. Short targets keep SFT and GRPO cheap.

    >>> tool_target("bmi", {"weight_kg": 69.853, "height_cm": 170}, {"weight_kg": "154 lb", "height_cm": "170 cm"})
    '{"calculator":"bmi","weight":{"value":154,"unit":"lb"},"height":{"value":170,"unit":"cm"}}'
    >>> tool_target("curb65", {"age": 70, "bun": 25, "resp_rate": 31, "sbp": 120, "dbp": 80, "confusion": True})
    '{"calculator":"curb65","age":70,"bun":{"value":25,"unit":"mg/dL"},"resp_rate":31,"sbp":120,"dbp":80,"confusion":true}'
    """
    calc = _lookup(calculator)
    if calc is None:
        raise KeyError(f"unknown calculator '{calculator}'")
    shown = shown or {}
    call: dict[str, Any] = {"calculator": calc.key}
    for p in tool_schema(calc.key):
        value = canonical_values.get(p.feature, p.default)
        if p.kind == "bool":
            if value:
                call[p.name] = True
        elif p.kind == "date":
            call[p.name] = (value if isinstance(value, date) else date.fromisoformat(str(value))).strftime("%m/%d/%Y")
        elif p.kind == "categorical":
            call[p.name] = int(value) if p.feature in INT_CHOICES else str(value)
        elif not p.required and (value is None or float(value) == float(p.default or 0)):
            continue
        elif p.feature in shown:
            number, _, unit = shown[p.feature].partition(" ")
            call[p.name] = {"value": _number(number), "unit": unit} if unit and p.convertible else _number(number)
        elif p.convertible:
            call[p.name] = {"value": _canonical_number(value), "unit": p.unit}
        else:
            call[p.name] = _canonical_number(value)
    return json.dumps(call, ensure_ascii=False, separators=(",", ":"))


# --- reading and running a call ------------------------------------------------------------------------------------


def parse_tool_call(text: str) -> dict[str, Any] | Abstain:
    """The first JSON object in ``text`` that names a calculator (code fences and chatter around it are fine).

    >>> parse_tool_call('Using BMI: {"calculator": "bmi", "weight": 70, "height": 175}')["weight"]
    70
    >>> parse_tool_call("no json here"), parse_tool_call('{"weight": 70')
    (Abstain(reason='no JSON object in the output', confidence=0.0), Abstain(reason='no complete JSON object naming a calculator', confidence=0.0))
    """
    if not isinstance(text, str):
        return Abstain("tool call is not text")
    if "{" not in text:
        return Abstain("no JSON object in the output")
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(MAX_SCAN):
        if start < 0:
            break
        try:
            obj, _end = decoder.raw_decode(text[start : start + MAX_CALL_CHARS])
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and "calculator" in obj:
            return obj
        start = text.find("{", start + 1)
    return Abstain("no complete JSON object naming a calculator")


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value[:40]):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def _read(p: Param, raw: Any) -> tuple[Any, str | None]:
    """(canonical value, None) or (None, problem) for one parameter's raw JSON value."""
    if p.kind == "bool":
        if isinstance(raw, bool):
            return raw, None
        text = str(raw).strip().lower()[:20]
        if text in ("yes", "present", "1", "true", "y"):
            return True, None
        if text in ("no", "absent", "0", "false", "n", "none"):
            return False, None
        return None, f"parameter '{p.name}' must be true or false"
    if p.kind == "categorical":
        options = {o.lower(): o for o in p.options}
        text = str(raw).strip().lower()[:80]
        if text in options:
            value = options[text]
            return (int(value) if p.feature in INT_CHOICES else value), None
        return None, f"parameter '{p.name}' must be one of: {', '.join(p.options)}"
    if p.kind == "date":
        text = str(raw).strip()[:20]
        for pattern, order in (
            (r"(\d{1,2})/(\d{1,2})/(\d{4})", (3, 1, 2)),
            (r"(\d{4})-(\d{1,2})-(\d{1,2})", (1, 2, 3)),
        ):
            m = re.fullmatch(pattern, text)
            if m:
                try:
                    return date(*(int(m.group(i)) for i in order)), None
                except ValueError:
                    break
        return None, f"parameter '{p.name}' must be a date (MM/DD/YYYY)"
    unit = None
    if isinstance(raw, dict):
        unit, raw = raw.get("unit"), raw.get("value")
        if unit is not None and not isinstance(unit, str):
            return None, f"parameter '{p.name}' has a unit that is not text"
    number = _as_float(raw)
    if number is None:
        return None, f"parameter '{p.name}' must be a number"
    if unit is None or unit.strip() == "" or (not p.units and _norm_unit(unit) in ("", _norm_unit(p.unit))):
        return number, None  # a bare number is read in the canonical unit
    by_norm = {_norm_unit(label): conv for label, conv in p.units.items()}
    conv = by_norm.get(_norm_unit(unit))
    if conv is None:
        accepted = ", ".join(p.units) or "no unit"
        return None, f"parameter '{p.name}': unit '{unit[:20]}' not accepted (use {accepted})"
    factor, offset = conv
    return (number - offset) / factor, None


def read_call(call: dict[str, Any], calc: Calculator) -> tuple[dict[str, Any], list[str]]:
    """Canonical inputs of ``calc`` from a parsed call, and the problems found (missing or bad parameters)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    missing: list[str] = []
    for p in tool_schema(calc.key):
        raw = call.get(p.name, call.get(p.feature))
        if raw is None:
            if p.required:
                missing.append(p.name)
            else:
                values[p.feature] = p.default
            continue
        value, problem = _read(p, raw)
        if problem:
            problems.append(problem)
        else:
            values[p.feature] = value
    if missing:
        problems.insert(0, f"missing parameter{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if calc.key == "mme" and not problems:
        problems += _mme_problems(values)
    return values, problems


def _mme_problems(values: dict[str, Any]) -> list[str]:
    out = []
    for drug in OPIOIDS:
        dose, per_day = values.get(f"{drug}_dose", 0), values.get(f"{drug}_doses_per_day", 0)
        if bool(dose) != bool(per_day):
            out.append(f"parameter '{drug}_{'doses_per_day' if dose else 'dose'}' is missing for {drug}")
    if not out and not any(values.get(f"{d}_dose") for d in OPIOIDS):
        out.append("no opioid dose given")
    return out


def _explain(calc: Calculator, call: dict[str, Any], values: dict[str, Any]) -> str:
    parts = []
    for p in tool_schema(calc.key):
        if p.name not in call and p.feature not in call:
            continue
        value = values[p.feature]
        if p.kind == "numeric":
            text = f"{num(value)} {p.unit}".strip() if p.unit not in ("years", "days") else num(value)
            raw = call.get(p.name, call.get(p.feature))
            if isinstance(raw, dict) and raw.get("unit") and _norm_unit(str(raw["unit"])) != _norm_unit(p.unit):
                text = f"{raw.get('value')} {raw['unit']} = {text}"
        elif p.kind == "date":
            text = value.strftime("%m/%d/%Y")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{p.name}: {text}")
    return f"{calc.name} from " + "; ".join(parts)


def run_tool_call(call: Any, calculator: str | int | Calculator | None = None) -> Answer | Abstain:
    """Validate ``call`` (a parsed dict or the raw model text), convert units and run the calculator. The answer's
    value is the result as MedCalc-Bench writes it; ``evidence`` holds the extracted canonical inputs and a one-line
    explanation. ``calculator`` is used when the call does not name one.

    >>> run_tool_call('{"calculator": "bmi", "weight": {"value": 154, "unit": "lb"}, "height": {"value": 68, "unit": "in"}}').value
    '23.415'
    >>> run_tool_call({"calculator": "bmi", "weight": 70})
    Abstain(reason='bmi: missing parameter: height', confidence=0.0)
    >>> run_tool_call({"calculator": "bmj"}).reason
    "unknown calculator 'bmj' (did you mean 'bmi'?)"
    """
    try:
        return _run(call, calculator)
    except Exception as exc:  # noqa: BLE001 - model output must never crash the caller; name the failure, no values
        return Abstain(f"tool call could not be run ({type(exc).__name__})")


def _run(call: Any, calculator: str | int | Calculator | None) -> Answer | Abstain:
    if isinstance(call, str):
        call = parse_tool_call(call)
    if isinstance(call, Abstain):
        return call
    if not isinstance(call, dict):
        return Abstain("tool call is not a JSON object")
    named = call.get("calculator", calculator.key if isinstance(calculator, Calculator) else calculator)
    if named is None:
        return Abstain("the tool call names no calculator")
    calc = _lookup(named)
    if calc is None:
        text = str(named)[:40]
        match = difflib.get_close_matches(text, sorted(CALCULATORS), n=1, cutoff=0.5)
        return Abstain(f"unknown calculator '{text}'" + (f" (did you mean '{match[0]}'?)" if match else ""))
    values, problems = read_call(call, calc)
    if problems:
        return Abstain(f"{calc.key}: " + "; ".join(problems))
    if calc.sex and "sex" not in values:
        values["sex"] = calc.sex
    try:
        result, _lines = calc.compute(values)
        answer = format_answer(result, calc.answer_format)
        if calc.answer_format in ("decimal", "integer") and not math.isfinite(float(answer)):
            raise ValueError("not finite")
    except (ArithmeticError, ValueError, KeyError, TypeError, OverflowError):
        return Abstain(f"{calc.key}: the inputs are out of range for the formula")
    return Answer(
        answer,
        evidence={
            "calculator": calc.key,
            "inputs": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()},
            "explanation": _explain(calc, call, values),
        },
    )


# --- prompts -------------------------------------------------------------------------------------------------------


def prompt_params(calculator: str | int) -> str:
    """The calculator's parameters as the tool-mode prompt lists them: short (token budget), units where the unit
    matters, bool findings grouped.

    >>> prompt_params("cockcroft_gault")
    'age; sex (male|female); weight (kg|lb); height (cm|m|in); creatinine (mg/dL|µmol/L)'
    >>> prompt_params("curb65")
    'age; bun (mg/dL|mmol/L); resp_rate; sbp; dbp; true if present: confusion'
    """
    calc = _lookup(calculator)
    if calc is not None and calc.key == "mme":
        drugs = ", ".join(f"{d} ({OPIOIDS[d][1]})" for d in OPIOIDS)
        return f"for each opioid taken: <drug>_dose and <drug>_doses_per_day; drugs: {drugs}"
    parts, flags = [], []
    for p in tool_schema(calculator):
        if p.kind == "bool":
            flags.append(p.name)
        elif p.kind == "categorical":
            parts.append(f"{p.name} ({'|'.join(p.options)})")
        elif p.kind == "date":
            parts.append(f"{p.name} (MM/DD/YYYY)")
        elif p.convertible:
            parts.append(f"{p.name} ({'|'.join(dict.fromkeys(p.units))})")
        else:
            parts.append(p.name + ("" if p.required else " (if given)"))
    if flags:
        parts.append("true if present: " + ", ".join(flags))
    return "; ".join(parts)


_WORD = re.compile(r"[a-z0-9]+")
_STOP = {
    "the",
    "a",
    "an",
    "of",
    "in",
    "is",
    "what",
    "patient's",
    "patients",
    "patient",
    "score",
    "using",
    "for",
    "to",
    "and",
    "based",
    "on",
    "your",
    "their",
    "terms",
    "with",
}


def match_calculator(question: str) -> Calculator | None:
    """The calculator a free-text question asks for (its MedCalc-Bench question, name or key), or None when no
    calculator matches well (the caller then says so instead of guessing).

    >>> match_calculator("What is the CURB-65 score?").key, match_calculator("Estimate creatinine clearance (Cockcroft-Gault)").key
    ('curb65', 'cockcroft_gault')
    >>> match_calculator("How tall is the Eiffel tower?") is None
    True
    """
    tokens = _WORD.findall(str(question).lower()[:4000])
    words = set(tokens) - _STOP
    if not words:
        return None
    # "CURB-65" reads as curb + 65 and "MELD Na" as meld + na: keys match whole words or adjacent pairs
    glued = (
        set(tokens)
        | {a + b for a, b in itertools.pairwise(tokens)}
        | {a + b + c for a, b, c in zip(tokens, tokens[1:], tokens[2:])}
    )
    best, best_score = None, 0.0
    for calc in CALCULATORS.values():
        name_words = set(_WORD.findall(f"{calc.name} {calc.key.replace('_', ' ')}".lower())) - _STOP
        question_words = set(_WORD.findall(calc.question.lower())) - _STOP
        joined = "".join(_WORD.findall(calc.key.lower()))
        score = 2.0 * len(words & name_words) + 0.5 * len(words & question_words)
        score += 3.0 * (joined in glued)
        if score > best_score:
            best, best_score = calc, score
    return best if best_score >= 3.0 else None
