"""Synthetic clinical-trial protocol tables: Schedule-of-Events tables and the look-alikes that fool classifiers.

No public Schedule-of-Events (SoE) dataset is available offline, so we generate protocol tables the way protocols
write them (ICH M11 / TransCelerate CPT style): a grid of study visits × procedures with ``X`` marks, with visit
windows, footnote letters, captions such as "Schedule of Activities" or none, and sometimes transposed. Negatives are
the other tables a protocol is full of, including hard look-alikes that share an SoE's surface features:

=================  =====================================================================  ==========
kind               what it is                                                             difficulty
=================  =====================================================================  ==========
soe                visits × procedures grid with X marks (several variants)               0.10-0.45
lab_ranges         laboratory reference ranges                                            0.05
demographics       baseline characteristics by arm                                        0.05
adverse_events     adverse events by grade and arm                                        0.10
inclusion          numbered inclusion/exclusion criteria (a list, not a table)            0.05
dosing             dose levels and administration schedule                                0.30
visit_windows      visit names with target days and windows, but no procedures           0.55
dosing_calendar    cycle days × drugs with X marks (administration calendar, not an SoE)  0.70
=================  =====================================================================  ==========

Each record is ``{"id", "text", "format", "kind", "gold", "difficulty"}`` where ``gold`` is ``"soe"`` or
``"other"`` and ``difficulty`` (0-1) is how easily a reader could mistake it; it drives the simulated noisy teacher
(:mod:`ehrforge.tasks.classify.simulated_teacher`) and is never shown to a model. Every table is rendered as HTML,
Markdown or plain text; plain text adds 0.1 difficulty (no cell boundaries). Generation is deterministic per seed.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass, field

POSITIVE = "soe"
NEGATIVE = "other"
LABELS = (POSITIVE, NEGATIVE)
FORMATS = ("html", "markdown", "text")

PROCEDURES = [
    "Informed consent", "Inclusion/exclusion criteria", "Demographics", "Medical history", "Physical examination",
    "Vital signs", "Body weight", "12-lead ECG", "Echocardiogram", "Haematology", "Clinical chemistry", "Urinalysis",
    "Serum pregnancy test", "HbA1c", "Lipid panel", "Coagulation (INR/aPTT)", "Hepatitis B/C serology",
    "PK blood sampling", "Anti-drug antibodies", "Biomarker sample", "Tumour assessment (RECIST 1.1)", "CT/MRI scan",
    "ECOG performance status", "Randomisation", "Study drug dispensing", "Drug accountability",
    "Adverse event review", "Concomitant medications", "EQ-5D-5L questionnaire", "Patient diary review",
    "Telephone contact", "Survival follow-up",
]
LAB_TESTS = [
    ("Haemoglobin", "g/dL", 12.0, 17.5), ("White blood cells", "10^9/L", 4.0, 11.0), ("Platelets", "10^9/L", 150, 400),
    ("Neutrophils", "10^9/L", 1.5, 7.5), ("Sodium", "mmol/L", 135, 145), ("Potassium", "mmol/L", 3.5, 5.1),
    ("Creatinine", "umol/L", 60, 110), ("ALT", "U/L", 7, 56), ("AST", "U/L", 10, 40), ("Bilirubin", "umol/L", 3, 21),
    ("Albumin", "g/L", 35, 50), ("Glucose (fasting)", "mmol/L", 3.9, 5.6), ("INR", "ratio", 0.8, 1.2),
    ("TSH", "mU/L", 0.4, 4.0), ("CRP", "mg/L", 0, 5),
]
ADVERSE_EVENTS = [
    "Nausea", "Fatigue", "Diarrhoea", "Headache", "Rash", "Neutropenia", "Anaemia", "Peripheral neuropathy",
    "Alopecia", "Hypertension", "Vomiting", "Decreased appetite", "ALT increased", "Pyrexia", "Cough",
]
DRUGS = ["Drug X", "Placebo", "Carboplatin", "Paclitaxel", "Pembrolizumab", "Metformin", "Study drug ABC-123"]
SOE_CAPTIONS = [
    "Schedule of Activities", "Schedule of Events", "Schedule of Assessments", "Study Flow Chart",
    "Table 2. Schedule of Study Procedures", "Time and Events Schedule", "Study Calendar",
]
SCREENING_ONLY = {"Informed consent", "Inclusion/exclusion criteria", "Demographics", "Medical history",
                  "Hepatitis B/C serology"}
MARKS = ["X", "X", "X", "x", "✓", "•"]


@dataclass
class Table:
    """A table in a format-neutral form; ``caption`` and ``footnotes`` are rendered around it."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)
    is_list: bool = False  # inclusion criteria are a numbered list, not a grid


