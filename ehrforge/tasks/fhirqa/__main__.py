"""``python -m ehrforge.tasks.fhirqa patients [--data PATH]``: the patient ids of the FHIR data ``ask`` reads (one per
line, with the number of resources), so an unknown ``--patient`` can be corrected."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ehrforge.tasks.fhirqa")
    sub = ap.add_subparsers(dest="command", required=True)
    pat = sub.add_parser("patients", help="list the patient ids in the FHIR data")
    pat.add_argument("--data", default=None, help="FHIR folder/file (default: the bundled 3-patient subset)")
    args = ap.parse_args(argv)
    from ehrforge.errors import EhrforgeError
    from ehrforge.tasks.fhirqa.fhir_load import load_default

    try:
        store = load_default(args.data)
    except EhrforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for pid in store.patient_ids:
        print(f"{pid}\t{len(store.by_patient.get(pid, []))} resources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
