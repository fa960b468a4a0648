"""Build the real-note dev fixture for calc: MedCalc-Bench's 55 one-shot exemplars with each calculator's gold
parameters typed per our tool schema (``ehrforge/tasks/calc/data/real_exemplars.json`` and its ``NOTICE.md``).

    python benchmarks/calc_real_fixture.py                      # from ../shared/data/medcalc (or $EHRFORGE_MEDCALC_DIR)
    python benchmarks/calc_real_fixture.py --source DIR --out FILE

Where the gold parameters come from: each exemplar carries ``input_parameters``, the inputs upstream's reference
implementation was run on to write the step-by-step explanation. They are mapped onto our parameter names (upstream
spells them differently: ``sys_bp`` → ``sbp``, ``previous_pe`` → ``prior_pe``; some of ours join several of theirs:
``stroke_tia`` = stroke or TIA or thromboembolism), read through the tool's own unit conversion (``read_call``), and
each numeric or date value is checked against the explanation text (``in_explanation``). Nothing is guessed: a
parameter of ours with no upstream value is listed under ``unparsed`` with the reason, an upstream input with no
parameter of ours under ``unmapped_upstream``. Deterministic: the same source gives the same bytes (a test checks).
Dev set only: never train on it (9 exemplar notes occur in the v1.0 test set).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ehrforge.tasks.calc.calculators import BY_ID, Calculator  # noqa: E402
from ehrforge.tasks.calc.calculators.dosing import OPIOIDS  # noqa: E402
from ehrforge.tasks.calc.features import NUMERIC  # noqa: E402
from ehrforge.tasks.calc.medcalc_data import EXEMPLAR_FILE, load_exemplars  # noqa: E402
from ehrforge.tasks.calc.tool import Param, read_call, tool_schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "ehrforge" / "tasks" / "calc" / "data"
OUT = DATA_DIR / "real_exemplars.json"
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "medcalc"
UPSTREAM = "https://github.com/ncbi-nlp/MedCalc-Bench"
UPSTREAM_REF = "tag version-1.0 (353ded7c61a32366fe0f4e4efccdf05ad15444e5), evaluation/" + EXEMPLAR_FILE

#: upstream input name -> our tool parameter name, for every calculator (typos are upstream's)
RENAMES = {
    "sys_bp": "sbp", "dia_bp": "dbp", "respiratory_rate": "resp_rate", "hemocratit": "hematocrit", "pH": "ph",
    "partial_pressure_oxygen": "pao2", "platelet_count": "platelets", "oxygen_sat": "spo2",
    "total_cholestrol": "total_cholesterol", "hdl_cholestrol": "hdl", "menstrual_date": "lmp", "current_date": "today",
    "previous_dvt": "prior_dvt", "previous_pe": "prior_pe", "congestive_heart_failure": "chf", "cardiac_failure": "chf",
    "diabetes_mellitus": "diabetes", "hepatic_disease_history": "liver_disease", "melena_present": "melena",
    "altered_mental_status": "confusion", "neoplastic_disease": "malignancy", "nursing_home_resident": "nursing_home",
    "alcoholic_drinks": "alcohol_drinks_per_week", "medications_for_bleeding": "bleeding_medication",
    "renal_disease_has_bled": "renal_disease", "liver_disease_has_bled": "liver_disease", "smoking": "smoker",
    "family_with_cvd": "family_history_cvd", "history": "heart_history", "electrocardiogram": "ecg",
    "initial_troponin": "troponin", "tender_lymph_nodes": "tender_nodes", "exudate_swelling_tonsils": "tonsillar_exudate",
    "symptom_onset": "onset_within_3_days", "pre_operative_insulin_treatment": "insulin_treatment",
    "pre_operative_creatinine": "creatinine", "ischemetic_heart_disease": "ischemic_heart_disease",
    "elevated_risk_surgery": "high_risk_surgery", "clinical_dvt": "dvt_signs", "pe_number_one": "pe_most_likely",
    "malignancy_with_treatment": "malignancy", "active_cancer": "malignancy", "leg_swollen": "entire_leg_swollen",
    "localized_tenderness_on_deep_venuous_system": "deep_vein_tenderness",
    "paralysis_paresis_immobilization_in_lower_extreme": "leg_paralysis_or_cast",
    "alternative_to_dvt_diagnosis": "alternative_diagnosis_likely", "collateral_superficial_veins": "collateral_veins",
    "pitting_edema_on_symptomatic_leg": "pitting_edema", "peptic_ucler_disease": "peptic_ulcer_disease",
    "moderate_to_severe_ckd": "moderate_severe_ckd", "sepsis": "sepsis_last_month", "pneumonia": "pneumonia_last_month",
    "immobilizing_plaster_cast": "plaster_cast", "hip_pelvis_leg_fracture": "leg_fracture",
    "positive_factor_v": "factor_v_leiden", "positive_prothrombin": "prothrombin_20210a",
    "serum_homocysteine": "elevated_homocysteine", "positive_lupus_anticoagulant": "lupus_anticoagulant",
    "elevated_anticardiolipin_antibody": "anticardiolipin", "acute_myocardial_infarction": "acute_mi",
    "hormonal_use": "hormone_use", "recent_surgery_or_trauma": "recent_surgery", "immobilization_for_3days": "immobilization",
    "surgery_in_past4weeks": "recent_surgery", "best_eye_response": "gcs_eye", "best_verbal_response": "gcs_verbal",
    "best_motor_response": "gcs_motor",
}  # fmt: skip
#: per calculator: our parameter <- any of several upstream booleans (true when any is true)
ANY_OF = {
    "cha2ds2_vasc": {"stroke_tia": ("stroke", "tia", "thromboembolism")},
    "has_bled": {"stroke_tia": ("stroke", "tia", "thromboembolism")},
    "meld_na": {"dialysis": ("cvvhd", "dialysis_twice")},
    "wells_dvt": {"bedridden_or_major_surgery": ("bedridden_for_atleast_3_days", "major_surgery_in_last_12_weeks")},
    "charlson": {"cerebrovascular_disease": ("tia", "cva")},
    "rcri": {"cerebrovascular_disease": ("cerebrovascular_disease_history", "cerebrovascular_disease")},
    "heart_score": {"atherosclerotic_disease": ("atherosclerotic_disease", "tia")},  # MDCalc counts CVA/TIA here
}
#: per calculator: upstream name -> our parameter, where the generic rename would be wrong
CALC_RENAMES = {
    "apache_ii": {"surgery_type": "admission_type"},
    "charlson": {"diabetes_mellitus": "diabetes_severity"},
    "target_weight": {"body_mass_index": "target_bmi"},
}
#: upstream unit spellings -> the tool's labels (the tool's own loose matching handles case, spaces and µ/u)
UNITS = {
    "beats per minute": "beats/min", "breaths per minute": "breaths/min", "degrees celsius": "°C",
    "degrees fahrenheit": "°F", "µl": "/µL", "m^3": "/mm³", "kg/m^2": "kg/m²", "per day": "", "years": "",
}  # fmt: skip
#: upstream categorical values -> our options (lower-cased on both sides)
OPTIONS = {
    "gcs_eye": {"eyes open spontaneously": "4", "eye opening to verbal command": "3", "eye opening to pain": "2",
                "no eye opening": "1"},
    "gcs_verbal": {"oriented": "5", "confused": "4", "inappropriate words": "3", "incomprehensible sounds": "2",
                   "no verbal response": "1"},
    "gcs_motor": {"obeys commands": "6", "localizes pain": "5", "withdrawal from pain": "4", "flexion to pain": "3",
                  "extension to pain": "2", "no motor response": "1"},
    "encephalopathy": {"grade 0": "none", "no encephalopathy": "none", "grade 1-2": "grade 1-2", "grade 3-4": "grade 3-4"},
    "troponin": {"less than or equal to normal limit": "normal",
                 "between the normal limit or up to three times the normal limit": "1-3 times normal",
                 "greater than three times normal limit": "more than 3 times normal"},
    "admission_type": {"nonoperative": "nonoperative", "emergency": "emergency postoperative",
                       "elective": "elective postoperative"},
    "diabetes_severity": {"false": "none or diet-controlled"},  # upstream's Charlson takes a bool: false = none
}  # fmt: skip


def as_number(value: Any) -> int | float:
    """Whole floats as ints, so the JSON reads as the note does (66, not 66.0)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def split_value(raw: Any) -> tuple[Any, str]:
    """(value, unit) of one upstream input: ``[66, "years"]``, ``2.0`` or ``"Male"``.

    >>> split_value([150.0, "beats per minute"]), split_value(2.0), split_value([181000.0, "µL"])
    ((150, 'beats/min'), (2, ''), (181000, '/µL'))
    """
    if isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], (int, float)):
        unit = str(raw[1]).strip()
        return as_number(raw[0]), UNITS.get(unit.lower(), unit)
    return (as_number(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else raw), ""


def mentions(explanation: str, value: Any) -> bool:
    """Whether the explanation writes this number or date (66 matches "66", "66.0"; 0.5 matches "0.50").

    >>> mentions("The patient is 66 years old.", 66), mentions("creatinine 5.09 mg/dL", 5.1), mentions("on 02/24/2000", "02/24/2000")
    (True, False, True)
    >>> mentions("was on 1/07/2017.", "01/07/2017")
    True
    """
    if isinstance(value, str):  # a date: upstream writes 01/07/2017 as 1/07/2017 too
        month, day, year = (int(x) for x in value.split("/"))
        pattern = rf"(?<!\d)0?{month}/0?{day}/{year}(?!\d)"
        return re.search(pattern, explanation) is not None
    for match in re.finditer(r"(?<![\d.])\d+(?:\.\d+)?(?![\d])", explanation):
        if abs(float(match.group(0)) - float(value)) < 1e-9:
            return True
    return False


def _mme_inputs(params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """MME upstream inputs (``"OxyMORphone Dose": [10, "mg"]``, ``"... Dose Per Day": [1, "per day"]``) by our names."""
    names = {display.lower(): drug for drug, (display, _unit, _factor) in OPIOIDS.items()}
    out: dict[str, Any] = {}
    unmapped = []
    for key, raw in params.items():
        m = re.fullmatch(r"(.+?) Dose( Per Day)?", key)
        drug = names.get(m.group(1).lower()) if m else None
        if drug is None:
            unmapped.append({"name": key, "reason": "no opioid of ours has this name"})
            continue
        out[f"{drug}_doses_per_day" if m.group(2) else f"{drug}_dose"] = (key, raw)
    return out, unmapped


def upstream_by_param(calc: Calculator, params: dict[str, Any]) -> tuple[dict[str, tuple[str, Any]], list[dict]]:
    """{our parameter: (upstream name(s), raw upstream value)} and the upstream inputs that map to nothing of ours."""
    if calc.key == "mme":
        return _mme_inputs(params)
    schema = {p.name for p in tool_schema(calc.key)}
    params = dict(params)
    out: dict[str, tuple[str, Any]] = {}
    if calc.key == "steroid_conversion":
        name, dose, unit = params.pop("input steroid")
        out["input_steroid"] = ("input steroid", name)
        out["steroid_dose"] = ("input steroid", [dose, unit])
        out["target_steroid"] = ("target steroid", params.pop("target steroid"))
    for ours, theirs in ANY_OF.get(calc.key, {}).items():
        given = [t for t in theirs if t in params]
        if given:
            values = [bool(params.pop(t)) for t in given]  # pop every one: any() would stop at the first true
            out[ours] = ("|".join(given), any(values))
    unmapped = []
    renames = {**RENAMES, **CALC_RENAMES.get(calc.key, {})}
    for key, raw in params.items():
        ours = renames.get(key, key)
        if ours not in schema:
            unmapped.append({"name": key, "reason": f"no parameter of {calc.key} takes it"})
        elif ours in out:
            unmapped.append({"name": key, "reason": f"'{ours}' already given by {out[ours][0]}"})
        else:
            out[ours] = (key, raw)
    return out, unmapped


def gold_param(calc: Calculator, p: Param, raw: Any, explanation: str) -> tuple[dict[str, Any] | None, str | None]:
    """(typed gold entry, None) or (None, why it could not be read) for one parameter."""
    value, unit = split_value(raw)
    if p.kind == "categorical":
        text = str(value).strip().lower()
        value = OPTIONS.get(p.feature, {}).get(text, text)
        options = {o.lower(): o for o in p.options}
        if value not in options:
            return None, f"upstream value '{text}' is none of the options ({', '.join(p.options)})"
        value = options[value]
    elif p.kind == "bool" and not isinstance(value, bool):
        return None, f"upstream value {value!r} is not true/false"
    elif p.kind == "numeric" and p.feature == "wbc" and unit == "/µL":
        unit = "/mm³"  # the same count per volume (1 µL = 1 mm³); the schema spells it /mm³
    elif p.kind == "numeric" and unit and p.units and unit not in p.units:
        units = {u.lower().replace(" ", ""): u for u in p.units}
        unit = units.get(unit.lower().replace(" ", ""), unit)
    call_value: Any = {"value": value, "unit": unit} if p.kind == "numeric" and unit else value
    values, problems = read_call({p.name: call_value}, calc)
    mine = [x for x in problems if f"'{p.name}'" in x]
    if mine or p.feature not in values:
        return None, mine[0] if mine else "the tool could not read it"
    canonical = values[p.feature]
    entry: dict[str, Any] = {"kind": p.kind, "value": value}
    if p.kind == "numeric":
        entry.update(unit=unit or p.unit, canonical=round(float(canonical), 6))
        entry["in_explanation"] = mentions(explanation, value)
        feature = NUMERIC.get(p.feature)
        if feature is not None and not feature.lo / 3 <= canonical <= feature.hi * 3:
            # kept as upstream wrote it (e.g. SOFA creatinine "3.12 µmol/L" = 0.035 mg/dL): flagged, not fixed
            entry["far_outside_synthetic_range"] = True
    elif p.kind == "date":
        entry["value"] = canonical.strftime("%m/%d/%Y")
        entry["in_explanation"] = mentions(explanation, entry["value"])
    return entry, None


def derive(calc: Calculator, exemplar: dict[str, Any], explanation: str) -> dict[str, Any]:
    """The gold parameters of one exemplar, the parameters that could not be read and the unmapped upstream inputs."""
    given, unmapped = upstream_by_param(calc, exemplar.get("input_parameters") or {})
    gold: dict[str, Any] = {}
    unparsed = []
    for p in tool_schema(calc.key):
        if p.name not in given:
            default = "" if p.required else f" (unmentioned = {str(p.default).lower()}, MedCalc-Bench's convention)"
            unparsed.append({"param": p.name, "reason": "no upstream input gives it" + default})
            continue
        source, raw = given[p.name]
        entry, problem = gold_param(calc, p, raw, explanation)
        if entry is None:
            unparsed.append({"param": p.name, "reason": f"upstream '{source}': {problem}"})
        else:
            gold[p.name] = {**entry, "from": source}
    return {"gold_params": gold, "unparsed": unparsed, "unmapped_upstream": unmapped}


def build(source: Path) -> dict[str, Any]:
    path = source / EXEMPLAR_FILE if source.is_dir() else source
    raw = json.loads(path.read_text(encoding="utf-8"))
    records = {r["calculator_id"]: r for r in load_exemplars(path, set(BY_ID))}
    exemplars = []
    for cid in sorted(raw, key=int):
        calc, record = BY_ID[int(cid)], dict(records[int(cid)])
        explanation = record.pop("reasoning")  # the explanation is read, not copied: the fixture stays small
        exemplars.append({**record, **derive(calc, raw[cid], explanation)})
    return {
        "_about": "MedCalc-Bench one-shot exemplars with gold parameters typed per ehrforge's calc tool schema. "
        "Dev/evaluation set only: never train on it. Licence CC BY-SA 4.0; see NOTICE.md.",
        "_source": {"upstream": UPSTREAM, "file": UPSTREAM_REF, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
        "_builder": "python benchmarks/calc_real_fixture.py",
        "coverage": coverage(exemplars),
        "exemplars": exemplars,
    }


def coverage(exemplars: list[dict[str, Any]]) -> dict[str, Any]:
    """How many schema parameters have a gold value, overall and for the required ones."""
    schema = [(e, p) for e in exemplars for p in tool_schema(e["calculator"])]
    parsed = [(e, p) for e, p in schema if p.name in e["gold_params"]]
    required = [(e, p) for e, p in schema if p.required]
    numeric = [g for e in exemplars for g in e["gold_params"].values() if "in_explanation" in g]
    return {
        "exemplars": len(exemplars),
        "schema_params": len(schema),
        "parsed": len(parsed),
        "unparsed": len(schema) - len(parsed),
        "required_params": len(required),
        "required_parsed": sum(p.name in e["gold_params"] for e, p in required),
        "exemplars_with_all_required": sum(
            all(p.name in e["gold_params"] for p in tool_schema(e["calculator"]) if p.required) for e in exemplars
        ),
        "unmapped_upstream_inputs": sum(len(e["unmapped_upstream"]) for e in exemplars),
        "numeric_or_date_in_explanation": f"{sum(g['in_explanation'] for g in numeric)}/{len(numeric)}",
        "far_outside_synthetic_range": sum(bool(g.get("far_outside_synthetic_range")) for e in exemplars for g in e["gold_params"].values()),
    }  # fmt: skip


def dumps(fixture: dict[str, Any]) -> str:
    """The fixture's bytes: fixed key order from the builder, one exemplar field per line, UTF-8, final newline."""
    return json.dumps(fixture, ensure_ascii=False, indent=1) + "\n"


NOTICE = """# Notice: `real_exemplars.json` (derived from MedCalc-Bench, CC BY-SA 4.0)

`real_exemplars.json` is derived from the one-shot exemplars of **MedCalc-Bench** ({upstream}), file
`{ref}`, by Nikhil Khandekar, Qiao Jin, Guangzhi Xiong, Soren Dunn, Serina S Applebaum, Zain Anwar, Maame
Sarfo-Gyamfi, Conrad W Safranek, Abid A Anwar, Andrew Zhang, Aidan Gilson, Maxwell B Singer, Amisha Dave,
Andrew Taylor, Aidong Zhang, Qingyu Chen, Zhiyong Lu ("MedCalc-Bench: Evaluating Large Language Models for
Medical Calculations", NeurIPS 2024 Datasets and Benchmarks, arXiv:2406.12036). MedCalc-Bench is
licensed under the **Creative Commons Attribution-ShareAlike 4.0 International licence**
(https://creativecommons.org/licenses/by-sa/4.0/); its patient notes come from PMC-Patients / Open-Patients case
reports. This derived file is shared under the same licence (CC BY-SA 4.0).

Source file sha256: `{sha}`.

## Changes made
- Kept per exemplar: the patient note (verbatim), the calculator id, the gold answer; added our calculator key,
  name, category, output type, answer format, the question text and the accepted answer range (±5 % for decimals).
- Dropped: the step-by-step explanation text (it is only read, to check that each gold number appears in it).
- Added `gold_params`: upstream's `input_parameters` renamed to ehrforge's tool parameters, categorical values
  mapped to our options, values converted by ehrforge's tool (`canonical`); `unparsed` lists our parameters with no
  upstream value (and why), `unmapped_upstream` the upstream inputs no parameter of ours takes. Upstream values that
  lie beyond 3× the synthetic generator's range (some look mis-united, e.g. SOFA creatinine "3.12 µmol/L") are
  kept as upstream wrote them and flagged `far_outside_synthetic_range`, not corrected.
- Built by `python benchmarks/calc_real_fixture.py` (deterministic).

## Use
A **dev / evaluation set only. Never train on it**: 9 of the 55 exemplar notes occur verbatim in the MedCalc-Bench
v1.0 test set, and the exemplars are upstream's in-context demonstrations.
"""


def notice(fixture: dict[str, Any]) -> str:
    return NOTICE.format(upstream=UPSTREAM, ref=UPSTREAM_REF, sha=fixture["_source"]["sha256"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=None, help=f"folder with {EXEMPLAR_FILE} (or the file)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import os

    source = args.source or Path(os.environ.get("EHRFORGE_MEDCALC_DIR", DEFAULT_SOURCE))
    fixture = build(source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(fixture), encoding="utf-8")
    (args.out.parent / "NOTICE.md").write_text(notice(fixture), encoding="utf-8")
    init = args.out.parent / "__init__.py"
    if not init.exists():
        init.write_text('"""Derived real-note fixtures for calc (see NOTICE.md: CC BY-SA 4.0, never trained on)."""\n')
    print(json.dumps(fixture["coverage"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