def _visits(rng: random.Random) -> list[str]:
    """Visit labels as protocols write them: named visits, week/day numbers, windows, early termination."""
    n = rng.randint(5, 11)
    style = rng.choice(["named", "numbered", "days"])
    if style == "numbered":
        visits = [f"V{i}" for i in range(1, n + 1)]
    elif style == "days":
        days = sorted(rng.sample(range(2, 200), n - 2))
        visits = ["Day -28 to -1", "Day 1"] + [f"Day {d} (±{rng.choice([2, 3, 7])})" for d in days]
    else:
        weeks = sorted(rng.sample(range(1, 53), n - 2))
        visits = ["Screening", "Baseline"] + [f"Week {w}" for w in weeks]
    if rng.random() < 0.5:
        visits.append(rng.choice(["EOT", "End of Treatment", "Early Termination", "Follow-up"]))
    return visits


def _soe(rng: random.Random) -> tuple[Table, float]:
    visits = _visits(rng)
    procs = rng.sample(PROCEDURES, rng.randint(6, 14))
    mark = rng.choice(MARKS)
    density = rng.uniform(0.3, 0.8)
    rows = []
    for p in procs:
        cells = []
        for j in range(len(visits)):
            # screening-only procedures are marked at the first visit only, as in real schedules
            hit = j == 0 if p in SCREENING_ONLY else rng.random() < density
            cells.append(mark + rng.choice(["", "", "a", "b"]) if hit else "")
        rows.append([p] + cells)
    header = [rng.choice(["Procedure", "Assessment", "Visit", "Study period"])] + visits
    caption = rng.choice(SOE_CAPTIONS) if rng.random() < 0.6 else ""
    foot = ["a Only if clinically indicated.", "b Within 72 hours before dosing."] if rng.random() < 0.5 else []
    difficulty = 0.10 if caption else 0.25
    if mark in ("✓", "•"):
        difficulty += 0.05
    table = Table(header, rows, caption, foot)
    if rng.random() < 0.25:  # transposed: visits as rows, procedures as columns
        table = Table([header[0]] + procs, [[v] + [r[j + 1] for r in rows] for j, v in enumerate(visits)], caption, foot)
        difficulty += 0.15
    return table, difficulty


def _lab_ranges(rng: random.Random) -> tuple[Table, float]:
    tests = rng.sample(LAB_TESTS, rng.randint(5, 12))
    rows = [[name, unit, f"{lo}", f"{hi}"] for name, unit, lo, hi in tests]
    caption = rng.choice(["Laboratory reference ranges", "Table 5. Normal ranges", ""])
    return Table(["Parameter", "Unit", "Lower limit", "Upper limit"], rows, caption), 0.05


