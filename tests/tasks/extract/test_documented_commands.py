"""Every `ehrforge` command line documented for the extract recipe (docs/extract.md and the README's extract
section) runs as written, in order, on a small --n. Substitutions: the endpoint in an ``openai:URL`` teacher spec
becomes the template teacher (stand-in) served on 127.0.0.1 by ehrforge's own server; ``../shared/data`` becomes
wherever the corpora are here; training lines get ``--limit 16 --set sft.max_steps=2`` and evaluation lines
``--limit 3``. The fast test skips training and evaluation; the slow one runs everything."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))  # serve_helpers: the real LiveServer

from serve_helpers import LiveServer

from ehrforge.tasks.extract.task import SAMPLE_DIR, data_root

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "doc-commands-token-0123456789"


def documented_commands(path: Path, section: str | None = None) -> list[list[str]]:
    """``ehrforge`` lines from the ```bash blocks of ``path`` (within the ``### `section``` heading if given)."""
    text = path.read_text(encoding="utf-8")
    if section is not None:
        start = text.index(f"### `{section}`")
        end = text.find("\n### ", start + 1)
        text = text[start : end if end > 0 else None]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line.startswith("ehrforge "):
                commands.append(shlex.split(line))
    return commands


def _served_template_teacher() -> LiveServer:
    from ehrforge.serve.run import build_app
    from ehrforge.serve.settings import ServeSettings
    from ehrforge.tasks.extract.task import read_span_file
    from ehrforge.tasks.extract.template_teacher import TemplateTeacher

    teacher = TemplateTeacher.from_records(read_span_file(SAMPLE_DIR / "bc5cdr_sample_train.jsonl"))
    settings = ServeSettings(model_name="llama-3-70b", tokens={"doc": TOKEN}, rate_per_minute=1e6, rate_burst=10000)
    return LiveServer(build_app("llama-3-70b", backend=teacher, settings=settings, tasks=[])).__enter__()


def run_documented(commands: list[list[str]], cwd: Path, *, heavy: bool) -> list[str]:
    ran, server = [], None
    corpora = data_root(None)
    env = {**os.environ, "EHRFORGE_API_KEY": TOKEN, "EHRFORGE_PROGRESS": "0"}
    try:
        for argv in commands:
            if argv[1] in ("train", "eval") and not heavy:
                continue
            argv = list(argv)
            if any("../shared/data" in a or "dataset=bc5cdr" in a or "dataset=ncbi" in a for a in argv) and corpora is None:
                continue  # needs the shared corpora, which this machine does not have
            argv = [a.replace("../shared/data", str(corpora)) for a in argv]
            if "--n" in argv:
                argv[argv.index("--n") + 1] = "8"
            for i, arg in enumerate(argv):
                if arg.startswith("openai:http"):
                    server = server or _served_template_teacher()
                    argv[i] = re.sub(r"openai:http://[^/]+", f"openai:{server.url}", arg)
            if argv[1] == "train":
                argv += ["--limit", "16", "--set", "sft.max_steps=2"]
            if argv[1] == "eval":
                if "--limit" in argv:
                    argv[argv.index("--limit") + 1] = "3"
                else:
                    argv += ["--limit", "3"]
            proc = subprocess.run([sys.executable, "-m", "ehrforge", *argv[1:]], cwd=cwd, env=env, capture_output=True, check=False,
                                  text=True, timeout=900)
            assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            ran.append(argv[1])
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return ran


def _all_commands() -> list[list[str]]:
    return documented_commands(ROOT / "docs" / "extract.md") + documented_commands(ROOT / "README.md", "extract")


def test_the_documents_have_extract_commands():
    cmds = _all_commands()
    assert {"synth", "train", "eval", "phi-check"} <= {c[1] for c in cmds}
    assert any(a.startswith("openai:http") for c in cmds for a in c)


def test_documented_synthesis_commands_run_as_written(tmp_path):
    ran = run_documented(_all_commands(), tmp_path, heavy=False)
    assert ran.count("synth") >= 2 and "phi-check" in ran
    assert (tmp_path / "synth-llm.jsonl").read_text().count("\n") == 8


def test_synth_without_the_corpora_uses_the_bundled_sample(tmp_path, monkeypatch):
    import ehrforge.tasks.extract.task as extract_task

    monkeypatch.setattr(extract_task, "data_root", lambda explicit: None)
    stats = extract_task.ExtractTask(entities="Disease,Chemical").synthesize(tmp_path / "s.jsonl", n=5)
    assert stats["accepted"] == 5 and stats["lexicon_from"] == "bc5cdr_sample_train.jsonl"


@pytest.mark.slow
def test_every_documented_extract_command_runs_as_written(tmp_path):
    ran = run_documented(_all_commands(), tmp_path, heavy=True)
    assert "train" in ran and "eval" in ran
