"""The patient-feature vocabulary behind synthetic notes: how each fact is sampled, which units it may be written
in, and how it is phrased. Calculators name the features they read; notes render them (plus distractors).

Values are kept in canonical units (see ``calculators.formulas``). A displayed value is rounded in its display unit
and the canonical value is recomputed *from the displayed number*, so the gold answer always follows from exactly
what the note says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta


@dataclass(frozen=True)
class Unit:
    label: str
    factor: float = 1.0  # display = canonical × factor + offset
    decimals: int = 0
    offset: float = 0.0
    name: str = ""  # overrides the feature's label when this unit implies another analyte name (BUN → urea)

    def show(self, canonical: float) -> tuple[float, float]:
        """(displayed number, canonical value recomputed from it)."""
        shown = round(canonical * self.factor + self.offset, self.decimals)
        if self.decimals == 0:
            shown = int(shown)
        return shown, (shown - self.offset) / self.factor


@dataclass(frozen=True)
class Numeric:
    name: str
    labels: tuple[str, ...]
    lo: float
    hi: float
    units: tuple[Unit, ...]
    section: str  # vitals | labs | body | ecg | social | goal
    canonical_unit: str = ""


@dataclass(frozen=True)
class Flag:
    name: str
    section: str  # history | symptom | exam | medication | context
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    p: float = 0.35
    always: bool = False  # state it either way (findings where silence would be ambiguous)


@dataclass(frozen=True)
class Choice:
    name: str
    section: str
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)  # value -> phrasings
    weights: tuple[float, ...] = ()


def _u(label: str, factor: float = 1.0, decimals: int = 0, offset: float = 0.0, name: str = "") -> Unit:
    return Unit(label, factor, decimals, offset, name)


MMOL = (_u("mmol/L"), _u("mEq/L"))
NUMERIC: dict[str, Numeric] = {
    f.name: f
    for f in [
        Numeric(
            "weight_kg",
            ("weight", "body weight"),
            45,
            130,
            (_u("kg", 1, 1), _u("kg", 1, 0), _u("lb", 2.20462, 0)),
            "body",
            "kg",
        ),
        Numeric(
            "height_cm", ("height",), 150, 195, (_u("cm", 1, 0), _u("m", 0.01, 2), _u("in", 1 / 2.54, 0)), "body", "cm"
        ),
        Numeric("sbp", ("systolic blood pressure",), 80, 190, (_u("mm Hg"),), "vitals", "mm Hg"),
        Numeric("dbp", ("diastolic blood pressure",), 45, 110, (_u("mm Hg"),), "vitals", "mm Hg"),
        Numeric("heart_rate", ("heart rate", "pulse"), 45, 150, (_u("beats/min"), _u("bpm")), "vitals", "beats/min"),
        Numeric("resp_rate", ("respiratory rate",), 10, 36, (_u("breaths/min"), _u("/min")), "vitals", "breaths/min"),
        Numeric("temp_c", ("temperature",), 35.2, 40.2, (_u("°C", 1, 1), _u("°F", 9 / 5, 1, 32)), "vitals", "°C"),
        Numeric("spo2", ("oxygen saturation", "SpO2"), 86, 100, (_u("%"),), "vitals", "%"),
        Numeric(
            "creatinine",
            ("creatinine", "serum creatinine"),
            0.5,
            6.0,
            (_u("mg/dL", 1, 2), _u("µmol/L", 88.4, 0)),
            "labs",
            "mg/dL",
        ),
        Numeric(
            "bun",
            ("BUN", "blood urea nitrogen"),
            6,
            80,
            (_u("mg/dL"), _u("mmol/L", 0.357, 1, name="urea")),
            "labs",
            "mg/dL",
        ),
        Numeric("sodium", ("sodium", "Na"), 122, 158, MMOL, "labs", "mmol/L"),
        Numeric("potassium", ("potassium", "K"), 3.0, 6.0, (_u("mmol/L", 1, 1), _u("mEq/L", 1, 1)), "labs", "mmol/L"),
        Numeric("chloride", ("chloride", "Cl"), 88, 118, MMOL, "labs", "mmol/L"),
        Numeric("bicarbonate", ("bicarbonate", "HCO3", "serum bicarbonate"), 8, 30, MMOL, "labs", "mmol/L"),
        Numeric(
            "glucose", ("glucose", "serum glucose"), 70, 600, (_u("mg/dL"), _u("mmol/L", 1 / 18, 1)), "labs", "mg/dL"
        ),
        Numeric(
            "albumin", ("albumin", "serum albumin"), 1.8, 5.0, (_u("g/dL", 1, 1), _u("g/L", 10, 0)), "labs", "g/dL"
        ),
        Numeric(
            "calcium",
            ("calcium", "total calcium"),
            6.5,
            11.5,
            (_u("mg/dL", 1, 1), _u("mmol/L", 0.2495, 2)),
            "labs",
            "mg/dL",
        ),
        Numeric(
            "bilirubin",
            ("total bilirubin", "bilirubin"),
            0.3,
            8.0,
            (_u("mg/dL", 1, 1), _u("µmol/L", 17.1, 0)),
            "labs",
            "mg/dL",
        ),
        Numeric("inr", ("INR",), 0.9, 3.5, (_u("", 1, 1),), "labs", ""),
        Numeric(
            "platelets",
            ("platelet count", "platelets"),
            40,
            420,
            (_u("×10^9/L"), _u("×10³/µL"), _u("/µL", 1000, 0)),
            "labs",
            "×10^9/L",
        ),
        Numeric("ast", ("AST",), 12, 300, (_u("U/L"),), "labs", "U/L"),
        Numeric("alt", ("ALT",), 8, 300, (_u("U/L"),), "labs", "U/L"),
        Numeric(
            "total_cholesterol",
            ("total cholesterol",),
            130,
            320,
            (_u("mg/dL"), _u("mmol/L", 1 / 38.67, 2)),
            "labs",
            "mg/dL",
        ),
        Numeric("hdl", ("HDL cholesterol", "HDL"), 25, 95, (_u("mg/dL"), _u("mmol/L", 1 / 38.67, 2)), "labs", "mg/dL"),
        Numeric(
            "triglycerides", ("triglycerides",), 50, 390, (_u("mg/dL"), _u("mmol/L", 1 / 88.57, 2)), "labs", "mg/dL"
        ),
        Numeric("insulin", ("fasting insulin",), 2, 60, (_u("µIU/mL", 1, 1),), "labs", "µIU/mL"),
        Numeric("urine_sodium", ("urine sodium",), 5, 150, MMOL, "labs", "mmol/L"),
        Numeric("urine_creatinine", ("urine creatinine",), 20, 250, (_u("mg/dL"),), "labs", "mg/dL"),
        Numeric(
            "wbc",
            ("white blood cell count", "WBC"),
            1.5,
            25,
            (_u("×10^9/L", 1, 1), _u("/mm³", 1000, 0)),
            "labs",
            "×10^9/L",
        ),
        Numeric("hemoglobin", ("hemoglobin",), 7, 17, (_u("g/dL", 1, 1), _u("g/L", 10, 0)), "labs", "g/dL"),
        Numeric("qt_ms", ("QT interval",), 300, 520, (_u("ms"), _u("msec")), "ecg", "ms"),
        Numeric(
            "alcohol_drinks_per_week",
            ("alcoholic drinks per week",),
            0,
            20,
            (_u("drinks/week"),),
            "social",
            "drinks/week",
        ),
        Numeric("target_bmi", ("target BMI",), 19, 27, (_u("kg/m²", 1, 1),), "goal", "kg/m²"),
    ]
}

FLAGS: dict[str, Flag] = {
    f.name: f
    for f in [
        Flag(
            "chf",
            "history",
            ("congestive heart failure", "heart failure with reduced ejection fraction"),
            ("no history of heart failure",),
        ),
        Flag(
            "hypertension",
            "history",
            ("hypertension", "long-standing high blood pressure"),
            ("no history of hypertension",),
            0.45,
        ),
        Flag("diabetes", "history", ("type 2 diabetes mellitus", "diabetes"), ("no diabetes",)),
        Flag(
            "stroke_tia",
            "history",
            ("a prior ischemic stroke", "a transient ischemic attack two years ago"),
            ("no prior stroke or TIA",),
        ),
        Flag(
            "vascular_disease",
            "history",
            ("peripheral artery disease", "a prior myocardial infarction"),
            ("no known vascular disease",),
        ),
        Flag(
            "renal_disease",
            "history",
            ("chronic kidney disease on dialysis", "a kidney transplant"),
            ("no kidney disease",),
        ),
        Flag("liver_disease", "history", ("cirrhosis", "chronic hepatitis with cirrhosis"), ("no liver disease",)),
        Flag(
            "prior_bleeding", "history", ("a major gastrointestinal bleed last year",), ("no prior bleeding episodes",)
        ),
        Flag("labile_inr", "history", ("labile INRs on warfarin",), ("stable INRs",)),
        Flag(
            "ischemic_heart_disease",
            "history",
            ("coronary artery disease with stable angina", "a prior myocardial infarction"),
            ("no coronary disease",),
        ),
        Flag(
            "cerebrovascular_disease",
            "history",
            ("a prior stroke", "a transient ischemic attack"),
            ("no cerebrovascular disease",),
        ),
        Flag(
            "malignancy",
            "history",
            ("metastatic colon cancer on chemotherapy", "active lung cancer under treatment"),
            ("no history of cancer",),
            0.3,
        ),
        Flag("prior_dvt", "history", ("a previous deep vein thrombosis",), ("no prior DVT",), 0.3),
        Flag("prior_pe", "history", ("a prior pulmonary embolism",), ("no prior PE",), 0.3),
        Flag(
            "black",
            "context",
            ("The patient identifies as Black.",),
            ("The patient identifies as White.",),
            0.3,
            always=True,
        ),
        Flag("bleeding_medication", "medication", ("aspirin", "ibuprofen as needed", "clopidogrel"), ()),
        Flag("insulin_treatment", "medication", ("insulin glargine", "basal-bolus insulin"), ()),
        Flag(
            "hormone_use",
            "medication",
            ("an estrogen-containing oral contraceptive", "hormone replacement therapy"),
            (),
        ),
        Flag(
            "dialysis",
            "history",
            ("end-stage renal disease on hemodialysis three times weekly",),
            ("no dialysis",),
            0.2,
        ),
        Flag("confusion", "exam", ("confused and disoriented to time",), ("alert and oriented",), always=True),
        Flag("cough_absent", "symptom", ("denies any cough",), ("reports a cough",), 0.5, always=True),
        Flag(
            "tender_nodes",
            "exam",
            ("tender, swollen anterior cervical lymph nodes",),
            ("no cervical lymphadenopathy",),
            0.5,
        ),
        Flag("tonsillar_exudate", "exam", ("tonsillar exudates",), ("no tonsillar exudate",), 0.5),
        Flag("fever_24h", "symptom", ("fever over the past day",), ("no fever",), 0.5, always=True),
        Flag("purulent_tonsils", "exam", ("purulent tonsils",), ("non-purulent tonsils",), 0.5),
        Flag(
            "onset_within_3_days",
            "symptom",
            ("symptoms that started two days ago",),
            ("symptoms that started six days ago",),
            0.5,
            always=True,
        ),
        Flag(
            "severe_tonsil_inflammation",
            "exam",
            ("severely inflamed tonsils",),
            ("mildly erythematous tonsils",),
            0.5,
            always=True,
        ),
        Flag(
            "no_cough_or_coryza", "symptom", ("no cough or runny nose",), ("a runny nose and cough",), 0.5, always=True
        ),
        Flag(
            "dvt_signs",
            "exam",
            ("unilateral calf swelling and tenderness",),
            ("no signs of deep vein thrombosis",),
            0.3,
        ),
        Flag(
            "pe_most_likely",
            "context",
            ("Pulmonary embolism is considered the most likely diagnosis.",),
            ("An alternative diagnosis is considered more likely than pulmonary embolism.",),
            0.4,
            always=True,
        ),
        Flag("immobilization", "history", ("bed rest for the past five days",), ("no recent immobilization",), 0.3),
        Flag("recent_surgery", "history", ("a knee replacement three weeks ago",), ("no recent surgery",), 0.3),
        Flag("hemoptysis", "symptom", ("hemoptysis",), ("no hemoptysis",), 0.25),
        Flag(
            "bedridden_or_major_surgery",
            "history",
            ("major abdominal surgery eight weeks ago",),
            ("no recent surgery or bed rest",),
            0.3,
        ),
        Flag(
            "calf_swelling_3cm",
            "exam",
            ("calf circumference 4 cm larger than the other side",),
            ("symmetric calf circumference",),
            0.4,
        ),
        Flag(
            "collateral_veins", "exam", ("collateral superficial (non-varicose) veins",), ("no collateral veins",), 0.3
        ),
        Flag(
            "entire_leg_swollen", "exam", ("swelling of the entire left leg",), ("no swelling of the whole leg",), 0.3
        ),
        Flag(
            "deep_vein_tenderness",
            "exam",
            ("tenderness along the deep venous system",),
            ("no tenderness along the deep veins",),
            0.4,
        ),
        Flag("pitting_edema", "exam", ("pitting edema confined to the symptomatic leg",), ("no pitting edema",), 0.3),
        Flag(
            "leg_paralysis_or_cast",
            "history",
            ("a lower-leg plaster cast applied last week",),
            ("no paralysis or cast",),
            0.2,
        ),
        Flag(
            "alternative_diagnosis_likely",
            "context",
            ("A Baker's cyst is considered at least as likely as DVT.",),
            ("No alternative diagnosis is considered as likely as DVT.",),
            0.4,
            always=True,
        ),
        Flag("unilateral_leg_swelling", "exam", ("unilateral leg swelling",), ("no leg swelling",), 0.3),
        Flag(
            "high_risk_surgery",
            "context",
            ("She is scheduled for an open aortic aneurysm repair.",),
            ("She is scheduled for a cataract extraction.",),
            0.5,
            always=True,
        ),
    ]
}

GCS_EYE = {
    4: ("opens eyes spontaneously",),
    3: ("opens eyes to voice",),
    2: ("opens eyes only to painful stimuli",),
    1: ("does not open eyes",),
}
GCS_VERBAL = {
    5: ("is oriented",),
    4: ("is confused",),
    3: ("speaks inappropriate words",),
    2: ("makes incomprehensible sounds",),
    1: ("makes no verbal response",),
}
GCS_MOTOR = {
    6: ("obeys commands",),
    5: ("localizes to pain",),
    4: ("withdraws from pain",),
    3: ("shows abnormal flexion (decorticate posturing)",),
    2: ("shows extension to pain (decerebrate posturing)",),
    1: ("has no motor response",),
}
CHOICES: dict[str, Choice] = {
    "gcs_eye": Choice("gcs_eye", "neuro", {str(k): v for k, v in GCS_EYE.items()}),
    "gcs_verbal": Choice("gcs_verbal", "neuro", {str(k): v for k, v in GCS_VERBAL.items()}),
    "gcs_motor": Choice("gcs_motor", "neuro", {str(k): v for k, v in GCS_MOTOR.items()}),
    "ascites": Choice(
        "ascites", "exam", {"absent": ("no ascites",), "slight": ("slight ascites",), "moderate": ("moderate ascites",)}
    ),
    "encephalopathy": Choice(
        "encephalopathy",
        "exam",
        {
            "none": ("no hepatic encephalopathy",),
            "grade 1-2": ("grade 1-2 hepatic encephalopathy",),
            "grade 3-4": ("grade 3-4 hepatic encephalopathy",),
        },
    ),
}
INT_CHOICES = {"gcs_eye", "gcs_verbal", "gcs_motor"}
DATE_FEATURES = ("lmp", "today", "cycle_length")


@dataclass
class Patient:
    """Canonical values (what calculators read) and display strings (what the note says)."""

    values: dict[str, object] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # numeric name -> "106 µmol/L"
    names: dict[str, str] = field(default_factory=dict)  # numeric name -> analyte label used in the note


def sample_patient(
    rng: random.Random,
    inputs: tuple[str, ...],
    *,
    age_range: tuple[int, int] = (18, 90),
    sex: str | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    extra: tuple[str, ...] = (),
) -> Patient:
    """Sample every feature in ``inputs + extra`` (plus age and sex) and choose how each is displayed."""
    ranges = ranges or {}
    p = Patient()
    p.values["age"] = rng.randint(*age_range)
    p.values["sex"] = sex or rng.choice(["male", "female"])
    wanted = list(dict.fromkeys(("age", "sex") + tuple(inputs) + tuple(extra)))
    raw: dict[str, float] = {}
    for name in wanted:
        if name in NUMERIC:
            lo, hi = ranges.get(name, (NUMERIC[name].lo, NUMERIC[name].hi))
            raw[name] = rng.uniform(lo, hi)
        elif name in FLAGS:
            p.values[name] = rng.random() < FLAGS[name].p
        elif name in CHOICES:
            options = list(CHOICES[name].options)
            value = rng.choice(options)
            p.values[name] = int(value) if name in INT_CHOICES else value
    _make_plausible(rng, raw, p.values, ranges)
    if "lmp" in wanted or "today" in wanted or "cycle_length" in wanted:
        lmp = date(2018, 1, 1) + timedelta(days=rng.randint(0, 365 * 7))
        p.values["lmp"] = lmp
        p.values["cycle_length"] = rng.choice([28, 28, 28, 21, 24, 26, 30, 32, 35])
        p.values["today"] = lmp + timedelta(days=rng.randint(30, 290))
    for name, value in raw.items():
        feature = NUMERIC[name]
        unit = rng.choice(feature.units)
        shown, canonical = unit.show(value)
        p.values[name] = canonical
        p.shown[name] = f"{shown} {unit.label}".strip()
        p.names[name] = unit.name or rng.choice(feature.labels)
    return p


def _make_plausible(rng: random.Random, raw: dict[str, float], values: dict[str, object], ranges: dict) -> None:
    """Couple features that are not independent in real patients (weight follows height and BMI, DBP < SBP, ...)."""
    if "height_cm" in raw:
        female = str(values["sex"]).startswith("f")
        raw["height_cm"] = rng.uniform(150, 178) if female else rng.uniform(160, 195)
        if "weight_kg" in raw and "weight_kg" not in ranges:
            raw["weight_kg"] = rng.uniform(16, 42) * (raw["height_cm"] / 100) ** 2
    if "sbp" in raw and "dbp" in raw:
        raw["dbp"] = min(raw["dbp"], raw["sbp"] - 20)
    if {"sodium", "chloride", "bicarbonate"} <= raw.keys():
        # The anion gap, not chloride, is what varies clinically: pick a realistic gap (4-30), then keep chloride
        # and bicarbonate physiological; a requested bicarbonate range (acidosis items) wins over chloride.
        gap = rng.uniform(4, 30)
        if "bicarbonate" in ranges:
            raw["chloride"] = min(max(raw["sodium"] - raw["bicarbonate"] - gap, 85.0), 125.0)
        else:
            raw["bicarbonate"] = min(max(raw["sodium"] - raw["chloride"] - gap, 5.0), 34.0)
    if "hdl" in raw and "total_cholesterol" in raw:
        raw["hdl"] = min(raw["hdl"], raw["total_cholesterol"] * 0.45)
    if "alcohol_drinks_per_week" in raw and rng.random() < 0.4:
        raw["alcohol_drinks_per_week"] = 0
