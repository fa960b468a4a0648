"""``bundled-sql``: the SQL student shipped inside the package (benchmarks/sql_ship.py writes it).

What a user relies on without training anything: the folder is in the package and whole, its manifest says how
it was made and which threshold to use, the current code builds the very prompt it was trained on, and a damaged
copy is one line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ehrforge.core.loader import manifest_problems, read_manifest
from ehrforge.core.models import MANIFEST, SHIPPED_MODELS, expand_alias, model_file_problems
from ehrforge.errors import ModelError
from ehrforge.tasks import get_task, task_class

SHIPPED = Path(expand_alias("bundled-sql"))


def test_the_sql_task_defaults_to_its_shipped_student_and_the_folder_is_in_the_package():
    assert task_class("sql").default_model == "bundled-sql"
    assert task_class("classify").default_model == "bundled"
    assert SHIPPED.is_relative_to(Path(__import__("ehrforge").__file__).parent)
    assert {p.name for p in SHIPPED.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors", MANIFEST, "NOTICE.md"}
    assert model_file_problems(SHIPPED) == []
    # an installable size: bf16 LoRA weights (rank 32: two epochs' rank-16 runs concatenated, 19.6 MB), no
    # tokenizer copy (the base model's is used)
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 24 * 2**20
    assert "CC BY 4.0" in (SHIPPED / "NOTICE.md").read_text() and "Apache" in (SHIPPED / "NOTICE.md").read_text()


def test_the_manifest_records_how_it_was_made_and_a_tuned_threshold():
    manifest = read_manifest("bundled-sql")
    assert manifest_problems(manifest) == []
    assert manifest["task"] == "sql" and manifest["base_model"] == "bundled"
    threshold = manifest["tuned"]["threshold"]
    assert threshold is None or (math.isfinite(threshold) and threshold >= 0)
    shipped = manifest["shipped"]
    assert shipped["data"]["commit"].startswith("5ddaaa79") and "--train" in shipped["training_command"]
    assert shipped["dev_figures"]["execution_accuracy_no_threshold"] is not None
    assert not any(str(Path.home()) in json.dumps(v) for k, v in manifest.items() if k != "log_history")
    assert json.loads((SHIPPED / "adapter_config.json").read_text())["base_model_name_or_path"] == "bundled"


def test_the_current_code_builds_the_prompt_it_was_trained_with():
    # The hash covers the prompt code; sql_ship.py re-stamps it only after rebuilding training rows identically.
    # An edit to the prompt code after shipping fails here until the student is re-shipped (or retrained).
    task = get_task("sql")
    manifest = read_manifest("bundled-sql")
    task.restore(manifest)
    assert task.prompt_format() == manifest["prompt_format"]
    assert task.setting("k") == manifest["prompt_options"]["k"] and task.setting("draft") == manifest["prompt_options"]["draft"]


def test_a_missing_shipped_folder_is_one_model_error(monkeypatch, tmp_path):
    monkeypatch.setitem(SHIPPED_MODELS, "bundled-sql", lambda: tmp_path / "gone")
    with pytest.raises(ModelError, match="shipped model bundled-sql is missing") as err:
        expand_alias("bundled-sql")
    assert "reinstall" in err.value.one_line()


def _ask(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ehrforge", "ask", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


@pytest.mark.parametrize("damage", ["truncate-weights", "bad-config"])
def test_a_damaged_copy_is_one_line_naming_the_file(tmp_path, damage):
    copy = tmp_path / "bundled-sql"
    shutil.copytree(SHIPPED, copy)
    if damage == "truncate-weights":
        weights = copy / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        named = "adapter_model.safetensors"
    else:
        (copy / "adapter_config.json").write_text('{"r": 16,')
        named = "adapter_config.json"
    done = _ask(["How many patients were admitted in 2100?", "--model", str(copy)], {"EHRFORGE_HOME": str(tmp_path / "home")})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "warning" not in done.stderr, done.stderr


def test_ask_and_serve_use_it_when_no_model_is_named(tmp_path):
    from ehrforge.core.loader import trained_task
    from ehrforge.tasks import default_model

    assert default_model() == default_model(["sql"]) == "bundled-sql" and trained_task("bundled-sql") == "sql"
    done = _ask(["How many patients were admitted in 2100?", "--json"], {"EHRFORGE_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert "warning" not in done.stderr  # the prompt it builds is the one it was trained with
    # it answers with SQL that ran, or abstains with a reason: either way a value, with a confidence
    if reply["abstained"]:
        assert reply["reason"] and reply["answer"] is None or "sql" in reply["answer"]
    else:
        assert reply["answer"]["sql"].upper().startswith(("SELECT", "WITH")) and "rows" in reply["answer"]
    assert 0.0 <= reply["confidence"] <= 1.0
