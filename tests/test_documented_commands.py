"""Every command line shown in README.md and docs/*.md still runs as written.

Fast (default pytest): each ``ehrforge …`` line is parsed by the real command-line parser (unknown options, wrong
types, values out of range fail here) and its settings are validated the way the command validates them
(``--set`` keys through the run configuration, ``task_options.*`` through the task's own Options), so a renamed
option or setting in the code fails the test until the documentation follows. ``python benchmarks/x.py`` lines
must name an existing script whose options parse (``--help``); ``pytest PATH`` lines an existing path.

Slow (``-m slow``): the lines of each document run for real, in order, in one scratch folder (a ``synth`` writes
what the next ``train`` reads), with sizes cut down (``--n 6``, one training step, ``--limit 3``) and the tiny local
transformer standing in for ``bundled``. Lines that need what a test machine does not have (a teacher endpoint, a
site database, a GPU server, the shared data) are listed in ``NOT_RUN`` with the reason.

Documentation conventions understood here: ``$ `` prompts, ``# comments``, backslash continuations, and
``[optional parts]``, which are dropped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")]  # cli.md: --help
#: lines shown *because* they fail: the documentation prints their error message next to them
SHOWN_FAILING = {"ehrforge train --set task=sqll --set sft.learning_rate=5 --set sft.bogus=1"}


@dataclass(frozen=True)
class Documented:
    doc: str
    line: int
    text: str

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def documented_commands() -> list[Documented]:
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        in_block = False
        pending, start = "", 0
        for i, raw in enumerate(lines, start=1):
            if raw.lstrip().startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                continue
            text = raw.strip()
            if pending:
                text, pending = pending + " " + text, ""
            else:
                start = i
            if text.endswith("\\"):
                pending = text[:-1].strip()
                continue
            text = re.sub(r"^\$\s+", "", text)
            if not text.startswith(("ehrforge ", "python benchmarks/", "pytest")):
                continue
            text = _strip_comment(re.sub(r"\s*\[[^\]]*\]", "", text))
            found.append(Documented(str(doc.relative_to(ROOT)), start, text))
    return found


def _strip_comment(text: str) -> str:
    """Drop a trailing ``# comment``: a ``#`` after whitespace and outside quotes (``…/v1#teacher`` is kept).

    >>> _strip_comment('ehrforge ask "what # is it?" --model openai:http://h/v1#m   # a comment')
    'ehrforge ask "what # is it?" --model openai:http://h/v1#m'
    """
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


COMMANDS = documented_commands()


def _ids(cmd: Documented) -> str:
    return f"{cmd.doc}:{cmd.line}"


# -- fast: parse and validate ---------------------------------------------------------------------------------------
def _parse(argv: list[str]) -> list[tuple[str, dict]]:
    """(command path, parsed parameters) for each level of ``ehrforge ARGV``, through the real parser."""
    import typer.main

    from ehrforge.cli import app

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("ehrforge", list(argv))
    levels = [("ehrforge", ctx.params)]
    while True:
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []), *ctx.args]
        if not rest or not hasattr(cmd, "resolve_command"):
            return levels
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)
        levels.append((ctx.command_path, ctx.params))


def _validate_settings(params: dict) -> None:
    """What the command does with --task and --set before any work: the run configuration and the task's options."""
    from ehrforge.config import load_config
    from ehrforge.tasks import task_class

    task = params.get("task")
    if isinstance(task, (list, tuple)):  # serve takes --task repeatedly
        task = task[0] if task else None
    cfg = load_config(None, params.get("set_") or None, task=task)
    options_model = task_class(cfg.task).Options
    options_model.model_validate(dict(cfg.task_options))


def test_the_documents_show_commands():
    assert len(COMMANDS) >= 40  # guards the extractor itself: README and docs hold dozens of command lines
    assert {c.doc for c in COMMANDS} >= {"README.md", "docs/serve.md", "docs/classify.md"}


