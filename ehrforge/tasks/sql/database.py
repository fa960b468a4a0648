"""A deterministic, synthetic, MIMIC-IV-shaped SQLite database on which EHRSQL gold SQL returns answers.

Every value is synthetic: no row comes from MIMIC. The generator is *value-aware*: it reads the gold SQL
(:mod:`ehrforge.tasks.sql.harvest`) and writes the rows those queries look for:

* each subject id a question names becomes a patient with five admissions (2098, 2099, two in 2100 - the later one
  in Oct/Nov - and one still open in late December 2100, "now" being 2100-12-31 23:59), one ICU stay each (the
  open admission's ICU stay is open too); admissions are added or stretched to cover the dates questions ask about;
* the events a question asks about (a lab, a vital, a drug by a route, a diagnosis then a drug, ...) are written,
  in the order the question names them, into every admission that fits its visit ("first/last/current") and time
  filters, with values that pass its thresholds;
* each population question ("how many patients aged 40s had X in 2100?") gets its own scenario patient with the
  demographics it filters on; background patients and per-admission filler events make counts and top-N lists
  look like a hospital's.

Cost rows follow the EHRSQL construction: one row per diagnosis, procedure, lab and prescription event, its
``event_id`` being that row's ``row_id`` and its price fixed per code.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ehrforge.errors import DatabaseError, DataError
from ehrforge.tasks.sql.harvest import NOW, Demand, Entity, Harvest, Window, harvest_values
from ehrforge.tasks.sql.schema import schema_ddl, table_columns

__all__ = ["generate_database", "harvest_values", "Harvest", "table_checksums"]

FMT = "%Y-%m-%d %H:%M:%S"
DAY = timedelta(days=1)
#: synthetic id ranges, far from the MIMIC-IV demo's 100xxxxx subject ids that questions name
SCENARIO_SUBJECT0, BACKGROUND_SUBJECT0 = 12_000_000, 13_000_000
Progress = Callable[[str, float], None]


@lru_cache(maxsize=1)
def _vocab() -> dict:
    text = resources.files("ehrforge.tasks.sql.assets").joinpath("synthetic_vocab.json").read_text(encoding="utf-8")
    return json.loads(text)


def _ts(dt: datetime) -> str:
    return dt.strftime(FMT)


@dataclass
class _Adm:
    start: datetime
    end: datetime | None  # None: still in hospital
    hadm_id: int = 0
    icu: tuple[datetime, datetime | None] | None = None
    stay_id: int = 0
    age: int = 0

    @property
    def stop(self) -> datetime:
        return self.end or NOW


class _Builder:
    """Accumulates rows table by table; row ids are assigned on insert so cost rows can point at events."""

    def __init__(self, harvest: Harvest, seed: int) -> None:
        self.seed = seed
        self.rows: dict[str, list[tuple]] = {t: [] for t in table_columns()}
        self.next_hadm, self.next_stay, self.next_transfer = 20_000_000, 30_000_000, 31_000_000
        v = _vocab()
        self.pool = {k: list(dict.fromkeys(harvest.vocab.get(k, []) + v.get(k, [])))
                     for k in ("chartevents", "inputevents", "outputevents", "lab", "dx", "px", "drug", "route",
                               "spec", "test", "org", "careunit")}
        self.pool["careunit"] = list(dict.fromkeys(self.pool["careunit"] + v["ward_careunit"] + v["icu_careunit"]))
        self.drug_routes = dict(harvest.drug_routes)
        self.item_ids: dict[tuple[str, str], int] = {}
        self.codes: dict[tuple[str, str], str] = {}
        self.prices: dict[tuple[str, str], float] = {}
        self.mean_price = {t: 8.0 + 2 * i for i, t in enumerate(("diagnoses_icd", "labevents", "procedures_icd",
                                                                  "prescriptions"))}

    def rng(self, *key: object) -> random.Random:
        # str seeds are hashed with SHA-512 by random.Random: stable across runs and PYTHONHASHSEED values
        return random.Random("/".join(map(str, (self.seed, *key))))

    def insert(self, table: str, values: tuple) -> int:
        rows = self.rows[table]
        row_id = len(rows) + 1
        rows.append((row_id, *values))
        return row_id

    # --- dictionaries ---------------------------------------------------------------------------------------
    def itemid(self, kind: str, label: str) -> int:
        key = ("lab" if kind == "lab" else "items", label)
        if key not in self.item_ids:
            n = sum(1 for k in self.item_ids if k[0] == key[0])
            self.item_ids[key] = (50_800 if kind == "lab" else 220_000) + n
            if kind == "lab":
                self.insert("d_labitems", (self.item_ids[key], label))
            else:
                abbreviation = "".join(w[0] for w in label.split() if w[0].isalnum()) or label[:4]
                self.insert("d_items", (self.item_ids[key], label, abbreviation, kind))
        return self.item_ids[key]

    def icd(self, kind: str, title: str) -> str:
        # Synthetic codes (letter + number) so no one mistakes them for real ICD codes.
        if (kind, title) not in self.codes:
            n = sum(1 for k in self.codes if k[0] == kind)
            self.codes[(kind, title)] = f"{'D' if kind == 'dx' else 'P'}{n + 1:05d}"
            self.insert("d_icd_diagnoses" if kind == "dx" else "d_icd_procedures", (self.codes[(kind, title)], title))
        return self.codes[(kind, title)]

    def price(self, event_type: str, key: str) -> float:
        if (event_type, key) not in self.prices:
            r = self.rng("price", event_type, key)
            self.prices[(event_type, key)] = round(max(0.5, r.gauss(self.mean_price[event_type], 1.0)), 2)
        return self.prices[(event_type, key)]

    def cost(self, sid: int, adm: _Adm, event_type: str, event_id: int, t: datetime, key: str) -> None:
        self.insert("cost", (sid, adm.hadm_id, event_type, event_id, _ts(t), self.price(event_type, key)))

    # --- values ---------------------------------------------------------------------------------------------
    @staticmethod
    def _range(kind: str, label: str) -> tuple[float, float, str | None]:
        v = _vocab()
        if kind == "inputevents":
            return (*v["input_range"], None)
        if kind == "outputevents":
            return (*v["output_range"], None)
        table, default = (v["chart_ranges"], v["chart_default"]) if kind == "chartevents" else \
            (v["lab_ranges"], v["lab_default"])
        for word, lo, hi, uom in table:
            if word in label:
                return lo, hi, uom
        return tuple(default)

    def values(self, kind: str, label: str, n: int, r: random.Random, thresholds: list) -> list[float]:
        lo, hi, _ = self._range(kind, label)
        digits = 2 if kind == "lab" else 1
        out = [round(r.uniform(lo, hi), digits) for _ in range(n)]
        # The first value satisfies the question's filter; the others stay in the plausible range.
        for i, (op, a, b) in enumerate(thresholds[:n]):
            step = max(abs(a), 1.0) * r.uniform(0.02, 0.08)
            if op in ("<", "<="):
                out[i] = round(a - step, digits)
            elif op in (">", ">="):
                out[i] = round(a + step, digits)
            elif op == "=":
                out[i] = a
            elif op == "BETWEEN" and b is not None:
                out[i] = round(r.uniform(a, b), digits)
            elif op == "NOT BETWEEN" and b is not None:
                out[i] = round(b + max(abs(b), 1.0) * r.uniform(0.02, 0.08), digits)
        return out

    # --- patients and admissions ----------------------------------------------------------------------------
    def admissions(self, sid: int, adms: list[_Adm], demo: dict, dod: datetime | None, r: random.Random,
                   per_adm_demo: dict[int, dict] | None = None) -> None:
        v = _vocab()
        gender = demo.get("gender") or r.choice(v["gender"])
        adms.sort(key=lambda a: a.start)
        lo, hi = demo.get("age", (18, 85))
        lo, hi = (lo, hi) if lo <= hi else (hi, hi)
        first_age = r.randint(max(lo, 18) if hi >= 18 else lo, min(hi, 91) if lo <= 91 else hi)
        fixed = "age" in demo
        dob = adms[0].start.replace(year=adms[0].start.year - first_age) - timedelta(days=r.randint(1, 360))
        self.insert("patients", (sid, gender, _ts(dob.replace(hour=0, minute=0, second=0)),
                                 _ts(dod) if dod else None))
        attrs = {c: r.choice(v[c]) for c in ("insurance", "language", "marital_status")}
        for i, a in enumerate(adms):
            a.hadm_id, self.next_hadm = self.next_hadm, self.next_hadm + 1
            a.age = first_age if fixed else first_age + (a.start.year - adms[0].start.year)
            row = {"admission_type": r.choice(v["admission_type"]),
                   "admission_location": r.choice(v["admission_location"][:4]),
                   "discharge_location": None if a.end is None else r.choice(v["discharge_location"][:-1]),
                   **attrs}
            row.update({k: val for k, val in demo.items() if k in row})
            row.update((per_adm_demo or {}).get(i, {}))
            if dod and a is adms[-1]:
                row["discharge_location"] = "died" if a.end and dod - a.end < DAY else row["discharge_location"]
            self.insert("admissions", (sid, a.hadm_id, _ts(a.start), _ts(a.end) if a.end else None,
                                       row["admission_type"], row["admission_location"], row["discharge_location"],
                                       row["insurance"], row["language"], row["marital_status"], a.age))
            self.transfers_and_icu(sid, a, r)

    def transfers_and_icu(self, sid: int, a: _Adm, r: random.Random) -> None:
        v = _vocab()
        ward = r.choice(v["ward_careunit"])
        self.transfer(sid, a, "ed", "emergency department", a.start, a.start + timedelta(hours=3))
        self.transfer(sid, a, "admit", ward, a.start + timedelta(hours=3), None)
        if a.icu:
            unit = r.choice(v["icu_careunit"])
            a.stay_id, self.next_stay = self.next_stay, self.next_stay + 1
            self.insert("icustays", (sid, a.hadm_id, a.stay_id, unit, unit, _ts(a.icu[0]),
                                     _ts(a.icu[1]) if a.icu[1] else None))
            self.transfer(sid, a, "transfer", unit, a.icu[0], a.icu[1])
            if a.icu[1]:
                self.transfer(sid, a, "transfer", ward, a.icu[1], a.end)
        if a.end:
            self.transfer(sid, a, "discharge", None, a.end, None)

    def transfer(self, sid: int, a: _Adm, kind: str, unit: str | None, t0: datetime, t1: datetime | None) -> None:
        self.next_transfer += 1
        self.insert("transfers", (sid, a.hadm_id, self.next_transfer, kind, unit, _ts(t0), _ts(t1) if t1 else None))

    # --- events ---------------------------------------------------------------------------------------------
    def event(self, sid: int, a: _Adm, e: Entity, t: datetime, r: random.Random, n: int,
              thresholds: list | None = None, needs_org: bool = False, step: timedelta = timedelta(minutes=30)) -> None:
        """Write ``n`` events of entity ``e`` from time ``t`` on, ``step`` apart."""
        kind = e.kind
        value = e.value or r.choice(self.pool[kind] if kind != "micro" else self.pool["spec"])
        times = [min(t + i * step, NOW) for i in range(n)]
        if kind in ("chartevents", "inputevents", "outputevents"):
            if not a.icu:
                return
            item = self.itemid(kind, value)
            _, _, uom = self._range(kind, value)
            for t_i, x in zip(times, self.values(kind, value, n, r, thresholds or []), strict=True):
                if kind == "chartevents":
                    self.insert(kind, (sid, a.hadm_id, a.stay_id, item, _ts(t_i), x, uom))
                elif kind == "inputevents":
                    self.insert(kind, (sid, a.hadm_id, a.stay_id, _ts(t_i), item, round(x, 3)))
                else:
                    self.insert(kind, (sid, a.hadm_id, a.stay_id, _ts(t_i), item, round(x)))
        elif kind == "lab":
            item = self.itemid(kind, value)
            _, _, uom = self._range(kind, value)
            for t_i, x in zip(times, self.values(kind, value, n, r, thresholds or []), strict=True):
                rid = self.insert("labevents", (sid, a.hadm_id, item, _ts(t_i), x, uom))
                self.cost(sid, a, "labevents", rid, t_i, value)
        elif kind in ("dx", "px"):
            code = self.icd(kind, value)
            table = "diagnoses_icd" if kind == "dx" else "procedures_icd"
            for t_i in times:
                self.cost(sid, a, table, self.insert(table, (sid, a.hadm_id, code, _ts(t_i))), t_i, code)
        elif kind == "drug":
            route = e.route or self.drug_routes.get(value) or self.rng("route", value).choice(self.pool["route"])
            dr = self.rng("dose", value)
            dose, unit = dr.choice(["1", "2", "5", "10", "20", "40", "100", "250", "500", "1000"]), dr.choice(
                _vocab()["dose_unit"])
            for t_i in times:
                stop = _ts(min(t_i + timedelta(hours=r.randint(6, 96)), NOW))
                rid = self.insert("prescriptions", (sid, a.hadm_id, _ts(t_i), stop, value, dose, unit, route))
                self.cost(sid, a, "prescriptions", rid, t_i, value)
        elif kind == "micro":
            spec = e.micro.get("spec") or (value if not e.micro else r.choice(self.pool["spec"]))
            test = e.micro.get("test") or _vocab()["spec_test"].get(spec) or r.choice(self.pool["test"])
            for t_i in times:
                org = e.micro.get("org") or (r.choice(self.pool["org"]) if needs_org or r.random() < 0.6 else None)
                self.insert("microbiologyevents", (sid, a.hadm_id, _ts(t_i), spec, test, org))
        elif kind == "careunit":
            for t_i in times:
                self.transfer(sid, a, "transfer", value, t_i, min(t_i + timedelta(hours=8), a.stop))

    def filler(self, sid: int, a: _Adm, r: random.Random, scale: int) -> None:
        """Ordinary background events of one admission (what makes population counts and top-N lists varied)."""
        span = (a.stop - a.start).total_seconds()
        plan = (("lab", 3), ("chartevents", 3), ("inputevents", 1), ("outputevents", 1), ("drug", 2), ("dx", 2),
                ("px", 1), ("micro", 1))
        for kind, count in plan:
            for _ in range(count * scale):
                t = a.start + timedelta(seconds=r.uniform(0.05, 0.95) * span)
                if kind in ("chartevents", "inputevents", "outputevents") and a.icu:
                    icu_stop = a.icu[1] or NOW
                    t = a.icu[0] + (icu_stop - a.icu[0]) * r.uniform(0.05, 0.95)
                n = 2 if kind in ("lab", "chartevents") else 1
                self.event(sid, a, Entity(kind), t.replace(second=0, microsecond=0), r, n,
                           step=timedelta(hours=r.randint(1, 6)))


# --- planning: which admissions a patient has and where each demand's events go ---------------------------------
def _skeleton(r: random.Random, kind: str) -> list[_Adm]:
    """Admission intervals for a named subject (``subject``), a population scenario (``scenario``), a deceased
    scenario (``deceased``) or a background patient (``background``)."""
    def closed(y: int, m0: int, m1: int) -> _Adm:
        start = datetime(y, r.randint(m0, m1), r.randint(1, 27), r.randint(0, 23), r.randint(0, 59))
        return _Adm(start, start + timedelta(days=r.randint(3, 9), hours=r.randint(0, 20)))

    def open_adm() -> _Adm:
        return _Adm(datetime(2100, 12, r.randint(15, 23), r.randint(0, 23), r.randint(0, 59)), None)

    if kind == "subject":
        return [closed(2098, 1, 11), closed(2099, 1, 11), closed(2100, 2, 7), closed(2100, 10, 11), open_adm()]
    if kind in ("scenario", "scenario_current"):  # few patients are in hospital now: only when asked
        return [closed(2099, 2, 10), closed(2100, 4, 11)] + ([open_adm()] if kind == "scenario_current" else [])
    if kind == "deceased":
        return [closed(2099, 2, 10), closed(2100, 3, 9)]
    adms = [closed(y, 1, 11) for y in sorted(r.sample([2097, 2098, 2099, 2100], r.randint(1, 3)))]
    if r.random() < 0.15:
        adms.append(open_adm())
    return adms


def _overlap(a: _Adm, w: Window) -> Window | None:
    lo, hi = max(a.start, w[0]), min(a.stop, w[1])
    return (lo, hi) if lo <= hi else None


def _cover(adms: list[_Adm], w: Window, r: random.Random) -> None:
    """Make some admission overlap window ``w``: stretch a nearby one, or add a short closed admission."""
    if any(_overlap(a, w) for a in adms):
        return
    p = (w[0] + (w[1] - w[0]) * r.uniform(0.3, 0.7)).replace(second=0, microsecond=0)
    for a in adms:
        if a.start - 5 * DAY <= p <= a.stop + 5 * DAY:
            a.start = min(a.start, p - DAY)
            if a.end is not None:
                a.end = min(max(a.end, p + DAY), NOW - timedelta(hours=1))
            return
    adms.append(_Adm(p - DAY - timedelta(hours=r.randint(0, 6)), min(p + DAY + timedelta(hours=r.randint(0, 30)),
                                                                      NOW - timedelta(hours=1))))


def _finish(adms: list[_Adm], r: random.Random, icu_share: float) -> list[_Adm]:
    adms.sort(key=lambda a: a.start)
    for a in adms:
        if r.random() < icu_share:
            a.icu = (a.start + timedelta(minutes=r.randint(20, 60)),
                     None if a.end is None else a.end - timedelta(minutes=r.randint(20, 60)))
    return adms


def _targets(adms: list[_Adm], d: Demand) -> list[tuple[_Adm, Window, int]]:
    """(admission, time window, index of the demand's window) triples where demand ``d``'s events go."""
    closed = [a for a in adms if a.end is not None]
    chosen: list[_Adm] = []
    for role in d.roles:
        pick = {"first": closed[:1], "last": closed[-1:], "current": [a for a in adms if a.end is None]}[role]
        chosen += [a for a in pick if a not in chosen]
    pool = chosen or adms
    if not d.windows:
        return [(a, (a.start, a.stop), 0) for a in pool]
    out = [(a, ov, i) for i, w in enumerate(d.windows) for a in pool if (ov := _overlap(a, w))]
    return out or [(a, (a.start, a.stop), 0) for a in pool]


def _place(b: _Builder, sid: int, d: Demand, a: _Adm, w: Window, r: random.Random, key: tuple) -> None:
    """Write the demand's entities in order, ~30 minutes apart, inside window ``w`` of admission ``a``."""
    if not d.entities:
        return
    lo, hi = w
    icu_kinds = any(e.kind in ("chartevents", "inputevents", "outputevents") for e in d.entities)
    if icu_kinds and a.icu:  # ICU events must fall in the ICU stay
        lo, hi = max(lo, a.icu[0]), min(hi, a.icu[1] or NOW)
        if lo > hi:
            lo, hi = w
    point = lo == hi
    reps = 1 if point else 2
    total = len(d.entities) * reps
    step = timedelta(0) if point else min(timedelta(minutes=30), (hi - lo) / (total + 1))
    span = step * total
    t0 = lo + (hi - lo - span) * r.uniform(0.1, 0.9) if hi - lo > span else lo
    # keep a short sequence inside one calendar day ("X and Y on the same day" questions)
    if not point and t0.hour >= 18 and t0.replace(hour=8) >= lo:
        t0 = t0.replace(hour=8)
    t0 = t0 if point else t0.replace(second=0, microsecond=0)
    for i, e in enumerate(d.entities):
        if e.value is None and e.kind != "micro":
            # "any drug": one choice per demand and time window, the same in every visit (so "given twice"
            # counts add up) but different between windows ("given today but not yesterday")
            e = Entity(e.kind, b.rng("any", *key, e.kind).choice(b.pool[e.kind]), e.route, e.micro)
        start = t0 if d.simultaneous else t0 + step * (i * reps)
        b.event(sid, a, e, start, r, reps, d.thresholds, d.needs_org, step)


def _patient(b: _Builder, sid: int, kind: str, demands: list[Demand], tag: str, filler_scale: int) -> None:
    r = b.rng("patient", tag, sid)
    adms = _skeleton(r, kind)
    for d in demands:
        if not d.roles:
            for w in d.windows:
                _cover(adms, w, r)
    adms = _finish(adms, r, 1.0 if kind != "background" else 0.6)
    demo: dict = {}
    per_adm: dict[int, dict] = {}
    for d in demands:
        if kind == "subject":  # a named patient's demographic filters apply to the visits it asks about
            for a, _, _ in _targets(adms, d):
                per_adm.setdefault(adms.index(a), {}).update({k: v for k, v in d.demographics.items()
                                                              if k not in ("age", "gender")})
        else:
            demo.update(d.demographics)
    dod = None
    if kind == "deceased" or (kind == "background" and adms[-1].end is not None and r.random() < 0.25):
        dod = (adms[-1].stop + timedelta(days=r.randint(0, 200))).replace(second=0)
        dod = min(dod, NOW - DAY).replace(hour=0, minute=0)
    b.admissions(sid, adms, demo, dod, r, per_adm)
    for a in adms:
        b.filler(sid, a, r, filler_scale)
    for j, d in enumerate(demands):
        rd = b.rng("demand", tag, sid, j)
        for a, w, widx in _targets(adms, d):
            _place(b, sid, d, a, w, rd, (tag, sid, j, widx))


# --- writing --------------------------------------------------------------------------------------------------
_INDEXES = [("admissions", "subject_id"), ("icustays", "hadm_id"), ("labevents", "hadm_id"), ("labevents", "itemid"),
            ("chartevents", "stay_id"), ("chartevents", "itemid"), ("inputevents", "stay_id"),
            ("outputevents", "stay_id"), ("prescriptions", "hadm_id"), ("diagnoses_icd", "hadm_id"),
            ("procedures_icd", "hadm_id"), ("microbiologyevents", "hadm_id"), ("cost", "hadm_id"),
            ("cost", "event_id"), ("transfers", "hadm_id")]


def generate_database(path: str | os.PathLike, sql_queries: Iterable[str], *, seed: int = 0,
                      n_background_patients: int = 150, progress: Progress | None = None) -> dict:
    """Write a synthetic MIMIC-IV-shaped SQLite database at ``path`` on which ``sql_queries`` (EHRSQL gold SQL,
    raw) return answers. Deterministic for a given seed and input; written to a temp file then renamed, so a
    failure leaves nothing at ``path``. Returns statistics (row counts, patients, seconds, bytes)."""
    t_start = time.perf_counter()
    path = Path(path)
    if n_background_patients < 0:
        raise DataError("n_background_patients must be >= 0", "pass 0 or a positive number")
    progress = progress or (lambda stage, frac: None)
    progress("harvest", 0.0)
    harvest = sql_queries if isinstance(sql_queries, Harvest) else harvest_values(sql_queries)
    b = _Builder(harvest, seed)

    by_subject: dict[int, list[Demand]] = {s: [] for s in harvest.subjects}
    scenarios: dict[tuple, Demand] = {}
    for d in harvest.demands:
        if d.subject_id is not None:
            by_subject.setdefault(d.subject_id, []).append(d)
        elif d.entities or d.demographics or d.deceased:  # otherwise filler rows already answer it
            scenarios.setdefault(d.signature(), d)
    progress("patients", 0.1)
    for sid in sorted(by_subject):
        _patient(b, sid, "subject", by_subject[sid], "s", 2)
    for k, d in enumerate(scenarios.values()):
        kind = "deceased" if d.deceased else "scenario_current" if "current" in d.roles else "scenario"
        _patient(b, SCENARIO_SUBJECT0 + k, kind, [d], "p", 1)
    progress("background", 0.6)
    for k in range(n_background_patients):
        _patient(b, BACKGROUND_SUBJECT0 + k, "background", [], "b", 2)
    for kind in ("chartevents", "inputevents", "outputevents", "lab"):  # every harvested label is in the dictionary
        for label in b.pool[kind]:
            b.itemid(kind, label)
    for kind in ("dx", "px"):
        for title in b.pool[kind]:
            b.icd(kind, title)

    progress("write", 0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    # sqlite3 needs a file name, not a handle (so not core.io.atomic_open): same temp-then-rename discipline.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
            conn.executescript(schema_ddl())
            for table, cols in table_columns().items():
                marks = ",".join("?" * len(cols))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", b.rows[table])
            for table, col in _INDEXES:
                conn.execute(f"CREATE INDEX idx_{table}_{col} ON {table}({col})")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # marks it as ours: `--rebuild` may replace it
            conn.commit()
            conn.execute("ANALYZE")
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, path)
    except sqlite3.Error as exc:
        _unlink(tmp)
        raise DatabaseError(f"could not write the synthetic database: {exc}", "check free disk space and that the "
                            "folder is writable", path=str(path)) from None
    except BaseException:
        _unlink(tmp)
        raise
    progress("done", 1.0)
    return {
        "path": str(path), "seed": seed, "queries": harvest.n_queries, "named_subjects": len(by_subject),
        "scenario_patients": len(scenarios), "background_patients": n_background_patients,
        "rows": {t: len(r) for t, r in b.rows.items()}, "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - t_start, 2),
    }


#: SQLite's application_id of the databases ehrforge builds ("EHRF"): the header field at byte 68
APPLICATION_ID = 0x45485246


def built_by_ehrforge(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a SQLite database that :func:`generate_database` wrote (read from the file header, without
    opening it as a database).

    >>> import tempfile; f = tempfile.NamedTemporaryFile(suffix=".jsonl"); _ = f.write(b'{"id": 1}'); f.flush()
    >>> built_by_ehrforge(f.name)
    False
    """
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError:
        return False
    return header[:16] == b"SQLite format 3\x00" and int.from_bytes(header[68:72], "big") == APPLICATION_ID


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def table_checksums(path: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of each table's rows in row_id order (compare two builds without comparing file bytes)."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        out = {}
        for table in table_columns():
            h = hashlib.sha256()
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY row_id"):
                h.update(repr(row).encode())
            out[table] = h.hexdigest()
        return out
    finally:
        conn.close()
