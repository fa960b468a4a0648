"""Closed-form medical calculators (MedCalc-Bench conventions), as pure functions of canonical-unit inputs.

Canonical units: age years; weight kg; height cm; creatinine, BUN, glucose, cholesterol, calcium, bilirubin mg/dL;
albumin g/dL; electrolytes mmol/L (= mEq/L); insulin µIU/mL; platelets 10^9/L; QT ms; heart rate beats/min.
Each function cites its formula; the unit tests check hand-computed values.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

MALE, FEMALE = "male", "female"


def _female(sex: str) -> bool:
    return sex.lower().startswith("f")


# --- body size --------------------------------------------------------------------------------------------------


def bmi(weight_kg: float, height_cm: float) -> float:
    """BMI = weight / height² (kg/m²)."""
    h = height_cm / 100
    return weight_kg / (h * h)


def ideal_body_weight(sex: str, height_cm: float) -> float:
    """Devine: IBW = 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch over 5 feet."""
    return (45.5 if _female(sex) else 50.0) + 2.3 * (height_cm / 2.54 - 60)


def adjusted_body_weight(sex: str, weight_kg: float, height_cm: float) -> float:
    """ABW = IBW + 0.4 × (actual weight − IBW)."""
    ibw = ideal_body_weight(sex, height_cm)
    return ibw + 0.4 * (weight_kg - ibw)


def body_surface_area(weight_kg: float, height_cm: float) -> float:
    """Mosteller: BSA = √(height cm × weight kg / 3600) (m²)."""
    return math.sqrt(weight_kg * height_cm / 3600)


def target_weight(target_bmi: float, height_cm: float) -> float:
    """Weight at a target BMI: BMI × height² (kg)."""
    h = height_cm / 100
    return target_bmi * h * h


def maintenance_fluids(weight_kg: float) -> float:
    """Holliday-Segar 4-2-1 rule (mL/hr): 4 mL/kg for the first 10 kg, 2 for the next 10, 1 for each kg above 20."""
    first = min(weight_kg, 10) * 4
    second = min(max(weight_kg - 10, 0), 10) * 2
    rest = max(weight_kg - 20, 0) * 1
    return first + second + rest


def mean_arterial_pressure(sbp: float, dbp: float) -> float:
    """MAP = 2/3 × DBP + 1/3 × SBP (mm Hg)."""
    return (2 * dbp + sbp) / 3


# --- kidney -----------------------------------------------------------------------------------------------------


def crcl_weight(sex: str, weight_kg: float, height_cm: float) -> tuple[float, str]:
    """The weight MedCalc-Bench's Cockcroft-Gault question asks for: underweight (BMI < 18.5) → actual weight;
    normal (18.5–24.9) → min(IBW, actual); overweight/obese (≥ 25) → adjusted body weight."""
    b = bmi(weight_kg, height_cm)
    if b < 18.5:
        return weight_kg, "underweight: actual body weight"
    if b < 25:
        return min(ideal_body_weight(sex, height_cm), weight_kg), "normal BMI: min(ideal, actual) body weight"
    return adjusted_body_weight(sex, weight_kg, height_cm), "overweight/obese: adjusted body weight"


def cockcroft_gault(age: float, sex: str, weight_kg: float, height_cm: float, creatinine: float) -> float:
    """CrCl = (140 − age) × weight × (0.85 if female) / (72 × serum creatinine mg/dL) (mL/min)."""
    w, _ = crcl_weight(sex, weight_kg, height_cm)
    return (140 - age) * w * (0.85 if _female(sex) else 1.0) / (72 * creatinine)


def ckd_epi_2021(age: float, sex: str, creatinine: float) -> float:
    """CKD-EPI 2021 (race-free): 142 × min(Scr/κ,1)^α × max(Scr/κ,1)^−1.200 × 0.9938^age × 1.012 (female);
    κ = 0.7 (F) / 0.9 (M), α = −0.241 (F) / −0.302 (M). mL/min/1.73 m²."""
    female = _female(sex)
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine / kappa
    return 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938**age * (1.012 if female else 1.0)


def mdrd_gfr(age: float, sex: str, creatinine: float, black: bool) -> float:
    """MDRD (IDMS-traceable): 175 × Scr^−1.154 × age^−0.203 × 0.742 (female) × 1.212 (Black). mL/min/1.73 m²."""
    value = 175 * creatinine**-1.154 * age**-0.203
    return value * (0.742 if _female(sex) else 1.0) * (1.212 if black else 1.0)


def fena(sodium: float, creatinine: float, urine_sodium: float, urine_creatinine: float) -> float:
    """FENa (%) = (urine Na × serum Cr) / (serum Na × urine Cr) × 100."""
    return urine_sodium * creatinine / (sodium * urine_creatinine) * 100


def free_water_deficit(age: float, sex: str, weight_kg: float, sodium: float) -> float:
    """FWD (L) = TBW fraction × weight × (Na/140 − 1); fraction 0.6 child / adult man, 0.5 adult woman /
    elderly (≥ 65) man, 0.45 elderly woman."""
    return total_body_water_fraction(age, sex) * weight_kg * (sodium / 140 - 1)


def total_body_water_fraction(age: float, sex: str) -> float:
    if age < 18:
        return 0.6
    if age >= 65:
        return 0.45 if _female(sex) else 0.5
    return 0.5 if _female(sex) else 0.6


# --- electrolytes and labs --------------------------------------------------------------------------------------


def corrected_calcium(calcium: float, albumin: float, normal_albumin: float = 4.0) -> float:
    """Corrected Ca (mg/dL) = Ca + 0.8 × (normal albumin − albumin g/dL)."""
    return calcium + 0.8 * (normal_albumin - albumin)


def sodium_correction_hyperglycemia(sodium: float, glucose: float) -> float:
    """Katz: corrected Na = Na + 0.024 × (glucose mg/dL − 100)."""
    return sodium + 0.024 * (glucose - 100)


def serum_osmolality(sodium: float, bun: float, glucose: float) -> float:
    """Calculated osmolality = 2 × Na + BUN/2.8 + glucose/18 (mOsm/kg)."""
    return 2 * sodium + bun / 2.8 + glucose / 18


def anion_gap(sodium: float, chloride: float, bicarbonate: float) -> float:
    """AG = Na − (Cl + HCO3) (mEq/L)."""
    return sodium - (chloride + bicarbonate)


def delta_gap(sodium: float, chloride: float, bicarbonate: float) -> float:
    """Delta gap = AG − 12."""
    return anion_gap(sodium, chloride, bicarbonate) - 12


def delta_ratio(sodium: float, chloride: float, bicarbonate: float) -> float:
    """Delta ratio = (AG − 12) / (24 − HCO3)."""
    return delta_gap(sodium, chloride, bicarbonate) / (24 - bicarbonate)


def albumin_corrected_anion_gap(sodium: float, chloride: float, bicarbonate: float, albumin: float) -> float:
    """Albumin-corrected AG = AG + 2.5 × (4 − albumin g/dL)."""
    return anion_gap(sodium, chloride, bicarbonate) + 2.5 * (4 - albumin)


def albumin_corrected_delta_gap(sodium: float, chloride: float, bicarbonate: float, albumin: float) -> float:
    """Albumin-corrected delta gap = albumin-corrected AG − 12."""
    return albumin_corrected_anion_gap(sodium, chloride, bicarbonate, albumin) - 12


def albumin_corrected_delta_ratio(sodium: float, chloride: float, bicarbonate: float, albumin: float) -> float:
    """Albumin-corrected delta ratio = (albumin-corrected AG − 12) / (24 − HCO3)."""
    return albumin_corrected_delta_gap(sodium, chloride, bicarbonate, albumin) / (24 - bicarbonate)


def ldl_friedewald(total_cholesterol: float, hdl: float, triglycerides: float) -> float:
    """Friedewald: LDL = total cholesterol − HDL − triglycerides/5 (mg/dL)."""
    return total_cholesterol - hdl - triglycerides / 5


def homa_ir(insulin: float, glucose: float) -> float:
    """HOMA-IR = fasting insulin (µIU/mL) × fasting glucose (mg/dL) / 405."""
    return insulin * glucose / 405


def fib4(age: float, ast: float, alt: float, platelets: float) -> float:
    """FIB-4 = age × AST / (platelets 10^9/L × √ALT)."""
    return age * ast / (platelets * math.sqrt(alt))


def meld_na(creatinine: float, bilirubin: float, inr: float, sodium: float, dialysis: bool) -> float:
    """MELD Na (UNOS/OPTN, as MDCalc): bound Cr, bilirubin, INR below at 1; Cr above at 4 (set to 4 with dialysis
    ≥ 2×/week or CVVHD); Na to [125, 137]. MELD(i) = 10 × (0.957 ln Cr + 0.378 ln bili + 1.120 ln INR + 0.643),
    rounded to 0.1; if MELD(i) > 11: MELD = MELD(i) + 1.32 × (137 − Na) − 0.033 × MELD(i) × (137 − Na).
    Capped at 40."""
    cr = 4.0 if dialysis else min(max(creatinine, 1.0), 4.0)
    bili, inr_ = max(bilirubin, 1.0), max(inr, 1.0)
    na = min(max(sodium, 125.0), 137.0)
    meld_i = round(10 * (0.957 * math.log(cr) + 0.378 * math.log(bili) + 1.120 * math.log(inr_) + 0.643), 1)
    if meld_i > 11:
        meld_i = meld_i + 1.32 * (137 - na) - 0.033 * meld_i * (137 - na)
    return min(meld_i, 40.0)


# --- ECG ----------------------------------------------------------------------------------------------------------


def rr_interval(heart_rate: float) -> float:
    """RR interval in seconds = 60 / heart rate."""
    return 60 / heart_rate


def qtc_bazett(qt_ms: float, heart_rate: float) -> float:
    """QTc = QT / √RR (RR in s)."""
    return qt_ms / math.sqrt(rr_interval(heart_rate))


def qtc_fridericia(qt_ms: float, heart_rate: float) -> float:
    """QTc = QT / RR^(1/3)."""
    return qt_ms / rr_interval(heart_rate) ** (1 / 3)


def qtc_framingham(qt_ms: float, heart_rate: float) -> float:
    """QTc = QT + 154 × (1 − RR) (ms)."""
    return qt_ms + 154 * (1 - rr_interval(heart_rate))


def qtc_hodges(qt_ms: float, heart_rate: float) -> float:
    """QTc = QT + 1.75 × (heart rate − 60) (ms)."""
    return qt_ms + 1.75 * (heart_rate - 60)


def qtc_rautaharju(qt_ms: float, heart_rate: float) -> float:
    """QTc = QT × (120 + heart rate) / 180 (ms)."""
    return qt_ms * (120 + heart_rate) / 180


# --- pregnancy dates ------------------------------------------------------------------------------------------------


def due_date(lmp: date, cycle_length: int = 28) -> date:
    """Naegele's rule: LMP + 280 days, shifted by (cycle length − 28) days."""
    return lmp + timedelta(days=280 + (cycle_length - 28))


