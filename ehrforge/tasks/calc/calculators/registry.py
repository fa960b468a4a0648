"""The calculators ehrforge can generate training items for: MedCalc-Bench id, question text, inputs, the pure
function that computes the gold answer, and the worked reasoning used as the SFT target."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Any

from ehrforge.errors import UnknownNameError, closest
from ehrforge.tasks.calc.calculators import formulas as F
from ehrforge.tasks.calc.calculators import scores as S
from ehrforge.tasks.calc.features import NUMERIC

#: how an answer is written and checked (MedCalc-Bench's evaluate.py rules)
ANSWER_FORMATS = ("decimal", "integer", "date", "weeks_days")


@dataclass(frozen=True)
class Calculator:
    id: int
    key: str
    inputs: tuple[str, ...]
    answer_format: str
    compute: Callable[[dict[str, Any]], tuple[Any, list[str]]]  # canonical values -> (answer, worked lines)
    unit: str = ""
    age_range: tuple[int, int] = (18, 90)
    sex: str | None = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    complaints: tuple[str, ...] = ()

    @property
    def meta(self) -> dict[str, str]:
        return _medcalc_meta()[str(self.id)]

    @property
    def name(self) -> str:
        return self.meta["calculator_name"]

    @property
    def question(self) -> str:
        return self.meta["question"]

    @property
    def output_type(self) -> str:
        """MedCalc-Bench's output type (decimal / integer / date), used for accuracy-by-type."""
        return self.meta["output_type"]

    @property
    def category(self) -> str:
        return self.meta["category"]


def _medcalc_meta() -> dict[str, dict[str, str]]:
    global _META
    if _META is None:
        text = resources.files("ehrforge.tasks.calc.calculators").joinpath("medcalc_questions.json").read_text("utf-8")
        _META = json.loads(text)["calculators"]
    return _META


_META: dict[str, dict[str, str]] | None = None


def num(x: float) -> str:
    """A number as the reasoning writes it: up to 3 decimals, no trailing zeros."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_answer(value: Any, answer_format: str) -> str:
    """The gold answer string, in the form MedCalc-Bench's checker expects."""
    if answer_format == "date":
        return value.strftime("%m/%d/%Y")
    if answer_format == "weeks_days":
        return f"({value[0]}, {value[1]})"
    if answer_format == "integer":
        return str(int(round(value)))
    return num(value)


# --- builders ---------------------------------------------------------------------------------------------------


def _formula(
    expression: str, fn: Callable[..., float], unit: str, label: str
) -> Callable[[dict], tuple[Any, list[str]]]:
    """A closed-form calculator: ``expression`` names inputs as {name}; the worked lines show the symbolic formula,
    the substituted numbers and the result."""
    names = re.findall(r"{(\w+)}", expression)

    def compute(v: dict[str, Any]) -> tuple[Any, list[str]]:
        value = fn(**{n: v[n] for n in dict.fromkeys(names)})
        symbolic = expression.format(**{n: n for n in names})
        substituted = expression.format(**{n: num(v[n]) for n in names})
        return value, [f"Formula: {label} = {symbolic}", f"{label} = {substituted} = {num(value)} {unit}".rstrip()]

    return compute


def _points(
    fn: Callable[..., S.Breakdown], inputs: tuple[str, ...], label: str
) -> Callable[[dict], tuple[Any, list[str]]]:
    def compute(v: dict[str, Any]) -> tuple[Any, list[str]]:
        items = fn(**{n: v[n] for n in inputs})
        lines = [f"- {criterion}: {'+' if p >= 0 else ''}{num(p)}" for criterion, p in items]
        value = S.total(items)
        lines.append(f"{label} = " + " + ".join(num(p) for _, p in items) + f" = {num(value)}")
        return value, lines

    return compute


def _cockcroft_gault(v: dict[str, Any]) -> tuple[Any, list[str]]:
    age, sex, w, h, cr = v["age"], v["sex"], v["weight_kg"], v["height_cm"], v["creatinine"]
    b = F.bmi(w, h)
    ibw = F.ideal_body_weight(sex, h)
    used, rule = F.crcl_weight(sex, w, h)
    coef = 0.85 if sex == "female" else 1
    value = F.cockcroft_gault(age, sex, w, h, cr)
    return value, [
        f"BMI = {num(w)} / ({num(h / 100)})² = {num(b)} kg/m²",
        f"Ideal body weight = {'45.5' if sex == 'female' else '50'} + 2.3 × ({num(h / 2.54)} in − 60) = {num(ibw)} kg",
        f"Weight rule ({rule}): {num(used)} kg",
        "Formula: CrCl = (140 − age) × weight × sex coefficient / (72 × creatinine)",
        f"CrCl = (140 − {num(age)}) × {num(used)} × {coef} / (72 × {num(cr)}) = {num(value)} mL/min",
    ]


