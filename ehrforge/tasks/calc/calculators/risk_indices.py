"""Comorbidity and risk indices (Charlson, Caprini, HEART, Glasgow-Blatchford) as itemised breakdowns.

Definitions follow MDCalc (the source MedCalc-Bench's reference implementations cite). Where MedCalc-Bench's code
departs from MDCalc (Caprini gives BMI > 25 two points; HEART counts atherosclerotic disease as an ordinary risk
factor) we follow MDCalc and say so in docs/calc.md.
"""

from __future__ import annotations

from ehrforge.tasks.calc.calculators.scores import Breakdown

CHARLSON_LIVER = {"none": 0, "mild": 1, "moderate to severe": 3}
CHARLSON_DIABETES = {"none or diet-controlled": 0, "uncomplicated": 1, "end-organ damage": 2}
CHARLSON_TUMOR = {"none": 0, "localized": 2, "metastatic": 6}


def charlson(
    *,
    age: float,
    mi: bool,
    chf: bool,
    peripheral_vascular_disease: bool,
    cerebrovascular_disease: bool,
    dementia: bool,
    copd: bool,
    connective_tissue_disease: bool,
    peptic_ulcer_disease: bool,
    liver_severity: str,
    diabetes_severity: str,
    hemiplegia: bool,
    moderate_severe_ckd: bool,
    solid_tumor: str,
    leukemia: bool,
    lymphoma: bool,
    aids: bool,
) -> Breakdown:
    """Charlson Comorbidity Index (Charlson 1987, age-adjusted; MDCalc): age < 50 0, 50–59 +1, 60–69 +2, 70–79 +3,
    ≥ 80 +4; MI, CHF, PVD, CVA/TIA, dementia, chronic pulmonary disease, connective tissue disease, peptic ulcer
    +1 each; liver mild +1 / moderate-severe +3; diabetes uncomplicated +1 / end-organ damage +2; hemiplegia,
    moderate-severe CKD, leukemia, lymphoma +2 each; solid tumour localized +2 / metastatic +6; AIDS +6."""
    age_points = 4 if age >= 80 else 3 if age >= 70 else 2 if age >= 60 else 1 if age >= 50 else 0
    return [
        ("age", age_points),
        ("myocardial infarction", int(mi)),
        ("congestive heart failure", int(chf)),
        ("peripheral vascular disease", int(peripheral_vascular_disease)),
        ("cerebrovascular accident or TIA", int(cerebrovascular_disease)),
        ("dementia", int(dementia)),
        ("chronic pulmonary disease", int(copd)),
        ("connective tissue disease", int(connective_tissue_disease)),
        ("peptic ulcer disease", int(peptic_ulcer_disease)),
        ("liver disease", CHARLSON_LIVER[liver_severity]),
        ("diabetes mellitus", CHARLSON_DIABETES[diabetes_severity]),
        ("hemiplegia", 2 * int(hemiplegia)),
        ("moderate to severe CKD", 2 * int(moderate_severe_ckd)),
        ("solid tumor", CHARLSON_TUMOR[solid_tumor]),
        ("leukemia", 2 * int(leukemia)),
        ("lymphoma", 2 * int(lymphoma)),
        ("AIDS", 6 * int(aids)),
    ]


CAPRINI_SURGERY = {"none": 0, "minor": 1, "major": 2, "elective major lower extremity arthroplasty": 5}
CAPRINI_MOBILITY = {"normal": 0, "on bed rest": 1, "confined to bed > 72 hours": 2}
#: Caprini flags and their points (MDCalc's 2005 Caprini): recent (≤ 1 month) events, venous disease, thrombophilia,
#: other history. Prior DVT and prior PE score 3 together ("history of DVT/PE"), as one criterion.
CAPRINI_FLAGS = {
    "major_surgery_last_month": ("major surgery in the last month", 1),
    "chf_last_month": ("congestive heart failure in the last month", 1),
    "sepsis_last_month": ("sepsis in the last month", 1),
    "pneumonia_last_month": ("pneumonia in the last month", 1),
    "plaster_cast": ("immobilizing plaster cast in the last month", 2),
    "leg_fracture": ("hip, pelvis or leg fracture in the last month", 5),
    "stroke_last_month": ("stroke in the last month", 5),
    "multiple_trauma": ("multiple trauma in the last month", 5),
    "spinal_cord_injury": ("acute spinal cord injury with paralysis in the last month", 5),
    "varicose_veins": ("varicose veins", 1),
    "swollen_legs": ("current swollen legs", 1),
    "central_venous_access": ("current central venous access", 2),
    "family_history_thrombosis": ("family history of thrombosis", 3),
    "factor_v_leiden": ("positive factor V Leiden", 3),
    "prothrombin_20210a": ("positive prothrombin 20210A", 3),
    "elevated_homocysteine": ("elevated serum homocysteine", 3),
    "lupus_anticoagulant": ("positive lupus anticoagulant", 3),
    "anticardiolipin": ("elevated anticardiolipin antibody", 3),
    "heparin_induced_thrombocytopenia": ("heparin-induced thrombocytopenia", 3),
    "other_thrombophilia": ("other congenital or acquired thrombophilia", 3),
    "inflammatory_bowel_disease": ("inflammatory bowel disease", 1),
    "acute_mi": ("acute myocardial infarction", 1),
    "copd": ("COPD", 1),
    "malignancy": ("present or previous malignancy", 2),
}