def conception_date(lmp: date) -> date:
    """Estimated conception = LMP + 2 weeks (MedCalc-Bench's convention, whatever the cycle length)."""
    return lmp + timedelta(days=14)


def gestational_age(lmp: date, today: date) -> tuple[int, int]:
    """Gestational age (weeks, days) = days since the LMP, split into whole weeks and remaining days."""
    days = (today - lmp).days
    return days // 7, days % 7


# --- cardiovascular risk ----------------------------------------------------------------------------------------------

#: ATP III Framingham hard-CHD coefficients (NCEP ATP III 2001, as MDCalc): ln age, ln TC, ln HDL, ln SBP, treated BP,
#: smoker, ln age × ln TC, ln age × smoker, (ln age)², constant, baseline survival S10. Cholesterol in mg/dL.
FRAMINGHAM = {
    "male": (
        52.00961,
        20.014077,
        -0.905964,
        1.305784,
        0.241549,
        12.096316,
        -4.605038,
        -2.84367,
        -2.93323,
        -172.300168,
        0.9402,
    ),
    "female": (
        31.764001,
        22.465206,
        -1.187731,
        2.552905,
        0.420251,
        13.07543,
        -5.060998,
        -2.996945,
        0.0,
        -146.5933061,
        0.98767,
    ),
}


