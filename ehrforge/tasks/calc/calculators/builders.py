"""Builders for the compute functions (closed-form formulas and itemised point scores) and the hand-written worked
reasoning of calculators whose steps a template cannot show."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ehrforge.tasks.calc.calculators import formulas as F
from ehrforge.tasks.calc.calculators import scores as S
from ehrforge.tasks.calc.calculators.formatting import num


def formula(
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


def points(
    fn: Callable[..., S.Breakdown], inputs: tuple[str, ...], label: str
) -> Callable[[dict], tuple[Any, list[str]]]:
    def compute(v: dict[str, Any]) -> tuple[Any, list[str]]:
        items = fn(**{n: v[n] for n in inputs})
        lines = [f"- {criterion}: {'+' if p >= 0 else ''}{num(p)}" for criterion, p in items]
        value = S.total(items)
        lines.append(f"{label} = " + " + ".join(num(p) for _, p in items) + f" = {num(value)}")
        return value, lines

    return compute


def cockcroft_gault_worked(v: dict[str, Any]) -> tuple[Any, list[str]]:
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


def ckd_epi_worked(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.ckd_epi_2021(v["age"], v["sex"], v["creatinine"])
    kappa, alpha = ("0.7", "−0.241") if v["sex"] == "female" else ("0.9", "−0.302")
    return value, [
        "Formula: GFR = 142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 (if female)",
        f"For a {v['sex']}: κ = {kappa}, α = {alpha}; Scr/κ = {num(v['creatinine'] / float(kappa))}",
        f"GFR = {num(value)} mL/min/1.73 m²",
    ]


def meld_na_worked(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.meld_na(v["creatinine"], v["bilirubin"], v["inr"], v["sodium"], v["dialysis"])
    cr = 4.0 if v["dialysis"] else min(max(v["creatinine"], 1.0), 4.0)
    return value, [
        (
            f"Bounded values: creatinine {num(cr)} mg/dL{' (dialysis)' if v['dialysis'] else ''}, bilirubin "
            f"{num(max(v['bilirubin'], 1))} mg/dL, INR {num(max(v['inr'], 1))}, sodium {num(min(max(v['sodium'], 125), 137))} mmol/L"
        ),
        (
            "MELD(i) = 10 × (0.957 ln Cr + 0.378 ln bilirubin + 1.120 ln INR + 0.643); if > 11, "
            "MELD Na = MELD(i) + 1.32 × (137 − Na) − 0.033 × MELD(i) × (137 − Na); cap 40"
        ),
        f"MELD Na = {num(value)}",
    ]


def due_date_worked(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.due_date(v["lmp"], v["cycle_length"])
    shift = v["cycle_length"] - 28
    return value, [
        "Naegele's rule: due date = LMP + 280 days + (cycle length − 28) days",
        f"{v['lmp']:%m/%d/%Y} + 280 days {'+' if shift >= 0 else '−'} {abs(shift)} days = {value:%m/%d/%Y}",
    ]


def conception_worked(v: dict[str, Any]) -> tuple[Any, list[str]]:
    value = F.conception_date(v["lmp"])
    return value, ["Estimated conception = LMP + 2 weeks", f"{v['lmp']:%m/%d/%Y} + 14 days = {value:%m/%d/%Y}"]


def gestational_age_worked(v: dict[str, Any]) -> tuple[Any, list[str]]:
    weeks, days = F.gestational_age(v["lmp"], v["today"])
    total = (v["today"] - v["lmp"]).days
    return (weeks, days), [
        f"Days from LMP {v['lmp']:%m/%d/%Y} to {v['today']:%m/%d/%Y} = {total}",
        f"{total} days = {weeks} weeks and {days} days",
    ]