def caprini(
    *, age: float, surgery_type: str, mobility: str, bmi: float, prior_dvt: bool, prior_pe: bool, **flags: bool
) -> Breakdown:
    """Caprini VTE score (Caprini 2005; MDCalc): age ≤ 40 0, 41–60 +1, 61–74 +2, ≥ 75 +3; surgery none 0 / minor +1
    / major +2 / elective major lower-extremity arthroplasty +5; mobility normal 0 / bed rest +1 / confined > 72 h
    +2; history of DVT or PE +3; BMI > 25 +1; each flag in ``CAPRINI_FLAGS`` its points."""
    unknown = sorted(set(flags) - set(CAPRINI_FLAGS))
    if unknown:
        raise TypeError(f"unknown Caprini criteria: {', '.join(unknown)}")
    items: Breakdown = [
        ("age", 3 if age >= 75 else 2 if age >= 61 else 1 if age >= 41 else 0),
        ("type of surgery", CAPRINI_SURGERY[surgery_type]),
        ("mobility", CAPRINI_MOBILITY[mobility]),
        ("history of DVT or PE", 3 * int(prior_dvt or prior_pe)),
        ("BMI > 25", int(bmi > 25)),
    ]
    items += [(label, pts * int(bool(flags.get(name, False)))) for name, (label, pts) in CAPRINI_FLAGS.items()]
    return items


HEART_HISTORY = {"slightly suspicious": 0, "moderately suspicious": 1, "highly suspicious": 2}
HEART_ECG = {"normal": 0, "non-specific repolarization disturbance": 1, "significant ST deviation": 2}
HEART_TROPONIN = {"normal": 0, "1-3 times normal": 1, "more than 3 times normal": 2}
HEART_RISK_FACTORS = ("hypertension", "hypercholesterolemia", "diabetes", "obesity", "smoker", "family_history_cvd")


def heart(
    *,
    age: float,
    heart_history: str,
    ecg: str,
    troponin: str,
    hypertension: bool,
    hypercholesterolemia: bool,
    diabetes: bool,
    obesity: bool,
    smoker: bool,
    family_history_cvd: bool,
    atherosclerotic_disease: bool,
) -> Breakdown:
    """HEART score (Six 2008; MDCalc): History 0/1/2, ECG 0/1/2, Age < 45 0 / 45–64 +1 / ≥ 65 +2, Risk factors: none
    0, 1–2 +1, ≥ 3 or known atherosclerotic disease +2, Troponin ≤ normal 0 / 1–3× +1 / > 3× +2."""
    n_factors = sum([hypertension, hypercholesterolemia, diabetes, obesity, smoker, family_history_cvd])
    risk = 2 if n_factors >= 3 or atherosclerotic_disease else 1 if n_factors >= 1 else 0
    return [
        ("history", HEART_HISTORY[heart_history]),
        ("ECG", HEART_ECG[ecg]),
        ("age", 2 if age >= 65 else 1 if age >= 45 else 0),
        (f"risk factors ({n_factors}{', atherosclerotic disease' if atherosclerotic_disease else ''})", risk),
        ("initial troponin", HEART_TROPONIN[troponin]),
    ]


def glasgow_blatchford(
    *,
    bun: float,
    hemoglobin: float,
    sex: str,
    sbp: float,
    heart_rate: float,
    melena: bool,
    syncope: bool,
    liver_disease: bool,
    chf: bool,
) -> Breakdown:
    """Glasgow-Blatchford bleeding score (Blatchford 2000; MDCalc): BUN < 18.2 0, 18.2–22.3 +2, 22.4–27.9 +3,
    28–70 +4, > 70 mg/dL +6; hemoglobin men ≥ 13 0, 12–12.9 +1, 10–11.9 +3, < 10 +6; women ≥ 12 0, 10–11.9 +1,
    < 10 +6; SBP ≥ 110 0, 100–109 +1, 90–99 +2, < 90 +3; pulse ≥ 100 +1; melena +1; syncope +2; hepatic disease +2;
    cardiac failure +2."""
    if sex.lower().startswith("f"):
        hb = 0 if hemoglobin >= 12 else 1 if hemoglobin >= 10 else 6
    else:
        hb = 0 if hemoglobin >= 13 else 1 if hemoglobin >= 12 else 3 if hemoglobin >= 10 else 6
    return [
        ("BUN", 0 if bun < 18.2 else 2 if bun < 22.4 else 3 if bun < 28 else 4 if bun <= 70 else 6),
        ("hemoglobin", hb),
        ("systolic blood pressure", 0 if sbp >= 110 else 1 if sbp >= 100 else 2 if sbp >= 90 else 3),
        ("pulse ≥ 100", int(heart_rate >= 100)),
        ("melena", int(melena)),
        ("syncope", 2 * int(syncope)),
        ("hepatic disease", 2 * int(liver_disease)),
        ("cardiac failure", 2 * int(chf)),
    ]