@pytest.mark.parametrize("cmd", COMMANDS, ids=_ids)
def test_documented_command_parses_and_its_settings_validate(cmd: Documented):
    argv = cmd.argv
    if argv[0] == "pytest":
        paths = [a for a in argv[1:] if not a.startswith("-") and "/" in a]
        assert paths and all((ROOT / p).exists() for p in paths), str(cmd)
        return
    if argv[0] == "python":
        script = ROOT / argv[1]
        assert script.is_file(), f"{cmd}: no such script"
        proc = subprocess.run([sys.executable, str(script), *argv[2:], "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr[-800:]}"
        return
    if cmd.text in SHOWN_FAILING:
        with pytest.raises(Exception):  # noqa: B017 - any refusal is what the document shows
            for _, params in _parse(argv[1:]):
                _validate_settings(params)
        return
    levels = _parse(argv[1:])
    merged: dict = {}
    for _, params in levels:
        merged.update({k: v for k, v in params.items() if v is not None})
    _validate_settings(merged)


# -- slow: run them, small ----------------------------------------------------------------------------------------------
#: substrings of lines that are not run, and why (each is still parsed and validated above)
NOT_RUN = {
    "/secure/mimic_iv.sqlite": "a site's own database",
    "postgresql://": "a site's own database server",
    "vllm:": "needs a GPU and vLLM",
    "llamacpp:": "needs llama-cpp-python and an exported GGUF",
    "--gguf": "needs llama.cpp's converter (covered by tests/core/test_export.py)",
    "../shared/data": "needs the shared data beside the repo",
    "/exports/fhir": "a site's FHIR export",
    "test_data.csv": "a MedCalc-Bench CSV the user downloads",
    "ehrforge serve": "a long-running server (covered by the serve and probe tests)",
    "python benchmarks/": "a benchmark (minutes to hours)",
    "pytest": "the test suite itself",
}
#: model folders a document uses without a line that makes them (the reader trained one earlier)
ASSUMED_STUDENTS = ("runs/sql/stage2", "runs/sql/student")
#: stand-ins for what a test machine lacks, so the lines after still find their inputs
STAND_INS = (
    (r"^task_options\.dataset=(bc5cdr|ncbi_disease)$", "task_options.dataset=sample"),  # full corpora -> bundled slice
)


def _rewrite(argv: list[str], tiny: str) -> list[str]:
    """The same command, small: tiny model for bundled, few records, one step."""
    # the shell would expand ~; the demo database lives under $EHRFORGE_HOME (~/.cache/ehrforge by default)
    home = os.environ.get("EHRFORGE_HOME")
    argv = [a.replace("~/.cache/ehrforge", home) if home else a for a in argv]
    argv = [os.path.expanduser(a) if a.startswith("~") else a for a in argv]
    # "bundled", and the trained students the serving docs assume exist (no line in them trains one): the tiny model
    out = [tiny if a in ("bundled", *ASSUMED_STUDENTS) else a for a in argv]
    out = [re.sub(r"=bundled$", "=" + tiny, a) for a in out]
    for pattern, replacement in STAND_INS:
        out = [re.sub(pattern, replacement, a) for a in out]
    if "--teacher" in out and out[out.index("--teacher") + 1].startswith("openai:"):
        i = out.index("--teacher")  # a teacher endpoint: label with the offline stand-in teacher, else go without
        if out[1] == "label":
            out[i + 1] = "simulated"
        else:
            del out[i : i + 2]
    # classify needs enough tables for some to pass a 0.9 confidence filter; the others are slower per record
    n = "40" if "classify" in argv else "6"
    for flag, small in (("--n", n), ("--limit", "3")):
        if flag in out:
            out[out.index(flag) + 1] = small
    verb = out[1] if len(out) > 1 else ""
    out = [a for a in out if not re.match(r"^(sft|grpo)\.max_steps=", a)]
    while "--set" in out and out[-1] == "--set":
        out.pop()
    if verb == "train":
        out += ["--set", "sft.max_steps=1", "--set", "grpo.max_steps=1", "--set", "grpo.num_generations=2",
                # the tiny model's tokenizer, trained on a few strings, needs more tokens than the bundled one
                "--set", "sft.max_seq_len=4096"]
        if "--limit" not in out and "classify" not in out:  # classify: its 40 tables, of which few carry labels
            out += ["--limit", "8"]
        if "--model" not in out and "task_options.head=seqcls" not in " ".join(out) and "extract" not in out:
            out += ["--model", tiny]
    if verb in ("eval", "ask") and "--model" not in out:
        out += ["--model", tiny]
    if verb == "eval" and "--limit" not in out:
        out += ["--limit", "3"]
    return _drop_empty_sets(out)


def _drop_empty_sets(argv: list[str]) -> list[str]:
    out = []
    for i, a in enumerate(argv):
        if a == "--set" and (i + 1 >= len(argv) or argv[i + 1].startswith("--")):
            continue
        out.append(a)
    return out


def _skip_reason(cmd: Documented) -> str | None:
    if cmd.text in SHOWN_FAILING:
        return "shown failing on purpose"
    for needle, why in NOT_RUN.items():
        if needle in cmd.text + " " and why:
            return why
    return None


def _scratch_inputs(folder: Path) -> None:
    """Files the documents assume the user has (a note for calc, a trial and patient for eligibility, tokens)."""
    (folder / "note.txt").write_text("72-year-old man, confused, BUN 25 mg/dL, RR 32, BP 85/50.\n")
    (folder / "trial.txt").write_text("Age 18 or older\nNo pregnancy\n")
    (folder / "patient.txt").write_text("54-year-old woman, not pregnant.\n")


@pytest.mark.slow
@pytest.mark.parametrize("doc", sorted({c.doc for c in COMMANDS}))
def test_documented_commands_run_in_order(doc: str, tmp_path: Path, tiny_model_dir: Path):
    env = {**os.environ, "EHRFORGE_PROGRESS": "0", "COLUMNS": "100"}
    env.pop("EHRFORGE_DEBUG", None)
    _scratch_inputs(tmp_path)
    ran, failures = 0, []
    for cmd in (c for c in COMMANDS if c.doc == doc):
        if _skip_reason(cmd) is not None:
            continue
        argv = _rewrite(cmd.argv, str(tiny_model_dir))
        if argv[0] == "ehrforge":
            argv = [sys.executable, "-m", "ehrforge", *argv[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        ran += 1
        if proc.returncode != 0:
            failures.append(f"{cmd}\n    ran: {shlex.join(argv[2:])}\n    {proc.stderr.strip().splitlines()[-1:] or proc.stdout[-300:]}")
    assert not failures, "documented commands that no longer run:\n" + "\n".join(failures)
    if ran == 0:
        pytest.skip(f"every command line in {doc} needs something a test machine does not have")