def _demographics(rng: random.Random) -> tuple[Table, float]:
    na, nb = rng.randint(40, 300), rng.randint(40, 300)
    rows = [
        ["Age, years, median (range)", f"{rng.randint(45, 70)} ({rng.randint(18, 40)}-{rng.randint(71, 89)})",
         f"{rng.randint(45, 70)} ({rng.randint(18, 40)}-{rng.randint(71, 89)})"],
        ["Female, n (%)", f"{(f := rng.randint(10, na))} ({100 * f / na:.1f})", f"{(g := rng.randint(10, nb))} ({100 * g / nb:.1f})"],
        ["BMI, kg/m2, mean (SD)", f"{rng.uniform(22, 32):.1f} ({rng.uniform(3, 6):.1f})", f"{rng.uniform(22, 32):.1f} ({rng.uniform(3, 6):.1f})"],
        ["ECOG 0, n (%)", f"{(e := rng.randint(5, na))} ({100 * e / na:.1f})", f"{(h := rng.randint(5, nb))} ({100 * h / nb:.1f})"],
        ["Prior therapy, n (%)", f"{(k := rng.randint(0, na))} ({100 * k / na:.1f})", f"{(m := rng.randint(0, nb))} ({100 * m / nb:.1f})"],
    ]
    return Table(["Characteristic", f"Arm A (N={na})", f"Arm B (N={nb})"], rows, rng.choice(["Baseline characteristics", ""])), 0.05


