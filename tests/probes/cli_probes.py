"""The command-line probes: one row per bad input (issue 14), plus rows for what already holds.

``item`` names the issue item a row belongs to; ``pass:…`` rows guard behaviour that was already right. Every row
is checked by :func:`probe_kit.assert_cli_outcome` (exit code, one ``error:`` line, no traceback, no submitted
value, no half-written output) and by its own ``check`` when it has one.
"""

from __future__ import annotations

import json
from pathlib import Path

from probe_kit import SECRET, CliProbe, Outcome

ISSUE_PHI_TEXT = 'John Smith MRN 12345678 phone 555-123-4567\n{"id":"p3","note":"Dr. John Smith, MRN 12345678"}\n'
PHI_SECRETS = ("John", "Smith", "12345678", "555-123-4567")
BINARY = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00" + SECRET.encode() + bytes(range(256))
NON_UTF8_CSV = ("id,suggested_label,confidence,reason,reviewed_label\n1,soe,0.5,low,caf\xe9 " + SECRET + "\n").encode("latin-1")


# -- set-ups that need real pipeline output ---------------------------------------------------------------------
def labelled_and_queue(folder: Path) -> None:
    """A real labelled file and review queue: 40 synthetic tables, the simulated teacher, ``label filter``."""
    from ehrforge.core.label import filter_labels, label_records
    from ehrforge.tasks.classify.simulated_teacher import SimulatedTeacher
    from ehrforge.tasks.classify.task import ClassifyTask

    task = ClassifyTask(n_train=40, max_chars=400)
    records = task.load("train")
    teacher = SimulatedTeacher(records, noise_rate=0.3, garbage_rate=0.1, seed=3, task=task)
    label_records(task, teacher, records, folder / "labelled.jsonl", retries=0, progress=False)
    filter_labels(folder / "labelled.jsonl", folder / "kept.jsonl", folder / "review.jsonl", min_confidence=0.85)


def _partial_review(folder: Path) -> None:
    labelled_and_queue(folder)
    queued = [json.loads(line) for line in (folder / "review.jsonl").read_text().splitlines()]
    (folder / "review.jsonl").write_text(json.dumps({**queued[0], "reviewed_label": "other"}) + "\n")


def _empty_review(folder: Path) -> None:
    labelled_and_queue(folder)
    (folder / "review.jsonl").write_text("")


def _non_utf8_review(folder: Path) -> None:
    labelled_and_queue(folder)
    (folder / "review.csv").write_bytes(NON_UTF8_CSV)


def _queued_stay_out(outcome: Outcome, folder: Path) -> None:
    queued = set(json.loads((folder / "review.queue.json").read_text())["ids"])
    merged = [json.loads(line) for line in (folder / "merged.jsonl").read_text().splitlines()]
    back_as_teacher = [r["id"] for r in merged if str(r["id"]) in queued and r["provenance"] == "teacher"]
    assert not back_as_teacher, f"{len(back_as_teacher)} queued, unreviewed labels came back as teacher labels"
    stats = json.loads(outcome.stdout[outcome.stdout.index("{"):])
    assert stats["unreviewed"] == len(queued) - 1 and stats["human"] == 1


def _phi_findings(outcome: Outcome, folder: Path) -> None:
    report = json.loads(outcome.stdout)
    assert report["records_with_phi"] == 2 and report["unreadable_lines"] == [1]


