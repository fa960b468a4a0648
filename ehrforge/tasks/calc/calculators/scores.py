"""Points-based clinical scores as pure functions returning an itemised breakdown ``[(criterion, points), ...]``.

The breakdown is what the SFT reasoning lists line by line; :func:`total` sums it. Criteria follow the MDCalc
definitions that MedCalc-Bench implements; an unmentioned finding counts as absent (MedCalc-Bench's convention).
"""

from __future__ import annotations

Breakdown = list[tuple[str, float]]


def total(items: Breakdown) -> float:
    s = sum(p for _, p in items)
    return int(s) if float(s).is_integer() else s


def _female(sex: str) -> bool:
    return sex.lower().startswith("f")


def cha2ds2_vasc(
    *, age: float, sex: str, chf: bool, hypertension: bool, stroke_tia: bool, vascular_disease: bool, diabetes: bool
) -> Breakdown:
    """CHA2DS2-VASc: CHF 1, hypertension 1, age ≥ 75 2 / 65–74 1, diabetes 1, stroke/TIA/thromboembolism 2,
    vascular disease 1, female sex 1."""
    return [
        ("age", 2 if age >= 75 else 1 if age >= 65 else 0),
        ("female sex", 1 if _female(sex) else 0),
        ("congestive heart failure", int(chf)),
        ("hypertension", int(hypertension)),
        ("stroke / TIA / thromboembolism", 2 * int(stroke_tia)),
        ("vascular disease", int(vascular_disease)),
        ("diabetes", int(diabetes)),
    ]


def has_bled(
    *,
    age: float,
    hypertension: bool,
    renal_disease: bool,
    liver_disease: bool,
    stroke_tia: bool,
    prior_bleeding: bool,
    labile_inr: bool,
    bleeding_medication: bool,
    alcohol_drinks_per_week: float,
) -> Breakdown:
    """HAS-BLED: hypertension, abnormal renal, abnormal liver, stroke, bleeding, labile INR, elderly (> 65),
    drugs (antiplatelets/NSAIDs), alcohol (≥ 8 drinks/week): 1 point each."""
    return [
        ("hypertension", int(hypertension)),
        ("renal disease", int(renal_disease)),
        ("liver disease", int(liver_disease)),
        ("stroke history", int(stroke_tia)),
        ("prior major bleeding", int(prior_bleeding)),
        ("labile INR", int(labile_inr)),
        ("age > 65", int(age > 65)),
        ("medication predisposing to bleeding", int(bleeding_medication)),
        ("alcohol ≥ 8 drinks/week", int(alcohol_drinks_per_week >= 8)),
    ]


def curb65(*, age: float, bun: float, resp_rate: float, sbp: float, dbp: float, confusion: bool) -> Breakdown:
    """CURB-65: confusion, BUN > 19 mg/dL, respiratory rate ≥ 30, SBP < 90 or DBP ≤ 60, age ≥ 65: 1 point each."""
    return [
        ("confusion", int(confusion)),
        ("BUN > 19 mg/dL", int(bun > 19)),
        ("respiratory rate ≥ 30/min", int(resp_rate >= 30)),
        ("SBP < 90 or DBP ≤ 60 mm Hg", int(sbp < 90 or dbp <= 60)),
        ("age ≥ 65", int(age >= 65)),
    ]


def centor_mcisaac(
    *, age: float, temp_c: float, cough_absent: bool, tender_nodes: bool, tonsillar_exudate: bool
) -> Breakdown:
    """Modified Centor (McIsaac): age 3–14 +1, 15–44 0, ≥ 45 −1; exudate/swelling on tonsils +1; tender/swollen
    anterior cervical nodes +1; temperature > 38 °C +1; cough absent +1."""
    age_points = 1 if 3 <= age <= 14 else -1 if age >= 45 else 0
    return [
        ("age", age_points),
        ("tonsillar exudate or swelling", int(tonsillar_exudate)),
        ("tender/swollen anterior cervical nodes", int(tender_nodes)),
        ("temperature > 38 °C", int(temp_c > 38)),
        ("cough absent", int(cough_absent)),
    ]


def feverpain(
    *,
    fever_24h: bool,
    purulent_tonsils: bool,
    onset_within_3_days: bool,
    severe_tonsil_inflammation: bool,
    no_cough_or_coryza: bool,
) -> Breakdown:
    """FeverPAIN: Fever in past 24 h, Purulence, Attend rapidly (≤ 3 days), Inflamed tonsils, No cough/coryza."""
    return [
        ("fever in past 24 hours", int(fever_24h)),
        ("purulent tonsils", int(purulent_tonsils)),
        ("symptom onset ≤ 3 days", int(onset_within_3_days)),
        ("severe tonsil inflammation", int(severe_tonsil_inflammation)),
        ("absence of cough or coryza", int(no_cough_or_coryza)),
    ]


def glasgow_coma_scale(*, gcs_eye: int, gcs_verbal: int, gcs_motor: int) -> Breakdown:
    """GCS = eye (1–4) + verbal (1–5) + motor (1–6)."""
    return [("best eye response", gcs_eye), ("best verbal response", gcs_verbal), ("best motor response", gcs_motor)]


ASCITES_POINTS = {"absent": 1, "slight": 2, "moderate": 3}
ENCEPHALOPATHY_POINTS = {"none": 1, "grade 1-2": 2, "grade 3-4": 3}


