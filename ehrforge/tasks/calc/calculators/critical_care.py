"""Multi-system severity scores (APACHE II, SOFA, PSI) as itemised breakdowns ``[(criterion, points), ...]``.

Criteria and bands follow MDCalc, which MedCalc-Bench's reference implementations (``calculator_implementations/
apache_ii.py``, ``sofa.py``, ``psi_score.py``) encode. Canonical units as in ``formulas``; PaO2 and A-a gradient mm Hg,
FiO2 %, hematocrit %, WBC 10^9/L, platelets 10^9/L, vasopressors µg/kg/min, urine output mL/day.
"""

from __future__ import annotations

from ehrforge.tasks.calc.calculators.formulas import mean_arterial_pressure
from ehrforge.tasks.calc.calculators.scores import Breakdown


def _band(value: float, bands: list[tuple[float, int]], otherwise: int) -> int:
    """Points of the first band whose lower bound ``value`` reaches (bands listed from the top down)."""
    for lower, pts in bands:
        if value >= lower:
            return pts
    return otherwise


APACHE_ADMISSION = {"nonoperative": 5, "emergency postoperative": 5, "elective postoperative": 2}


def apache_ii(
    *,
    age: float,
    temp_c: float,
    sbp: float,
    dbp: float,
    heart_rate: float,
    resp_rate: float,
    ph: float,
    sodium: float,
    potassium: float,
    creatinine: float,
    acute_renal_failure: bool,
    hematocrit: float,
    wbc: float,
    gcs: float,
    fio2: float,
    pao2: float,
    a_a_gradient: float,
    organ_failure_immunocompromise: bool,
    admission_type: str,
) -> Breakdown:
    """APACHE II (Knaus 1985; MDCalc): acute physiology points + age points + chronic health points.

    Oxygenation uses the A-a gradient when FiO2 ≥ 50 %, else PaO2. Creatinine points double with acute renal failure.
    Chronic health: severe organ insufficiency or immunocompromise scores 5 for nonoperative or emergency
    postoperative patients, 2 for elective postoperative ones. GCS contributes 15 − GCS.
    """
    map_ = mean_arterial_pressure(sbp, dbp)
    if fio2 >= 50:
        oxygen = ("A-a gradient (FiO2 ≥ 50 %)", _band(a_a_gradient, [(500, 4), (350, 3), (200, 2)], 0))
    else:
        oxygen = ("PaO2 (FiO2 < 50 %)", 0 if pao2 > 70 else 1 if pao2 >= 61 else 3 if pao2 >= 55 else 4)
    creat = _band(creatinine, [(3.5, 4), (2.0, 3), (1.5, 2), (0.6, 0)], 2)
    chronic = APACHE_ADMISSION[admission_type] if organ_failure_immunocompromise else 0
    return [
        ("age", _band(age, [(75, 6), (65, 5), (55, 3), (45, 2)], 0)),
        ("temperature", _band(temp_c, [(41, 4), (39, 3), (38.5, 1), (36, 0), (34, 1), (32, 2), (30, 3)], 4)),
        ("mean arterial pressure", _band(map_, [(160, 4), (130, 3), (110, 2), (70, 0), (50, 2)], 4)),
        ("heart rate", _band(heart_rate, [(180, 4), (140, 3), (110, 2), (70, 0), (55, 2), (40, 3)], 4)),
        ("respiratory rate", _band(resp_rate, [(50, 4), (35, 3), (25, 1), (12, 0), (10, 1), (6, 2)], 4)),
        oxygen,
        ("arterial pH", _band(ph, [(7.7, 4), (7.6, 3), (7.5, 1), (7.33, 0), (7.25, 2), (7.15, 3)], 4)),
        ("sodium", _band(sodium, [(180, 4), (160, 3), (155, 2), (150, 1), (130, 0), (120, 2), (111, 3)], 4)),
        ("potassium", _band(potassium, [(7.0, 4), (6.0, 3), (5.5, 1), (3.5, 0), (3.0, 1), (2.5, 2)], 4)),
        (
            "creatinine" + (" ×2 (acute renal failure)" if acute_renal_failure else ""),
            creat * (1 + acute_renal_failure),
        ),
        ("hematocrit", _band(hematocrit, [(60, 4), (50, 2), (46, 1), (30, 0), (20, 2)], 4)),
        ("white blood cell count", _band(wbc, [(40, 4), (20, 2), (15, 1), (3, 0), (1, 2)], 4)),
        ("15 − GCS", int(15 - gcs)),
        ("chronic health", chronic),
    ]


