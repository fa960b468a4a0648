"""Every calculator against hand-computed values (the arithmetic is in the comments), plus a cross-check against
the official MedCalc-Bench one-shot exemplars' reference answers where the shared data is available."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest

from ehrforge.errors import UnknownNameError
from ehrforge.tasks.calc.calculators import CALCULATORS, format_answer, get_calculator, select_calculators
from ehrforge.tasks.calc.calculators import formulas as F
from ehrforge.tasks.calc.calculators import scores as S

approx = pytest.approx


def test_body_size() -> None:
    assert F.bmi(68, 182) == approx(20.529, abs=1e-3)  # 68 / 1.82² = 68 / 3.3124
    assert F.ideal_body_weight("male", 173) == approx(68.653, abs=1e-3)  # 173 cm = 68.110 in; 50 + 2.3 × 8.110
    assert F.ideal_body_weight("female", 160) == approx(52.382, abs=1e-3)  # 62.992 in; 45.5 + 2.3 × 2.992
    assert F.adjusted_body_weight("female", 78, 160) == approx(62.629, abs=1e-3)  # 52.382 + 0.4 × (78 − 52.382)
    assert F.body_surface_area(85, 180) == approx(2.0616, abs=1e-4)  # √(85 × 180 / 3600) = √4.25
    assert F.target_weight(23.2, 182.88) == approx(77.592, abs=1e-3)  # 23.2 × 1.8288²
    assert F.maintenance_fluids(52) == 92  # 4×10 + 2×10 + 1×32
    assert F.maintenance_fluids(8) == 32 and F.maintenance_fluids(15) == 50  # 4×8; 40 + 2×5
    assert F.mean_arterial_pressure(110, 70) == approx(83.333, abs=1e-3)  # (2×70 + 110) / 3


def test_cockcroft_gault_weight_rules() -> None:
    # normal BMI (24.1): min(IBW 64.126, 68) = 64.126; (140−66) × 64.126 / (72 × 5.09) = 12.948
    assert F.cockcroft_gault(66, "male", 68, 168, 5.09) == approx(12.948, abs=2e-3)
    # obese (BMI 39.1): ABW = 52.382 + 0.4 × 47.618 = 71.429; (140−40) × 71.429 × 0.85 / 72 = 84.33
    assert F.cockcroft_gault(40, "female", 100, 160, 1.0) == approx(84.33, abs=0.01)
    # underweight (BMI 15.4): actual 50 kg; 110 × 50 / 72 = 76.389
    assert F.cockcroft_gault(30, "male", 50, 180, 1.0) == approx(76.389, abs=1e-3)


def test_kidney() -> None:
    assert F.ckd_epi_2021(81, "male", 1.7) == approx(
        40.0, abs=0.1
    )  # 142 × (1.889)^−1.2 × 0.9938^81 = 142 × 0.4662 × 0.6043
    # female, Scr/κ = 0.857 < 1: 142 × 0.857^−0.241 × 0.9938^50 × 1.012 = 142 × 1.0379 × 0.7328 × 1.012
    assert F.ckd_epi_2021(50, "female", 0.6) == approx(109.29, abs=0.1)
    assert F.mdrd_gfr(85, "female", 1.36, False) == approx(36.954, abs=0.02)  # 175 × 0.7012 × 0.4058 × 0.742
    assert F.mdrd_gfr(85, "female", 1.36, True) == approx(36.954 * 1.212, abs=0.03)
    assert F.fena(197, 1.56, 12, 128.1) == approx(0.0742, abs=1e-4)  # 12 × 1.56 / (197 × 128.1) × 100
    assert F.free_water_deficit(81, "male", 22, 143) == approx(0.2357, abs=1e-4)  # 0.5 × 22 × (143/140 − 1)
    assert F.total_body_water_fraction(30, "male") == 0.6 and F.total_body_water_fraction(70, "female") == 0.45


def test_electrolytes_and_labs() -> None:
    assert F.corrected_calcium(8.4, 3.3) == approx(8.96)  # 8.4 + 0.8 × 0.7
    assert F.sodium_correction_hyperglycemia(140, 187) == approx(142.088)  # 140 + 0.024 × 87
    assert F.serum_osmolality(137, 40, 110) == approx(294.397, abs=1e-3)  # 274 + 40/2.8 + 110/18
    assert F.anion_gap(143, 106, 25) == 12 and F.delta_gap(143, 106, 25) == 0
    assert F.delta_ratio(140, 100, 12) == approx(16 / 12)  # AG 28, (28 − 12) / (24 − 12)
    assert F.albumin_corrected_anion_gap(137, 116, 12.1, 3.7) == approx(9.65)  # 8.9 + 2.5 × 0.3
    assert F.albumin_corrected_delta_gap(148, 101, 12.2, 0.53) == approx(31.475)  # 34.8 + 2.5 × 3.47 − 12
    assert F.albumin_corrected_delta_ratio(125, 102, 21, 2.8) == approx(-7 / 3)  # (2 + 3 − 12) / 3
    assert F.ldl_friedewald(103, 36, 61) == approx(54.8)  # 103 − 36 − 12.2
    assert F.homa_ir(21, 97.3) == approx(5.045, abs=1e-3)  # 21 × 97.3 / 405
    assert F.fib4(35, 107, 104, 181) == approx(2.029, abs=1e-3)  # 35 × 107 / (181 × √104)


def test_meld_na() -> None:
    # dialysis → Cr 4; MELD(i) = 10 × (1.3267 + 1.3556 + 0.8831 + 0.643) = 42.1 → 42.1 + 5.28 − 5.557 > 40 → cap 40
    assert F.meld_na(7.78, 36.1, 2.2, 133, True) == 40
    assert F.meld_na(1.0, 1.0, 1.0, 137, False) == approx(
        6.4
    )  # all logs 0: 10 × 0.643 rounded to 0.1; ≤ 11 so no Na term
    # 10 × (0.6633 + 0.4153 + 0.4541 + 0.643) = 21.8; + 1.32 × 7 − 0.033 × 21.8 × 7 = 26.004
    assert F.meld_na(2.0, 3.0, 1.5, 130, False) == approx(26.004, abs=1e-3)
    assert F.meld_na(0.5, 0.5, 0.8, 150, False) == approx(6.4)  # lower bounds 1.0 and Na bound 137


def test_qtc() -> None:
    assert F.qtc_bazett(330, 113) == approx(452.86, abs=0.05)  # RR = 0.531 s; 330 / 0.7287
    assert F.qtc_fridericia(330, 161) == approx(458.57, abs=0.01)  # RR = 0.37267; ∛RR = exp(ln(0.37267)/3) = 0.71963
    assert F.qtc_framingham(330, 87) == approx(377.79, abs=0.01)  # 330 + 154 × (1 − 0.6897)
    assert F.qtc_hodges(330, 101) == approx(401.75)  # 330 + 1.75 × 41
    assert F.qtc_rautaharju(330, 68) == approx(344.667, abs=1e-3)  # 330 × 188 / 180


def test_dates() -> None:
    # 2000 is a leap year: 02/24 + 280 days = 11/30/2000; cycle 30 → +2 days
    assert F.due_date(date(2000, 2, 24), 30) == date(2000, 12, 2)
    assert F.due_date(date(2023, 1, 1)) == date(2023, 10, 8)  # 01/01 + 280 = 10/08 (non-leap)
    assert F.conception_date(date(2017, 1, 7)) == date(2017, 1, 21)
    assert F.gestational_age(date(2020, 12, 23), date(2021, 8, 21)) == (34, 3)  # 241 days = 34 × 7 + 3


def test_scores() -> None:
    t = S.total
    base = {"chf": False, "hypertension": False, "stroke_tia": False, "vascular_disease": False, "diabetes": False}
    assert t(S.cha2ds2_vasc(age=62, sex="male", **{**base, "chf": True, "stroke_tia": True})) == 3  # 1 + 2
    assert (
        t(
            S.cha2ds2_vasc(
                age=76, sex="female", **{**base, "hypertension": True, "diabetes": True, "vascular_disease": True}
            )
        )
        == 6
    )
    hb = {
        "renal_disease": False,
        "liver_disease": False,
        "prior_bleeding": False,
        "labile_inr": False,
        "bleeding_medication": False,
    }
    assert t(S.has_bled(age=43, hypertension=True, stroke_tia=True, alcohol_drinks_per_week=0, **hb)) == 2
    assert (
        t(
            S.has_bled(
                age=70,
                hypertension=False,
                stroke_tia=False,
                alcohol_drinks_per_week=10,
                **{**hb, "bleeding_medication": True, "liver_disease": True},
            )
        )
        == 4
    )  # age, alcohol, drugs, liver
    assert t(S.curb65(age=72, bun=39, resp_rate=30, sbp=144, dbp=65, confusion=False)) == 3
    assert t(S.curb65(age=40, bun=10, resp_rate=16, sbp=120, dbp=60, confusion=True)) == 2  # confusion, DBP ≤ 60
    assert t(S.centor_mcisaac(age=17, temp_c=40, cough_absent=False, tender_nodes=True, tonsillar_exudate=False)) == 2
    assert t(S.centor_mcisaac(age=50, temp_c=37, cough_absent=False, tender_nodes=False, tonsillar_exudate=False)) == -1
    assert (
        t(S.centor_mcisaac(age=10, temp_c=38.0, cough_absent=True, tender_nodes=False, tonsillar_exudate=True)) == 3
    )  # 38.0 is not > 38
    assert (
        t(
            S.feverpain(
                fever_24h=False,
                purulent_tonsils=False,
                onset_within_3_days=True,
                severe_tonsil_inflammation=False,
                no_cough_or_coryza=False,
            )
        )
        == 1
    )
    assert t(S.glasgow_coma_scale(gcs_eye=4, gcs_verbal=5, gcs_motor=5)) == 14
    assert t(S.child_pugh(bilirubin=1.64, albumin=3.7, inr=2.0, ascites="absent", encephalopathy="none")) == 6
    assert t(S.child_pugh(bilirubin=3.5, albumin=2.5, inr=2.5, ascites="moderate", encephalopathy="grade 3-4")) == 15
    pe = {
        "dvt_signs": False,
        "pe_most_likely": False,
        "immobilization": False,
        "recent_surgery": False,
        "prior_dvt": False,
        "prior_pe": False,
        "hemoptysis": False,
        "malignancy": False,
    }
    assert t(S.wells_pe(heart_rate=150, **pe)) == 1.5
    assert t(S.wells_pe(heart_rate=150, **{k: True for k in pe})) == 12.5  # 3 + 3 + 1.5 + 1.5 + 1.5 + 1 + 1
    dvt = {
        "bedridden_or_major_surgery": False,
        "calf_swelling_3cm": False,
        "collateral_veins": False,
        "entire_leg_swollen": False,
        "deep_vein_tenderness": False,
        "pitting_edema": False,
        "leg_paralysis_or_cast": False,
        "prior_dvt": False,
    }
    assert t(S.wells_dvt(malignancy=True, alternative_diagnosis_likely=True, **dvt)) == -1
    assert (
        t(
            S.perc(
                age=64,
                heart_rate=72,
                spo2=100,
                hemoptysis=False,
                hormone_use=False,
                prior_dvt=False,
                prior_pe=True,
                recent_surgery=False,
                unilateral_leg_swelling=False,
            )
        )
        == 2
    )
    assert t(S.sirs(temp_c=37, heart_rate=95, resp_rate=25, wbc=13.5)) == 3
    assert (
        t(
            S.rcri(
                high_risk_surgery=False,
                ischemic_heart_disease=False,
                chf=False,
                cerebrovascular_disease=False,
                insulin_treatment=True,
                creatinine=2.1,
            )
        )
        == 2
    )


def test_registry() -> None:
    assert len(CALCULATORS) == 55  # every MedCalc-Bench calculator
    assert get_calculator(4).key == "cha2ds2_vasc" and get_calculator("bmi").id == 6
    assert {c.output_type for c in CALCULATORS.values()} == {"decimal", "integer", "date"}
    assert "adjusted body weight" in get_calculator("cockcroft_gault").question  # MedCalc-Bench's question text
    with pytest.raises(UnknownNameError, match="did you mean 'bmi'"):
        get_calculator("bmj")
    assert [c.key for c in select_calculators("bmi,4")] == ["bmi", "cha2ds2_vasc"]
    assert format_answer(date(2021, 3, 4), "date") == "03/04/2021"
    assert format_answer((34, 3), "weeks_days") == "(34, 3)"
    assert format_answer(2.5000, "decimal") == "2.5" and format_answer(3.0, "integer") == "3"


@pytest.mark.parametrize("key", sorted(CALCULATORS))
def test_every_calculator_computes_and_explains(key: str) -> None:
    """Sampled patients always yield a finite answer and worked lines ending in that answer."""
    from ehrforge.tasks.calc.notes import sample_patient

    calc = CALCULATORS[key]
    rng = random.Random(key)
    for _ in range(20):
        if calc.make_case is not None:
            values = calc.make_case(rng)[0]
        else:
            values = sample_patient(rng, calc.inputs, age_range=calc.age_range, sex=calc.sex, ranges=calc.ranges).values
        value, lines = calc.compute(values)
        answer = format_answer(value, calc.answer_format)
        assert answer and lines
        if calc.answer_format in ("decimal", "integer"):
            assert float(answer) == float(answer)  # not NaN
            assert answer.rstrip("0").rstrip(".") in lines[-1] or format_answer(value, "decimal") in lines[-1]


# --- cross-check with the official exemplars (reference answers computed by MedCalc-Bench's own code) -----------


def _v(x):  # [value, unit] -> value
    return x[0] if isinstance(x, list) else x


EXEMPLAR_CHECKS = {
    2: lambda p: F.cockcroft_gault(
        _v(p["age"]), p["sex"].lower(), _v(p["weight"]), _v(p["height"]), _v(p["creatinine"])
    ),
    3: lambda p: F.ckd_epi_2021(_v(p["age"]), p["sex"].lower(), _v(p["creatinine"])),
    5: lambda p: F.mean_arterial_pressure(_v(p["sys_bp"]), _v(p["dia_bp"])),
    6: lambda p: F.bmi(_v(p["weight"]), _v(p["height"])),
    7: lambda p: F.corrected_calcium(_v(p["calcium"]), _v(p["albumin"]) / 10),  # exemplar albumin is in g/L
    9: lambda p: F.mdrd_gfr(_v(p["age"]), p["sex"].lower(), _v(p["creatinine"]), False),
    10: lambda p: F.ideal_body_weight(p["sex"].lower(), _v(p["height"])),
    11: lambda p: F.qtc_bazett(_v(p["qt_interval"]), _v(p["heart_rate"])),
    19: lambda p: F.fib4(_v(p["age"]), _v(p["ast"]), _v(p["alt"]), _v(p["platelet_count"]) / 1000),
    22: lambda p: F.maintenance_fluids(_v(p["weight"])),
    26: lambda p: F.sodium_correction_hyperglycemia(_v(p["sodium"]), _v(p["glucose"])),
    30: lambda p: F.serum_osmolality(_v(p["sodium"]), _v(p["bun"]), _v(p["glucose"])),
    38: lambda p: F.free_water_deficit(_v(p["age"]), p["sex"].lower(), _v(p["weight"]), _v(p["sodium"])),
    39: lambda p: F.anion_gap(_v(p["sodium"]), _v(p["chloride"]), _v(p["bicarbonate"])),
    40: lambda p: F.fena(_v(p["sodium"]), _v(p["creatinine"]), _v(p["urine_sodium"]), _v(p["urine_creatinine"])),
    44: lambda p: F.ldl_friedewald(_v(p["total_cholestrol"]), _v(p["hdl_cholestrol"]), _v(p["triglycerides"])),
    56: lambda p: F.qtc_fridericia(_v(p["qt_interval"]), _v(p["heart_rate"])),
    57: lambda p: F.qtc_framingham(_v(p["qt_interval"]), _v(p["heart_rate"])),
    58: lambda p: F.qtc_hodges(_v(p["qt_interval"]), _v(p["heart_rate"])),
    59: lambda p: F.qtc_rautaharju(_v(p["qt_interval"]), _v(p["heart_rate"])),
    60: lambda p: F.body_surface_area(_v(p["weight"]), _v(p["height"])),
    61: lambda p: F.target_weight(_v(p["body_mass_index"]), _v(p["height"]) * 2.54),  # exemplar height is in inches
    62: lambda p: F.adjusted_body_weight(p["sex"].lower(), _v(p["weight"]), _v(p["height"])),
    63: lambda p: F.delta_gap(_v(p["sodium"]), _v(p["chloride"]), _v(p["bicarbonate"])),
    65: lambda p: F.albumin_corrected_anion_gap(
        _v(p["sodium"]), _v(p["chloride"]), _v(p["bicarbonate"]), _v(p["albumin"])
    ),
    66: lambda p: F.albumin_corrected_delta_gap(
        _v(p["sodium"]), _v(p["chloride"]), _v(p["bicarbonate"]), _v(p["albumin"]) / 10
    ),
    67: lambda p: F.albumin_corrected_delta_ratio(
        _v(p["sodium"]), _v(p["chloride"]), _v(p["bicarbonate"]), _v(p["albumin"])
    ),
}


def test_agrees_with_official_exemplar_answers(shared_data) -> None:
    from ehrforge.tasks.calc.score import is_correct

    data = json.loads((shared_data / "medcalc" / "one_shot_finalized_explanation.json").read_text())
    for cid, check in EXEMPLAR_CHECKS.items():
        ex = data[str(cid)]
        response = json.loads(ex["Response"]) if isinstance(ex["Response"], str) else ex["Response"]
        ours = check(ex["input_parameters"])
        assert is_correct(f"{ours}", str(response["answer"]), "decimal"), (cid, ours, response["answer"])