def _truncated_bundle() -> bytes:
    from ehrforge.tasks.fhirqa.fhir_load import bundled_fhir_dir

    patient = (bundled_fhir_dir() / "Patient.000.jsonl").read_text().splitlines()[0]
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": json.loads(patient)}]})
    return bundle[: len(bundle) // 2].encode()


def _stderr_says(fragment: str):
    def check(outcome: Outcome, folder: Path) -> None:
        assert fragment in outcome.stderr, outcome.stderr[-1500:]

    return check


def _no_trainer_dicts(outcome: Outcome, folder: Path) -> None:
    assert "{'loss'" not in outcome.stdout and "{'train_runtime'" not in outcome.stdout, outcome.stdout[-800:]
    assert outcome.stdout.strip().splitlines()[-1].endswith("run"), "the trained folder is the last stdout line"


def _extract_spans(path: Path) -> None:
    from ehrforge.tasks.extract.task import ExtractTask

    ExtractTask().synthesize(path, n=3, seed=0)


def _table_titled_with_the_file(outcome: Outcome, folder: Path) -> None:
    assert "spans.jsonl" in outcome.stdout + outcome.stderr and "valid" not in (outcome.stdout + outcome.stderr).split("n=")[0][-60:]


def _fits_80_columns(outcome: Outcome, folder: Path) -> None:
    table_lines = [ln for ln in outcome.stderr.splitlines() + outcome.stdout.splitlines() if "│" in ln or "┃" in ln]
    assert table_lines, "no results table printed"
    cut = [ln for ln in table_lines if "…" in ln]
    assert not cut, f"values cut to fit 80 columns: {cut[:3]}"


def _stdout_or_stderr_says(fragment: str):
    def check(outcome: Outcome, folder: Path) -> None:
        assert fragment in outcome.stdout + outcome.stderr, (outcome.stdout + outcome.stderr)[-1500:]

    return check


def _help_has_no_bool_placeholder(outcome: Outcome, folder: Path) -> None:
    assert "<bool>" not in outcome.stdout.lower() and "BOOLEAN" not in outcome.stdout


DUPLICATE_KEYS_YAML = "task: sql\nsft:\n  max_steps: 5\nsft:\n  max_steps: 50\n"

FAKE = ["--model", "fake"]
LONG_NAME = "x" * 300 + ".sqlite"
LABELLED = '{"id": "1", "label": "soe", "confidence": 0.9}\n'


def _unchanged(name: str, content: str | None = None):
    """The input is still what the set-up wrote: byte for byte where the probe knows it, else a non-empty JSONL file
    of records, not of predictions or metrics (the refused command destroyed nothing)."""
    def check(outcome: Outcome, folder: Path) -> None:
        path = folder / name
        assert path.is_file() and path.stat().st_size > 0, f"{name} was removed or emptied"
        if content is not None:
            assert path.read_text() == content, f"{name} was rewritten"
        first = json.loads(path.read_text().splitlines()[0])
        assert "prediction" not in first and "metrics" not in first, f"{name} was replaced by output"

    return check
#: serve probes must be refused before listening; if one is not, it listens here and the probe times out
PORT = "38517"

def _manifest_folder(**fields: object):
    """A trained-folder look-alike whose manifest has ``fields`` (None removes one): the loader reads the manifest
    before any weights, so a tampered field must be refused there."""
    def setup(folder: Path) -> None:
        manifest = {"task": "sql", "base_model": "bundled", "predictor": "chat",
                    "prompt_format": {"name": "chatml", "hash": "0" * 12}, "tuned": {"threshold": 0.5, "entropy": "max"}}
        for key, value in fields.items():
            target, _, sub = key.partition("__")
            if sub:
                manifest[target] = {**manifest[target], sub: value}
            elif value is None:
                manifest.pop(target)
            else:
                manifest[target] = value
        (folder / "m").mkdir()
        (folder / "m" / "ehrforge_model.json").write_text(json.dumps(manifest))
        (folder / "m" / "adapter_config.json").write_text("{}")

    return setup


#: a port another program holds (its own, so the other serve probes still reach their own refusals)
BUSY_PORT = "38519"
_HELD: list = []


def _hold_port(folder: Path) -> None:
    """Something else listens on BUSY_PORT for the rest of the test session (the probe's serve must refuse it)."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(BUSY_PORT)))
    sock.listen()
    _HELD.append(sock)


def _checkpoint_of_another_tool(folder: Path) -> None:
    ckpt = folder / "run" / "checkpoints" / "checkpoint-5"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 5, "log_history": []}))
    (ckpt / "adapter_model.safetensors").write_bytes(b"not ours")



PROBES: list[CliProbe] = [
    # -- item 1: phi-check ---------------------------------------------------------------------------------------
    CliProbe("phi-check-issue-example", "1", ["phi-check", "p.jsonl"], 1, {"p.jsonl": ISSUE_PHI_TEXT},
             secrets=PHI_SECRETS, check=_phi_findings, error_line=False),
    CliProbe("phi-check-other-field", "1", ["phi-check", "p.jsonl"], 1,
             {"p.jsonl": '{"id": "a", "text": "clean", "note": "Dr. Gregory House"}\n'}, secrets=("Gregory", "House"),
             error_line=False),
    CliProbe("phi-check-binary", "1", ["phi-check", "b.jsonl"], 1, {"b.jsonl": BINARY}),
    CliProbe("phi-check-empty", "1", ["phi-check", "e.jsonl"], 1, {"e.jsonl": b""}),
    CliProbe("phi-check-non-utf8-line", "1", ["phi-check", "u.jsonl"], 1,
             {"u.jsonl": b'{"id": "1", "text": "caf\xe9 MRN 12345678"}\n'}, secrets=("12345678",), error_line=False),
    CliProbe("phi-check-folder", "8", ["phi-check", "d"], 1, {"d": None}),
    CliProbe("phi-check-clean-passes", "pass:phi", ["phi-check", "c.jsonl"], 0,
             {"c.jsonl": '{"id": "1", "text": "Cisplatin-induced nephrotoxicity in a 54-year-old man."}\n'}),
    # -- item 2: import-review -----------------------------------------------------------------------------------
    CliProbe("import-review-empty-file", "2", ["label", "import-review", "--labelled", "labelled.jsonl", "--reviewed",
             "review.jsonl", "--out", "merged.jsonl"], 1, _empty_review, no_files=("merged.jsonl",)),
    CliProbe("import-review-partial-file", "2", ["label", "import-review", "--labelled", "labelled.jsonl", "--reviewed",
             "review.jsonl", "--out", "merged.jsonl"], 0, _partial_review, check=_queued_stay_out),
    CliProbe("import-review-non-utf8-csv", "8", ["label", "import-review", "--labelled", "labelled.jsonl", "--reviewed",
             "review.csv", "--out", "merged.jsonl"], 1, _non_utf8_review, no_files=("merged.jsonl",)),
    # -- item 3: thresholds ----------------------------------------------------------------------------------------
    CliProbe("ask-threshold-nan", "3", ["ask", "how many patients are there?", *FAKE, "--threshold", "nan"], 1),
    CliProbe("ask-threshold-negative", "3", ["ask", "how many patients are there?", *FAKE, "--threshold", "-1"], 1),
    CliProbe("ask-set-threshold-nan", "3", ["ask", "how many patients are there?", *FAKE, "--set",
             "abstention.threshold=.nan"], 1),
    # -- item 4: ask on every task never crashes on a plain question --------------------------------------------------
    # a clear abstention naming the missing field is as good as an error line; a crash is not
    CliProbe("ask-calc-plain-question", "4", ["ask", "--task", "calc", "what is the BMI?", *FAKE], 0,
             check=_stdout_or_stderr_says("note")),
    CliProbe("ask-eligibility-plain-question", "4", ["ask", "--task", "eligibility", "is she eligible?", *FAKE], 0,
             check=_stdout_or_stderr_says("missing")),
    # -- item 5: bad --db -------------------------------------------------------------------------------------------
    CliProbe("ask-db-text-file", "5", ["ask", "how many patients?", *FAKE, "--db", "notes.txt"], 1,
             {"notes.txt": f"patient {SECRET} seen today\n"}),
    CliProbe("ask-db-random-bytes", "5", ["ask", "how many patients?", *FAKE, "--db", "x.sqlite"], 1, {"x.sqlite": BINARY}),
    CliProbe("ask-db-folder", "5", ["ask", "how many patients?", *FAKE, "--db", "d"], 1, {"d": None}),
    CliProbe("ask-db-postgres-url", "5", ["ask", "how many patients?", *FAKE, "--db",
             "postgresql://user:pw@127.0.0.1:1/ehr"], 1, secrets=("pw@",)),
    CliProbe("eval-db-text-file", "5", ["eval", *FAKE, "--db", "notes.txt", "--limit", "2"], 1,
             {"notes.txt": f"patient {SECRET}\n"}),
    CliProbe("data-db-folder", "5", ["data", "--db", "d"], 1, {"d": None}),
    CliProbe("serve-db-text-file", "5", ["serve", *FAKE, "--db", "notes.txt", "--port", PORT], 1,
             {"notes.txt": f"patient {SECRET}\n"}, subprocess=True, timeout_s=60, slow=True),
    # -- item 6: broken FHIR input --------------------------------------------------------------------------------------
    CliProbe("fhir-truncated-bundle", "6", ["eval", "--task", "fhirqa", *FAKE, "--data", "b.json", "--json", "r.json"], 1,
             lambda f: (f / "b.json").write_bytes(_truncated_bundle()), no_files=("r.json",),
             check=_stderr_says("b.json line 1: not valid JSON (truncated")),
    CliProbe("fhir-binary", "6", ["eval", "--task", "fhirqa", *FAKE, "--data", "x.json", "--json", "r.json"], 1,
             {"x.json": BINARY}, no_files=("r.json",), check=_stderr_says("x.json file: binary")),
    CliProbe("fhir-empty", "6", ["eval", "--task", "fhirqa", *FAKE, "--data", "e.ndjson", "--json", "r.json"], 1,
             {"e.ndjson": b""}, no_files=("r.json",), check=_stderr_says("e.ndjson file: empty file")),
    CliProbe("fhir-non-utf8", "6", ["eval", "--task", "fhirqa", *FAKE, "--data", "l.ndjson", "--json", "r.json"], 1,
             {"l.ndjson": ('{"resourceType": "Patient", "id": "p", "name": [{"family": "' + SECRET).encode() + b'\xfc"}]}\n'},
             no_files=("r.json",), check=_stderr_says("l.ndjson line 1: not UTF-8")),
    # -- item 8: a clear line instead of "unexpected XError" ----------------------------------------------------------
    CliProbe("config-is-a-folder", "8", ["eval", *FAKE, "--config", "d", "--limit", "1"], 1, {"d": None}),
    CliProbe("config-is-binary", "8", ["eval", *FAKE, "--config", "c.yaml", "--limit", "1"], 1, {"c.yaml": BINARY}),
    CliProbe("label-filter-in-folder", "8", ["label", "filter", "--in", "d", "--out", "k.jsonl", "--review", "r.jsonl"], 1,
             {"d": None}, no_files=("k.jsonl", "r.jsonl")),
    CliProbe("synth-out-folder", "8", ["synth", "--task", "extract", "--out", "d", "--n", "2"], 1, {"d": None}),
    CliProbe("label-out-folder", "8", ["label", "--task", "classify", "--teacher", "simulated", "--input", "t.jsonl",
             "--out", "d"], 1, lambda f: ((f / "d").mkdir(), _classify_tables(f / "t.jsonl"))),
    CliProbe("eval-json-folder", "8", ["eval", *FAKE, "--json", "d", "--limit", "2"], 1, {"d": None}),
    CliProbe("teacher-simulated-abc", "8", ["label", "--task", "classify", "--teacher", "simulated:abc", "--input",
             "t.jsonl", "--out", "o.jsonl"], 1, lambda f: _classify_tables(f / "t.jsonl"), no_files=("o.jsonl",)),
    CliProbe("eval-limit-negative", "8", ["eval", *FAKE, "--limit", "-3"], 1),
    CliProbe("data-db-in-proc", "8", ["data", "--db", "/proc/x.sqlite"], 1),
    CliProbe("serve-audit-log-in-proc", "8", ["serve", *FAKE, "--audit-log", "/proc/nope/a.jsonl", "--port", PORT], 1,
             subprocess=True, timeout_s=60, slow=True),
    # -- item 10: smaller ones ------------------------------------------------------------------------------------------
    CliProbe("synth-n-negative", "10", ["synth", "--task", "extract", "--out", "o.jsonl", "--n", "-5"], 1, no_files=("o.jsonl",)),
    CliProbe("train-max-steps-zero", "10", ["train", "--task", "sql", *FAKE, "--set", "sft.max_steps=0", "--out", "run"], 1),
    CliProbe("config-duplicate-keys", "10", ["eval", *FAKE, "--config", "c.yaml", "--limit", "1"], 1,
             {"c.yaml": DUPLICATE_KEYS_YAML}),
    CliProbe("serve-tokens-file-only-comments", "10", ["serve", *FAKE, "--tokens-file", "t.txt", "--port", PORT], 1,
             {"t.txt": "# tokens for ward 7\n\n# none issued yet\n"}, subprocess=True, timeout_s=60, slow=True),
    CliProbe("help-shows-no-bool-placeholder", "10", ["eval", "--help"], 0, check=_help_has_no_bool_placeholder),
    CliProbe("eval-table-fits-80-columns", "10", ["eval", "--task", "extract", *FAKE, "--set", "task_options.dataset=sample",
             "--limit", "3", "--json", "r.json"], 0,
             env={"COLUMNS": "80"}, check=_fits_80_columns),
    CliProbe("train-extract-no-loss-dicts", "10", ["train", "--task", "extract", "--set", "task_options.dataset=sample",
             "--set", "sft.max_steps=2", "--limit", "8", "--out", "run"], 0, check=_no_trainer_dicts,
             subprocess=True, timeout_s=400, slow=True),
    CliProbe("eval-data-file-names-the-table", "10", ["eval", "--task", "extract", *FAKE, "--data", "spans.jsonl", "--json",
             "r.json"], 0, lambda f: _extract_spans(f / "spans.jsonl"), check=_table_titled_with_the_file),
    CliProbe("eval-without-model-says-what-it-runs", "10", ["eval", "--task", "sql", "--limit", "1", "--json", "r.json"], 0,
             check=_stderr_says("bundled"), slow=True),
    # -- issue 33: outputs that are inputs, files that are not ours, paths too long, empty databases -------------
    CliProbe("filter-out-is-in", "33.1", ["label", "filter", "--in", "l.jsonl", "--out", "./l.jsonl", "--review", "r.jsonl"], 1,
             {"l.jsonl": LABELLED}, check=_unchanged("l.jsonl", LABELLED), no_files=("r.jsonl",)),
    CliProbe("filter-review-is-in", "33.1", ["label", "filter", "--in", "l.jsonl", "--out", "k.jsonl", "--review", "l.jsonl"], 1,
             {"l.jsonl": LABELLED}, check=_unchanged("l.jsonl", LABELLED), no_files=("k.jsonl",)),
    CliProbe("filter-out-is-review", "33.1", ["label", "filter", "--in", "l.jsonl", "--out", "k.jsonl", "--review", "k.jsonl"], 1,
             {"l.jsonl": LABELLED}, no_files=("k.jsonl",)),
    CliProbe("import-review-out-is-labelled", "33.1", ["label", "import-review", "--labelled", "l.jsonl", "--reviewed",
             "r.jsonl", "--out", "l.jsonl"], 1, {"l.jsonl": '{"id": "1"}\n', "r.jsonl": '{"id": "1"}\n'}, check=_unchanged("l.jsonl")),
    CliProbe("label-out-is-input", "33.1", ["label", "--task", "classify", "--teacher", "simulated", "--input", "t.jsonl",
             "--out", "t.jsonl"], 1, lambda f: _classify_tables(f / "t.jsonl"), check=_unchanged("t.jsonl")),
    CliProbe("eval-predictions-out-is-data", "33.1", ["eval", "--task", "extract", *FAKE, "--data", "s.jsonl",
             "--predictions-out", "s.jsonl"], 1, lambda f: _extract_spans(f / "s.jsonl"), check=_unchanged("s.jsonl")),
    CliProbe("filter-out-is-a-link-to-in", "33.1", ["label", "filter", "--in", "l.jsonl", "--out", "link.jsonl", "--review",
             "r.jsonl"], 1, lambda f: ((f / "l.jsonl").write_text(LABELLED), (f / "link.jsonl").symlink_to(f / "l.jsonl")),
             check=_unchanged("l.jsonl", LABELLED)),
    CliProbe("filter-out-is-a-hard-link-to-in", "33.1", ["label", "filter", "--in", "l.jsonl", "--out", "hard.jsonl", "--review",
             "r.jsonl"], 1, lambda f: ((f / "l.jsonl").write_text(LABELLED), __import__("os").link(f / "l.jsonl", f / "hard.jsonl")),
             check=_unchanged("l.jsonl", LABELLED)),
    CliProbe("eval-json-is-data", "33.1", ["eval", "--task", "extract", *FAKE, "--data", "s.jsonl", "--json", "s.jsonl"], 1,
             lambda f: _extract_spans(f / "s.jsonl"), check=_unchanged("s.jsonl")),
    CliProbe("train-out-is-model", "33.3", ["train", "--task", "sql", "--model", "m", "--out", "m"], 1,
             {"m": None}, check=_stderr_says("overwrite the model it starts from")),
    CliProbe("train-out-inside-model", "33.3", ["train", "--task", "sql", "--model", "m", "--out", "m/again"], 1,
             {"m": None}, no_files=("m/again",)),
    CliProbe("data-rebuild-non-database", "33.5", ["data", "--db", "mine.jsonl", "--rebuild"], 1,
             {"mine.jsonl": f'{{"id": "{SECRET}"}}\n'}, check=_unchanged("mine.jsonl")),
    CliProbe("data-db-non-database", "33.14", ["data", "--db", "mine.jsonl"], 1, {"mine.jsonl": f'{{"id": "{SECRET}"}}\n'},
             check=_unchanged("mine.jsonl")),
    CliProbe("data-db-missing-folder", "33.6", ["data", "--db", "nope/ehr.sqlite"], 1, no_files=("nope",)),
    CliProbe("ask-db-zero-bytes", "33.14", ["ask", "how many patients?", *FAKE, "--db", "e.sqlite"], 1, {"e.sqlite": b""}),
    CliProbe("eval-db-zero-bytes", "33.14", ["eval", *FAKE, "--db", "e.sqlite", "--limit", "2", "--json", "r.json"], 1,
             {"e.sqlite": b""}, no_files=("r.json",)),
    CliProbe("max-rows-huge", "33.14", ["ask", "how many patients?", *FAKE, "--set", "task_options.max_rows=100000000000000000000"], 1),
    CliProbe("context-without-equals-not-echoed", "33.9", ["ask", "--task", "calc", "bmi?", *FAKE, "--context",
             f"{SECRET} has a BMI of 30"], 1),
    CliProbe("db-path-too-long", "33.12", ["ask", "how many patients?", *FAKE, "--db", LONG_NAME], 1,
             check=_stderr_says("longer than")),
    CliProbe("data-db-path-too-long", "33.12", ["data", "--db", LONG_NAME], 1),
    CliProbe("config-path-too-long", "33.12", ["eval", *FAKE, "--config", LONG_NAME, "--limit", "1"], 1),
    CliProbe("phi-check-path-too-long", "33.12", ["phi-check", LONG_NAME], 1, error_line=False),
    CliProbe("eval-data-path-too-long", "33.12", ["eval", "--task", "extract", *FAKE, "--data", LONG_NAME], 1),
    CliProbe("synth-out-path-too-long", "33.12", ["synth", "--task", "extract", "--out", LONG_NAME, "--n", "2"], 1),
    CliProbe("phi-check-key-not-echoed", "33.9", ["phi-check", "k.jsonl"], 1,
             {"k.jsonl": '{"id": "1", "text": "clean", "meta": {"MRN 12345678": "x"}}\n'}, secrets=("12345678",),
             error_line=False),
    CliProbe("manifest-threshold-string", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(tuned__threshold="high"), check=_stderr_says("tuned.threshold")),
    CliProbe("manifest-threshold-negative", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(tuned__threshold=-5), check=_stderr_says("tuned.threshold")),
    CliProbe("manifest-threshold-bool", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(tuned__threshold=True), check=_stderr_says("tuned.threshold")),
    CliProbe("manifest-entropy-bogus", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(tuned__entropy="bogus"), check=_stderr_says("tuned.entropy")),
    CliProbe("manifest-no-task", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(task=None), check=_stderr_says("field task")),
    CliProbe("manifest-no-prompt-format", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(prompt_format=None), check=_stderr_says("prompt_format")),
    CliProbe("manifest-tuned-not-object", "33.13", ["ask", "how many patients?", "--model", "m"], 1,
             _manifest_folder(tuned=[1, 2]), check=_stderr_says("field tuned")),
    CliProbe("train-resume-another-tools-checkpoint", "33.13", ["train", "--task", "sql", "--limit", "4", "--set",
             "sft.max_steps=6", "--out", "run"], 1, _checkpoint_of_another_tool,
             check=_stderr_says("does not record what it was trained with"), subprocess=True, timeout_s=400, slow=True),
    CliProbe("filter-in-missing-out-is-in", "33.1", ["label", "filter", "--in", "a/../l.jsonl", "--out", "l.jsonl",
             "--review", "r.jsonl"], 1, {"l.jsonl": LABELLED, "a": None}, check=_unchanged("l.jsonl", LABELLED)),
    CliProbe("import-review-out-is-reviewed", "33.1", ["label", "import-review", "--labelled", "l.jsonl", "--reviewed",
             "r.jsonl", "--out", "r.jsonl"], 1, {"l.jsonl": '{"id": "1"}\n', "r.jsonl": '{"id": "1"}\n'},
             check=_unchanged("r.jsonl", '{"id": "1"}\n')),
    CliProbe("eval-json-is-predictions-out", "33.1", ["eval", "--task", "extract", *FAKE, "--data", "s.jsonl",
             "--json", "o.jsonl", "--predictions-out", "o.jsonl"], 1, lambda f: _extract_spans(f / "s.jsonl"),
             no_files=("o.jsonl",)),
    CliProbe("eval-predictions-out-is-db", "33.1", ["eval", *FAKE, "--db", "e.sqlite", "--predictions-out", "e.sqlite"], 1,
             {"e.sqlite": b"SQLite format 3\x00"}, check=_stderr_says("same file")),
    CliProbe("synth-out-is-someone-elses", "33.2", ["synth", "--task", "extract", "--out", "mydata.jsonl", "--n", "2"], 1,
             {"mydata.jsonl": f'{{"id": "{SECRET}"}}\n'}, check=_unchanged("mydata.jsonl", f'{{"id": "{SECRET}"}}\n')),
    CliProbe("synth-out-other-seed", "33.2", ["synth", "--task", "extract", "--out", "s.jsonl", "--n", "2", "--seed", "3"], 1,
             lambda f: _extract_spans(f / "s.jsonl"), check=_unchanged("s.jsonl")),
    CliProbe("train-out-path-too-long", "33.12", ["train", "--task", "sql", *FAKE, "--out", LONG_NAME], 1),
    CliProbe("label-out-path-too-long", "33.12", ["label", "--task", "classify", "--teacher", "simulated", "--input",
             "t.jsonl", "--out", LONG_NAME], 1, lambda f: _classify_tables(f / "t.jsonl")),
    CliProbe("model-path-too-long", "33.12", ["ask", "how many patients?", "--model", LONG_NAME], 1),
    CliProbe("export-merged-into-proc", "33.12", ["export", "--model", "bundled", "--merged", "/proc/x/merged"], 1),
    CliProbe("max-rows-zero", "33.14", ["ask", "how many patients?", *FAKE, "--set", "task_options.max_rows=0"], 1),
    CliProbe("timeout-huge", "33.14", ["ask", "how many patients?", *FAKE, "--set", "task_options.timeout_s=1e30"], 1),
    CliProbe("k-huge", "33.14", ["ask", "how many patients?", *FAKE, "--set", "task_options.k=100000"], 1),
    CliProbe("data-db-zero-bytes-ready", "33.14", ["data", "--db", "e.sqlite"], 1, {"e.sqlite": b""}),
    CliProbe("data-rebuild-foreign-sqlite", "33.5", ["data", "--db", "theirs.sqlite", "--rebuild"], 1,
             lambda f: __import__("sqlite3").connect(f / "theirs.sqlite").execute("CREATE TABLE mine (x)").connection.commit(),
             check=_stderr_says("not a database ehrforge built")),
    CliProbe("context-file-missing-not-echoed", "33.9", ["ask", "--task", "calc", "bmi?", *FAKE, "--context",
             f"note=@{SECRET}.txt"], 1),
    CliProbe("serve-port-in-use", "33.18", ["serve", *FAKE, "--port", BUSY_PORT], 1, _hold_port,
             check=_stderr_says("cannot listen on"), subprocess=True, timeout_s=60, slow=True),
    # -- already holding ------------------------------------------------------------------------------------------
    CliProbe("unknown-task-suggests", "pass:names", ["eval", "--task", "sqll", *FAKE], 1,
             check=_stderr_says("did you mean 'sql'")),
    CliProbe("ask-sql-answers-or-abstains", "pass:ask", ["ask", "how many patients are there?", *FAKE, "--json"], 0),
    CliProbe("phi-check-missing-file", "pass:files", ["phi-check", "nope.jsonl"], 1),
    # -- found while probing: usage errors, non-UTF-8 arguments --------------------------------------------------
    CliProbe("unknown-option-one-line", "8", ["eval", "--nope"], 1, check=_stderr_says("No such option")),
    CliProbe("missing-argument-one-line", "8", ["ask"], 1, check=_stderr_says("Missing argument")),
    CliProbe("non-utf8-question", "10", ["ask", "caf\udce9 how many patients?", *FAKE], 1,
             check=_stderr_says("not valid UTF-8")),
]


def _classify_tables(path: Path) -> None:
    from ehrforge.tasks.classify.task import ClassifyTask

    records = ClassifyTask(n_train=6, max_chars=200).load("train")
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
