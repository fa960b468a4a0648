"""Load FHIR R4 resources from a bulk export (NDJSON), a Bundle (JSON) or a folder of resources.

Every resource is validated with ``fhir.resources``. fhir.resources 8 defaults to FHIR R5; its ``R4B`` sub-package
is the closest model set to R4 (R4B changed only a few medication/evidence resources, none of the clinical
resources used here), so R4 data is validated against ``fhir.resources.R4B``. Validation is strict about
structure, so a resource that passes can be condensed without defensive code.

An invalid resource is *reported* (file, line or Bundle entry, and a reason made of field paths and error kinds,
never the resource's values; printed to stderr and kept in ``store.issues``) and *skipped*; the rest of the file
still loads. Lines that are not FHIR at all (a bulk-export ``log.ndjson``) are reported once per file; an empty,
binary, non-UTF-8 or truncated file is reported too, and input with no valid resource at all is an error.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from ehrforge.errors import DataError

#: File endings read as NDJSON (one resource per line). ``.jsonl`` lets the bundled subset ship as package data.
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
#: Bundled demo subset (3 trimmed Synthea patients, see assets/NOTICE.md).
BUNDLED_DIR = "assets/synthea3"


@dataclass(frozen=True)
class LoadIssue:
    """One skipped resource: where it is and why (never its content)."""

    file: str
    where: str  # "line 12" for NDJSON, "entry 3" for a Bundle, "file" for a whole file
    reason: str

    def __str__(self) -> str:
        return f"{self.file} {self.where}: {self.reason}"


@dataclass
class FHIRStore:
    """Validated resources (kept as plain JSON dicts) indexed by id and by patient."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id" -> resource
    by_patient: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # patient id -> keys
    issues: list[LoadIssue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add(self, res: dict[str, Any]) -> None:
        key = f"{res['resourceType']}/{res['id']}"
        if key in self.resources:
            return  # bulk exports may repeat a resource across files; the first copy wins
        self.resources[key] = res
        pid = res["id"] if res["resourceType"] == "Patient" else patient_of(res)
        if pid:
            self.by_patient[pid].append(key)

    @property
    def patient_ids(self) -> list[str]:
        return sorted(k.split("/", 1)[1] for k in self.resources if k.startswith("Patient/"))

    def patient_resources(self, patient_id: str) -> list[dict[str, Any]]:
        """All resources of one patient (the Patient first); a DataError naming the id if it is unknown."""
        if f"Patient/{patient_id}" not in self.resources:
            # the id is input, so it is not echoed; the hint says how to see the ids that exist
            raise DataError(
                "unknown patient id",
                f"list the {len(self.patient_ids)} known ones with `python -m ehrforge.tasks.fhirqa patients [--data PATH]`",
            )
        keys = self.by_patient.get(patient_id, [])
        return sorted((self.resources[k] for k in keys), key=lambda r: r["resourceType"] != "Patient")


def patient_of(res: dict[str, Any]) -> str | None:
    """The patient id a resource belongs to (``subject`` or ``patient`` reference), or None.

    >>> patient_of({"subject": {"reference": "Patient/abc"}})
    'abc'
    >>> patient_of({"patient": {"reference": "urn:uuid:abc"}})
    'abc'
    """
    for key in ("subject", "patient"):
        ref = res.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            text = ref["reference"]
            if text.startswith("Patient/"):
                return text[len("Patient/") :]
            if text.startswith("urn:uuid:"):  # Synthea's transaction Bundles reference by fullUrl
                return text[len("urn:uuid:") :]
    return None


def _model_class(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def validation_reason(exc: Exception, resource: dict[str, Any]) -> str:
    """A short reason built from field paths and error kinds only: pydantic messages can echo input values."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return type(exc).__name__
    try:
        details = errors(include_input=False, include_url=False)
    except TypeError:
        details = errors()
    parts = []
    for err in details[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "resource"
        parts.append(f"{resource.get('resourceType', '?')}.{loc}: {err.get('type', 'invalid')}")
    more = f" (+{len(details) - 3} more)" if len(details) > 3 else ""
    return "; ".join(parts) + more


def validate_resource(res: Any) -> str | None:
    """None when ``res`` is a valid R4 resource, else the reason (no patient text)."""
    if not isinstance(res, dict):
        return "not a JSON object"
    rtype = res.get("resourceType")
    if not isinstance(rtype, str):
        return "no resourceType (not a FHIR resource)"
    if not isinstance(res.get("id"), str) or not res["id"]:
        return f"{rtype} without an id"
    try:
        cls = _model_class(rtype)
    except (KeyError, ValueError, ImportError, AttributeError):
        return "unknown resourceType (not an R4 resource type; its value is not shown)"
    try:
        cls.model_validate(res)
    except Exception as exc:  # pydantic.ValidationError and fhir.resources' own value errors
        return validation_reason(exc, res)
    return None


class _FileProblem(Exception):
    """A whole file cannot be read as FHIR JSON (empty, binary, unreadable); its reason names no content."""


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _FileProblem(f"cannot read the file ({type(exc).__name__})") from None
    if not raw.strip():
        raise _FileProblem("empty file")
    if b"\x00" in raw:
        raise _FileProblem("binary file, not FHIR JSON")
    return raw


def _iter_ndjson(path: Path) -> Iterator[tuple[str, Any]]:
    for lineno, raw in enumerate(_read_bytes(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # decoding with replacement would load altered names and codes as if they were the record
            yield f"line {lineno}", ValueError("not UTF-8 text")
            continue
        try:
            yield f"line {lineno}", json.loads(text)
        except json.JSONDecodeError:
            yield f"line {lineno}", ValueError("not valid JSON (truncated or malformed line)")


def _iter_json(path: Path) -> Iterator[tuple[str, Any]]:
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        yield f"line {line}", ValueError("not UTF-8 text")
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # the parser's message can quote input; say only whether the document stops early or is malformed
        cut = "malformed" if text.rstrip().endswith(("}", "]")) else "truncated: the file ends before the JSON does"
        yield f"line {exc.lineno}", ValueError(f"not valid JSON ({cut})")
        return
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        # JSON Bundles have no per-resource line; the entry index locates it just as precisely.
        entries = doc.get("entry") or []
        if not isinstance(entries, list):
            yield "file", ValueError("Bundle.entry is not a list")
            return
        if not entries:
            yield "file", ValueError("Bundle without entries")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                yield f"entry {i}", ValueError("Bundle entry without a resource object")
                continue
            yield f"entry {i}", entry["resource"]
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield f"item {i}", item
    else:
        yield "line 1", doc


def _files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        found = [p for p in sorted(source.rglob("*")) if p.is_file() and (p.suffix in NDJSON_SUFFIXES or p.suffix == ".json")]
        if not found:
            raise DataError(f"no .ndjson/.jsonl/.json files in {source}", "point at a FHIR bulk export, Bundle or resource folder")
        return found
    raise DataError(f"FHIR source not found: {source}", "check the path (a folder, an .ndjson file or a Bundle .json)")


def load_fhir(sources: str | os.PathLike | Iterable[str | os.PathLike], *, validate: bool = True,
              report: bool = True) -> FHIRStore:
    """Read and validate every resource under ``sources``; bad ones are listed in ``store.issues`` and skipped.

    With ``report`` every issue is printed to stderr as ``file where: reason`` (never a value). When no valid
    resource remains, a :class:`DataError` says so before anything downstream runs, so no command writes an
    empty output from broken input.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = list(sources)
    store = FHIRStore()
    for source in sources:
        for path in _files(Path(source)):
            store.files.append(str(path))
            items = _iter_ndjson(path) if path.suffix in NDJSON_SUFFIXES else _iter_json(path)
            non_fhir = 0
            kept = 0
            file_issues: list[LoadIssue] = []
            try:
                for where, item in items:
                    if isinstance(item, ValueError):
                        file_issues.append(LoadIssue(path.name, where, str(item)))
                        continue
                    if isinstance(item, dict) and "resourceType" not in item:
                        non_fhir += 1
                        file_issues.append(LoadIssue(path.name, where, "no resourceType (not a FHIR resource)"))
                        continue
                    reason = validate_resource(item) if validate else None
                    if reason is not None:
                        file_issues.append(LoadIssue(path.name, where, reason))
                        continue
                    store.add(item)
                    kept += 1
            except _FileProblem as exc:
                file_issues = [LoadIssue(path.name, "file", str(exc))]
            if kept == 0 and non_fhir and non_fhir == len(file_issues):
                # A whole file without resources (bulk-export log, manifest): one line, not one per entry.
                store.issues.append(LoadIssue(path.name, "file", f"no FHIR resources ({non_fhir} non-FHIR lines), skipped"))
            else:
                store.issues.extend(file_issues)
    if report and store.issues:
        _print_issues(store.issues)
    if not store.resources:
        first = f" (first: {store.issues[0]})" if store.issues else ""
        raise DataError(f"no valid FHIR resource in {', '.join(str(s) for s in sources)}: "
                        f"{len(store.issues)} problem(s){first}",
                        "pass a FHIR R4 bulk export (.ndjson), a Bundle (.json) or a folder of them")
    return store


def _print_issues(issues: list[LoadIssue]) -> None:
    """One stderr line per skipped resource or file: the user sees what was left out, and where."""
    from ehrforge.core.progress import console

    console.print(f"warning: {len(issues)} FHIR input problem(s); these were skipped:", markup=False, highlight=False)
    for issue in issues:
        console.print(f"  {issue}", markup=False, highlight=False, soft_wrap=True)


def bundled_fhir_dir() -> Path:
    """The bundled demo subset (works without ../shared)."""
    return Path(str(importlib_resources.files("ehrforge.tasks.fhirqa").joinpath(BUNDLED_DIR)))


def load_default(source: str | os.PathLike | None = None) -> FHIRStore:
    """``source`` if given, else the bundled subset."""
    return load_fhir(source if source is not None else bundled_fhir_dir())
