"""Dose conversions (steroid equivalence, morphine milligram equivalents): pure functions, worked reasoning and the
short medication notes MedCalc-Bench uses for them ("Patient has taken 65.867 mg of Hydrocortisone IV.").

Sources: equivalent doses and MME factors as listed by MDCalc and MedCalc-Bench's ``steroid_conversion_calculator.py``
/ ``mme.py`` (CDC 2022 opioid guideline factors; fentanyl per µg, patch per µg/hr).
"""

from __future__ import annotations

import random
from typing import Any

from ehrforge.tasks.calc.calculators.formatting import num

#: mg of each steroid equivalent to 20 mg hydrocortisone (MDCalc steroid conversion table)
STEROID_EQUIVALENT_MG = {
    "Betamethasone IV": 0.75,
    "Cortisone PO": 25.0,
    "Dexamethasone IV": 0.75,
    "Dexamethasone PO": 0.75,
    "Hydrocortisone IV": 20.0,
    "Hydrocortisone PO": 20.0,
    "MethylPrednisoLONE IV": 4.0,
    "MethylPrednisoLONE PO": 4.0,
    "PrednisoLONE PO": 5.0,
    "PredniSONE PO": 5.0,
    "Triamcinolone IV": 4.0,
}


def steroid_conversion(input_steroid: str, dose_mg: float, target_steroid: str) -> float:
    """Equivalent dose (mg) = dose × equivalent(target) / equivalent(input)."""
    return dose_mg * STEROID_EQUIVALENT_MG[target_steroid] / STEROID_EQUIVALENT_MG[input_steroid]


def steroid_worked(v: dict[str, Any]) -> tuple[float, list[str]]:
    src, dst, dose = v["input_steroid"], v["target_steroid"], v["steroid_dose"]
    factor = STEROID_EQUIVALENT_MG[dst] / STEROID_EQUIVALENT_MG[src]
    value = steroid_conversion(src, dose, dst)
    return value, [
        f"Equivalent doses: {num(STEROID_EQUIVALENT_MG[src])} mg {src} = {num(STEROID_EQUIVALENT_MG[dst])} mg {dst}",
        (
            f"{num(dose)} mg × {num(STEROID_EQUIVALENT_MG[dst])} / {num(STEROID_EQUIVALENT_MG[src])} "
            f"= {num(dose)} × {factor:.4g} = {num(value)} mg {dst}"
        ),
    ]


def steroid_case(rng: random.Random) -> tuple[dict[str, Any], dict[str, str], str]:
    src, dst = rng.sample(sorted(STEROID_EQUIVALENT_MG), 2)
    dose = round(STEROID_EQUIVALENT_MG[src] * rng.uniform(0.5, 12), rng.choice([0, 1, 2, 3]))
    dose = dose or STEROID_EQUIVALENT_MG[src]
    values = {"input_steroid": src, "steroid_dose": float(dose), "target_steroid": dst}
    shown = {"steroid_dose": f"{num(dose)} mg"}
    note = rng.choice(
        [
            f"Patient has taken {num(dose)} mg of {src}.",
            f"The patient is currently receiving {num(dose)} mg of {src} daily.",
        ]
    )
    return values, shown, note


#: (display name, dose unit, MME factor per unit)
OPIOIDS = {
    "codeine": ("Codeine", "mg", 0.15),
    "fentanyl_buccal": ("FentaNYL buccal", "µg", 0.13),
    "fentanyl_patch": ("FentANYL patch", "µg/hr", 2.4),
    "hydrocodone": ("HYDROcodone", "mg", 1.0),
    "hydromorphone": ("HYDROmorphone", "mg", 5.0),
    "methadone": ("Methadone", "mg", 4.7),
    "morphine": ("Morphine", "mg", 1.0),
    "oxycodone": ("OxyCODONE", "mg", 1.5),
    "oxymorphone": ("OxyMORphone", "mg", 3.0),
    "tapentadol": ("Tapentadol", "mg", 0.4),
    "tramadol": ("TraMADol", "mg", 0.2),
    "buprenorphine": ("Buprenorphine", "mg", 10.0),
}
#: the MME calculator's inputs: per opioid a dose and a number of doses per day (0 = not taken)
MME_INPUTS = tuple(f"{drug}_{part}" for drug in OPIOIDS for part in ("dose", "doses_per_day"))
DOSE_RANGES = {"µg": (12, 200), "µg/hr": (12, 100), "mg": (1, 60)}


def mme(doses: dict[str, tuple[float, float]]) -> float:
    """Daily MME = Σ dose × doses per day × factor, over the opioids taken (``{drug: (dose, per_day)}``)."""
    return sum(dose * per_day * OPIOIDS[drug][2] for drug, (dose, per_day) in doses.items())


def mme_doses(v: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The opioids actually taken, from the flat canonical inputs."""
    return {
        d: (float(v.get(f"{d}_dose", 0) or 0), float(v.get(f"{d}_doses_per_day", 0) or 0))
        for d in OPIOIDS
        if v.get(f"{d}_dose") and v.get(f"{d}_doses_per_day")
    }


def mme_worked(v: dict[str, Any]) -> tuple[float, list[str]]:
    doses = mme_doses(v)
    lines, terms = [], []
    for drug, (dose, per_day) in doses.items():
        name, unit, factor = OPIOIDS[drug]
        term = dose * per_day * factor
        terms.append(term)
        lines.append(f"- {name}: {num(dose)} {unit} × {num(per_day)}/day × {num(factor)} = {num(term)} MME/day")
    value = mme(doses)
    lines.append("Total MME/day = " + " + ".join(num(t) for t in terms) + f" = {num(value)}")
    return value, lines


def mme_case(rng: random.Random) -> tuple[dict[str, Any], dict[str, str], str]:
    drugs = rng.sample(sorted(OPIOIDS), rng.randint(1, 3))
    values: dict[str, Any] = {name: 0.0 for name in MME_INPUTS}
    shown, parts = {}, []
    for drug in drugs:
        name, unit, _ = OPIOIDS[drug]
        dose = float(rng.randint(*DOSE_RANGES[unit]))
        per_day = float(rng.choice([1, 1, 2, 2, 3, 4]))
        values[f"{drug}_dose"], values[f"{drug}_doses_per_day"] = dose, per_day
        shown[f"{drug}_dose"] = f"{num(dose)} {unit}"
        shown[f"{drug}_doses_per_day"] = num(per_day)
        times = "1 time a day" if per_day == 1 else f"{num(per_day)} times a day"
        parts.append(f"{num(dose)} {unit} of {name} {times}")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return values, shown, f"The patient takes {listed}."
