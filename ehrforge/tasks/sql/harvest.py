"""Read EHRSQL gold SQL for the values and conditions it asks about, so a synthetic database can answer it.

The real MIMIC-IV demo database is credentialed, so ehrforge builds a synthetic one. A random database would leave
most gold queries empty ("the heart rate of patient 10005817 in their first ICU stay" needs that patient, that ICU
stay and that chart item). Each gold query therefore becomes a :class:`Demand`: who (a subject id, or nobody for a
population question), what (the labels/titles/drugs it names, in the order they appear, since the order of two
events matters for "X after Y" questions), when (time windows from its date filters) and under which visit
("first/last/current hospital or ICU visit"), plus demographic filters and value thresholds.
Parsing is by regular expression over the post-processed SQL: the gold SQL of EHRSQL is template-generated, so
its shapes are few and regular, and a miss only costs an empty answer, never a wrong row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ehrforge.tasks.sql.schema import CURRENT_TIME, postprocess_sql

NOW = datetime.fromisoformat(CURRENT_TIME)
Window = tuple[datetime, datetime]

#: the event tables and the entity kind each one is asked about with
EVENT_KINDS = {
    "chartevents": "chartevents", "inputevents": "inputevents", "outputevents": "outputevents",
    "labevents": "lab", "diagnoses_icd": "dx", "procedures_icd": "px", "prescriptions": "drug",
    "microbiologyevents": "micro", "transfers": "careunit",
}
_ADMISSION_COLUMNS = ("admission_type", "admission_location", "discharge_location", "insurance", "language",
                      "marital_status")
_Q = r"'((?:[^']|'')*)'"
_LITERAL = re.compile(
    r"\b(d_items\.label|d_labitems\.label|d_icd_diagnoses\.long_title|d_icd_procedures\.long_title|"
    r"prescriptions\.drug|prescriptions\.route|microbiologyevents\.spec_type_desc|microbiologyevents\.test_name|"
    r"microbiologyevents\.org_name|transfers\.careunit) (?:= " + _Q + r"|IN \(([^)]*)\))"
)
_LINKSTO = re.compile(r"^ AND d_items\.linksto = '(\w+)'")
_MICRO_FIELD = {"microbiologyevents.spec_type_desc": "spec", "microbiologyevents.test_name": "test",
                "microbiologyevents.org_name": "org"}
_SIMPLE_KIND = {"d_labitems.label": "lab", "d_icd_diagnoses.long_title": "dx",
                "d_icd_procedures.long_title": "px", "transfers.careunit": "careunit"}
_THRESHOLD = re.compile(r"valuenum (NOT BETWEEN|BETWEEN|<=|>=|<|>|=) (-?\d+(?:\.\d+)?)(?: AND (-?\d+(?:\.\d+)?))?")
_AGE = re.compile(r"admissions\.age (BETWEEN|<=|>=|<|>|=) (\d+)(?: AND (\d+))?")
_NOW_SHIFT = rf"'{CURRENT_TIME}'"


@dataclass
class Entity:
    """One thing a query names: ``kind`` (chartevents/inputevents/outputevents/lab/dx/px/drug/micro/careunit) and
    ``value`` (the label/title/drug/careunit; ``None`` = any). Drugs may carry a route, microbiology rows a
    specimen/test/organism."""

    kind: str
    value: str | None = None
    route: str | None = None
    micro: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple:
        return (self.kind, self.value, self.route, tuple(sorted(self.micro.items())))


@dataclass
class Demand:
    """What one gold query needs from the database (see the module docstring)."""

    subject_id: int | None
    entities: list[Entity] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)  # empty: any time
    roles: list[str] = field(default_factory=list)  # "first"/"last"/"current" hospital (or ICU) visit
    thresholds: list[tuple[str, float, float | None]] = field(default_factory=list)
    demographics: dict[str, object] = field(default_factory=dict)  # column -> value; "age" -> (lo, hi)
    deceased: bool = False
    needs_org: bool = False
    simultaneous: bool = False  # "X and Y at the same time": no gap between the named events

    def signature(self) -> tuple:
        """Population questions with the same needs share one scenario patient."""
        return (tuple(e.key() for e in self.entities), tuple(self.windows), tuple(self.roles),
                tuple(self.thresholds), tuple(sorted((k, str(v)) for k, v in self.demographics.items())),
                self.deceased, self.needs_org, self.simultaneous)


@dataclass
class Harvest:
    """Everything :func:`harvest_values` found: one demand per query and the vocabulary they use."""

    demands: list[Demand] = field(default_factory=list)
    subjects: list[int] = field(default_factory=list)
    #: kind -> values in first-seen order (kinds as in :class:`Entity`, plus route/spec/test/org and the
    #: admission/patient categorical columns)
    vocab: dict[str, list[str]] = field(default_factory=dict)
    drug_routes: dict[str, str] = field(default_factory=dict)
    n_queries: int = 0

    def add(self, kind: str, value: str | None) -> None:
        if value is None:
            return
        values = self.vocab.setdefault(kind, [])
        if value not in values:
            values.append(value)


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def _entities(sql: str, h: Harvest) -> list[Entity]:
    found: list[Entity] = []
    routes: list[str] = []
    micro: Entity | None = None
    for m in _LITERAL.finditer(sql):
        col = m.group(1)
        values = [_unquote(m.group(2))] if m.group(2) is not None else [_unquote(v) for v in re.findall(_Q, m.group(3))]
        for value in values:
            if col == "d_items.label":
                link = _LINKSTO.match(sql[m.end():])
                kind = link.group(1) if link else next(
                    (t for t in ("inputevents", "outputevents", "chartevents") if t + "." in sql), "chartevents")
                found.append(Entity(kind, value))
                h.add(kind, value)
            elif col in _MICRO_FIELD:
                name = _MICRO_FIELD[col]
                if micro is None or name in micro.micro:
                    micro = Entity("micro")
                    found.append(micro)
                micro.micro[name] = value
                h.add(name, value)
            elif col == "prescriptions.route":
                routes.append(value)
                h.add("route", value)
            elif col == "prescriptions.drug":
                found.append(Entity("drug", value))
                h.add("drug", value)
            else:
                found.append(Entity(_SIMPLE_KIND[col], value))
                h.add(_SIMPLE_KIND[col], value)
    drugs = [e for e in found if e.kind == "drug"]
    for route in routes:  # "drug X by route Y": the same prescription row carries both
        if drugs:
            for d in drugs:
                d.route = d.route or route
                h.drug_routes.setdefault(d.value, route)
        else:
            found.append(Entity("drug", None, route=route))
    # A table the query reads but names no value of ("what was the last drug of patient X?") needs some row.
    kinds = {e.kind for e in found}
    for table, kind in EVENT_KINDS.items():
        if re.search(rf"\b{table}\.", sql) and kind not in kinds:
            found.append(Entity(kind))
            kinds.add(kind)
    return found


def _month_shift(dt: datetime, months: int) -> datetime:
    y, m = divmod(dt.year * 12 + dt.month - 1 + months, 12)
    return dt.replace(year=y, month=m + 1, day=min(dt.day, 28))


def _period(start: datetime, unit: str) -> Window:
    end = {"year": lambda d: d.replace(year=d.year + 1), "month": lambda d: _month_shift(d, 1),
           "day": lambda d: d + timedelta(days=1)}[unit](start)
    return start, min(end - timedelta(seconds=1), NOW)


def _windows(sql: str) -> list[Window]:
    """Time windows from the query's date filters: exact times, days, months, years (the finest given), cut by
    lower bounds (``>= '2100-04'``, ``>= now - 1 year``)."""
    def fmt_eq(fmt: str) -> list[str]:
        return re.findall(rf"strftime\('{re.escape(fmt)}',[\w.]+\) = '([\d-]+)'", sql)

    years = [NOW.year - int(n) for n in re.findall(rf"{_NOW_SHIFT},'start of year','-(\d+) year'", sql)]
    years += [int(y) for y in fmt_eq("%Y")]
    month0 = NOW.replace(day=1, hour=0, minute=0)
    months = [_month_shift(month0, -int(n)) for n in
              re.findall(rf"{_NOW_SHIFT},'start of month','-(\d+) month'", sql)]
    months += [datetime.strptime(m, "%Y-%m") for m in fmt_eq("%Y-%m")]
    days = [NOW.replace(hour=0, minute=0) - timedelta(days=int(n)) for n in
            re.findall(rf"{_NOW_SHIFT},'start of day','-(\d+) day'", sql)]
    days += [datetime.strptime(d, "%Y-%m-%d") for d in fmt_eq("%Y-%m-%d")]
    for md in fmt_eq("%m-%d"):
        days += [datetime.strptime(f"{y}-{md}", "%Y-%m-%d") for y in years or [NOW.year]]
    for mm in fmt_eq("%m"):
        months += [datetime(y, int(mm), 1) for y in years or [NOW.year]]
    for dd in fmt_eq("%d"):
        days += [m.replace(day=int(dd)) for m in months or [month0]]
    stamps = re.findall(r"\.(?:charttime|starttime) = '(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)'", sql)
    points = [datetime.fromisoformat(t) for t in stamps]
    if points:
        windows = [(p, p) for p in points]
    elif days:
        windows = [_period(d, "day") for d in days]
    elif months:
        windows = [_period(m, "month") for m in months]
    elif years:
        windows = [_period(datetime(y, 1, 1), "year") for y in years]
    else:
        windows = []
    lows: list[datetime] = []
    for fmt, parse in (("%Y", lambda v: datetime(int(v), 1, 1)), ("%Y-%m", lambda v: datetime.strptime(v, "%Y-%m")),
                       ("%Y-%m-%d", lambda v: datetime.strptime(v, "%Y-%m-%d"))):
        lows += [parse(v) for v in re.findall(rf"strftime\('{re.escape(fmt)}',[\w.]+\) >= '([\d-]+)'", sql)]
    for n, unit in re.findall(rf"\) >= datetime\({_NOW_SHIFT},'-(\d+) (day|month|year)'\)", sql):
        n = int(n)
        lows.append(NOW - timedelta(days=n) if unit == "day" else _month_shift(NOW, -n * (12 if unit == "year" else 1)))
    if lows:
        lo = max(lows)
        windows = [(max(a, lo), b) for a, b in windows if b >= lo] if windows else [(lo, NOW)]
    return sorted(set(windows))


def _roles(sql: str) -> list[str]:
    roles = []
    for table, end, start in (("admissions", "dischtime", "admittime"), ("icustays", "outtime", "intime")):
        if f"{table}.{end} IS NULL" in sql:
            roles.append("current")
        if re.search(rf"{table}\.{end} IS NOT NULL ORDER BY {table}\.{start} ASC LIMIT 1", sql):
            roles.append("first")
        if re.search(rf"{table}\.{end} IS NOT NULL ORDER BY {table}\.{start} DESC LIMIT 1", sql):
            roles.append("last")
    return sorted(set(roles))


def parse_demand(sql: str, h: Harvest | None = None) -> Demand:
    """One post-processed gold query -> its :class:`Demand` (vocabulary goes into ``h`` when given)."""
    h = h if h is not None else Harvest()
    subjects = re.findall(r"\b(?:admissions|patients)\.subject_id = (\d+)", sql)
    d = Demand(subject_id=int(subjects[0]) if subjects else None)
    d.entities = _entities(sql, h)
    d.windows = _windows(sql)
    d.roles = _roles(sql)
    for op, a, b in _THRESHOLD.findall(sql):
        d.thresholds.append((op, float(a), float(b) if b else None))
    for op, a, b in _AGE.findall(sql):
        lo, hi = {"BETWEEN": (int(a), int(b or a)), "=": (int(a), int(a)), ">=": (int(a), 95), ">": (int(a) + 1, 95),
                  "<=": (18, int(a)), "<": (18, int(a) - 1)}[op]
        old = d.demographics.get("age", (0, 200))
        d.demographics["age"] = (max(lo, old[0]), min(hi, old[1]))
    for col in _ADMISSION_COLUMNS:
        for value in re.findall(rf"admissions\.{col} = {_Q}", sql):
            d.demographics[col] = _unquote(value)
            h.add(col, _unquote(value))
    for value in re.findall(rf"patients\.gender = {_Q}", sql):
        d.demographics["gender"] = value
    d.deceased = "patients.dod" in sql and "dod IS NULL" not in sql
    d.needs_org = "org_name IS NOT NULL" in sql
    d.simultaneous = bool(re.search(r"datetime\(T1\.\w+\) = datetime\(T2\.\w+\)", sql))
    return d


def harvest_values(sql_queries: Iterable[str]) -> Harvest:
    """Parse gold SQL (raw EHRSQL text; ``"null"``/empty entries are skipped) into demands and vocabulary.

    >>> h = harvest_values(["SELECT COUNT(*)>0 FROM prescriptions WHERE prescriptions.hadm_id IN ( SELECT "
    ...     "admissions.hadm_id FROM admissions WHERE admissions.subject_id = 10001 ) AND prescriptions.drug = "
    ...     "'aspirin' AND prescriptions.route = 'po'", "null"])
    >>> h.n_queries, h.subjects, h.vocab["drug"], h.drug_routes
    (1, [10001], ['aspirin'], {'aspirin': 'po'})
    """
    h = Harvest()
    subjects: set[int] = set()
    for raw in sql_queries:
        if not isinstance(raw, str) or not raw.strip() or raw.strip() == "null":
            continue
        h.n_queries += 1
        sql = postprocess_sql(raw)
        demand = parse_demand(sql, h)
        h.demands.append(demand)
        subjects.update(int(s) for s in re.findall(r"\bsubject_id = (\d+)", sql))
    h.subjects = sorted(subjects)
    return h