def _adverse_events(rng: random.Random) -> tuple[Table, float]:
    n = rng.randint(50, 250)
    rows = []
    for ae in rng.sample(ADVERSE_EVENTS, rng.randint(5, 10)):
        g12, g3 = rng.randint(0, n // 2), rng.randint(0, n // 10)
        rows.append([ae, f"{g12} ({100 * g12 / n:.1f})", f"{g3} ({100 * g3 / n:.1f})", str(rng.randint(0, 3))])
    caption = rng.choice(["Treatment-emergent adverse events", "Table 14.3.1 Adverse events by CTCAE grade", ""])
    return Table(["Preferred term", "Grade 1-2, n (%)", "Grade ≥3, n (%)", "Grade 5"], rows, caption), 0.10


def _inclusion(rng: random.Random) -> tuple[Table, float]:
    pool = [
        "Age ≥ 18 years at screening.", "Histologically confirmed diagnosis.", "ECOG performance status 0-1.",
        "Adequate bone marrow function (ANC ≥ 1.5 × 10^9/L, platelets ≥ 100 × 10^9/L).",
        "Creatinine clearance ≥ 50 mL/min.", "Signed informed consent before any study procedure.",
        "Negative pregnancy test at screening visit for women of childbearing potential.",
        "No prior treatment with an anti-PD-1 antibody.", "Able to attend all scheduled visits.",
        "Measurable disease per RECIST 1.1 at baseline.", "HbA1c between 7.0% and 10.0% at screening.",
    ]
    items = rng.sample(pool, rng.randint(4, 9))
    caption = rng.choice(["Inclusion criteria", "5.1 Inclusion Criteria", "Eligibility"])
    return Table([], [[f"{i}.", t] for i, t in enumerate(items, 1)], caption, is_list=True), 0.05


def _dosing(rng: random.Random) -> tuple[Table, float]:
    rows = []
    for level in range(1, rng.randint(3, 6)):
        drug = rng.choice(DRUGS)
        rows.append([f"Level {level}", drug, f"{rng.choice([10, 25, 50, 100, 200])} mg", rng.choice(
            ["Day 1 and Day 8 of each 21-day cycle", "Once daily, Days 1-28", "Day 1 every 3 weeks", "Weekly"])])
    caption = rng.choice(["Dose levels", "Table 4. Dosing schedule", "Study treatment administration", ""])
    return Table(["Dose level", "Drug", "Dose", "Schedule"], rows, caption), 0.30


def _visit_windows(rng: random.Random) -> tuple[Table, float]:
    visits = _visits(rng)
    rows = [[v, f"Day {rng.randint(1, 200)}", rng.choice(["±1 day", "±3 days", "±7 days", "n/a"])] for v in visits]
    caption = rng.choice(["Visit windows", "Table 3. Allowed visit windows", ""])
    return Table(["Visit", "Target day", "Window"], rows, caption), 0.55


def _dosing_calendar(rng: random.Random) -> tuple[Table, float]:
    days = [f"D{d}" for d in sorted(rng.sample(range(1, 29), rng.randint(5, 10)))]
    mark = rng.choice(MARKS[:4])
    rows = [[d] + [mark if rng.random() < 0.5 else "" for _ in days] for d in rng.sample(DRUGS, rng.randint(2, 4))]
    caption = rng.choice(["Administration calendar (Cycle 1)", "Cycle 1 dosing days", ""])
    return Table(["Drug"] + days, rows, caption), 0.70


NEGATIVE_KINDS = {
    "lab_ranges": _lab_ranges,
    "demographics": _demographics,
    "adverse_events": _adverse_events,
    "inclusion": _inclusion,
    "dosing": _dosing,
    "visit_windows": _visit_windows,
    "dosing_calendar": _dosing_calendar,
}


def render(table: Table, fmt: str) -> str:
    """Render a table as ``html``, ``markdown`` or ``text``, as a PDF/Word-to-text converter would leave it."""
    if fmt == "html":
        return _render_html(table)
    if fmt == "markdown":
        return _render_markdown(table)
    if fmt == "text":
        return _render_text(table)
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def _render_html(t: Table) -> str:
    esc = html.escape
    if t.is_list:
        items = "".join(f"<li>{esc(r[1])}</li>" for r in t.rows)
        return (f"<p><b>{esc(t.caption)}</b></p>" if t.caption else "") + f"<ol>{items}</ol>"
    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{esc(t.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in t.header) + "</tr></thead><tbody>")
    for row in t.rows:
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    parts.extend(f"<p><small>{esc(f)}</small></p>" for f in t.footnotes)
    return "".join(parts)


def _render_markdown(t: Table) -> str:
    lines = [f"**{t.caption}**", ""] if t.caption else []
    if t.is_list:
        lines.extend(f"{r[0]} {r[1]}" for r in t.rows)
        return "\n".join(lines)
    lines.append("| " + " | ".join(t.header) + " |")
    lines.append("|" + "|".join("---" for _ in t.header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in t.rows)
    if t.footnotes:
        lines.append("")
        lines.extend(t.footnotes)
    return "\n".join(lines)


def _render_text(t: Table) -> str:
    lines = [t.caption] if t.caption else []
    if t.is_list:
        lines.extend(f"{r[0]} {r[1]}" for r in t.rows)
        return "\n".join(lines)
    grid = [t.header] + t.rows
    widths = [max(len(r[j]) for r in grid) for j in range(len(t.header))]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in grid)
    lines.extend(t.footnotes)
    return "\n".join(lines)


def generate_tables(n: int, *, seed: int = 0, positive_rate: float = 0.4, prefix: str = "syn") -> list[dict[str, object]]:
    """``n`` labelled protocol tables. About ``positive_rate`` are SoE tables; negatives cycle through every
    look-alike kind so hard negatives are always present. Deterministic for a given seed.

    >>> recs = generate_tables(20, seed=1)
    >>> sorted({r["gold"] for r in recs})
    ['other', 'soe']
    >>> generate_tables(3, seed=1) == generate_tables(3, seed=1)
    True
    """
    if not 0.0 <= positive_rate <= 1.0:
        raise ValueError("positive_rate must be within [0, 1]")
    rng = random.Random(seed)
    kinds = list(NEGATIVE_KINDS)
    out = []
    for i in range(n):
        if rng.random() < positive_rate:
            kind, (table, difficulty) = POSITIVE, _soe(rng)
        else:
            kind = rng.choice(kinds)
            table, difficulty = NEGATIVE_KINDS[kind](rng)
        fmt = rng.choice(FORMATS)
        if fmt == "text":
            difficulty += 0.10
        out.append(
            {
                "id": f"{prefix}-{seed}-{i:05d}",
                "text": render(table, fmt),
                "format": fmt,
                "kind": kind,
                "gold": POSITIVE if kind == POSITIVE else NEGATIVE,
                "difficulty": round(min(difficulty, 0.95), 3),
            }
        )
    return out
