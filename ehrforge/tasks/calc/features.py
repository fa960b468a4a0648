"""The patient-feature vocabulary behind synthetic notes: how each fact is sampled, which units it may be written
in, and how it is phrased. Calculators name the features they read; notes render them (plus distractors).

Values are kept in canonical units (see ``calculators.formulas``); ``notes.sample_patient`` draws a patient from this
vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    section: str  # vitals | labs | body | ecg | social | goal | support
    canonical_unit: str = ""
    p_zero: float = 0.0  # chance that the patient has none (an optional infusion): value 0 and not mentioned


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
        Numeric("ph", ("arterial pH", "pH"), 7.05, 7.65, (_u("", 1, 2),), "labs", ""),
        Numeric("hematocrit", ("hematocrit",), 18, 58, (_u("%"),), "labs", "%"),
        Numeric(
            "pao2", ("PaO2", "arterial oxygen tension"), 45, 160, (_u("mm Hg"), _u("kPa", 0.133322, 1)), "labs", "mm Hg"
        ),
        Numeric("a_a_gradient", ("A-a gradient",), 20, 560, (_u("mm Hg"),), "labs", "mm Hg"),
        Numeric("fio2", ("FiO2",), 21, 100, (_u("%"),), "vitals", "%"),
        Numeric("gcs", ("GCS", "Glasgow Coma Scale score"), 3, 15, (_u(""),), "vitals", ""),
        Numeric("urine_output", ("urine output",), 80, 2500, (_u("mL/day"), _u("mL/24 h")), "labs", "mL/day"),
        *(
            Numeric(
                name, (name,), lo, hi, (_u("µg/kg/min", 1, dec), _u("mcg/kg/min", 1, dec)), "support", "µg/kg/min", 0.8
            )
            for name, lo, hi, dec in (
                ("dopamine", 2, 20, 1),
                ("dobutamine", 2, 15, 1),
                ("epinephrine", 0.02, 0.3, 2),
                ("norepinephrine", 0.02, 0.4, 2),
            )
        ),
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

#: flags added with the severity, comorbidity and risk calculators: (name, section, positive, negative, p, always)
# fmt: off
_MORE_FLAGS = [
    ("acute_renal_failure", "history", "acute kidney injury this admission", "no acute kidney injury", 0.3, False),
    ("organ_failure_immunocompromise", "history", "chemotherapy-induced immunosuppression", "no severe organ insufficiency or immunocompromise", 0.3, True),
    ("nursing_home", "context", "The patient lives in a nursing home.", "The patient lives independently at home.", 0.3, True),
    ("pleural_effusion", "exam", "a pleural effusion on chest x-ray", "no pleural effusion on chest x-ray", 0.3, True),
    ("mechanical_ventilation", "context", "The patient is intubated and mechanically ventilated.", "The patient is breathing spontaneously without respiratory support.", 0.5, True),
    ("mi", "history", "a myocardial infarction five years ago", "no prior myocardial infarction", 0.25, False),
    ("peripheral_vascular_disease", "history", "intermittent claudication from peripheral vascular disease", "no peripheral vascular disease", 0.2, False),
    ("dementia", "history", "Alzheimer dementia", "no cognitive impairment", 0.15, False),
    ("copd", "history", "chronic obstructive pulmonary disease", "no chronic lung disease", 0.25, False),
    ("connective_tissue_disease", "history", "systemic lupus erythematosus", "no connective tissue disease", 0.15, False),
    ("peptic_ulcer_disease", "history", "a treated peptic ulcer", "no peptic ulcer disease", 0.15, False),
    ("hemiplegia", "history", "left hemiplegia", "no hemiplegia", 0.1, False),
    ("moderate_severe_ckd", "history", "stage 4 chronic kidney disease", "no chronic kidney disease", 0.2, False),
    ("leukemia", "history", "chronic lymphocytic leukemia", "no leukemia", 0.1, False),
    ("lymphoma", "history", "non-Hodgkin lymphoma", "no lymphoma", 0.1, False),
    ("aids", "history", "AIDS", "HIV-negative status", 0.08, False),
    ("major_surgery_last_month", "history", "major surgery three weeks ago", "no surgery in the last month", 0.15, False),
    ("chf_last_month", "history", "a heart failure exacerbation two weeks ago", "no recent heart failure", 0.12, False),
    ("sepsis_last_month", "history", "sepsis treated two weeks ago", "no recent sepsis", 0.1, False),
    ("pneumonia_last_month", "history", "pneumonia treated three weeks ago", "no recent pneumonia", 0.12, False),
    ("plaster_cast", "history", "an immobilizing plaster cast applied two weeks ago", "no cast", 0.1, False),
    ("leg_fracture", "history", "a hip fracture three weeks ago", "no recent fracture", 0.1, False),
    ("stroke_last_month", "history", "an ischemic stroke two weeks ago", "no recent stroke", 0.08, False),
    ("multiple_trauma", "history", "multiple trauma from a car crash last month", "no recent trauma", 0.06, False),
    ("spinal_cord_injury", "history", "an acute spinal cord injury with paraplegia last month", "no spinal injury", 0.05, False),
    ("varicose_veins", "exam", "varicose veins", "no varicose veins", 0.2, False),
    ("swollen_legs", "exam", "bilateral leg swelling", "no leg swelling", 0.2, False),
    ("central_venous_access", "exam", "a central venous catheter in place", "no central line", 0.15, False),
    ("family_history_thrombosis", "history", "a family history of venous thrombosis", "no family history of clots", 0.12, False),
    ("factor_v_leiden", "history", "factor V Leiden mutation", "no known thrombophilia", 0.06, False),
    ("prothrombin_20210a", "history", "the prothrombin 20210A mutation", "no prothrombin mutation", 0.05, False),
    ("elevated_homocysteine", "history", "elevated serum homocysteine", "normal homocysteine", 0.05, False),
    ("lupus_anticoagulant", "history", "a positive lupus anticoagulant", "negative lupus anticoagulant", 0.05, False),
    ("anticardiolipin", "history", "elevated anticardiolipin antibodies", "no anticardiolipin antibodies", 0.05, False),
    ("heparin_induced_thrombocytopenia", "history", "prior heparin-induced thrombocytopenia", "no HIT", 0.05, False),
    ("other_thrombophilia", "history", "antithrombin III deficiency", "no other thrombophilia", 0.05, False),
    ("inflammatory_bowel_disease", "history", "Crohn's disease", "no inflammatory bowel disease", 0.1, False),
    ("acute_mi", "history", "an acute myocardial infarction this week", "no acute coronary event", 0.08, False),
    ("hypercholesterolemia", "history", "hypercholesterolemia", "normal cholesterol", 0.35, False),
    ("obesity", "history", "obesity (BMI above 30)", "no obesity", 0.3, False),
    ("smoker", "history", "current smoking (20 cigarettes a day)", "never smoked", 0.35, True),
    ("family_history_cvd", "history", "a brother with a myocardial infarction at 52", "no family history of premature heart disease", 0.25, False),
    ("atherosclerotic_disease", "history", "prior coronary stenting", "no known atherosclerotic disease", 0.2, False),
    ("melena", "symptom", "black tarry stools", "no melena", 0.4, True),
    ("syncope", "symptom", "a syncopal episode at home", "no syncope", 0.3, True),
    ("bp_medicine", "medication", "amlodipine for blood pressure", "", 0.4, False),
]
# fmt: on
FLAGS.update(
    {
        name: Flag(name, section, (positive,), (negative,) if negative else (), p, always)
        for name, section, positive, negative, p, always in _MORE_FLAGS
    }
)

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
#: categorical findings of the severity, comorbidity and risk calculators: name -> (section, {value: phrasing})
_MORE_CHOICES = {
    "admission_type": (
        "context",
        {
            "nonoperative": "The patient was admitted to the ICU for medical (nonoperative) management.",
            "emergency postoperative": "The patient was admitted to the ICU after an emergency laparotomy.",
            "elective postoperative": "The patient was admitted to the ICU after an elective colectomy.",
        },
    ),
    "surgery_type": (
        "context",
        {
            "none": "No surgery is planned.",
            "minor": "The patient is scheduled for a minor procedure (inguinal hernia repair).",
            "major": "The patient is scheduled for major abdominal surgery lasting over 45 minutes.",
            "elective major lower extremity arthroplasty": "The patient is scheduled for an elective total knee arthroplasty.",
        },
    ),
    "mobility": (
        "context",
        {
            "normal": "The patient is ambulating normally.",
            "on bed rest": "The patient is currently on bed rest.",
            "confined to bed > 72 hours": "The patient has been confined to bed for more than 72 hours.",
        },
    ),
    "liver_severity": (
        "history",
        {
            "none": "no liver disease",
            "mild": "chronic hepatitis C without cirrhosis",
            "moderate to severe": "cirrhosis with portal hypertension",
        },
    ),
    "diabetes_severity": (
        "history",
        {
            "none or diet-controlled": "diet-controlled impaired glucose tolerance",
            "uncomplicated": "type 2 diabetes on metformin without complications",
            "end-organ damage": "type 2 diabetes with retinopathy and neuropathy",
        },
    ),
    "solid_tumor": (
        "history",
        {
            "none": "no history of solid tumors",
            "localized": "a localized colon cancer resected last year",
            "metastatic": "metastatic lung cancer",
        },
    ),
    "heart_history": (
        "context",
        {
            "slightly suspicious": "The chest pain history is slightly suspicious for acute coronary syndrome.",
            "moderately suspicious": "The chest pain history is moderately suspicious for acute coronary syndrome.",
            "highly suspicious": "The chest pain history is highly suspicious for acute coronary syndrome.",
        },
    ),
    "ecg": (
        "context",
        {
            "normal": "The ECG is normal.",
            "non-specific repolarization disturbance": "The ECG shows non-specific repolarization changes.",
            "significant ST deviation": "The ECG shows significant ST-segment depression.",
        },
    ),
    "troponin": (
        "context",
        {
            "normal": "The initial troponin is within the normal limit.",
            "1-3 times normal": "The initial troponin is twice the upper limit of normal.",
            "more than 3 times normal": "The initial troponin is five times the upper limit of normal.",
        },
    ),
}
CHOICES.update(
    {
        name: Choice(name, section, {k: (v,) for k, v in options.items()})
        for name, (section, options) in _MORE_CHOICES.items()
    }
)
INT_CHOICES = {"gcs_eye", "gcs_verbal", "gcs_motor"}
DATE_FEATURES = ("lmp", "today", "cycle_length")