def framingham_linear(
    age: float, sex: str, total_cholesterol: float, hdl: float, sbp: float, bp_medicine: bool, smoker: bool
) -> float:
    """The linear predictor of the hard-CHD model; the age in the age × smoker term is capped at 70 (men) / 78
    (women), as MDCalc does."""
    c = FRAMINGHAM[FEMALE if _female(sex) else MALE]
    la, ltc = math.log(age), math.log(total_cholesterol)
    la_smoke = math.log(min(age, 78 if _female(sex) else 70))
    return (
        c[0] * la
        + c[1] * ltc
        + c[2] * math.log(hdl)
        + c[3] * math.log(sbp)
        + c[4] * bp_medicine
        + c[5] * smoker
        + c[6] * la * ltc
        + c[7] * la_smoke * smoker
        + c[8] * la * la
        + c[9]
    )


def framingham_risk(
    age: float, sex: str, total_cholesterol: float, hdl: float, sbp: float, bp_medicine: bool, smoker: bool
) -> float:
    """10-year risk of MI or coronary death (%) = (1 − S10^exp(linear predictor)) × 100."""
    s10 = FRAMINGHAM[FEMALE if _female(sex) else MALE][10]
    lp = framingham_linear(age, sex, total_cholesterol, hdl, sbp, bp_medicine, smoker)
    return (1 - s10 ** math.exp(lp)) * 100