def _ckd_epi(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.ckd_epi_2021(v["age"], v["sex"], v["creatinine"])
    kappa, alpha = ("0.7", "−0.241") if v["sex"] == "female" else ("0.9", "−0.302")
    return value, [
        "Formula: GFR = 142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 (if female)",
        f"For a {v['sex']}: κ = {kappa}, α = {alpha}; Scr/κ = {num(v['creatinine'] / float(kappa))}",
        f"GFR = {num(value)} mL/min/1.73 m²",
    ]


def _meld_na(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.meld_na(v["creatinine"], v["bilirubin"], v["inr"], v["sodium"], v["dialysis"])
    cr = 4.0 if v["dialysis"] else min(max(v["creatinine"], 1.0), 4.0)
    return value, [
        f"Bounded values: creatinine {num(cr)} mg/dL{' (dialysis)' if v['dialysis'] else ''}, bilirubin "
        f"{num(max(v['bilirubin'], 1))} mg/dL, INR {num(max(v['inr'], 1))}, sodium {num(min(max(v['sodium'], 125), 137))} mmol/L",
        "MELD(i) = 10 × (0.957 ln Cr + 0.378 ln bilirubin + 1.120 ln INR + 0.643); if > 11, "
        "MELD Na = MELD(i) + 1.32 × (137 − Na) − 0.033 × MELD(i) × (137 − Na); cap 40",
        f"MELD Na = {num(value)}",
    ]


def _due_date(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.due_date(v["lmp"], v["cycle_length"])
    shift = v["cycle_length"] - 28
    return value, [
        "Naegele's rule: due date = LMP + 280 days + (cycle length − 28) days",
        f"{v['lmp']:%m/%d/%Y} + 280 days {'+' if shift >= 0 else '−'} {abs(shift)} days = {value:%m/%d/%Y}",
    ]


def _conception(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.conception_date(v["lmp"])
    return value, ["Estimated conception = LMP + 2 weeks", f"{v['lmp']:%m/%d/%Y} + 14 days = {value:%m/%d/%Y}"]


def _gestational_age(v: dict[str, Any]) -> tuple[Any, list[str]]:
    weeks, days = F.gestational_age(v["lmp"], v["today"])
    total = (v["today"] - v["lmp"]).days
    return (weeks, days), [
        f"Days from LMP {v['lmp']:%m/%d/%Y} to {v['today']:%m/%d/%Y} = {total}",
        f"{total} days = {weeks} weeks and {days} days",
    ]


BP = ("sbp", "dbp")
LYTES = ("sodium", "chloride", "bicarbonate")
ACID = {"bicarbonate": (6.0, 21.0)}  # delta ratios divide by (24 − HCO3): stay clear of 24
QT = ("qt_ms", "heart_rate")
CARDIAC = ("palpitations", "a syncopal episode", "routine pre-operative ECG review")
RENAL = ("fatigue and reduced urine output", "routine kidney function monitoring", "nausea and leg swelling")
PE = ("sudden pleuritic chest pain and shortness of breath", "acute dyspnea")
THROAT = ("sore throat", "painful swallowing")
PREG = ("a first prenatal visit", "a positive home pregnancy test")
_CALCS: list[Calculator] = [
    Calculator(
        2,
        "cockcroft_gault",
        ("age", "sex", "weight_kg", "height_cm", "creatinine"),
        "decimal",
        _cockcroft_gault,
        "mL/min",
        complaints=RENAL,
    ),
    Calculator(
        3, "ckd_epi_2021", ("age", "sex", "creatinine"), "decimal", _ckd_epi, "mL/min/1.73 m²", complaints=RENAL
    ),
    Calculator(
        4,
        "cha2ds2_vasc",
        ("age", "sex", "chf", "hypertension", "stroke_tia", "vascular_disease", "diabetes"),
        "integer",
        _points(
            S.cha2ds2_vasc,
            ("age", "sex", "chf", "hypertension", "stroke_tia", "vascular_disease", "diabetes"),
            "CHA2DS2-VASc",
        ),
        complaints=("new-onset atrial fibrillation", "palpitations; ECG shows atrial fibrillation"),
    ),
    Calculator(
        5,
        "mean_arterial_pressure",
        BP,
        "decimal",
        _formula("(2 × {dbp} + {sbp}) / 3", F.mean_arterial_pressure, "mm Hg", "MAP"),
    ),
    Calculator(
        6,
        "bmi",
        ("weight_kg", "height_cm"),
        "decimal",
        _formula("{weight_kg} / ({height_cm} / 100)²", F.bmi, "kg/m²", "BMI"),
    ),
    Calculator(
        7,
        "corrected_calcium",
        ("calcium", "albumin"),
        "decimal",
        _formula("{calcium} + 0.8 × (4 − {albumin})", F.corrected_calcium, "mg/dL", "Corrected calcium"),
    ),
    Calculator(
        8,
        "wells_pe",
        (
            "heart_rate",
            "dvt_signs",
            "pe_most_likely",
            "immobilization",
            "recent_surgery",
            "prior_dvt",
            "prior_pe",
            "hemoptysis",
            "malignancy",
        ),
        "decimal",
        _points(
            S.wells_pe,
            (
                "heart_rate",
                "dvt_signs",
                "pe_most_likely",
                "immobilization",
                "recent_surgery",
                "prior_dvt",
                "prior_pe",
                "hemoptysis",
                "malignancy",
            ),
            "Wells PE score",
        ),
        complaints=PE,
    ),
    Calculator(
        9,
        "mdrd_gfr",
        ("age", "sex", "creatinine", "black"),
        "decimal",
        lambda v: (
            F.mdrd_gfr(v["age"], v["sex"], v["creatinine"], v["black"]),
            [
                "Formula: GFR = 175 × Scr^−1.154 × age^−0.203 × 0.742 (female) × 1.212 (Black)",
                f"GFR = 175 × {num(v['creatinine'])}^−1.154 × {num(v['age'])}^−0.203"
                + (" × 0.742" if v["sex"] == "female" else "")
                + (" × 1.212" if v["black"] else "")
                + f" = {num(F.mdrd_gfr(v['age'], v['sex'], v['creatinine'], v['black']))} mL/min/1.73 m²",
            ],
        ),
        "mL/min/1.73 m²",
        complaints=RENAL,
    ),
    Calculator(
        10,
        "ideal_body_weight",
        ("sex", "height_cm"),
        "decimal",
        lambda v: _formula(
            ("45.5" if v["sex"] == "female" else "50") + " + 2.3 × ({height_cm} / 2.54 − 60)",
            lambda height_cm: F.ideal_body_weight(v["sex"], height_cm),
            "kg",
            "IBW",
        )(v),
    ),
    Calculator(
        11,
        "qtc_bazett",
        QT,
        "decimal",
        _formula("{qt_ms} / √(60 / {heart_rate})", F.qtc_bazett, "ms", "QTc"),
        complaints=CARDIAC,
    ),
    Calculator(
        13, "due_date", ("lmp", "cycle_length"), "date", _due_date, age_range=(18, 42), sex="female", complaints=PREG
    ),
    Calculator(
        15,
        "child_pugh",
        ("bilirubin", "albumin", "inr", "ascites", "encephalopathy"),
        "integer",
        _points(S.child_pugh, ("bilirubin", "albumin", "inr", "ascites", "encephalopathy"), "Child-Pugh score"),
        complaints=("follow-up of alcohol-related cirrhosis", "abdominal distension"),
    ),
    Calculator(
        16,
        "wells_dvt",
        (
            "malignancy",
            "bedridden_or_major_surgery",
            "calf_swelling_3cm",
            "collateral_veins",
            "entire_leg_swollen",
            "deep_vein_tenderness",
            "pitting_edema",
            "leg_paralysis_or_cast",
            "prior_dvt",
            "alternative_diagnosis_likely",
        ),
        "integer",
        _points(
            S.wells_dvt,
            (
                "malignancy",
                "bedridden_or_major_surgery",
                "calf_swelling_3cm",
                "collateral_veins",
                "entire_leg_swollen",
                "deep_vein_tenderness",
                "pitting_edema",
                "leg_paralysis_or_cast",
                "prior_dvt",
                "alternative_diagnosis_likely",
            ),
            "Wells DVT score",
        ),
        complaints=("a painful swollen left calf",),
    ),
    Calculator(
        17,
        "rcri",
        (
            "high_risk_surgery",
            "ischemic_heart_disease",
            "chf",
            "cerebrovascular_disease",
            "insulin_treatment",
            "creatinine",
        ),
        "integer",
        _points(
            S.rcri,
            (
                "high_risk_surgery",
                "ischemic_heart_disease",
                "chf",
                "cerebrovascular_disease",
                "insulin_treatment",
                "creatinine",
            ),
            "RCRI",
        ),
        complaints=("pre-operative assessment",),
    ),
    Calculator(
        19,
        "fib4",
        ("age", "ast", "alt", "platelets"),
        "decimal",
        _formula("{age} × {ast} / ({platelets} × √{alt})", F.fib4, "", "FIB-4"),
        complaints=("abnormal liver tests",),
    ),
    Calculator(
        20,
        "centor_mcisaac",
        ("age", "temp_c", "cough_absent", "tender_nodes", "tonsillar_exudate"),
        "integer",
        _points(
            S.centor_mcisaac, ("age", "temp_c", "cough_absent", "tender_nodes", "tonsillar_exudate"), "Centor score"
        ),
        age_range=(4, 75),
        complaints=THROAT,
    ),
    Calculator(
        21,
        "glasgow_coma_scale",
        ("gcs_eye", "gcs_verbal", "gcs_motor"),
        "integer",
        _points(S.glasgow_coma_scale, ("gcs_eye", "gcs_verbal", "gcs_motor"), "GCS"),
        complaints=("a fall with head injury", "being found unresponsive"),
    ),
    Calculator(
        22,
        "maintenance_fluids",
        ("weight_kg",),
        "decimal",
        lambda v: (
            F.maintenance_fluids(v["weight_kg"]),
            [
                "Holliday-Segar 4-2-1 rule: 4 mL/kg/h for the first 10 kg, 2 mL/kg/h for the next 10 kg, 1 mL/kg/h above 20 kg",
                f"Rate for {num(v['weight_kg'])} kg = {num(F.maintenance_fluids(v['weight_kg']))} mL/hr",
            ],
        ),
        "mL/hr",
        ranges={"weight_kg": (5.0, 120.0)},
    ),
    Calculator(
        23,
        "meld_na",
        ("creatinine", "bilirubin", "inr", "sodium", "dialysis"),
        "decimal",
        _meld_na,
        complaints=("decompensated cirrhosis", "transplant evaluation"),
    ),
    Calculator(
        25,
        "has_bled",
        (
            "age",
            "hypertension",
            "renal_disease",
            "liver_disease",
            "stroke_tia",
            "prior_bleeding",
            "labile_inr",
            "bleeding_medication",
            "alcohol_drinks_per_week",
        ),
        "integer",
        _points(
            S.has_bled,
            (
                "age",
                "hypertension",
                "renal_disease",
                "liver_disease",
                "stroke_tia",
                "prior_bleeding",
                "labile_inr",
                "bleeding_medication",
                "alcohol_drinks_per_week",
            ),
            "HAS-BLED",
        ),
        complaints=("atrial fibrillation, considering anticoagulation",),
    ),
    Calculator(
        26,
        "sodium_correction",
        ("sodium", "glucose"),
        "decimal",
        _formula(
            "{sodium} + 0.024 × ({glucose} − 100)", F.sodium_correction_hyperglycemia, "mmol/L", "Corrected sodium"
        ),
        ranges={"glucose": (150.0, 900.0)},
        complaints=("polyuria and confusion",),
    ),
    Calculator(
        30,
        "serum_osmolality",
        ("sodium", "bun", "glucose"),
        "decimal",
        _formula("2 × {sodium} + {bun} / 2.8 + {glucose} / 18", F.serum_osmolality, "mOsm/kg", "Osmolality"),
    ),
    Calculator(
        31,
        "homa_ir",
        ("insulin", "glucose"),
        "decimal",
        _formula("{insulin} × {glucose} / 405", F.homa_ir, "", "HOMA-IR"),
        ranges={"glucose": (70.0, 200.0)},
    ),
    Calculator(
        33,
        "feverpain",
        ("fever_24h", "purulent_tonsils", "onset_within_3_days", "severe_tonsil_inflammation", "no_cough_or_coryza"),
        "integer",
        _points(
            S.feverpain,
            (
                "fever_24h",
                "purulent_tonsils",
                "onset_within_3_days",
                "severe_tonsil_inflammation",
                "no_cough_or_coryza",
            ),
            "FeverPAIN",
        ),
        complaints=THROAT,
    ),
    Calculator(
        38,
        "free_water_deficit",
        ("age", "sex", "weight_kg", "sodium"),
        "decimal",
        lambda v: (
            F.free_water_deficit(v["age"], v["sex"], v["weight_kg"], v["sodium"]),
            [
                f"Total body water fraction for a {num(v['age'])}-year-old {v['sex']}: {F.total_body_water_fraction(v['age'], v['sex'])}",
                f"FWD = {F.total_body_water_fraction(v['age'], v['sex'])} × {num(v['weight_kg'])} × ({num(v['sodium'])} / 140 − 1) = "
                f"{num(F.free_water_deficit(v['age'], v['sex'], v['weight_kg'], v['sodium']))} L",
            ],
        ),
        "L",
        ranges={"sodium": (146.0, 170.0)},
        complaints=("confusion and poor oral intake",),
    ),
    Calculator(
        39,
        "anion_gap",
        LYTES,
        "decimal",
        _formula("{sodium} − ({chloride} + {bicarbonate})", F.anion_gap, "mmol/L", "Anion gap"),
    ),
    Calculator(
        40,
        "fena",
        ("sodium", "creatinine", "urine_sodium", "urine_creatinine"),
        "decimal",
        _formula("({urine_sodium} × {creatinine}) / ({sodium} × {urine_creatinine}) × 100", F.fena, "%", "FENa"),
        complaints=RENAL,
    ),
    Calculator(
        44,
        "ldl_friedewald",
        ("total_cholesterol", "hdl", "triglycerides"),
        "decimal",
        _formula("{total_cholesterol} − {hdl} − {triglycerides} / 5", F.ldl_friedewald, "mg/dL", "LDL"),
        complaints=("a lipid panel review",),
    ),
    Calculator(
        45,
        "curb65",
        ("age", "bun", "resp_rate", "sbp", "dbp", "confusion"),
        "integer",
        _points(S.curb65, ("age", "bun", "resp_rate", "sbp", "dbp", "confusion"), "CURB-65"),
        complaints=("productive cough and fever", "community-acquired pneumonia"),
    ),
    Calculator(
        48,
        "perc",
        (
            "age",
            "heart_rate",
            "spo2",
            "hemoptysis",
            "hormone_use",
            "prior_dvt",
            "prior_pe",
            "recent_surgery",
            "unilateral_leg_swelling",
        ),
        "integer",
        _points(
            S.perc,
            (
                "age",
                "heart_rate",
                "spo2",
                "hemoptysis",
                "hormone_use",
                "prior_dvt",
                "prior_pe",
                "recent_surgery",
                "unilateral_leg_swelling",
            ),
            "PERC criteria met",
        ),
        complaints=PE,
    ),
    Calculator(
        51,
        "sirs",
        ("temp_c", "heart_rate", "resp_rate", "wbc"),
        "integer",
        _points(S.sirs, ("temp_c", "heart_rate", "resp_rate", "wbc"), "SIRS criteria met"),
        complaints=("fever and rigors",),
    ),
    Calculator(
        56,
        "qtc_fridericia",
        QT,
        "decimal",
        _formula("{qt_ms} / (60 / {heart_rate})^(1/3)", F.qtc_fridericia, "ms", "QTc"),
        complaints=CARDIAC,
    ),
    Calculator(
        57,
        "qtc_framingham",
        QT,
        "decimal",
        _formula("{qt_ms} + 154 × (1 − 60 / {heart_rate})", F.qtc_framingham, "ms", "QTc"),
        complaints=CARDIAC,
    ),
    Calculator(
        58,
        "qtc_hodges",
        QT,
        "decimal",
        _formula("{qt_ms} + 1.75 × ({heart_rate} − 60)", F.qtc_hodges, "ms", "QTc"),
        complaints=CARDIAC,
    ),
    Calculator(
        59,
        "qtc_rautaharju",
        QT,
        "decimal",
        _formula("{qt_ms} × (120 + {heart_rate}) / 180", F.qtc_rautaharju, "ms", "QTc"),
        complaints=CARDIAC,
    ),
    Calculator(
        60,
        "body_surface_area",
        ("weight_kg", "height_cm"),
        "decimal",
        _formula("√({weight_kg} × {height_cm} / 3600)", F.body_surface_area, "m²", "BSA"),
    ),
    Calculator(
        61,
        "target_weight",
        ("target_bmi", "height_cm"),
        "decimal",
        _formula("{target_bmi} × ({height_cm} / 100)²", F.target_weight, "kg", "Target weight"),
        complaints=("weight management counselling",),
    ),
    Calculator(
        62,
        "adjusted_body_weight",
        ("sex", "weight_kg", "height_cm"),
        "decimal",
        lambda v: (
            F.adjusted_body_weight(v["sex"], v["weight_kg"], v["height_cm"]),
            [
                f"IBW = {'45.5' if v['sex'] == 'female' else '50'} + 2.3 × ({num(v['height_cm'] / 2.54)} − 60) = {num(F.ideal_body_weight(v['sex'], v['height_cm']))} kg",
                f"ABW = IBW + 0.4 × ({num(v['weight_kg'])} − IBW) = {num(F.adjusted_body_weight(v['sex'], v['weight_kg'], v['height_cm']))} kg",
            ],
        ),
        "kg",
    ),
    Calculator(
        63,
        "delta_gap",
        LYTES,
        "decimal",
        _formula("{sodium} − ({chloride} + {bicarbonate}) − 12", F.delta_gap, "mmol/L", "Delta gap"),
    ),
    Calculator(
        64,
        "delta_ratio",
        LYTES,
        "decimal",
        _formula(
            "({sodium} − ({chloride} + {bicarbonate}) − 12) / (24 − {bicarbonate})", F.delta_ratio, "", "Delta ratio"
        ),
        ranges=ACID,
    ),
    Calculator(
        65,
        "albumin_corrected_anion_gap",
        LYTES + ("albumin",),
        "decimal",
        _formula(
            "{sodium} − ({chloride} + {bicarbonate}) + 2.5 × (4 − {albumin})",
            F.albumin_corrected_anion_gap,
            "mmol/L",
            "Corrected anion gap",
        ),
    ),
    Calculator(
        66,
        "albumin_corrected_delta_gap",
        LYTES + ("albumin",),
        "decimal",
        _formula(
            "{sodium} − ({chloride} + {bicarbonate}) + 2.5 × (4 − {albumin}) − 12",
            F.albumin_corrected_delta_gap,
            "mmol/L",
            "Corrected delta gap",
        ),
    ),
    Calculator(
        67,
        "albumin_corrected_delta_ratio",
        LYTES + ("albumin",),
        "decimal",
        _formula(
            "({sodium} − ({chloride} + {bicarbonate}) + 2.5 × (4 − {albumin}) − 12) / (24 − {bicarbonate})",
            F.albumin_corrected_delta_ratio,
            "",
            "Corrected delta ratio",
        ),
        ranges=ACID,
    ),
    Calculator(
        68,
        "conception_date",
        ("lmp", "cycle_length"),
        "date",
        _conception,
        age_range=(18, 42),
        sex="female",
        complaints=PREG,
    ),
    Calculator(
        69,
        "gestational_age",
        ("lmp", "today"),
        "weeks_days",
        _gestational_age,
        age_range=(18, 42),
        sex="female",
        complaints=PREG,
    ),
]

CALCULATORS: dict[str, Calculator] = {c.key: c for c in _CALCS}
BY_ID: dict[int, Calculator] = {c.id: c for c in _CALCS}


def get_calculator(name: str | int) -> Calculator:
    """By key (``cha2ds2_vasc``) or MedCalc-Bench id (``4``)."""
    text = str(name).strip()
    if text.isdigit() and int(text) in BY_ID:
        return BY_ID[int(text)]
    if text in CALCULATORS:
        return CALCULATORS[text]
    raise UnknownNameError(f"unknown calculator '{text}'", closest(text, sorted(CALCULATORS)))


def select_calculators(spec: str | list[str] | None) -> list[Calculator]:
    """``None``/``all`` → every calculator; else a comma-separated list of keys or ids."""
    if spec is None or spec == "all" or spec == []:
        return list(_CALCS)
    names = spec.split(",") if isinstance(spec, str) else spec
    return [get_calculator(n) for n in names if str(n).strip()]


def units_of(name: str) -> str:
    return NUMERIC[name].canonical_unit if name in NUMERIC else ""


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
