"""Every `ehrforge` command line documented for the classify recipe (docs/classify.md and the README's classify
section) runs as written, in order, on a small --n. Two substitutions only: the endpoint in an ``openai:URL`` teacher
spec becomes a teacher served on 127.0.0.1 by ehrforge's own server (the simulated teacher, stand-in), and training
lines get ``--set sft.max_steps=1`` so a test trains one step. The fast test skips training, evaluation and the
bundled-model teacher; the slow one runs everything."""

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

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "doc-commands-token-0123456789"
SMALL_N = "12"


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


def is_heavy(argv: list[str]) -> bool:
    return argv[1] in ("train", "eval") or "bundled" in argv


def _served_teacher(cwd: Path) -> LiveServer:
    from ehrforge.serve.run import build_app
    from ehrforge.serve.settings import ServeSettings
    from ehrforge.tasks.classify.task import ClassifyTask

    task = ClassifyTask()
    teacher = task.stand_in_teacher(0.25, [str(cwd / "tables.jsonl")])
    settings = ServeSettings(model_name="teacher", tokens={"doc": TOKEN}, rate_per_minute=1e6, rate_burst=10000)
    return LiveServer(build_app("teacher", backend=teacher, settings=settings, tasks=[])).__enter__()


def run_documented(commands: list[list[str]], cwd: Path, *, heavy: bool) -> list[str]:
    ran, server = [], None
    env = {**os.environ, "EHRFORGE_API_KEY": TOKEN, "EHRFORGE_PROGRESS": "0"}
    try:
        for argv in commands:
            if is_heavy(argv) and not heavy:
                continue
            argv = list(argv)
            if "--n" in argv:
                argv[argv.index("--n") + 1] = SMALL_N
            for i, arg in enumerate(argv):
                if arg.startswith("openai:http"):
                    server = server or _served_teacher(cwd)
                    argv[i] = re.sub(r"openai:http://[^/]+", f"openai:{server.url}", arg)
            if argv[1] == "train":
                argv += ["--set", "sft.max_steps=1"]
            proc = subprocess.run([sys.executable, "-m", "ehrforge", *argv[1:]], cwd=cwd, env=env, capture_output=True, check=False,
                                  text=True, timeout=900)
            assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            ran.append(argv[1] if argv[1] != "label" or argv[2].startswith("-") else f"label {argv[2]}")
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return ran


def _all_commands() -> list[list[str]]:
    return documented_commands(ROOT / "docs" / "classify.md") + documented_commands(ROOT / "README.md", "classify")


def test_the_documents_have_classify_commands():
    cmds = _all_commands()
    verbs = {c[1] for c in cmds}
    assert {"synth", "label", "train", "eval"} <= verbs
    assert any(a.startswith("openai:http") for c in cmds for a in c)


def test_documented_labelling_commands_run_as_written(tmp_path):
    ran = run_documented(_all_commands(), tmp_path, heavy=False)
    assert "synth" in ran and "label filter" in ran and "label import-review" in ran
    assert (tmp_path / "final.jsonl").exists() and (tmp_path / "review.csv").exists()


@pytest.mark.slow
def test_every_documented_classify_command_runs_as_written(tmp_path):
    ran = run_documented(_all_commands(), tmp_path, heavy=True)
    assert ran.count("train") >= 2 and "eval" in ran