def child_pugh(*, bilirubin: float, albumin: float, inr: float, ascites: str, encephalopathy: str) -> Breakdown:
    """Child-Pugh: bilirubin < 2 / 2–3 / > 3 mg/dL; albumin > 3.5 / 2.8–3.5 / < 2.8 g/dL; INR < 1.7 / 1.7–2.3 /
    > 2.3; ascites absent / slight / moderate; encephalopathy none / grade 1–2 / grade 3–4: 1 / 2 / 3 points."""
    return [
        ("bilirubin", 1 if bilirubin < 2 else 2 if bilirubin <= 3 else 3),
        ("albumin", 1 if albumin > 3.5 else 2 if albumin >= 2.8 else 3),
        ("INR", 1 if inr < 1.7 else 2 if inr <= 2.3 else 3),
        ("ascites", ASCITES_POINTS[ascites]),
        ("encephalopathy", ENCEPHALOPATHY_POINTS[encephalopathy]),
    ]


def wells_pe(
    *,
    heart_rate: float,
    dvt_signs: bool,
    pe_most_likely: bool,
    immobilization: bool,
    recent_surgery: bool,
    prior_dvt: bool,
    prior_pe: bool,
    hemoptysis: bool,
    malignancy: bool,
) -> Breakdown:
    """Wells PE: clinical DVT signs 3; PE the most likely diagnosis 3; HR > 100 1.5; immobilisation ≥ 3 days or
    surgery in previous 4 weeks 1.5; previous PE or DVT 1.5; hemoptysis 1; malignancy 1."""
    return [
        ("clinical signs of DVT", 3 * int(dvt_signs)),
        ("PE the most likely diagnosis", 3 * int(pe_most_likely)),
        ("heart rate > 100", 1.5 * int(heart_rate > 100)),
        ("immobilisation ≥ 3 days or surgery in previous 4 weeks", 1.5 * int(immobilization or recent_surgery)),
        ("previous PE or DVT", 1.5 * int(prior_dvt or prior_pe)),
        ("hemoptysis", int(hemoptysis)),
        ("malignancy", int(malignancy)),
    ]


def wells_dvt(
    *,
    malignancy: bool,
    bedridden_or_major_surgery: bool,
    calf_swelling_3cm: bool,
    collateral_veins: bool,
    entire_leg_swollen: bool,
    deep_vein_tenderness: bool,
    pitting_edema: bool,
    leg_paralysis_or_cast: bool,
    prior_dvt: bool,
    alternative_diagnosis_likely: bool,
) -> Breakdown:
    """Wells DVT: nine findings +1 each; an alternative diagnosis at least as likely −2."""
    return [
        ("active cancer", int(malignancy)),
        ("bedridden > 3 days or major surgery within 12 weeks", int(bedridden_or_major_surgery)),
        ("calf swelling > 3 cm", int(calf_swelling_3cm)),
        ("collateral superficial veins", int(collateral_veins)),
        ("entire leg swollen", int(entire_leg_swollen)),
        ("localised tenderness along deep veins", int(deep_vein_tenderness)),
        ("pitting edema in the symptomatic leg", int(pitting_edema)),
        ("paralysis, paresis or recent cast of the leg", int(leg_paralysis_or_cast)),
        ("previously documented DVT", int(prior_dvt)),
        ("alternative diagnosis as likely", -2 * int(alternative_diagnosis_likely)),
    ]


def perc(
    *,
    age: float,
    heart_rate: float,
    spo2: float,
    hemoptysis: bool,
    hormone_use: bool,
    prior_dvt: bool,
    prior_pe: bool,
    recent_surgery: bool,
    unilateral_leg_swelling: bool,
) -> Breakdown:
    """PERC rule: number of criteria present: age ≥ 50, HR ≥ 100, SpO2 < 95 %, unilateral leg swelling,
    hemoptysis, recent surgery or trauma, prior PE or DVT, hormone use."""
    return [
        ("age ≥ 50", int(age >= 50)),
        ("heart rate ≥ 100", int(heart_rate >= 100)),
        ("SpO2 < 95 %", int(spo2 < 95)),
        ("unilateral leg swelling", int(unilateral_leg_swelling)),
        ("hemoptysis", int(hemoptysis)),
        ("recent surgery or trauma", int(recent_surgery)),
        ("prior PE or DVT", int(prior_dvt or prior_pe)),
        ("hormone use", int(hormone_use)),
    ]


def sirs(*, temp_c: float, heart_rate: float, resp_rate: float, wbc: float) -> Breakdown:
    """SIRS criteria met: temperature > 38 or < 36 °C; HR > 90; RR > 20; WBC > 12 or < 4 × 10^9/L."""
    return [
        ("temperature > 38 or < 36 °C", int(temp_c > 38 or temp_c < 36)),
        ("heart rate > 90", int(heart_rate > 90)),
        ("respiratory rate > 20", int(resp_rate > 20)),
        ("WBC > 12 or < 4 × 10^9/L", int(wbc > 12 or wbc < 4)),
    ]


def rcri(
    *,
    high_risk_surgery: bool,
    ischemic_heart_disease: bool,
    chf: bool,
    cerebrovascular_disease: bool,
    insulin_treatment: bool,
    creatinine: float,
) -> Breakdown:
    """Revised Cardiac Risk Index: elevated-risk surgery, ischemic heart disease, CHF, cerebrovascular disease,
    pre-operative insulin, creatinine > 2 mg/dL: 1 point each."""
    return [
        ("elevated-risk surgery", int(high_risk_surgery)),
        ("ischemic heart disease", int(ischemic_heart_disease)),
        ("congestive heart failure", int(chf)),
        ("cerebrovascular disease", int(cerebrovascular_disease)),
        ("pre-operative insulin", int(insulin_treatment)),
        ("creatinine > 2 mg/dL", int(creatinine > 2)),
    ]