def sofa(
    *,
    pao2: float,
    fio2: float,
    mechanical_ventilation: bool,
    platelets: float,
    gcs: float,
    bilirubin: float,
    sbp: float,
    dbp: float,
    dopamine: float,
    dobutamine: float,
    epinephrine: float,
    norepinephrine: float,
    creatinine: float,
    urine_output: float,
) -> Breakdown:
    """SOFA (Vincent 1996; MDCalc). Respiration by PaO2/FiO2 (3–4 points only with respiratory support, else capped
    at 2); coagulation by platelets; liver by bilirubin; cardiovascular by MAP < 70 or vasopressor doses
    (µg/kg/min); CNS by GCS; renal by creatinine or urine output (< 500 → 3, < 200 mL/day → 4)."""
    ratio = pao2 / (fio2 / 100)
    if ratio >= 400:
        resp = 0
    elif ratio >= 300:
        resp = 1
    elif ratio >= 200 or not mechanical_ventilation:
        resp = 2
    else:
        resp = 3 if ratio >= 100 else 4
    if dopamine > 15 or epinephrine > 0.1 or norepinephrine > 0.1:
        cardio = 4
    elif dopamine > 5 or epinephrine > 0 or norepinephrine > 0:
        cardio = 3
    elif dopamine > 0 or dobutamine > 0:
        cardio = 2
    else:
        cardio = 1 if mean_arterial_pressure(sbp, dbp) < 70 else 0
    renal = _band(creatinine, [(5.0, 4), (3.5, 3), (2.0, 2), (1.2, 1)], 0)
    renal = max(renal, 4 if urine_output < 200 else 3 if urine_output < 500 else 0)
    return [
        ("PaO2/FiO2", resp),
        ("platelets", _band(platelets, [(150, 0), (100, 1), (50, 2), (20, 3)], 4)),
        ("GCS", 0 if gcs >= 15 else 1 if gcs >= 13 else 2 if gcs >= 10 else 3 if gcs >= 6 else 4),
        ("bilirubin", _band(bilirubin, [(12, 4), (6, 3), (2, 2), (1.2, 1)], 0)),
        ("cardiovascular (MAP / vasopressors)", cardio),
        ("renal (creatinine / urine output)", renal),
    ]


def psi(
    *,
    age: float,
    sex: str,
    nursing_home: bool,
    malignancy: bool,
    liver_disease: bool,
    chf: bool,
    cerebrovascular_disease: bool,
    renal_disease: bool,
    confusion: bool,
    resp_rate: float,
    sbp: float,
    temp_c: float,
    heart_rate: float,
    ph: float,
    bun: float,
    sodium: float,
    glucose: float,
    hematocrit: float,
    pao2: float,
    pleural_effusion: bool,
) -> Breakdown:
    """Pneumonia Severity Index (Fine 1997; MDCalc): age in years (female −10), nursing home +10, neoplastic disease
    +30, liver disease +20, CHF +10, cerebrovascular +10, renal +10, altered mental status +20, RR ≥ 30 +20,
    SBP < 90 +20, temperature < 35 or > 39.9 °C +15, pulse ≥ 125 +10, pH < 7.35 +30, BUN ≥ 30 +20, Na < 130 +20,
    glucose ≥ 250 +10, hematocrit < 30 % +10, PaO2 < 60 mm Hg +10, pleural effusion +10."""
    return [
        ("age", int(age)),
        ("female sex", -10 if sex.lower().startswith("f") else 0),
        ("nursing home resident", 10 * int(nursing_home)),
        ("neoplastic disease", 30 * int(malignancy)),
        ("liver disease", 20 * int(liver_disease)),
        ("congestive heart failure", 10 * int(chf)),
        ("cerebrovascular disease", 10 * int(cerebrovascular_disease)),
        ("renal disease", 10 * int(renal_disease)),
        ("altered mental status", 20 * int(confusion)),
        ("respiratory rate ≥ 30", 20 * int(resp_rate >= 30)),
        ("SBP < 90", 20 * int(sbp < 90)),
        ("temperature < 35 or > 39.9 °C", 15 * int(temp_c < 35 or temp_c > 39.9)),
        ("pulse ≥ 125", 10 * int(heart_rate >= 125)),
        ("pH < 7.35", 30 * int(ph < 7.35)),
        ("BUN ≥ 30 mg/dL", 20 * int(bun >= 30)),
        ("sodium < 130", 20 * int(sodium < 130)),
        ("glucose ≥ 250 mg/dL", 10 * int(glucose >= 250)),
        ("hematocrit < 30 %", 10 * int(hematocrit < 30)),
        ("PaO2 < 60 mm Hg", 10 * int(pao2 < 60)),
        ("pleural effusion", 10 * int(pleural_effusion)),
    ]
