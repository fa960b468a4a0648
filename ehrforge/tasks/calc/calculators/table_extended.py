"""The ten MedCalc-Bench calculators added after the first 45 (severity, comorbidity and risk scores, Framingham, dose
conversions) as registry rows; kept apart from ``table`` so each module stays readable."""

from __future__ import annotations

from typing import Any

from ehrforge.tasks.calc.calculators import critical_care as C
from ehrforge.tasks.calc.calculators import dosing as D
from ehrforge.tasks.calc.calculators import formulas as F
from ehrforge.tasks.calc.calculators import risk_indices as R
from ehrforge.tasks.calc.calculators.builders import points
from ehrforge.tasks.calc.calculators.formatting import num
from ehrforge.tasks.calc.calculators.spec import Calculator

APACHE = (
    "age", "temp_c", "sbp", "dbp", "heart_rate", "resp_rate", "ph", "sodium", "potassium", "creatinine",
    "acute_renal_failure", "hematocrit", "wbc", "gcs", "fio2", "pao2", "a_a_gradient",
    "organ_failure_immunocompromise", "admission_type",
)  # fmt: skip
SOFA = (
    "pao2", "fio2", "mechanical_ventilation", "platelets", "gcs", "bilirubin", "sbp", "dbp",
    "dopamine", "dobutamine", "epinephrine", "norepinephrine", "creatinine", "urine_output",
)  # fmt: skip
PSI = (
    "age", "sex", "nursing_home", "malignancy", "liver_disease", "chf", "cerebrovascular_disease", "renal_disease",
    "confusion", "resp_rate", "sbp", "temp_c", "heart_rate", "ph", "bun", "sodium", "glucose", "hematocrit", "pao2",
    "pleural_effusion",
)  # fmt: skip
CHARLSON = (
    "age", "mi", "chf", "peripheral_vascular_disease", "cerebrovascular_disease", "dementia", "copd",
    "connective_tissue_disease", "peptic_ulcer_disease", "liver_severity", "diabetes_severity", "hemiplegia",
    "moderate_severe_ckd", "solid_tumor", "leukemia", "lymphoma", "aids",
)  # fmt: skip
CAPRINI = ("age", "surgery_type", "mobility", "weight_kg", "height_cm", "prior_dvt", "prior_pe", *R.CAPRINI_FLAGS)
HEART = (
    "age", "heart_history", "ecg", "troponin", "hypertension", "hypercholesterolemia", "diabetes", "obesity",
    "smoker", "family_history_cvd", "atherosclerotic_disease",
)  # fmt: skip
GBS = ("bun", "hemoglobin", "sex", "sbp", "heart_rate", "melena", "syncope", "liver_disease", "chf")
FRAMINGHAM = ("age", "sex", "total_cholesterol", "hdl", "sbp", "bp_medicine", "smoker")
ICU = ("admission to the intensive care unit", "septic shock", "respiratory failure")


def _caprini(v: dict[str, Any]) -> tuple[Any, list[str]]:
    """Caprini reads BMI; the note gives weight and height, so the worked reasoning computes it first."""
    bmi = F.bmi(v["weight_kg"], v["height_cm"])
    value, lines = points(
        lambda **kw: R.caprini(bmi=bmi, **kw),
        tuple(n for n in CAPRINI if n not in ("weight_kg", "height_cm")),
        "Caprini",
    )(v)
    return value, [f"BMI = {num(v['weight_kg'])} / ({num(v['height_cm'] / 100)})² = {num(bmi)} kg/m²", *lines]


def _framingham(v: dict[str, Any]) -> tuple[Any, list[str]]:
    args = (v["age"], v["sex"], v["total_cholesterol"], v["hdl"], v["sbp"], v["bp_medicine"], v["smoker"])
    lp, value = F.framingham_linear(*args), F.framingham_risk(*args)
    s10 = F.FRAMINGHAM["female" if str(v["sex"]).startswith("f") else "male"][10]
    return value, [
        (
            f"ATP III hard-CHD model for a {v['sex']} (cholesterol in mg/dL): age {num(v['age'])}, total cholesterol "
            f"{num(v['total_cholesterol'])}, HDL {num(v['hdl'])}, SBP {num(v['sbp'])}, treated BP {int(v['bp_medicine'])}, "
            f"smoker {int(v['smoker'])}"
        ),
        f"Linear predictor = {lp:.4f}",
        f"Risk = (1 − {s10}^exp({lp:.4f})) × 100 = {num(value)} %",
    ]


EXTENDED: list[Calculator] = [
    Calculator(
        18,
        "heart_score",
        HEART,
        "integer",
        points(R.heart, HEART, "HEART score"),
        complaints=("chest pain", "central chest pressure"),
    ),
    Calculator(
        24,
        "steroid_conversion",
        ("input_steroid", "steroid_dose", "target_steroid"),
        "decimal",
        D.steroid_worked,
        "mg",
        make_case=D.steroid_case,
    ),
    Calculator(
        27,
        "glasgow_blatchford",
        GBS,
        "integer",
        points(R.glasgow_blatchford, GBS, "Glasgow-Blatchford score"),
        complaints=("hematemesis", "coffee-ground vomiting"),
    ),
    Calculator(
        28,
        "apache_ii",
        APACHE,
        "integer",
        points(C.apache_ii, APACHE, "APACHE II"),
        complaints=ICU,
        ranges={"fio2": (21.0, 80.0), "pao2": (45.0, 120.0), "gcs": (5.0, 15.0)},
    ),
    Calculator(
        29,
        "psi",
        PSI,
        "integer",
        points(C.psi, PSI, "PSI"),
        complaints=("productive cough and fever", "community-acquired pneumonia"),
    ),
    Calculator(
        32,
        "charlson",
        CHARLSON,
        "integer",
        points(R.charlson, CHARLSON, "Charlson Comorbidity Index"),
        age_range=(35, 90),
    ),
    Calculator(36, "caprini", CAPRINI, "integer", _caprini, complaints=("pre-operative VTE risk assessment",)),
    Calculator(
        43,
        "sofa",
        SOFA,
        "integer",
        points(C.sofa, SOFA, "SOFA"),
        complaints=ICU,
        ranges={
            "fio2": (21.0, 100.0),
            "pao2": (50.0, 140.0),
            "platelets": (10.0, 300.0),
            "bilirubin": (0.3, 14.0),
            "creatinine": (0.5, 6.0),
            "gcs": (3.0, 15.0),
        },
    ),
    Calculator(
        46,
        "framingham_risk",
        FRAMINGHAM,
        "decimal",
        _framingham,
        "%",
        age_range=(30, 79),
        ranges={"sbp": (100.0, 180.0)},
        complaints=("a cardiovascular risk review",),
    ),
    Calculator(49, "mme", D.MME_INPUTS, "decimal", D.mme_worked, "MME/day", make_case=D.mme_case),
]
